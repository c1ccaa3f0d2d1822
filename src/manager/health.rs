//! Health checks: every pool node and every ejected node, each round. A pool node
//! that fails `health_failures_max` checks in a row is ejected (never the last
//! one); an ejected node that answers rejoins, and the front-end clears it before
//! routing to it.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use http::Method;

use super::ManagerState;
use crate::ring::NodeId;
use crate::wire::paths;

impl ManagerState {
    /// One health round: every pool node and every ejected node is checked. A pool
    /// node that failed `health_failures_max` checks in a row is ejected (never the
    /// last one); an ejected node that answers rejoins, and the front-end clears it
    /// before routing to it.
    pub async fn health_round(self: &Arc<Self>) {
        let (pool, ejected) = {
            let inner = self.inner();
            (inner.pool.clone(), inner.ejected.clone())
        };
        let checks = pool.iter().chain(&ejected).map(|node| async move {
            let addr = self.node_addr(node);
            let healthy = self
                .client
                .send_with_timeout(
                    Method::GET,
                    &addr,
                    paths::HEALTHZ,
                    &[],
                    Bytes::new(),
                    self.settings.health_timeout_ms,
                )
                .await
                .is_ok_and(|reply| reply.status.is_success());
            (node.clone(), healthy)
        });
        let results = join_all(checks).await;
        let (to_eject, to_rejoin) = {
            let mut inner = self.inner();
            let mut to_eject = Vec::new();
            let mut to_rejoin = Vec::new();
            for (node, healthy) in results {
                let failures = inner.health_failures.entry(node.clone()).or_insert(0);
                *failures = if healthy {
                    0
                } else {
                    failures.saturating_add(1)
                };
                if pool.contains(&node) && *failures >= self.settings.health_failures_max {
                    to_eject.push(node);
                } else if ejected.contains(&node) && healthy {
                    to_rejoin.push(node);
                }
            }
            (to_eject, to_rejoin)
        };
        if to_eject.is_empty() && to_rejoin.is_empty() {
            return;
        }
        let _guard = self.resize_lock.lock().await;
        let old = self.pool();
        let mut new: Vec<NodeId> = old
            .iter()
            .filter(|n| !to_eject.contains(n))
            .cloned()
            .collect();
        if new.is_empty() {
            // Never eject the last node: reads fall back to storage anyway.
            new.push(old[0].clone());
        }
        let mut gone: Vec<NodeId> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
        let mut back: Vec<NodeId> = Vec::new();
        // The new ejected list is committed with the new pool, in one step.
        let mut ejected_after = self.inner().ejected.clone();
        for node in &to_rejoin {
            if !new.contains(node) && new.len() < self.settings.slots.len() {
                new.push(node.clone());
                back.push(node.clone());
            }
        }
        // A node rejoins only if it fits; one that does not stays ejected.
        ejected_after.retain(|n| !back.contains(n));
        ejected_after.append(&mut gone);
        if !back.is_empty() || new.len() != old.len() {
            tracing::warn!(?old, ?new, ejected = ?to_eject, rejoined = ?back, "pool changed by health checks");
        }
        let mode = self.inner().mode;
        if let Err(error) = self
            .change_pool_locked(old, new, Some(ejected_after), mode, false)
            .await
        {
            tracing::warn!(error = %error.message, "pool change after health checks failed");
        }
        self.persist().await;
    }
}
