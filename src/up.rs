//! Wiring: starts each role on a listener and a connector, and `memring up`, which
//! runs the front-end, the manager and eight node slots in one process.
//!
//! The role starters take the seam (listener, connector) and a shutdown token from
//! the caller, so the simulation can start the same services on turmoil.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::Secrets;
use crate::frontend::{self, FrontendSettings, FrontendState};
use crate::manager::{self, ManagerSettings, ManagerState};
use crate::net::client::{ClientSettings, HttpClient};
use crate::net::server::{serve, ServerSettings};
use crate::net::{Listener, SharedConnector, TokioConnector, TokioListener};
use crate::node::{self, NodeSettings, NodeState};
use crate::ring::NodeId;
use crate::storage::local::LocalBlobStore;
use crate::storage::sqlite::SqliteKeyIndex;
use crate::storage::{BlobStore, KeyIndex};
use crate::wire::node::CacheConfig;

/// A running service.
pub struct Service<S> {
    pub state: Arc<S>,
    pub addr: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl<S> Service<S> {
    /// Stops the service and waits until its listener is closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// The client of a role's calls to the others: each carries the cluster token.
fn internal_client(connector: SharedConnector, secrets: &Secrets) -> HttpClient {
    let client = HttpClient::new(connector, ClientSettings::default());
    match secrets.cluster_header() {
        Some((name, value)) => client.with_default_header(name, value),
        None => client,
    }
}

/// What a role gives the generic starter.
struct Assembled<S> {
    state: Arc<S>,
    router: axum::Router,
    /// Done before the role answers anything (the manager takes up its saved
    /// state).
    startup: BoxFuture<'static, ()>,
    /// Run beside the server until shutdown (rounds; nothing for a node).
    background: BoxFuture<'static, ()>,
}

impl<S> Assembled<S> {
    fn new(state: Arc<S>, router: axum::Router) -> Self {
        Assembled {
            state,
            router,
            startup: Box::pin(async {}),
            background: Box::pin(async {}),
        }
    }
}

/// The one starter of every role: builds the role with its internal client,
/// runs its start-up, then serves its router on `listener` next to its
/// background work, until `shutdown`.
fn start_service<S: Send + Sync + 'static>(
    listener: Box<dyn Listener>,
    connector: SharedConnector,
    server: ServerSettings,
    secrets: &Secrets,
    shutdown: CancellationToken,
    assemble: impl FnOnce(HttpClient, CancellationToken) -> Result<Assembled<S>, String>,
) -> Result<Service<S>, String> {
    let spawner = connector.spawner();
    let client = internal_client(connector, secrets);
    let Assembled {
        state,
        router,
        startup,
        background,
    } = assemble(client, shutdown.clone())?;
    let addr = listener.local_addr();
    let serving = serve(listener, router, server, shutdown.clone());
    let task = spawner.spawn(
        async move {
            startup.await;
            tokio::join!(serving, background);
        }
        .in_current_span(),
    );
    Ok(Service {
        state,
        addr,
        shutdown,
        task,
    })
}

/// Starts a cache node on `listener`.
pub fn start_node(
    settings: NodeSettings,
    listener: Box<dyn Listener>,
    connector: SharedConnector,
    shutdown: CancellationToken,
) -> Service<NodeState> {
    let (server, secrets) = (settings.server, settings.secrets.clone());
    start_service(
        listener,
        connector,
        server,
        &secrets,
        shutdown,
        |client, _| {
            let state = NodeState::new(settings, client);
            let router = node::router(state.clone());
            Ok(Assembled::new(state, router))
        },
    )
    .expect("a node always starts")
}

/// Starts the front-end on `listener`, with its background tasks.
pub fn start_frontend(
    settings: FrontendSettings,
    blobs: Arc<dyn BlobStore>,
    index: Arc<dyn KeyIndex>,
    listener: Box<dyn Listener>,
    connector: SharedConnector,
    shutdown: CancellationToken,
) -> Service<FrontendState> {
    let (server, secrets) = (settings.server, settings.secrets.clone());
    start_service(
        listener,
        connector,
        server,
        &secrets,
        shutdown,
        |client, shutdown| {
            let state = FrontendState::new(settings, client, blobs, index);
            let router = frontend::router(state.clone());
            let background = frontend::run_background(state.clone(), shutdown);
            Ok(Assembled {
                background: Box::pin(background),
                ..Assembled::new(state, router)
            })
        },
    )
    .expect("a front-end always starts")
}

/// Starts the manager on `listener`, with its statistics and auto-scaler tasks;
/// it takes up its saved state before it answers anything.
pub fn start_manager(
    settings: ManagerSettings,
    listener: Box<dyn Listener>,
    connector: SharedConnector,
    shutdown: CancellationToken,
) -> Result<Service<ManagerState>, String> {
    let (server, secrets) = (settings.server, settings.secrets.clone());
    start_service(
        listener,
        connector,
        server,
        &secrets,
        shutdown,
        |client, shutdown| {
            let state = ManagerState::new(settings, client)?;
            let router = manager::router(state.clone());
            let restoring = state.clone();
            let startup = async move { restoring.restore().await };
            let background = manager::run_background(state.clone(), shutdown);
            Ok(Assembled {
                startup: Box::pin(startup),
                background: Box::pin(background),
                ..Assembled::new(state, router)
            })
        },
    )
}

/// Settings of `memring up`.
#[derive(Clone, Debug)]
pub struct UpSettings {
    pub data_dir: PathBuf,
    /// Host every role binds and is addressed on.
    pub host: String,
    /// Port 0 picks a free port (tests).
    pub frontend_port: u16,
    pub manager_port: u16,
    /// One port per node slot (1 to 8 slots).
    pub node_ports: Vec<u16>,
    pub cache: CacheConfig,
    pub upload_max_bytes: usize,
    pub strategy: crate::assign::Strategy,
    /// Seed of the services' random generators.
    pub rng_seed: u64,
    /// Overrides of the services' timing (tests shorten them).
    pub stats_interval_ms: u64,
    pub autoscale_interval_ms: u64,
    /// The tokens every role requires and sends (none: calls are open).
    pub secrets: Secrets,
    /// Store uploads of any type, not only raster images.
    pub allow_any_type: bool,
    /// Limits of every role's server (tests shorten the timeouts).
    pub server: ServerSettings,
    /// The front-end's response budget, in bytes.
    pub response_budget_bytes: u64,
}

impl UpSettings {
    pub fn new(data_dir: PathBuf) -> Self {
        UpSettings {
            data_dir,
            host: "127.0.0.1".to_owned(),
            frontend_port: crate::limits::FRONTEND_PORT_DEFAULT,
            manager_port: crate::limits::MANAGER_PORT_DEFAULT,
            node_ports: (0..crate::limits::POOL_NODES_MAX as u16)
                .map(|i| crate::limits::UP_NODE_PORT_BASE_DEFAULT + i)
                .collect(),
            cache: CacheConfig::default(),
            upload_max_bytes: crate::limits::UPLOAD_MAX_BYTES_DEFAULT,
            strategy: crate::assign::Strategy::Modulo,
            rng_seed: 0,
            stats_interval_ms: crate::limits::STATS_INTERVAL_MS_DEFAULT,
            autoscale_interval_ms: crate::limits::AUTOSCALE_INTERVAL_MS_DEFAULT,
            secrets: Secrets::default(),
            allow_any_type: false,
            server: ServerSettings::default(),
            response_budget_bytes: crate::limits::RESPONSE_BUDGET_BYTES_DEFAULT,
        }
    }
}

/// Everything `memring up` runs.
pub struct Up {
    pub frontend: Service<FrontendState>,
    pub manager: Service<ManagerState>,
    nodes: Vec<Option<Service<NodeState>>>,
    node_addrs: Vec<String>,
    pub index: Arc<SqliteKeyIndex>,
    pub shutdown: CancellationToken,
    settings: UpSettings,
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Starts the whole system on one machine.
pub async fn start_up(settings: UpSettings) -> Result<Up, String> {
    let slots_max = crate::limits::POOL_NODES_MAX;
    if settings.node_ports.is_empty() || settings.node_ports.len() > slots_max {
        return Err(format!("memring up runs 1 to {slots_max} node slots"));
    }
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
    let blobs = LocalBlobStore::open(&settings.data_dir.join("blobs"))
        .map_err(|e| format!("blob store: {e}"))?;
    let index = Arc::new(
        SqliteKeyIndex::open(&settings.data_dir.join("index.sqlite"))
            .await
            .map_err(|e| format!("key index: {e}"))?,
    );
    let connector: SharedConnector = Arc::new(TokioConnector);
    let shutdown = CancellationToken::new();
    let bind = |port: u16| {
        let addr = join_host_port(&settings.host, port);
        async move {
            TokioListener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))
        }
    };

