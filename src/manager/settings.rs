//! How a manager is set up: its slots, peers, intervals, timeouts and store.

use std::sync::Arc;

use super::state;
use crate::limits;
use crate::ring::NodeId;
use crate::wire::node::CacheConfig;

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
