//! The simulated world: turmoil hosts for the front-end, the manager, the node
//! slots, fake S3 and fake RDS, all running the production service code over the
//! turmoil side of the seam.
//!
//! **Timing.** Ticks are 5 ms and links take from about 1 ms to 60 ms (to a few
//! hundred on the slow links a seed picks), drawn per message from an exponential
//! curve, so a message takes several steps and messages overtake each other.
//! Each seed picks its own latency curve and its own slow links, so the order in
//! which messages from different links reach a host changes from seed to seed.
//!
//! **Settings.** [`WorldSpec::randomized`] also picks, per seed, the assignment
//! strategy, the replacement policy, a cache small enough to evict, and the bound
//! on version floors (small enough, in some seeds, to be reached).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use memring::assign::Strategy;
use memring::auth::{Secrets, Token};
use memring::cache::store::Policy;
use memring::frontend::FrontendSettings;
use memring::limits::FLOORS_MAX_DEFAULT;
use memring::manager::state::FileStateStore;
use memring::manager::ManagerSettings;
use memring::net::client::{ClientSettings, HttpClient};
use memring::net::server::{serve, ServerSettings};
use memring::net::SharedConnector;
use memring::node::NodeSettings;
use memring::ring::NodeId;
use memring::storage::memory::{MemoryBlobStore, MemoryKeyIndex};
use memring::up::{start_frontend, start_manager, start_node};
use memring::wire::node::CacheConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::disk::SimDisk;
use crate::fakes::{
    rds_router, s3_router, RemoteBlobStore, RemoteKeyIndex, StorageFaults, RDS_PORT, S3_PORT,
};
use crate::seam::{TurmoilConnector, TurmoilListener};

/// Ports of the roles inside the simulation (as in the documented deployment).
pub const FRONTEND_PORT: u16 = 5000;
pub const NODE_PORT: u16 = 5001;
pub const MANAGER_PORT: u16 = 5004;

/// The eight node slots' host names.
pub const SLOTS: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

/// The simulated clock starts here: 2026-01-01T00:00:00Z.
pub const EPOCH_SECS: u64 = 1_767_225_600;

/// How a world is built.
#[derive(Clone, Debug)]
pub struct WorldSpec {
    pub seed: u64,
    /// Node slots (host names).
    pub slots: Vec<String>,
    /// The pool at start, in join order.
    pub initial_pool: Vec<String>,
    /// Simulated time per step.
    pub tick_ms: u64,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    /// Rate of the exponential latency curve: the mean delay is about
    /// `(max - min) / rate`; a small rate is a heavy tail.
    pub latency_rate: f64,
    /// Links slower than the rest: (host, host, their largest latency in ms).
    pub slow_links: Vec<(String, String, u64)>,
    /// Longest simulated run.
    pub duration_s: u64,
    pub stats_interval_ms: u64,
    pub autoscale_interval_ms: u64,
    pub cache: CacheConfig,
    pub strategy: Strategy,
    /// Most version floors a node keeps.
    pub floors_max: usize,
    /// Roles run without tokens, every call open (only a test of the rogue
    /// scenario sets it).
    pub tokens_off: bool,
}

