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
pub mod membership;
mod resize;
mod rounds;
mod routes;
mod settings;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::autoscale::AutoParams;
use crate::net::client::HttpClient;
use crate::ring::NodeId;
use crate::stats::{NodeCounters, SeriesRecorder};
use crate::wire::client::{FrontendClient, NodeClient};
use crate::wire::node::CacheConfig;
use membership::Membership;

pub use crate::wire::change::Mode;
pub use settings::ManagerSettings;

struct Inner {
    /// The pool, the ejected nodes, the epoch and its assignment, the epoch the
    /// front-end acknowledged, and the health failures: the pure state machine
    /// the rest of this module carries out the decisions of.
    membership: Membership,
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
        let membership = Membership::new(
            settings.slots.clone(),
            settings.initial_pool.clone(),
            settings.strategy,
            settings.health_failures_max,
        )?;
        let inner = Inner {
            membership,
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
        self.inner().membership.pool().to_vec()
    }

    /// A copy of the membership, read at once.
    pub fn membership(&self) -> Membership {
        self.inner().membership.clone()
    }

    /// How many nodes are ejected for failing health checks.
    pub fn ejected_count(&self) -> usize {
        self.inner().membership.ejected().len()
    }

    /// The pool's epoch and assignment.
    pub fn assignment(&self) -> (u64, crate::assign::Assignment) {
        let inner = self.inner();
        (inner.membership.epoch(), inner.membership.mapping().clone())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A client of one of its nodes.
    fn node_client(&self, node: &NodeId) -> NodeClient {
        NodeClient::new(self.client.clone(), node.address(self.settings.node_port))
    }

    /// A client of the front-end, if one is configured (calls wait
    /// `notify_timeout_ms` at most).
    fn frontend_client(&self) -> Option<FrontendClient> {
        let addr = self.settings.frontend_addr.as_ref()?;
        Some(
            FrontendClient::new(self.client.clone(), addr.clone())
                .with_timeout_ms(self.settings.notify_timeout_ms),
        )
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
