//! The manager service: owns the pool (up to 8 node slots, in join order), resizes
//! it by hand or with the auto-scaler, collects node statistics, pushes the cache
//! configuration and forwards the clear calls to the front-end.
//!
//! Resize protocol: one resize at a time. The new pool is committed, the front-end
//! is notified (it rebalances before answering), then each leaving node is stopped
//! once it has called back after handing its keys over, or after a timeout.
//! "Stopping" a node clears it, so it rejoins empty.
//!
//! This file holds the state and the background loops; `settings` how a manager
//! is set up, `state` and `durable` what it saves and how, `resize` the resize
//! protocol, `health` the health checks, `rounds` the statistics and the
//! auto-scaler, `config` the cache configuration, `routes` the HTTP API.

mod config;
mod durable;
mod health;
mod resize;
mod rounds;
mod routes;
mod settings;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::autoscale::AutoParams;
use crate::limits::POOL_NODES_MAX;
use crate::net::client::HttpClient;
use crate::node::CacheConfig;
use crate::ring::NodeId;
use crate::stats::{NodeCounters, SeriesRecorder};

pub use crate::wire::change::Mode;
pub use settings::ManagerSettings;

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
