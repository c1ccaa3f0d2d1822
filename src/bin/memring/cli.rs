//! The command line: the arguments of every command, parsed by clap. Each
//! command runs a function of the library or of `run.rs`; `main.rs` only prints
//! and sets the exit code.

use clap::{Args, Parser, Subcommand};

use memring::assign::Strategy;
use memring::limits::{
    FRONTEND_PORT_DEFAULT, MANAGER_PORT_DEFAULT, NODE_PORT_DEFAULT, POOL_NODES_MAX,
    UPLOAD_MAX_BYTES_DEFAULT, UP_NODE_PORT_BASE_DEFAULT,
};
use memring::plan::PlanRequest;
use memring::ring::NodeId;

#[derive(Debug, Parser)]
#[command(
    name = "memring",
    version,
    about = "An image store with an elastic cache"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the rebalance plan for a pool change, as the front-end logs it.
    Plan(PlanArgs),
    /// Run everything on this machine: front-end, manager and 8 node slots.
    Up(UpArgs),
    /// Run the front-end alone.
    Frontend(FrontendArgs),
    /// Run one cache node.
    CacheNode(CacheNodeArgs),
    /// Run the manager alone.
    Manager(ManagerArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Read latency (uncached, cached) and cached-read throughput through the front-end.
    Read(super::bench::BenchReadArgs),
}

/// The tokens of a role (see `memring::auth`). Give them in the environment rather
/// than as flags, which other users of the machine can see.
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// The cluster token every internal call carries (16 to 256 visible ASCII
    /// characters). `memring up` makes a random one when none is given.
    #[arg(long, env = "MEMRING_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
    /// The admin token that clears, resizes and cache settings require (as
    /// `Authorization: Bearer <token>`). Unset: those calls are open.
    #[arg(long, env = "MEMRING_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Start even when bound beyond loopback without the tokens (anyone who can
    /// reach the ports can then reroute the pool or wipe the data).
    #[arg(long)]
    pub insecure_no_token: bool,
}

/// Cache settings shared by the roles that hold or push them.
#[derive(Debug, Args, Clone)]
pub struct CacheArgs {
    /// Cache capacity per node, in MB.
    #[arg(long, default_value_t = 64.0)]
    pub capacity_mb: f64,
    /// Replacement policy: lru or rr.
    #[arg(long, default_value = "lru")]
    pub policy: memring::cache::store::Policy,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where blobs and index.sqlite live.
    #[arg(long, default_value = "./memring-data")]
    pub data_dir: std::path::PathBuf,
    /// Host every role binds to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = FRONTEND_PORT_DEFAULT)]
    pub frontend_port: u16,
    #[arg(long, default_value_t = MANAGER_PORT_DEFAULT)]
    pub manager_port: u16,
    /// Port of the first node slot; the others follow (0: free ports).
    #[arg(long, default_value_t = UP_NODE_PORT_BASE_DEFAULT)]
    pub node_port_base: u16,
    /// Number of node slots (1 to 8).
    #[arg(long, default_value_t = POOL_NODES_MAX as u16,
          value_parser = clap::value_parser!(u16).range(1..=POOL_NODES_MAX as i64))]
    pub node_slots: u16,
    /// Largest upload, in bytes.
    #[arg(long, default_value_t = UPLOAD_MAX_BYTES_DEFAULT)]
    pub upload_max_bytes: usize,
    /// Store uploads of any type. By default only raster images (PNG, JPEG, GIF,
    /// WebP, BMP) are taken and anything else gets 415; SVG can carry script.
    #[arg(long)]
    pub allow_any_type: bool,
    /// Most MB of images the front-end's answers hold at once (clients that read
    /// slowly hold theirs); past it reads get 503.
    #[arg(long, default_value_t = 128)]
    pub response_budget_mb: u64,
    /// Assignment strategy: modulo (documented) or minimal.
    #[arg(long, default_value = "modulo")]
    pub strategy: Strategy,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
}