    let manager_listener = bind(settings.manager_port).await?;
    let manager_addr = manager_listener.local_addr();
    let manager_port = port_of(&manager_addr);
    let frontend_listener = bind(settings.frontend_port).await?;
    let frontend_addr = frontend_listener.local_addr();

    // Every slot's listener first: each node is told all the slots (its peers).
    let mut listeners = Vec::new();
    for &port in &settings.node_ports {
        let listener = bind(port).await?;
        let node_id = NodeId::new(&listener.local_addr()).map_err(|e| e.to_string())?;
        listeners.push((listener, node_id));
    }
    let slots: Vec<NodeId> = listeners.iter().map(|(_, id)| id.clone()).collect();
    let mut nodes = Vec::new();
    for (slot, (listener, node_id)) in listeners.into_iter().enumerate() {
        nodes.push(start_node(
            node_settings(&settings, slot, node_id, manager_port, &slots),
            Box::new(listener),
            connector.clone(),
            shutdown.child_token(),
        ));
    }
    let node_addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();

    let mut manager_settings = ManagerSettings::new(slots);
    manager_settings.frontend_addr = Some(frontend_addr.clone());
    manager_settings.cache = settings.cache;
    manager_settings.stats_interval_ms = settings.stats_interval_ms;
    manager_settings.autoscale_interval_ms = settings.autoscale_interval_ms;
    manager_settings.strategy = settings.strategy;
    manager_settings.secrets = settings.secrets.clone();
    manager_settings.server = settings.server;
    manager_settings.state = Some(Arc::new(crate::manager::state::FileStateStore::real(
        settings.data_dir.join("manager-state.json"),
    )));
    let manager = start_manager(
        manager_settings,
        Box::new(manager_listener),
        connector.clone(),
        shutdown.child_token(),
    )?;

