//! The front-end service: the documented public API, the read and upload paths, and
//! the rebalance on notify.
//!
//! Reads ask the owning node first and fall back to storage; uploads write the blob,
//! commit the index row, then invalidate the key on every node of the pool with the
//! row's version, so no node can keep serving an older image.
//!
//! This file holds the settings, the shared state and the background tasks;
//! `routes` the HTTP API, `read` and `upload` the two paths, `rebalance` the pool
//! changes; the decisions that need no I/O are pure: `routing`, `trust` (quarantine,
//! fences, hand-overs) and `flux` (keys with an upload in progress).

#[cfg(test)]
mod api_tests;
pub mod flux;
mod read;
mod rebalance;
mod routes;
pub mod routing;
pub mod trust;
mod upload;

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use axum::Router;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio_util::sync::CancellationToken;

use crate::assign::Strategy;
use crate::balance::CachedKeys;
use crate::limits;
use crate::net::client::HttpClient;
use crate::ring::NodeId;
use crate::storage::{BlobStore, KeyIndex};
use crate::wire::client::{ManagerClient, NodeClient};
use flux::Flux;
pub use routing::Routing;
use trust::Trust;

/// How a front-end is set up.
#[derive(Clone, Debug)]
pub struct FrontendSettings {
    /// The manager, asked for the pool at start (until it answers).
    pub manager_addr: Option<String>,
    /// Port of nodes whose id carries none.
    pub node_port: u16,
    /// The manager's port, sent to leaving nodes in move orders.
    pub manager_port: u16,
    pub strategy: Strategy,
    pub upload_max_bytes: usize,
    /// Timeout of a cache call on the read path; past it the read goes to storage.
    pub node_timeout_ms: u64,
    /// Timeout of a move order (a node moves many keys).
    pub move_timeout_ms: u64,
    /// How often quarantined nodes are retried.
    pub heal_interval_ms: u64,
    /// How often the manager's pool is re-checked once known.
    pub sync_interval_ms: u64,
    /// Seed of the object-name generator.
    pub rng_seed: u64,
    /// The tokens it requires and sends (see [`crate::auth`]).
    pub secrets: crate::auth::Secrets,
    /// Store uploads of any type, not only raster images (`--allow-any-type`).
    pub allow_any_type: bool,
    /// Limits of its server.
    pub server: crate::net::server::ServerSettings,
    /// Most bytes of images its answers hold at once; past it reads get 503.
    pub response_budget_bytes: u64,
}

impl Default for FrontendSettings {
    fn default() -> Self {
        FrontendSettings {
            manager_addr: None,
            node_port: limits::NODE_PORT_DEFAULT,
            manager_port: limits::MANAGER_PORT_DEFAULT,
            strategy: Strategy::Modulo,
            upload_max_bytes: limits::UPLOAD_MAX_BYTES_DEFAULT,
            node_timeout_ms: limits::NODE_TIMEOUT_MS_DEFAULT,
            move_timeout_ms: limits::MOVE_TIMEOUT_MS_DEFAULT,
            heal_interval_ms: limits::HEAL_INTERVAL_MS_DEFAULT,
            sync_interval_ms: limits::SYNC_INTERVAL_MS_DEFAULT,
            rng_seed: 0,
            secrets: crate::auth::Secrets::default(),
            allow_any_type: false,
            server: crate::net::server::ServerSettings::default(),
            response_budget_bytes: limits::RESPONSE_BUDGET_BYTES_DEFAULT,
        }
    }
}

/// The front-end's shared state.
pub struct FrontendState {
    settings: FrontendSettings,
    client: HttpClient,
    blobs: Arc<dyn BlobStore>,
    index: Arc<dyn KeyIndex>,
    routing: RwLock<Option<Arc<Routing>>>,
    cached: Mutex<CachedKeys>,
    /// Quarantined nodes (an invalidation or clear was not confirmed: bypassed
    /// until cleared), each node's fence token (learned when this front-end last
    /// cleared it; fills and moves carry it, and a node refuses them once it was
    /// cleared again), and the nodes still handing keys over.
    trust: Mutex<Trust>,
    /// Serialises rebalances: a notify that arrives during one waits for it.
    rebalance_lock: tokio::sync::Mutex<()>,
    /// Uploads hold it shared from their blob write to their row commit;
    /// `clear/data` holds it alone, so it never deletes the blob of an upload whose
    /// row is about to commit.
    uploads_gate: tokio::sync::RwLock<()>,
    rng: Mutex<ChaCha8Rng>,
    /// Background cache fills in flight; a fill that finds none free is skipped.
    fills: Arc<tokio::sync::Semaphore>,
    /// Bytes of answers in flight (see [`crate::net::budget`]).
    pub budget: crate::net::budget::ResponseBudget,
    /// Keys with an upload in progress.
    flux: Mutex<Flux>,
    /// Cache hits thrown away because an upload of the key began meanwhile.
    discarded_hits: std::sync::atomic::AtomicU64,
}