/// Every host of the world but the clients.
pub fn service_hosts() -> Vec<String> {
    let mut hosts: Vec<String> = ["frontend", "manager", "s3", "rds"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    hosts.extend(SLOTS.iter().map(|s| s.to_string()));
    hosts
}

impl WorldSpec {
    /// The standard world: 5 ms ticks, 1 to 60 ms links, `modulo` and `lru`, 8 MB
    /// caches.
    pub fn new(seed: u64) -> Self {
        WorldSpec {
            seed,
            slots: SLOTS.iter().map(|s| s.to_string()).collect(),
            initial_pool: vec![SLOTS[0].to_owned()],
            tick_ms: 5,
            min_latency_ms: 1,
            max_latency_ms: 60,
            latency_rate: 6.0,
            slow_links: Vec::new(),
            duration_s: 3_600,
            stats_interval_ms: 5_000,
            autoscale_interval_ms: 60_000,
            cache: CacheConfig {
                capacity: 8.0,
                policy: Policy::Lru,
            },
            strategy: Strategy::Modulo,
            floors_max: FLOORS_MAX_DEFAULT,
            tokens_off: false,
        }
    }

    /// The secrets the roles of this world require and send: none when
    /// `tokens_off` (a test shows what the rogue scenario sees then).
    pub fn secrets(&self) -> Secrets {
        if self.tokens_off {
            Secrets::default()
        } else {
            sim_secrets()
        }
    }

    /// A world whose timing and settings are drawn from the seed.
    pub fn randomized(seed: u64) -> Self {
        let mut spec = WorldSpec::new(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0f3_071d);
        spec.randomize_timing(&mut rng);
        spec.strategy = if rng.gen_bool(0.5) {
            Strategy::Modulo
        } else {
            Strategy::Minimal
        };
        spec.cache.policy = if rng.gen_bool(0.5) {
            Policy::Lru
        } else {
            Policy::Rr
        };
        // Images are 2 KiB: from a handful of them per node up to all of them.
        const CAPACITIES_MB: [f64; 8] = [0.008, 0.008, 0.012, 0.012, 0.016, 0.02, 0.03, 8.0];
        spec.cache.capacity = CAPACITIES_MB[rng.gen_range(0..CAPACITIES_MB.len())];
        // A tiny floor bound makes nodes forget floors (and change their fence
        // token) all the time, which refuses every delayed put: it hides bugs in the
        // floors themselves, so it is one setting among several, not the rule.
        spec.floors_max = [
            4,
            64,
            FLOORS_MAX_DEFAULT,
            FLOORS_MAX_DEFAULT,
            FLOORS_MAX_DEFAULT,
            FLOORS_MAX_DEFAULT,
        ][rng.gen_range(0..6)];
        spec
    }

    /// Draws the latency curve and the slow links from `rng`.
    pub fn randomize_timing(&mut self, rng: &mut ChaCha8Rng) {
        self.min_latency_ms = rng.gen_range(1..=3);
        self.max_latency_ms = rng.gen_range(30..=90);
        self.latency_rate = rng.gen_range(3.0..10.0);
        let hosts = service_hosts();
        self.slow_links.clear();
        for _ in 0..rng.gen_range(0..6) {
            let a = &hosts[rng.gen_range(0..hosts.len())];
            let b = &hosts[rng.gen_range(0..hosts.len())];
            if a != b {
                let max_ms = self.max_latency_ms * rng.gen_range(2..=5);
                self.slow_links.push((a.clone(), b.clone(), max_ms));
            }
        }
    }

    /// One line describing the world, for reports.
    pub fn describe(&self) -> String {
        format!(
            "tick {} ms, links {}..{} ms (rate {:.1}, {} slow), strategy {}, policy {}, cache {} MB, floors {}",
            self.tick_ms,
            self.min_latency_ms,
            self.max_latency_ms,
            self.latency_rate,
            self.slow_links.len(),
            self.strategy.name(),
            self.cache.policy,
            self.cache.capacity,
            self.floors_max
        )
    }
}

/// A built world: the simulation and the handles scenarios inject faults with.
pub struct World {
    pub sim: turmoil::Sim<'static>,
    /// The manager's disk.
    pub manager_disk: Arc<SimDisk>,
    /// Faults of the fake S3 and the fake RDS (slow, errors, throttling, lost replies).
    pub s3_faults: StorageFaults,
    pub rds_faults: StorageFaults,
}

fn node_ids(names: &[String]) -> Vec<NodeId> {
    names
        .iter()
        .map(|name| NodeId::new(name).expect("slot names are valid node ids"))
        .collect()
}

/// A client of the services inside the simulation.
/// The cluster token of every simulated world (a constant: the seed stays the
/// whole input of a run, and no run's token differs from another's).
pub const CLUSTER_TOKEN: &str = "sim-cluster-token-0123456789";
/// The admin token of every simulated world.
pub const ADMIN_TOKEN: &str = "sim-admin-token-0123456789";

/// The secrets the simulated roles require and send.
fn sim_secrets() -> Secrets {
    Secrets {
        cluster: Some(Token::new(CLUSTER_TOKEN).expect("a valid token")),
        admin: Some(Token::new(ADMIN_TOKEN).expect("a valid token")),
    }
}

/// A client of the simulation's operators and users: it carries both tokens
/// (the rogue host's client carries none; see the chaos scenario).
pub fn trusted_client(timeout_ms: u64) -> HttpClient {
    sim_client(timeout_ms)
        .with_default_header(
            http::HeaderName::from_static(memring::wire::headers::CLUSTER_TOKEN),
            http::HeaderValue::from_static(CLUSTER_TOKEN),
        )
        .with_default_header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}")).expect("ASCII"),
        )
}

