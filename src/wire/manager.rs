//! The bodies of the manager's API, without the envelope's `success` flag. Most
//! documented answers put their fields under `content`
//! ([`super::envelope::Content`]).

use serde::{Deserialize, Serialize};

use super::change::{Change, Mode};
use super::node::CacheConfig;
use crate::ring::NodeId;

/// `GET /api/manager/pool_node_list`: the pool, the nodes ejected for failing
/// health checks, and the epoch and assignment in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolListing {
    /// 1-based slot numbers of the pool's nodes.
    #[serde(default)]
    pub node_id_list: Vec<usize>,
    pub node_ip_list: Vec<String>,
    #[serde(default)]
    pub ejected_ip_list: Vec<String>,
    #[serde(default)]
    pub epoch: Option<u64>,
    #[serde(default)]
    pub assignment: Option<Vec<String>>,
}

/// `POST /api/manager/pool_node_list`: the nodes the pool should be, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolChoice {
    pub node_ip_list: Vec<String>,
}

/// `POST /api/manager/poolsize/manual`: one node more or one fewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualResize {
    pub change: Change,
}

/// Answer to a resize (manual or by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resized {
    pub size: usize,
    pub node_ip_list: Vec<NodeId>,
    /// The size asked for: the pool and the ejected nodes that rejoin when they
    /// answer again.
    pub wanted: usize,
}

/// `GET /api/manager/poolsize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSize {
    pub size: usize,
}

/// The documented automatic-mode parameters, as `poolsize/config` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResizeParameters {
    pub max_miss_rate_threshold: f64,
    pub min_miss_rate_threshold: f64,
    pub ratio_expand_pool: f64,
    pub ratio_shrink_pool: f64,
    pub auto_mode: bool,
}

/// `GET /api/manager/poolsize/config` (and the answer to `poolsize/automatic`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResizeConfig {
    pub resize_pool_option: Mode,
    pub resize_pool_parameters: ResizeParameters,
}

/// Answer to setting the cache configuration: the nodes that did not take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheConfigSet {
    pub content: CacheConfig,
    pub unreachable_nodes: Vec<String>,
}

/// `GET /api/manager/aggregate_stats`: the last minutes of the pool, one series
/// per measure, and the latest totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateStats {
    pub minutes: Vec<u64>,
    pub hit_rate: Vec<Option<f64>>,
    pub miss_rate: Vec<Option<f64>>,
    pub number_of_items_in_cache: Vec<u64>,
    pub total_size_of_items_in_cache: Vec<f64>,
    pub number_of_requests_served_per_minute: Vec<u64>,
    pub number_of_nodes: usize,
    pub current: CurrentTotals,
}

/// The pool's totals at the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurrentTotals {
    pub number_of_items_in_cache: u64,
    /// In MB.
    pub total_size_of_items_in_cache: f64,
    pub gets: u64,
    pub hits: u64,
    pub requests: u64,
}