/// Cache fills in flight at once.
const FILLS_IN_FLIGHT_MAX: usize = 256;
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FrontendState {
    pub fn new(
        settings: FrontendSettings,
        client: HttpClient,
        blobs: Arc<dyn BlobStore>,
        index: Arc<dyn KeyIndex>,
    ) -> Arc<Self> {
        let rng = ChaCha8Rng::seed_from_u64(settings.rng_seed);
        let budget = crate::net::budget::ResponseBudget::new(settings.response_budget_bytes);
        Arc::new(FrontendState {
            settings,
            client,
            blobs,
            index,
            routing: RwLock::new(None),
            cached: Mutex::new(CachedKeys::new()),
            trust: Mutex::new(Trust::default()),
            rebalance_lock: tokio::sync::Mutex::new(()),
            uploads_gate: tokio::sync::RwLock::new(()),
            rng: Mutex::new(rng),
            fills: Arc::new(tokio::sync::Semaphore::new(FILLS_IN_FLIGHT_MAX)),
            budget,
            flux: Mutex::new(Flux::new()),
            discarded_hits: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The routing in force, if the pool is known.
    pub fn routing(&self) -> Option<Arc<Routing>> {
        self.routing
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_routing(&self, routing: Routing) {
        *self
            .routing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(routing));
    }

    /// The cached-key index, as the next rebalance would see it.
    pub fn cached_keys(&self) -> CachedKeys {
        lock(&self.cached).clone()
    }

    /// Every node an upload must invalidate: the routing pool and the nodes still
    /// handing keys over.
    fn invalidation_targets(&self) -> Vec<NodeId> {
        let pool: Vec<NodeId> = self
            .routing()
            .map(|routing| routing.pool.nodes().to_vec())
            .unwrap_or_default();
        lock(&self.trust).invalidation_targets(&pool)
    }

    fn is_quarantined(&self, node: &NodeId) -> bool {
        lock(&self.trust).is_quarantined(node)
    }

    fn quarantine(&self, node: &NodeId) {
        if lock(&self.trust).quarantine(node) {
            tracing::warn!(%node, "node quarantined until it is cleared");
        }
    }

    /// A client of `node`; its calls wait `node_timeout_ms` at most.
    fn node_client(&self, node: &NodeId) -> NodeClient {
        NodeClient::new(self.client.clone(), node.address(self.settings.node_port))
            .with_timeout_ms(self.settings.node_timeout_ms)
    }

    /// A client of the manager, if one is configured.
    fn manager_client(&self) -> Option<ManagerClient> {
        let addr = self.settings.manager_addr.as_ref()?;
        Some(ManagerClient::new(self.client.clone(), addr.clone()))
    }

    /// The fence token of `node`, if this front-end has cleared it.
    fn fence(&self, node: &NodeId) -> Option<String> {
        lock(&self.trust).fence(node).map(str::to_owned)
    }

    /// Takes `token` for `node` if it is the same life and clear as the token held
    /// but with more floors forgotten (the node said so when refusing a put).
    fn adopt_later_fence(&self, node: &NodeId, token: &str) -> bool {
        lock(&self.trust).adopt_later_fence(node, token)
    }
}

/// Clears `node` and learns its new fence token (with a heal's ticket, the
/// quarantine is lifted unless it was renewed meanwhile). `None` if the node did
/// not confirm; else whether a quarantine was lifted.
async fn clear_node(
    state: &Arc<FrontendState>,
    node: &NodeId,
    heal: Option<trust::HealTicket>,
) -> Option<bool> {
    let cleared = state
        .node_client(node)
        .with_timeout_ms(state.client.settings().timeout_ms)
        .clear()
        .await
        .ok()?;
    Some(lock(&state.trust).cleared(node, cleared.fence, heal))
}

/// Clears each of `nodes`; a node that does not confirm is quarantined.
async fn clear_nodes(state: &Arc<FrontendState>, nodes: &[NodeId]) {
    let calls = nodes
        .iter()
        .map(|node| async move { (node, clear_node(state, node, None).await) });
    for (node, cleared) in futures::future::join_all(calls).await {
        if cleared.is_none() {
            state.quarantine(node);
        }
    }
}

/// The front-end's router.
pub fn router(state: Arc<FrontendState>) -> Router {
    routes::router(state)
}

/// Runs the front-end's background tasks until `shutdown`: the first pool fetch
/// (retried until the manager answers) and the healer of quarantined nodes.
pub async fn run_background(state: Arc<FrontendState>, shutdown: CancellationToken) {
    let sync = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            if state.settings.manager_addr.is_none() {
                return;
            }
            // Until the manager answers, retry with a growing pause; afterwards
            // re-check its pool every `sync_interval_ms`, so a notify that never
            // arrived (or a pool told by someone else) is corrected.
            let mut backoff_ms = 100;
            loop {
                let known = state.routing().is_some();
                match rebalance::sync_with_manager(&state).await {
                    Ok(()) => backoff_ms = state.settings.sync_interval_ms,
                    Err(error) => {
                        tracing::debug!(%error, "the manager's pool was not taken");
                        if !known {
                            backoff_ms = (backoff_ms * 2).min(2_000);
                        } else {
                            backoff_ms = state.settings.sync_interval_ms;
                        }
                    }
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                }
            }
        }
    };
    let heal = {
        let state = state.clone();
        async move {
            let interval = Duration::from_millis(state.settings.heal_interval_ms);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                rebalance::heal_quarantined(&state).await;
                upload::settle_unsettled(&state).await;
            }
        }
    };
    tokio::join!(sync, heal);
}
