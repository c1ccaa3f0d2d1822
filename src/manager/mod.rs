//! The manager service: owns the pool (up to 8 node slots, in join order), resizes
//! it by hand or with the auto-scaler, collects node statistics, pushes the cache
//! configuration and forwards the clear calls to the front-end.
//!
//! Resize protocol: one resize at a time. The new pool is committed, the front-end
//! is notified (it rebalances before answering), then each leaving node is stopped
//! once it has called back after handing its keys over, or after a timeout.
//! "Stopping" a node clears it, so it rejoins empty.

mod routes;
pub mod state;

use crate::wire::change::Change;
use crate::wire::{headers, paths};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use futures::future::join_all;
use http::Method;
use serde_json::json;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::autoscale::{decide, AutoParams};
use crate::limits::{self, POOL_NODES_MAX, POOL_NODES_MIN};
use crate::net::client::HttpClient;
use crate::node::CacheConfig;
use crate::ring::NodeId;
use crate::stats::{counter_delta, NodeCounters, SeriesRecorder};

/// How a manager is set up.
#[derive(Clone, Debug)]
pub struct ManagerSettings {
    /// The node slots, 1 to 8; the pool starts with the first.
    pub slots: Vec<NodeId>,
    /// The pool at start, in join order, if not just the first slot (the
    /// simulation starts worlds with several nodes). Every node must be a slot.
    pub initial_pool: Option<Vec<NodeId>>,
    /// The front-end, notified of every resize.
    pub frontend_addr: Option<String>,
    /// Port of nodes whose id carries none.
    pub node_port: u16,
    pub stats_interval_ms: u64,
    pub autoscale_interval_ms: u64,
    /// How often every node is health-checked.
    pub health_interval_ms: u64,
    /// Timeout of one health check.
    pub health_timeout_ms: u64,
    /// Failed checks in a row before a pool node is ejected.
    pub health_failures_max: u32,
    /// How long a leaving node gets to hand its keys over.
    pub move_callback_timeout_ms: u64,
    /// Timeout of one notify (the front-end answers after its rebalance).
    pub notify_timeout_ms: u64,
    /// Notify attempts before the manager leaves it to the front-end's pool sync.
    pub notify_attempts_max: usize,
    pub cache: CacheConfig,
    /// Where the pool and settings are kept across restarts (none: in memory only).
    pub state: Option<Arc<dyn state::StateStore>>,
    /// How partitions are assigned to the pool; the manager owns the assignment.
    pub strategy: crate::assign::Strategy,
    /// The tokens it requires and sends (see [`crate::auth`]).
    pub secrets: crate::auth::Secrets,
    /// Limits of its server.
    pub server: crate::net::server::ServerSettings,
}

impl std::fmt::Debug for dyn state::StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateStore")
    }
}

impl ManagerSettings {
    pub fn new(slots: Vec<NodeId>) -> Self {
        ManagerSettings {
            slots,
            initial_pool: None,
            frontend_addr: None,
            node_port: limits::NODE_PORT_DEFAULT,
            stats_interval_ms: limits::STATS_INTERVAL_MS_DEFAULT,
            autoscale_interval_ms: limits::AUTOSCALE_INTERVAL_MS_DEFAULT,
            health_interval_ms: limits::HEALTH_INTERVAL_MS_DEFAULT,
            health_timeout_ms: limits::HEALTH_TIMEOUT_MS_DEFAULT,
            health_failures_max: limits::HEALTH_FAILURES_MAX_DEFAULT,
            move_callback_timeout_ms: limits::MOVE_CALLBACK_TIMEOUT_MS_DEFAULT,
            notify_timeout_ms: limits::NOTIFY_TIMEOUT_MS_DEFAULT,
            notify_attempts_max: limits::NOTIFY_ATTEMPTS_MAX_DEFAULT,
            cache: CacheConfig::default(),
            state: None,
            strategy: crate::assign::Strategy::Modulo,
            secrets: crate::auth::Secrets::default(),
            server: crate::net::server::ServerSettings::default(),
        }
    }
}

pub use crate::wire::change::Mode;

