//! The front-end service: the documented public API, the read and upload paths, and
//! the rebalance on notify.
//!
//! Reads ask the owning node first and fall back to storage; uploads write the blob,
//! commit the index row, then invalidate the key on every node of the pool with the
//! row's version, so no node can keep serving an older image.

#[cfg(test)]
mod api_tests;
mod read;
mod rebalance;
mod routes;
pub mod routing;
pub mod trust;
mod upload;

use std::collections::BTreeMap;
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
/// Buckets of the upload counters that reads compare (see [`Flux`]).
const FLUX_BUCKETS: usize = 4_096;
/// Most keys whose failed upload could not be settled, kept out of the cache.
const UNSETTLED_KEYS_MAX: usize = 4_096;

/// Keys with an upload in progress, so that reads stay linearizable.
///
/// From just before an upload's row commit until its invalidation has reached
/// every node, some nodes may still hold the old image while storage has the new
/// one: a read could see the new image and a later read the old. So reads of a key
/// in flux skip the cache, and a cache hit is thrown away if an upload of its key
/// began while the read was out (counted per bucket of keys). A failed upload whose
/// row may have committed keeps its key out of the cache until the key is settled
/// by a later upload or a clear.
#[derive(Default)]
struct Flux {
    /// Uploads in progress per key.
    active: BTreeMap<String, u32>,
    /// Uploads begun, per bucket of keys.
    begun: Vec<u64>,
    /// Keys whose failed upload could not be settled, with when they were added.
    unsettled: BTreeMap<String, u64>,
    /// The same keys, oldest first, for the bound.
    unsettled_order: BTreeMap<u64, String>,
    next_unsettled: u64,
}

/// What a read noted before asking the cache: its key's bucket and the uploads
/// begun in it then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReadTicket {
    bucket: usize,
    begun: u64,
}

fn flux_bucket(key: &str) -> usize {
    let digest = <md5::Md5 as md5::Digest>::digest(key.as_bytes());
    (usize::from(digest[0]) << 8 | usize::from(digest[1])) % FLUX_BUCKETS
}

impl Flux {
    fn new() -> Self {
        Flux {
            begun: vec![0; FLUX_BUCKETS],
            ..Flux::default()
        }
    }

    fn in_flux(&self, key: &str) -> bool {
        self.active.contains_key(key) || self.unsettled.contains_key(key)
    }

    /// A read may use the cache for `key` now; returns what to compare later.
    fn read_ticket(&self, key: &str) -> Option<ReadTicket> {
        if self.in_flux(key) {
            return None;
        }
        let bucket = flux_bucket(key);
        Some(ReadTicket {
            bucket,
            begun: self.begun[bucket],
        })
    }

    /// Whether no upload of `key` began since `ticket` was taken.
    fn still_valid(&self, key: &str, ticket: ReadTicket) -> bool {
        !self.in_flux(key) && self.begun[ticket.bucket] == ticket.begun
    }

    /// An upload of `key` is about to commit. Returns the mark to give [`end`]:
    /// keys made unsettled from now on are not this upload's to settle.
    ///
    /// [`end`]: Flux::end
    fn begin(&mut self, key: &str) -> u64 {
        *self.active.entry(key.to_owned()).or_insert(0) += 1;
        self.begun[flux_bucket(key)] += 1;
        self.mark()
    }

    /// The sequence number the next unsettled key will get.
    fn mark(&self) -> u64 {
        self.next_unsettled
    }

