//! The bodies of the front-end's API (requests it takes, answers it gives),
//! without the envelope's `success` flag (see [`super::envelope`]).

use serde::{Deserialize, Serialize};

use super::change::{Change, Mode};
use crate::ring::NodeId;

/// Answer to an upload: the version the image was stored under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    pub version: u64,
}

/// Answer to `list_keys` (and a node's `keys`): every key, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<String>,
}

/// Answer to `key/{key}`: the image as a `data:` URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyContent {
    pub content: String,
}

/// The documented body of a notify: the new pool, and (from a manager) the
/// epoch and assignment it decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    /// The pool's node ids, as given (checked by the receiver).
    pub node_ip: Vec<String>,
    pub mode: Mode,
    pub change: Change,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The owner of each partition, as node ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Vec<String>>,
}

/// Answer to a notify: the pool now in force and how its move orders went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notified {
    pub pool: Vec<NodeId>,
    /// Move orders sent.
    pub orders: usize,
    /// Move orders not confirmed (their keys are re-read from storage).
    pub failed_orders: usize,
}

/// Answer to `GET /api/pool`: the routing in force (all `None` before the first
/// pool) and the front-end's trust in the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    pub pool: Option<Vec<NodeId>>,
    pub epoch: Option<u64>,
    /// The owner of each partition.
    pub mapping: Option<Vec<NodeId>>,
    /// Nodes not routed to until a clear confirms them.
    pub quarantined: Vec<String>,
    pub cached_keys: usize,
    /// Cache hits thrown away because their node's fence did not match.
    pub discarded_hits: u64,
}