    let frontend_settings = FrontendSettings {
        manager_addr: Some(manager_addr),
        manager_port,
        upload_max_bytes: settings.upload_max_bytes,
        strategy: settings.strategy,
        rng_seed: settings.rng_seed,
        secrets: settings.secrets.clone(),
        allow_any_type: settings.allow_any_type,
        server: settings.server,
        response_budget_bytes: settings.response_budget_bytes,
        ..FrontendSettings::default()
    };
    let frontend = start_frontend(
        frontend_settings,
        Arc::new(blobs),
        index.clone(),
        Box::new(frontend_listener),
        connector,
        shutdown.child_token(),
    );
    Ok(Up {
        frontend,
        manager,
        nodes: nodes.into_iter().map(Some).collect(),
        node_addrs,
        index,
        shutdown,
        settings,
    })
}

fn node_settings(
    settings: &UpSettings,
    slot: usize,
    node_id: NodeId,
    manager_port: u16,
    peers: &[NodeId],
) -> NodeSettings {
    NodeSettings {
        node_id,
        node_port: crate::limits::NODE_PORT_DEFAULT,
        manager_host: Some(settings.host.clone()),
        manager_port: Some(manager_port),
        peers: Some(peers.to_vec()),
        cache: settings.cache,
        rng_seed: settings.rng_seed.wrapping_add(slot as u64 + 1),
        body_max_bytes: settings.upload_max_bytes + 1024,
        floors_max: crate::limits::FLOORS_MAX_DEFAULT,
        // Every start of a node is a new life, with a new fence token.
        incarnation: rand::RngCore::next_u64(&mut rand::rngs::OsRng),
        secrets: settings.secrets.clone(),
        server: settings.server,
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

impl Up {
    /// Waits until the front-end knows the pool.
    pub async fn ready(&self) {
        while self.frontend.state.routing().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The address of every node slot.
    pub fn node_addrs(&self) -> &[String] {
        &self.node_addrs
    }

    /// The running node of `slot`, if it runs.
    pub fn node(&self, slot: usize) -> Option<&Service<NodeState>> {
        self.nodes.get(slot).and_then(Option::as_ref)
    }

    /// Stops node `slot`, as if its process died; its address is kept for
    /// [`Up::restart_node`].
    pub async fn kill_node(&mut self, slot: usize) {
        if let Some(node) = self.nodes.get_mut(slot).and_then(Option::take) {
            node.stop().await;
        }
    }

    /// Starts node `slot` again, empty, on its old address.
    pub async fn restart_node(&mut self, slot: usize) -> Result<(), String> {
        self.kill_node(slot).await;
        let addr = self.node_addrs[slot].clone();
        let listener = TokioListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let node_id = NodeId::new(&addr).map_err(|e| e.to_string())?;
        self.nodes[slot] = Some(start_node(
            node_settings(
                &self.settings,
                slot,
                node_id,
                port_of(&self.manager.addr),
                self.manager.state.slots(),
            ),
            Box::new(listener),
            Arc::new(TokioConnector),
            self.shutdown.child_token(),
        ));
        Ok(())
    }

    /// Shuts everything down gracefully and closes the key index.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.frontend.task.await;
        let _ = self.manager.task.await;
        for node in self.nodes.into_iter().flatten() {
            let _ = node.task.await;
        }
        self.index.close().await;
    }
}
