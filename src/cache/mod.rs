//! The cache node's pure core: the bounded store and its replacement policies.

pub mod store;
