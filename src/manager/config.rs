//! The cache configuration: set by the administrator, saved, and pushed to every
//! node of the pool (and to each node as it joins).

use super::ManagerState;
use crate::ring::NodeId;
use crate::wire::node::CacheConfig;

impl ManagerState {
    pub(super) async fn push_config(&self, node: &NodeId, config: &CacheConfig) -> bool {
        match self.node_client(node).set_config(config).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%node, %error, "could not push the cache configuration");
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
}