#[derive(Debug, Args)]
pub struct FrontendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5000")]
    pub listen: String,
    /// The manager, `host:port`.
    #[arg(long)]
    pub manager: String,
    /// Where blobs and index.sqlite live.
    #[arg(long, default_value = "./memring-data")]
    pub data_dir: std::path::PathBuf,
    /// Port of nodes whose id carries none.
    #[arg(long, default_value_t = NODE_PORT_DEFAULT)]
    pub node_port: u16,
    /// Largest upload, in bytes.
    #[arg(long, default_value_t = UPLOAD_MAX_BYTES_DEFAULT)]
    pub upload_max_bytes: usize,
    /// Store uploads of any type. By default only raster images (PNG, JPEG, GIF,
    /// WebP, BMP) are taken and anything else gets 415; SVG can carry script.
    #[arg(long)]
    pub allow_any_type: bool,
    /// Most MB of images the front-end's answers hold at once (clients that read
    /// slowly hold theirs); past it reads get 503.
    #[arg(long, default_value_t = 128)]
    pub response_budget_mb: u64,
    /// Assignment strategy: modulo (documented) or minimal.
    #[arg(long, default_value = "modulo")]
    pub strategy: Strategy,
    #[command(flatten)]
    pub tokens: TokenArgs,
}

#[derive(Debug, Args)]
pub struct CacheNodeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5001")]
    pub listen: String,
    /// This node's id as the manager lists it (host or host:port).
    #[arg(long)]
    pub node_id: NodeId,
    /// The manager's host, for the hand-over callback.
    #[arg(long)]
    pub manager_host: Option<String>,
    /// The manager's port: the callback goes there, whatever a move order says.
    #[arg(long, default_value_t = MANAGER_PORT_DEFAULT)]
    pub manager_port: u16,
    /// The cluster's node slots, as the manager's `--nodes` lists them. When
    /// given, move orders may only send keys to these nodes.
    #[arg(long)]
    pub peers: Option<String>,
    /// Port of other nodes whose id carries none.
    #[arg(long, default_value_t = NODE_PORT_DEFAULT)]
    pub node_port: u16,
    /// Largest item, in bytes.
    #[arg(long, default_value_t = UPLOAD_MAX_BYTES_DEFAULT + 1024)]
    pub item_max_bytes: usize,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
}

#[derive(Debug, Args)]
pub struct ManagerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5004")]
    pub listen: String,
    /// The front-end, `host:port`.
    #[arg(long)]
    pub frontend: String,
    /// The node slots, comma-separated ids (1 to 8).
    #[arg(long)]
    pub nodes: String,
    /// Where the pool and settings are kept across restarts.
    #[arg(long, default_value = "./memring-manager.json")]
    pub state_file: std::path::PathBuf,
    /// Assignment strategy: modulo (documented) or minimal.
    #[arg(long, default_value = "modulo")]
    pub strategy: Strategy,
    /// Port of nodes whose id carries none.
    #[arg(long, default_value_t = NODE_PORT_DEFAULT)]
    pub node_port: u16,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The current pool, in join order (comma-separated node ids).
    #[arg(long, value_name = "NODES")]
    pub from: String,
    /// The members of the new pool: survivors keep their order, newcomers are
    /// appended in the order given.
    #[arg(long, value_name = "NODES")]
    pub to: String,
    /// Cached keys, in the order they were cached (comma-separated).
    #[arg(long, value_name = "KEYS")]
    pub cached: Option<String>,
    /// Print one JSON object instead of the log lines.
    #[arg(long)]
    pub json: bool,
    /// Port of the cache nodes, for ids without a port of their own.
    #[arg(long, default_value_t = NODE_PORT_DEFAULT, value_parser = clap::value_parser!(u16).range(1..))]
    pub node_port: u16,
    /// Port of the manager, sent to leaving nodes.
    #[arg(long, default_value_t = MANAGER_PORT_DEFAULT, value_parser = clap::value_parser!(u16).range(1..))]
    pub manager_port: u16,
    /// Assignment strategy.
    #[arg(long, default_value = "modulo")]
    pub strategy: Strategy,
}

impl PlanArgs {
    /// The request these arguments make of the core.
    pub fn request(&self) -> PlanRequest {
        PlanRequest {
            from: self.from.clone(),
            to: self.to.clone(),
            cached: self.cached.clone(),
            json: self.json,
            node_port: self.node_port,
            manager_port: self.manager_port,
            strategy: self.strategy,
        }
    }
}

/// Collapses a clap error to one line: the message without the usage block.
pub fn one_line_clap_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect();
    message.join(" ")
}
