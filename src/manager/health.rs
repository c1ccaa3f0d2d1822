//! Health checks: every pool node and every ejected node, each round. A pool node
//! that fails `health_failures_max` checks in a row is ejected (never the last
//! one); an ejected node that answers rejoins, and the front-end clears it before
//! routing to it.

use std::sync::Arc;

use futures::future::join_all;

use super::ManagerState;
use crate::ring::NodeId;

impl ManagerState {
    /// One health round: every pool node and every ejected node is checked. A pool
    /// node that failed `health_failures_max` checks in a row is ejected (never the
    /// last one); an ejected node that answers rejoins, and the front-end clears it
    /// before routing to it.
    pub async fn health_round(self: &Arc<Self>) {
        let (pool, ejected) = {
            let inner = self.inner();
            (
                inner.membership.pool().to_vec(),
                inner.membership.ejected().to_vec(),
            )
        };
        let checks = pool.iter().chain(&ejected).map(|node| async move {
            let healthy = self
                .node_client(node)
                .with_timeout_ms(self.settings.health_timeout_ms)
                .healthy()
                .await;
            (node.clone(), healthy)
        });
        let results = join_all(checks).await;
        let verdict = self
            .inner()
            .membership
            .record_health(&results, &pool, &ejected);
        if verdict.is_empty() {
            return;
        }
        let _guard = self.resize_lock.lock().await;
        // Decided on the pool in force now, which may have changed meanwhile.
        let Some(transition) = self.inner().membership.after_health(&verdict) else {
            return;
        };
        let back: Vec<NodeId> = transition
            .joining()
            .into_iter()
            .filter(|n| verdict.rejoin.contains(n))
            .collect();
        if !back.is_empty() || transition.new.len() != transition.old.len() {
            tracing::warn!(old = ?transition.old, new = ?transition.new, ejected = ?verdict.eject, rejoined = ?back, "pool changed by health checks");
        }
        let mode = self.inner().mode;
        if let Err(error) = self.change_pool_locked(transition, mode, false).await {
            tracing::warn!(error = %error.message, "pool change after health checks failed");
        }
        self.persist().await;
    }
}