struct Inner {
    pool: Vec<NodeId>,
    /// The assignment of the pool, and its epoch: one more at every pool change.
    mapping: crate::assign::Assignment,
    epoch: u64,
    /// The newest epoch the front-end acknowledged; behind `epoch`, or unknown (as
    /// after a start), means it still has to be told, which the health loop does.
    acked_epoch: Option<u64>,
    /// Nodes taken out of the pool because they failed their health checks; they
    /// rejoin (empty) when they answer again. Still counted as wanted capacity.
    ejected: Vec<NodeId>,
    /// Health checks failed in a row, per node.
    health_failures: BTreeMap<NodeId, u32>,
    mode: Mode,
    params: AutoParams,
    cache: CacheConfig,
    recorder: SeriesRecorder,
    /// The auto-scaler's last reading of each node, for its deltas.
    autoscale_baseline: BTreeMap<NodeId, NodeCounters>,
}

/// The manager's shared state.
pub struct ManagerState {
    settings: ManagerSettings,
    client: HttpClient,
    inner: Mutex<Inner>,
    /// Held for a whole resize, rebalance and hand-over included.
    resize_lock: tokio::sync::Mutex<()>,
    callbacks: Mutex<BTreeMap<NodeId, oneshot::Sender<()>>>,
    started: tokio::time::Instant,
}

