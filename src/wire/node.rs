//! The bodies of a cache node's API, without the envelope's `success` flag.
//! Items themselves travel as raw bytes with their version and mime type in
//! headers (see [`super::headers`]); the move order keeps the documented shape
//! of [`crate::balance::MoveKeysPayload`].

use serde::{Deserialize, Serialize};

use crate::cache::store::{Policy, MB};
use crate::limits;
use crate::ring::NodeId;
use crate::stats::NodeCounters;

/// A node's cache configuration, as the documented API carries it (the manager
/// holds one for the whole pool and pushes it to every node).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Capacity in MB (fractions allowed).
    pub capacity: f64,
    pub policy: Policy,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 64.0,
            policy: Policy::Lru,
        }
    }
}

impl CacheConfig {
    /// Why this configuration cannot be applied, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !self.capacity.is_finite() || self.capacity < limits::CAPACITY_MB_MIN {
            return Err(format!(
                "capacity must be a number of MB of at least {} (1 KB): a cache of 0 would drop everything",
                limits::CAPACITY_MB_MIN
            ));
        }
        if self.capacity > limits::CAPACITY_MB_MAX as f64 {
            return Err(format!(
                "capacity must be at most {} MB",
                limits::CAPACITY_MB_MAX
            ));
        }
        Ok(())
    }

    pub fn capacity_bytes(&self) -> u64 {
        (self.capacity * MB as f64).round() as u64
    }
}

/// Answer to an invalidation: whether the node held the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidated {
    pub removed: bool,
}

/// Answer to a clear: the node's new fence token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleared {
    pub fence: String,
}

/// Answer to `GET /api/cache/stats`: the cumulative counters and their rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub content: NodeCounters,
    pub hit_rate: Option<f64>,
    pub miss_rate: Option<f64>,
}

/// What became of the keys of one move order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveReport {
    pub moved: usize,
    pub missing: usize,
    pub failed: usize,
}

/// The callback a leaving node sends the manager once its move order is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveDone {
    pub node: NodeId,
}

/// The manager's answer to a callback: whether it was waiting for that node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveDoneAck {
    pub expected: bool,
}