    /// An upload of `key` that began at `mark` ended. `settled`: its version is
    /// on every node (or, after a failure, the key's row version is). That settles
    /// the key only if it was left unsettled before `mark`: a failed upload that
    /// ended later may have committed a newer row than the one invalidated.
    fn end(&mut self, key: &str, settled: bool, mark: u64) {
        if let Some(count) = self.active.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.active.remove(key);
            }
        }
        if settled {
            self.settle_before(key, mark);
        } else {
            // Marked again if it was already: the newest failure is what counts.
            if let Some(seq) = self.unsettled.remove(key) {
                self.unsettled_order.remove(&seq);
            }
            if self.unsettled.len() >= UNSETTLED_KEYS_MAX {
                if let Some((_, oldest)) = self.unsettled_order.pop_first() {
                    self.unsettled.remove(&oldest);
                }
            }
            let seq = self.next_unsettled;
            self.next_unsettled += 1;
            self.unsettled.insert(key.to_owned(), seq);
            self.unsettled_order.insert(seq, key.to_owned());
        }
        debug_assert_eq!(self.unsettled.len(), self.unsettled_order.len());
    }

    /// `key` is settled as of `mark`: no node holds anything older than the row
    /// read after `mark`. A key made unsettled at or after `mark` stays so.
    fn settle_before(&mut self, key: &str, mark: u64) {
        if let Some(&seq) = self.unsettled.get(key) {
            if seq < mark {
                self.unsettled.remove(key);
                self.unsettled_order.remove(&seq);
            }
        }
    }

    /// Every key made unsettled before `mark` is settled (every node was cleared
    /// after `mark`).
    fn settle_all_before(&mut self, mark: u64) {
        let later = self.unsettled_order.split_off(&mark);
        for key in self.unsettled_order.values() {
            self.unsettled.remove(key);
        }
        self.unsettled_order = later;
        debug_assert_eq!(self.unsettled.len(), self.unsettled_order.len());
    }

    /// Up to `count` unsettled keys, oldest first, each with the mark that
    /// settles it.
    fn unsettled_keys(&self, count: usize) -> Vec<(String, u64)> {
        self.unsettled_order
            .iter()
            .take(count)
            .map(|(&seq, key)| (key.clone(), seq + 1))
            .collect()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_skip_the_cache_while_a_key_is_in_flux() {
        let mut flux = Flux::new();
        let ticket = flux.read_ticket("k").expect("nothing in flux");
        assert!(flux.still_valid("k", ticket));
        let mark = flux.begin("k");
        assert_eq!(flux.read_ticket("k"), None);
        assert!(!flux.still_valid("k", ticket), "an upload began meanwhile");
        flux.end("k", true, mark);
        assert!(!flux.still_valid("k", ticket), "its counter moved on");
        assert!(flux.read_ticket("k").is_some());
    }

    #[test]
    fn unsettled_keys_are_bounded_and_settled() {
        let mut flux = Flux::new();
        for i in 0..=UNSETTLED_KEYS_MAX {
            let key = format!("k{i}");
            let mark = flux.begin(&key);
            flux.end(&key, false, mark);
        }
        assert_eq!(flux.unsettled.len(), UNSETTLED_KEYS_MAX);
        assert!(flux.read_ticket("k0").is_some(), "the oldest was dropped");
        let oldest = flux.unsettled_keys(2);
        assert_eq!(oldest[0].0, "k1");
        assert_eq!(oldest[1].0, "k2");
        assert_eq!(flux.read_ticket("k1"), None);
        flux.settle_before("k1", oldest[0].1);
        assert!(flux.read_ticket("k1").is_some());
        let mark = flux.mark();
        flux.settle_all_before(mark);
        assert!(flux.unsettled_keys(1).is_empty());
    }

    /// Chaos seed 632: an upload that succeeded must not settle a key that a
    /// later failed upload (whose row may have committed after its own) left
    /// unsettled; nor may the healer or a cache clear settle a mark newer than
    /// the row they read or the clear.
    #[test]
    fn only_marks_older_than_the_settler_are_settled() {
        let mut flux = Flux::new();
        let slow = flux.begin("k");
        let failed = flux.begin("k");
        flux.end("k", false, failed);
        flux.end("k", true, slow);
        assert_eq!(
            flux.read_ticket("k"),
            None,
            "the failed upload's mark stands"
        );

        // The healer listed the key, then another upload failed before it settled.
        let listed = flux.unsettled_keys(1)[0].1;
        let again = flux.begin("k");
        flux.end("k", false, again);
        flux.settle_before("k", listed);
        assert_eq!(
            flux.read_ticket("k"),
            None,
            "marked again after the listing"
        );
        let listed = flux.unsettled_keys(1)[0].1;
        flux.settle_before("k", listed);
        assert!(flux.read_ticket("k").is_some());

        // A clear settles what was marked before it began, not what came after.
        let before = flux.begin("a");
        flux.end("a", false, before);
        let clear = flux.mark();
        let after = flux.begin("b");
        flux.end("b", false, after);
        flux.settle_all_before(clear);
        assert!(flux.read_ticket("a").is_some());
        assert_eq!(flux.read_ticket("b"), None);
    }
}