impl ManagerState {
    pub fn new(settings: ManagerSettings, client: HttpClient) -> Result<Arc<Self>, String> {
        if settings.slots.is_empty() || settings.slots.len() > POOL_NODES_MAX {
            return Err(format!(
                "the manager needs 1 to {POOL_NODES_MAX} node slots, got {}",
                settings.slots.len()
            ));
        }
        crate::ring::Pool::new(settings.slots.clone()).map_err(|e| e.to_string())?;
        let pool = match &settings.initial_pool {
            Some(pool) => {
                crate::ring::Pool::new(pool.clone()).map_err(|e| e.to_string())?;
                if let Some(stranger) = pool.iter().find(|n| !settings.slots.contains(n)) {
                    return Err(format!("initial pool node {stranger} is not a slot"));
                }
                pool.clone()
            }
            None => vec![settings.slots[0].clone()],
        };
        let mapping = settings.strategy.assign(
            &crate::ring::Pool::new(pool.clone()).map_err(|e| e.to_string())?,
            None,
        );
        let inner = Inner {
            mapping,
            epoch: 0,
            acked_epoch: None,
            pool,
            ejected: Vec::new(),
            health_failures: BTreeMap::new(),
            mode: Mode::Manual,
            params: AutoParams::default(),
            cache: settings.cache,
            recorder: SeriesRecorder::new(),
            autoscale_baseline: BTreeMap::new(),
        };
        Ok(Arc::new(ManagerState {
            settings,
            client,
            inner: Mutex::new(inner),
            resize_lock: tokio::sync::Mutex::new(()),
            callbacks: Mutex::new(BTreeMap::new()),
            started: tokio::time::Instant::now(),
        }))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up the saved state, if there is a valid one.
    pub async fn restore(&self) {
        let Some(store) = &self.settings.state else {
            return;
        };
        let Some(bytes) = store.load().await else {
            return;
        };
        let saved: state::SavedState = match serde_json::from_slice(&bytes) {
            Ok(saved) => saved,
            Err(error) => {
                tracing::warn!(%error, "saved manager state unreadable; starting afresh");
                return;
            }
        };
        let valid = crate::ring::Pool::new(saved.pool.clone()).is_ok()
            && saved
                .pool
                .iter()
                .all(|node| self.settings.slots.contains(node))
            && saved.params.validate().is_ok()
            && saved.cache.validate().is_ok();
        if !valid {
            tracing::warn!("saved manager state does not fit the slots; starting afresh");
            return;
        }
        let mut inner = self.inner();
        tracing::info!(pool = ?saved.pool, "manager state restored");
        let pool = crate::ring::Pool::new(saved.pool.clone()).expect("validated above");
        inner.mapping = saved
            .assignment
            .as_deref()
            .and_then(|ids| crate::assign::Assignment::from_ids(ids, &pool).ok())
            .unwrap_or_else(|| self.settings.strategy.assign(&pool, None));
        inner.epoch = saved.epoch;
        inner.pool = saved.pool;
        inner.ejected = saved
            .ejected
            .into_iter()
            .filter(|node| self.settings.slots.contains(node))
            .collect();
        inner.mode = if saved.automatic {
            Mode::Automatic
        } else {
            Mode::Manual
        };
        inner.params = saved.params;
        inner.cache = saved.cache;
    }

    /// Saves the state (pool, mode, parameters, cache configuration).
    pub async fn persist(&self) {
        let Some(store) = &self.settings.state else {
            return;
        };
        let saved = {
            let inner = self.inner();
            state::SavedState {
                epoch: inner.epoch,
                assignment: Some(
                    inner
                        .mapping
                        .owners()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
                pool: inner.pool.clone(),
                ejected: inner.ejected.clone(),
                automatic: inner.mode == Mode::Automatic,
                params: inner.params,
                cache: inner.cache,
            }
        };
        let bytes = serde_json::to_vec(&saved).expect("the state serializes");
        if let Err(error) = store.save(bytes).await {
            tracing::error!(%error, "could not save the manager state");
        }
    }

    /// The node slots it was given.
    pub fn slots(&self) -> &[NodeId] {
        &self.settings.slots
    }

    /// The pool in join order.
    pub fn pool(&self) -> Vec<NodeId> {
        self.inner().pool.clone()
    }

    /// The pool's epoch and assignment.
    pub fn assignment(&self) -> (u64, crate::assign::Assignment) {
        let inner = self.inner();
        (inner.epoch, inner.mapping.clone())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn node_addr(&self, node: &NodeId) -> String {
        node.address(self.settings.node_port)
    }

    /// Grows (`+1`) or shrinks (`-1`) the pool by one node, by hand.
    pub async fn resize_by_one(self: &Arc<Self>, grow: bool) -> Result<Vec<NodeId>, ApiError> {
        let _guard = self.resize_lock.lock().await;
        let current = self.pool();
        let ejected = self.inner().ejected.len();
        let target = if grow {
            if current.len() + ejected >= self.settings.slots.len() {
                return Err(ApiError::bad_request(format!(
                    "the pool already has {} nodes, the most it can hold",
                    current.len() + ejected
                )));
            }
            current.len() + 1
        } else {
            if current.len() <= POOL_NODES_MIN {
                return Err(ApiError::bad_request(
                    "the pool has 1 node, the fewest it can hold",
                ));
            }
            current.len() - 1
        };
        self.inner().mode = Mode::Manual;
        self.resize_locked(target, Mode::Manual).await
    }

    /// Sets the pool to exactly `members`, by hand: survivors keep their join order
    /// and newcomers are appended (see [`crate::ring::Pool::transition_to`]). Every
    /// member must be a slot that is not ejected. This is how an operator picks the
    /// nodes rather than the count; the front-end takes pools from the manager only.
    pub async fn set_pool(self: &Arc<Self>, members: &[NodeId]) -> Result<Vec<NodeId>, ApiError> {
        let _guard = self.resize_lock.lock().await;
        let old = self.pool();
        let ejected = self.inner().ejected.clone();
        for node in members {
            if !self.settings.slots.contains(node) {
                return Err(ApiError::bad_request(format!(
                    "{node} is not one of the manager's node slots"
                )));
            }
            if ejected.contains(node) {
                return Err(ApiError::bad_request(format!(
                    "{node} is ejected (it fails its health checks)"
                )));
            }
        }
        let new = crate::ring::Pool::new(old.clone())
            .and_then(|pool| pool.transition_to(members))
            .map_err(|error| ApiError::bad_request(error.to_string()))?
            .nodes()
            .to_vec();
        self.inner().mode = Mode::Manual;
        self.change_pool_locked(old, new, Mode::Manual, true).await
    }

    /// Resizes to `target` nodes. The caller holds `resize_lock`.
    async fn resize_locked(
        self: &Arc<Self>,
        target: usize,
        mode: Mode,
    ) -> Result<Vec<NodeId>, ApiError> {
        let old = self.pool();
        let target = target.clamp(POOL_NODES_MIN, self.settings.slots.len());
        if target == old.len() {
            return Ok(old);
        }
        let ejected = self.inner().ejected.clone();
        let mut new = old.clone();
        // Growing takes free slots in slot order; shrinking removes the latest joiners.
        while new.len() < target {
            let Some(free) = self
                .settings
                .slots
                .iter()
                .find(|slot| !new.contains(slot) && !ejected.contains(slot))
            else {
                break;
            };
            new.push(free.clone());
        }
        new.truncate(target);
        self.change_pool_locked(old, new, mode, true).await
    }

    /// Moves the pool from `old` to `new`: config to joiners, commit, notify, then
    /// each leaving node is stopped after its hand-over callback (when
    /// `wait_for_leavers`) or a timeout. The caller holds `resize_lock`.
    async fn change_pool_locked(
        self: &Arc<Self>,
        old: Vec<NodeId>,
        new: Vec<NodeId>,
        mode: Mode,
        wait_for_leavers: bool,
    ) -> Result<Vec<NodeId>, ApiError> {
        if new == old {
            return Ok(old);
        }
        let joining: Vec<NodeId> = new.iter().filter(|n| !old.contains(n)).cloned().collect();
        let leaving: Vec<NodeId> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
        let change = Change::between(old.len(), new.len());
        tracing::info!(?old, ?new, mode = mode.as_str(), "resizing the pool");

        // Joining nodes get the cache configuration before they get keys.
        let config = self.inner().cache;
        for node in &joining {
            self.push_config(node, &config).await;
        }
        let waits: Vec<(NodeId, oneshot::Receiver<()>)> = leaving
            .iter()
            .map(|node| {
                let (sender, receiver) = oneshot::channel();
                self.callbacks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(node.clone(), sender);
                (node.clone(), receiver)
            })
            .collect();
        let (epoch, mapping) = {
            let mut inner = self.inner();
            let pool = crate::ring::Pool::new(new.clone())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            inner.mapping = self.settings.strategy.assign(&pool, Some(&inner.mapping));
            inner.epoch += 1;
            inner.pool = new.clone();
            (inner.epoch, inner.mapping.clone())
        };
        self.persist().await;

        let notified = self
            .notify_frontend(&new, mode, change, epoch, &mapping)
            .await
            .is_some();
        let timeout = Duration::from_millis(self.settings.move_callback_timeout_ms);
        let stops = waits.into_iter().map(|(node, receiver)| async move {
            // Without a notified front-end no move order comes, and an ejected node
            // cannot call back: do not wait for them.
            if notified
                && wait_for_leavers
                && tokio::time::timeout(timeout, receiver).await.is_err()
            {
                tracing::warn!(%node, "no hand-over callback in time; stopping the node anyway");
            }
            self.callbacks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&node);
            self.stop_node(&node).await;
        });
        join_all(stops).await;
        Ok(new)
    }

    /// Tells the front-end the pool, its epoch and assignment; returns the epoch the
    /// front-end acknowledged, if it did.
    ///
    /// A front-end that holds a newer epoch refuses with 409 and names its epoch:
    /// this manager's saved state was lost or is older. The manager is the source
    /// of truth for the pool, so it moves its epoch past the front-end's, saves it,
    /// and tells the front-end again.
    async fn notify_frontend(
        &self,
        pool: &[NodeId],
        mode: Mode,
        change: Change,
        epoch: u64,
        mapping: &crate::assign::Assignment,
    ) -> Option<u64> {
        let frontend = self.settings.frontend_addr.as_ref()?;
        let mut epoch = epoch;
        for attempt in 1..=self.settings.notify_attempts_max {
            let body = json!({
                "node_ip": pool,
                "mode": mode,
                "change": change,
                "epoch": epoch,
                "assignment": mapping,
            });
            let outcome = self
                .client
                .send_with_timeout(
                    Method::POST,
                    frontend,
                    paths::NOTIFY,
                    &[(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    )],
                    Bytes::from(body.to_string()),
                    self.settings.notify_timeout_ms,
                )
                .await;
            match outcome {
                Ok(reply) if reply.status.is_success() => {
                    let mut inner = self.inner();
                    inner.acked_epoch = Some(inner.acked_epoch.unwrap_or(0).max(epoch));
                    return Some(epoch);
                }
                Ok(reply) if reply.status == http::StatusCode::CONFLICT => {
                    let theirs = reply
                        .headers
                        .get(headers::EPOCH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    match theirs {
                        Some(theirs) if !crate::planted!(ManagerEpochReset) => {
                            epoch = self.overtake_epoch(epoch, theirs).await;
                            tracing::warn!(
                                theirs,
                                epoch,
                                "the front-end held a newer epoch; this manager's state was lost or older, so it moves past it"
                            );
                            continue;
                        }
                        _ => {
                            tracing::error!(
                                target: crate::INVARIANT_TARGET,
                                epoch,
                                theirs,
                                "the front-end refused this manager's epoch and the manager cannot move past it: its pool changes do not reach the front-end"
                            );
                            return None;
                        }
                    }
                }
                Ok(reply) => {
                    tracing::warn!(status = %reply.status, attempt, "front-end refused the notify")
                }
                Err(error) => tracing::warn!(%error, attempt, "notify failed"),
            }
            // 200 ms, 400 ms, 800 ms, ...
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(8))).await;
        }
        tracing::error!("front-end not notified; it will take the pool when it restarts");
        None
    }

    /// Moves this manager's epoch past `theirs` (the front-end's), saves it, and
    /// returns the new epoch. Leaves a newer epoch alone (one taken meanwhile).
    async fn overtake_epoch(&self, ours: u64, theirs: u64) -> u64 {
        let epoch = {
            let mut inner = self.inner();
            if inner.epoch == ours {
                // The front-end refuses epochs past `EPOCH_MAX`, so this cannot
                // overflow; saturate anyway rather than wrap.
                inner.epoch = ours.max(theirs).saturating_add(1);
            }
            inner.epoch
        };
        self.persist().await;
        epoch
    }

    /// Stops a node that left the pool: it is cleared so that it rejoins empty.
    async fn stop_node(&self, node: &NodeId) {
        let addr = self.node_addr(node);
        if let Err(error) = self
            .client
            .send(Method::DELETE, &addr, paths::NODE_CLEAR, &[], Bytes::new())
            .await
        {
            tracing::warn!(%node, %error, "could not clear a leaving node");
        }
    }

    async fn push_config(&self, node: &NodeId, config: &CacheConfig) -> bool {
        let addr = self.node_addr(node);
        match self
            .client
            .send_json(Method::POST, &addr, paths::NODE_CONFIG, config)
            .await
        {
            Ok(reply) if reply.status.is_success() => true,
            outcome => {
                tracing::warn!(%node, ?outcome, "could not push the cache configuration");
                false
            }
        }
    }

    /// Sets the cache configuration and pushes it to every node of the pool.
    pub async fn set_cache_config(&self, config: CacheConfig) -> Vec<String> {
        self.inner().cache = config;
        self.persist().await;
        let pool = self.pool();
        let mut failed = Vec::new();
        for node in &pool {
            if !self.push_config(node, &config).await {
                failed.push(node.to_string());
            }
        }
        failed
    }

    /// A leaving node reports that it handed its keys over.
    pub fn move_done(&self, node: &NodeId) -> bool {
        let sender = self
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
        match sender {
            Some(sender) => sender.send(()).is_ok(),
            None => false,
        }
    }

    async fn read_counters(&self, nodes: &[NodeId]) -> Vec<(NodeId, NodeCounters)> {
        let calls = nodes.iter().map(|node| async move {
            let addr = self.node_addr(node);
            let reply = self
                .client
                .send(Method::GET, &addr, paths::NODE_STATS, &[], Bytes::new())
                .await
                .ok()?;
            #[derive(serde::Deserialize)]
            struct Envelope {
                content: NodeCounters,
            }
            let envelope: Envelope = reply.json()?;
            Some((node.clone(), envelope.content))
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// One statistics round: sample every pool node and close finished minutes.
    pub async fn collect_stats(&self) {
        let pool = self.pool();
        let samples = self.read_counters(&pool).await;
        let now_ms = self.now_ms();
        let samples: Vec<(String, NodeCounters)> = samples
            .into_iter()
            .map(|(node, counters)| (node.to_string(), counters))
            .collect();
        let mut inner = self.inner();
        inner.recorder.record(now_ms, &samples);
        inner.recorder.close_minutes(now_ms);
    }

    /// One auto-scaler round: the pool's GETs and hits since the last round decide
    /// the new size. Returns the size decided, if the manager is in automatic mode.
    pub async fn autoscale_round(self: &Arc<Self>) -> Option<usize> {
        let _guard = self.resize_lock.lock().await;
        let pool = self.pool();
        let samples = self.read_counters(&pool).await;
        let (mode, params, gets, hits) = {
            let mut inner = self.inner();
            let (mut gets, mut hits) = (0, 0);
            for (node, counters) in &samples {
                let before = inner
                    .autoscale_baseline
                    .get(node)
                    .copied()
                    .unwrap_or_default();
                gets += counter_delta(before.gets, counters.gets);
                hits += counter_delta(before.hits, counters.hits);
                inner.autoscale_baseline.insert(node.clone(), *counters);
            }
            (inner.mode, inner.params, gets, hits)
        };
        if mode != Mode::Automatic {
            return None;
        }
        // Ejected nodes still count: an ejection is not a decision to shrink.
        let ejected = self.inner().ejected.len();
        let wanted = pool.len() + ejected;
        let target = decide(&params, wanted, gets, hits).min(self.settings.slots.len());
        tracing::info!(gets, hits, size = wanted, target, "auto-scaler round");
        if target != wanted {
            let pool_target = target.saturating_sub(ejected).max(POOL_NODES_MIN);
            if let Err(error) = self.resize_locked(pool_target, Mode::Automatic).await {
                tracing::warn!(error = %error.message, "automatic resize failed");
            }
        }
        Some(target)
    }
}

impl ManagerState {
    /// One health round: every pool node and every ejected node is checked. A pool
    /// node that failed `health_failures_max` checks in a row is ejected (never the
    /// last one); an ejected node that answers rejoins, and the front-end clears it
    /// before routing to it.
    /// Tells the front-end the pool in force if it has not acknowledged it yet
    /// (every notify attempt failed, during a partition say).
    pub async fn renotify_if_behind(self: &Arc<Self>) {
        let behind = {
            let inner = self.inner();
            inner.acked_epoch.is_none_or(|acked| acked < inner.epoch)
        };
        if !behind {
            return;
        }
        let _guard = self.resize_lock.lock().await;
        let (pool, epoch, mapping, mode) = {
            let inner = self.inner();
            (
                inner.pool.clone(),
                inner.epoch,
                inner.mapping.clone(),
                inner.mode,
            )
        };
        tracing::info!(epoch, "telling the front-end the pool again");
        self.notify_frontend(&pool, mode, Change::Increase, epoch, &mapping)
            .await;
    }

    pub async fn health_round(self: &Arc<Self>) {
        let (pool, ejected) = {
            let inner = self.inner();
            (inner.pool.clone(), inner.ejected.clone())
        };
        let checks = pool.iter().chain(&ejected).map(|node| async move {
            let addr = self.node_addr(node);
            let healthy = self
                .client
                .send_with_timeout(
                    Method::GET,
                    &addr,
                    paths::HEALTHZ,
                    &[],
                    Bytes::new(),
                    self.settings.health_timeout_ms,
                )
                .await
                .is_ok_and(|reply| reply.status.is_success());
            (node.clone(), healthy)
        });
        let results = join_all(checks).await;
        let (to_eject, to_rejoin) = {
            let mut inner = self.inner();
            let mut to_eject = Vec::new();
            let mut to_rejoin = Vec::new();
            for (node, healthy) in results {
                let failures = inner.health_failures.entry(node.clone()).or_insert(0);
                *failures = if healthy {
                    0
                } else {
                    failures.saturating_add(1)
                };
                if pool.contains(&node) && *failures >= self.settings.health_failures_max {
                    to_eject.push(node);
                } else if ejected.contains(&node) && healthy {
                    to_rejoin.push(node);
                }
            }
            (to_eject, to_rejoin)
        };
        if to_eject.is_empty() && to_rejoin.is_empty() {
            return;
        }
        let _guard = self.resize_lock.lock().await;
        let old = self.pool();
        let mut new: Vec<NodeId> = old
            .iter()
            .filter(|n| !to_eject.contains(n))
            .cloned()
            .collect();
        if new.is_empty() {
            // Never eject the last node: reads fall back to storage anyway.
            new.push(old[0].clone());
        }
        let mut gone: Vec<NodeId> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
        let mut back: Vec<NodeId> = Vec::new();
        {
            let mut inner = self.inner();
            inner.ejected.retain(|n| !to_rejoin.contains(n));
            for node in &to_rejoin {
                if !new.contains(node) && new.len() < self.settings.slots.len() {
                    new.push(node.clone());
                    back.push(node.clone());
                }
            }
            inner.ejected.append(&mut gone);
        }
        if !back.is_empty() || new.len() != old.len() {
            tracing::warn!(?old, ?new, ejected = ?to_eject, rejoined = ?back, "pool changed by health checks");
        }
        let mode = self.inner().mode;
        if let Err(error) = self.change_pool_locked(old, new, mode, false).await {
            tracing::warn!(error = %error.message, "pool change after health checks failed");
        }
        self.persist().await;
    }
}

/// The manager's router.
pub fn router(state: Arc<ManagerState>) -> Router {
    routes::router(state)
}

/// Runs the statistics collector and the auto-scaler until `shutdown`.
pub async fn run_background(state: Arc<ManagerState>, shutdown: CancellationToken) {
    let stats = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut ticker =
                tokio::time::interval(Duration::from_millis(state.settings.stats_interval_ms));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => state.collect_stats().await,
                }
            }
        }
    };
    let health = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut ticker =
                tokio::time::interval(Duration::from_millis(state.settings.health_interval_ms));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {
                        state.health_round().await;
                        state.renotify_if_behind().await;
                    }
                }
            }
        }
    };
    let autoscale = async move {
        let period = Duration::from_millis(state.settings.autoscale_interval_ms);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => { state.autoscale_round().await; }
            }
        }
    };
    tokio::join!(stats, health, autoscale);
}