/// A client with no token.
pub fn sim_client(timeout_ms: u64) -> HttpClient {
    HttpClient::new(
        Arc::new(TurmoilConnector),
        ClientSettings {
            timeout_ms,
            ..ClientSettings::default()
        },
    )
}

type HostResult = Result<(), Box<dyn std::error::Error>>;

/// Builds the world: every host registered, none started until the sim runs.
pub fn build(spec: &WorldSpec) -> World {
    let mut builder = turmoil::Builder::new();
    builder
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .rng_seed(spec.seed)
        .enable_random_order()
        .tick_duration(Duration::from_millis(spec.tick_ms))
        .min_message_latency(Duration::from_millis(spec.min_latency_ms))
        .max_message_latency(Duration::from_millis(spec.max_latency_ms))
        .simulation_duration(Duration::from_secs(spec.duration_s))
        .tcp_capacity(4096);
    let mut sim = builder.build();
    sim.set_message_latency_curve(spec.latency_rate);

    // Durable storage lives outside the hosts, so it survives their restarts.
    let seed = spec.seed;
    let (s3_faults, rds_faults) = (StorageFaults::default(), StorageFaults::default());
    let (s3_handle, rds_handle) = (s3_faults.clone(), rds_faults.clone());
    let blobs = Arc::new(MemoryBlobStore::default());
    sim.host("s3", move || {
        let blobs = blobs.clone();
        let faults = s3_faults.clone();
        async move {
            let listener = TurmoilListener::bind(S3_PORT).await?;
            serve(
                Box::new(listener),
                s3_router(blobs, faults, seed),
                ServerSettings::default(),
                CancellationToken::new(),
            )
            .instrument(tracing::info_span!("host", name = "s3"))
            .await;
            HostResult::Ok(())
        }
    });
    let index = Arc::new(MemoryKeyIndex::default());
    sim.host("rds", move || {
        let index = index.clone();
        let faults = rds_faults.clone();
        async move {
            let listener = TurmoilListener::bind(RDS_PORT).await?;
            serve(
                Box::new(listener),
                rds_router(index, faults, seed),
                ServerSettings::default(),
                CancellationToken::new(),
            )
            .instrument(tracing::info_span!("host", name = "rds"))
            .await;
            HostResult::Ok(())
        }
    });

    for (slot, name) in spec.slots.iter().enumerate() {
        let host = name.clone();
        let name = name.clone();
        let spec = spec.clone();
        let lives = Arc::new(std::sync::atomic::AtomicU64::new(0));
        sim.host(host.as_str(), move || {
            let name = name.clone();
            let spec = spec.clone();
            let life = lives.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let span = tracing::info_span!("host", name = %name);
                let listener = TurmoilListener::bind(NODE_PORT).await?;
                let settings = NodeSettings {
                    node_id: NodeId::new(&name)?,
                    node_port: NODE_PORT,
                    manager_host: Some("manager".to_owned()),
                    manager_port: Some(MANAGER_PORT),
                    peers: Some(node_ids(&spec.slots)),
                    cache: spec.cache,
                    rng_seed: spec.seed.wrapping_mul(31).wrapping_add(slot as u64),
                    body_max_bytes: 4 * 1024 * 1024,
                    floors_max: spec.floors_max,
                    incarnation: spec
                        .seed
                        .wrapping_mul(1_000_003)
                        .wrapping_add(slot as u64 * 1_000 + life),
                    secrets: spec.secrets(),
                    server: Default::default(),
                };
                let connector: SharedConnector = Arc::new(TurmoilConnector);
                let service = span.in_scope(|| {
                    start_node(
                        settings,
                        Box::new(listener),
                        connector,
                        CancellationToken::new(),
                    )
                });
                let _ = service.task.await;
                HostResult::Ok(())
            }
        });
    }

    let manager_spec = spec.clone();
    // The manager's disk: its saved state outlives a crash of its host.
    let manager_disk = Arc::new(SimDisk::default());
    let disk_of_host = manager_disk.clone();
    sim.host("manager", move || {
        let spec = manager_spec.clone();
        let disk = disk_of_host.clone();
        async move {
            let span = tracing::info_span!("host", name = "manager");
            let listener = TurmoilListener::bind(MANAGER_PORT).await?;
            let mut settings = ManagerSettings::new(node_ids(&spec.slots));
            settings.initial_pool = Some(node_ids(&spec.initial_pool));
            settings.frontend_addr = Some(format!("frontend:{FRONTEND_PORT}"));
            settings.node_port = NODE_PORT;
            settings.stats_interval_ms = spec.stats_interval_ms;
            settings.autoscale_interval_ms = spec.autoscale_interval_ms;
            settings.cache = spec.cache;
            settings.state = Some(Arc::new(FileStateStore {
                path: "/var/lib/memring/manager-state.json".into(),
                disk,
            }));
            settings.strategy = spec.strategy;
            settings.secrets = spec.secrets();
            let connector: SharedConnector = Arc::new(TurmoilConnector);
            let service = span.in_scope(|| {
                start_manager(
                    settings,
                    Box::new(listener),
                    connector,
                    CancellationToken::new(),
                )
            })?;
            let _ = service.task.await;
            HostResult::Ok(())
        }
    });

    let frontend_spec = spec.clone();
    // Each start of the front-end draws object names from a new stream, so a
    // restarted front-end does not retry the names of its earlier life.
    let lives = Arc::new(std::sync::atomic::AtomicU64::new(0));
    sim.host("frontend", move || {
        let spec = frontend_spec.clone();
        let life = lives.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let span = tracing::info_span!("host", name = "frontend");
            let listener = TurmoilListener::bind(FRONTEND_PORT).await?;
            let storage_client = sim_client(crate::fakes::STORAGE_TIMEOUT_MS);
            let blobs = Arc::new(RemoteBlobStore {
                client: storage_client.clone(),
                addr: format!("s3:{S3_PORT}"),
            });
            let index = Arc::new(RemoteKeyIndex {
                client: storage_client,
                addr: format!("rds:{RDS_PORT}"),
            });
            let settings = FrontendSettings {
                manager_addr: Some(format!("manager:{MANAGER_PORT}")),
                node_port: NODE_PORT,
                manager_port: MANAGER_PORT,
                rng_seed: spec.seed.wrapping_mul(7919).wrapping_add(life),
                strategy: spec.strategy,
                secrets: spec.secrets(),
                ..FrontendSettings::default()
            };
            let connector: SharedConnector = Arc::new(TurmoilConnector);
            let service = span.in_scope(|| {
                start_frontend(
                    settings,
                    blobs,
                    index,
                    Box::new(listener),
                    connector,
                    CancellationToken::new(),
                )
            });
            let _ = service.task.await;
            HostResult::Ok(())
        }
    });
    for (a, b, max_ms) in &spec.slow_links {
        sim.set_link_max_message_latency(a.as_str(), b.as_str(), Duration::from_millis(*max_ms));
    }
    World {
        sim,
        manager_disk,
        s3_faults: s3_handle,
        rds_faults: rds_handle,
    }
}
