//! The cache node service: a thin HTTP shell around the pure [`CacheStore`].
//!
//! Items travel as raw bytes with their version and mime type in headers (see
//! [`crate::wire`]). `move_keys` keeps the documented JSON shape.
//!
//! This file holds the configuration, the settings and the state; `routes` the
//! HTTP API, `hand_over` the client side of a move order (the puts to the new
//! owners and the manager's callback).

mod hand_over;
mod routes;
#[cfg(test)]
mod tests;

pub use routes::router;

use crate::wire::fence;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::auth::Secrets;
use crate::cache::store::CacheStore;
use crate::net::client::HttpClient;
use crate::ring::NodeId;
use crate::stats::NodeCounters;
use crate::wire::node::CacheConfig;

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// This node's id as the pool knows it.
    pub node_id: NodeId,
    /// Port of the other nodes, for ids without their own port.
    pub node_port: u16,
    /// The manager's host, for the move callback.
    pub manager_host: Option<String>,
    /// The manager's port. When set, the callback goes there whatever port a
    /// move order names: a node calls back only the manager it was given.
    pub manager_port: Option<u16>,
    /// The node slots of the cluster, as the manager is given them. When set, a
    /// move order that names any other destination is refused: keys go only to
    /// nodes of this cluster.
    pub peers: Option<Vec<NodeId>>,
    pub cache: CacheConfig,
    /// Seed of the random replacement policy.
    pub rng_seed: u64,
    /// Largest item body accepted.
    pub body_max_bytes: usize,
    /// Most version floors the store keeps (see [`CacheStore`]).
    pub floors_max: usize,
    /// This life of the node, part of its fence token; a restarted node must
    /// draw a new one (production seeds it from the operating system).
    pub incarnation: u64,
    /// The cluster token it requires and sends (see [`crate::auth`]).
    pub secrets: Secrets,
    /// Limits of its server.
    pub server: crate::net::server::ServerSettings,
}

/// Counters a node keeps (cumulative since start).
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    gets: AtomicU64,
    hits: AtomicU64,
}

/// A cache node's shared state.
pub struct NodeState {
    settings: NodeSettings,
    store: Mutex<CacheStore>,
    counters: Counters,
    client: HttpClient,
    /// Clears so far; read and changed only under the store lock.
    clears: AtomicU64,
}

impl NodeState {
    pub fn new(settings: NodeSettings, client: HttpClient) -> Arc<Self> {
        let mut store = CacheStore::new(
            settings.cache.capacity_bytes(),
            settings.cache.policy,
            settings.rng_seed,
        );
        store.set_floors_max(settings.floors_max);
        store.set_legacy_floors(crate::planted!(EvictDropsFloor));
        Arc::new(NodeState {
            settings,
            store: Mutex::new(store),
            counters: Counters::default(),
            client,
            clears: AtomicU64::new(0),
        })
    }

    /// The current fence token: this life, the clears so far and the floors the
    /// store forgot so far. Call with the store lock held so it cannot change under
    /// the caller.
    fn fence_token(&self, store: &CacheStore) -> String {
        fence::Fence {
            incarnation: self.settings.incarnation,
            clears: self.clears.load(Ordering::Relaxed),
            floors_forgotten: store.floors_forgotten(),
        }
        .to_string()
    }

    fn store(&self) -> MutexGuard<'_, CacheStore> {
        // A panic while holding the lock cannot leave the store half-updated in a
        // way that matters more than losing the node; keep serving.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The node's counters now.
    pub fn counters(&self) -> NodeCounters {
        let store = self.store();
        NodeCounters {
            items: store.len() as u64,
            used_bytes: store.used_bytes(),
            requests: self.counters.requests.load(Ordering::Relaxed),
            gets: self.counters.gets.load(Ordering::Relaxed),
            hits: self.counters.hits.load(Ordering::Relaxed),
        }
    }

    /// Keys held, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.store().keys_sorted()
    }

    pub fn node_id(&self) -> &NodeId {
        &self.settings.node_id
    }
}
