//! The simulated world: turmoil hosts for the front-end, the manager, the node
//! slots, fake S3 and fake RDS, all running the production service code over the
//! turmoil side of the seam.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use memring::frontend::FrontendSettings;
use memring::manager::ManagerSettings;
use memring::net::client::{ClientSettings, HttpClient};
use memring::net::server::{serve, ServerSettings};
use memring::net::SharedConnector;
use memring::node::{CacheConfig, NodeSettings};
use memring::plant::Plants;
use memring::ring::NodeId;
use memring::storage::memory::{MemoryBlobStore, MemoryKeyIndex};
use memring::up::{start_frontend, start_manager, start_node};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

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
    pub plants: Plants,
    /// Simulated time per step.
    pub tick_ms: u64,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    /// Longest simulated run.
    pub duration_s: u64,
    pub stats_interval_ms: u64,
    pub autoscale_interval_ms: u64,
    pub cache: CacheConfig,
}

impl WorldSpec {
    pub fn new(seed: u64) -> Self {
        WorldSpec {
            seed,
            slots: SLOTS.iter().map(|s| s.to_string()).collect(),
            initial_pool: vec![SLOTS[0].to_owned()],
            plants: Plants::none(),
            tick_ms: 5,
            min_latency_ms: 1,
            max_latency_ms: 4,
            duration_s: 3_600,
            stats_interval_ms: 5_000,
            autoscale_interval_ms: 60_000,
            cache: CacheConfig {
                capacity: 8.0,
                policy: memring::cache::store::Policy::Lru,
            },
        }
    }
}

fn node_ids(names: &[String]) -> Vec<NodeId> {
    names
        .iter()
        .map(|name| NodeId::new(name).expect("slot names are valid node ids"))
        .collect()
}

/// A client of the services inside the simulation.
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
pub fn build(spec: &WorldSpec) -> turmoil::Sim<'static> {
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

    // Durable storage lives outside the hosts, so it survives their restarts.
    let seed = spec.seed;
    let blobs = Arc::new(MemoryBlobStore::default());
    sim.host("s3", move || {
        let blobs = blobs.clone();
        async move {
            let listener = TurmoilListener::bind(S3_PORT).await?;
            serve(
                Box::new(listener),
                s3_router(blobs, StorageFaults::default(), seed),
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
        async move {
            let listener = TurmoilListener::bind(RDS_PORT).await?;
            serve(
                Box::new(listener),
                rds_router(index, StorageFaults::default(), seed),
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
                    cache: spec.cache,
                    rng_seed: spec.seed.wrapping_mul(31).wrapping_add(slot as u64),
                    body_max_bytes: 4 * 1024 * 1024,
                    plants: spec.plants,
                    incarnation: spec
                        .seed
                        .wrapping_mul(1_000_003)
                        .wrapping_add(slot as u64 * 1_000 + life),
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
    let manager_disk = Arc::new(memring::manager::state::MemoryStateStore::default());
    sim.host("manager", move || {
        let spec = manager_spec.clone();
        let disk = manager_disk.clone();
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
            settings.state = Some(disk);
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
                plants: spec.plants,
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
    sim
}
