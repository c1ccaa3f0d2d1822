//! The command line: argument parsing and the `plan` command.
//!
//! Each command is a function from parsed arguments to its output text, so tests can
//! call it without a process; `src/bin/memring.rs` only prints and sets the exit
//! code.

use clap::{Args, Parser, Subcommand};

use crate::assign::Strategy;
use crate::balance::{plan, CachedKeys, PlanSettings};
use crate::error::InputError;
use crate::key::validate_key;
use crate::render::{plan_lines, LOG_PREFIX};
use crate::ring::{NodeId, Pool};

/// Default port of a cache node.
pub const NODE_PORT_DEFAULT: u16 = 5001;
/// Default port of the manager.
pub const MANAGER_PORT_DEFAULT: u16 = 5004;

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

/// Parses the comma-separated member list of `--to`.
fn parse_members(text: &str) -> Result<Vec<NodeId>, InputError> {
    // Pool::parse_list validates emptiness, ids, duplicates and the size limit.
    Ok(Pool::parse_list(text)?.nodes().to_vec())
}

/// Parses `--cached`: keys in caching order. An empty value means no keys.
fn parse_cached(text: Option<&str>) -> Result<CachedKeys, InputError> {
    let mut cached = CachedKeys::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(cached);
    };
    for key in text.split(',') {
        validate_key(key)?;
        cached.insert(key);
    }
    Ok(cached)
}

/// Runs `memring plan`: returns the text to print, newline-terminated.
pub fn run_plan(args: &PlanArgs) -> Result<String, InputError> {
    let old_pool = Pool::parse_list(&args.from)?;
    let new_pool = old_pool.transition_to(&parse_members(&args.to)?)?;
    let cached = parse_cached(args.cached.as_deref())?;
    let settings = PlanSettings {
        strategy: args.strategy,
        manager_port: args.manager_port,
    };
    let plan = plan(&old_pool, &new_pool, &cached, settings);
    if args.json {
        let mut text = serde_json::to_string(&plan).expect("a plan always serializes");
        text.push('\n');
        return Ok(text);
    }
    Ok(plan_lines(&plan, args.node_port)
        .into_iter()
        .map(|line| format!("{LOG_PREFIX}{line}\n"))
        .collect())
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
