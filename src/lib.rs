//! memring: an image store with an elastic, MD5-partitioned cache pool.
//!
//! The pure core (no I/O, no clock) lives in [`ring`] (partitions, node ids, the
//! pool), [`assign`] (partition -> node strategies), [`balance`] (rebalance plans and
//! the cached-key index), [`key`] (key rules) and [`render`] (the documented log
//! lines). The [`cli`] module turns command lines into calls of that core.

pub mod api;
pub mod assign;
pub mod auth;
pub mod autoscale;
pub mod balance;
pub mod cache;
pub mod error;
pub mod frontend;
pub mod hooks;
pub mod key;
pub mod limits;
pub mod manager;
pub mod mime;
pub mod net;
pub mod node;
pub mod plan;
pub mod render;
pub mod ring;
pub mod stats;
pub mod storage;
pub mod up;
pub mod wire;

#[cfg(test)]
mod testing;

/// The tracing target on which a service reports a broken protocol invariant:
/// something its own protocol says cannot happen, or cannot be repaired. The
/// simulation fails any run that logs one.
pub const INVARIANT_TARGET: &str = "memring::invariant";

pub use assign::{Assignment, Strategy};
pub use balance::{plan, BalancePlan, CachedKeys, MoveKeysPayload, PlanSettings};
pub use error::InputError;
pub use ring::{partition, NodeId, Partition, Pool, PARTITION_COUNT};
