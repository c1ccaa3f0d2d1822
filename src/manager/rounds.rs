//! The statistics and auto-scaler rounds: sample every pool node's counters,
//! close finished minutes, and let the auto-scale policy pick the next size.

use std::sync::Arc;

use futures::future::join_all;

use super::{ManagerState, Mode};
use crate::autoscale::decide;
use crate::limits::POOL_NODES_MIN;
use crate::ring::NodeId;
use crate::stats::{counter_delta, NodeCounters};

impl ManagerState {
    pub(super) async fn read_counters(&self, nodes: &[NodeId]) -> Vec<(NodeId, NodeCounters)> {
        let calls = nodes.iter().map(|node| async move {
            let stats = self.node_client(node).stats().await.ok()?;
            Some((node.clone(), stats.content))
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// One statistics round: sample every pool node and close finished minutes.
    pub async fn collect_stats(&self) {
        let pool = self.pool();
        let samples = self.read_counters(&pool).await;
        let now_ms = self.now_ms();
        let samples: Vec<(String, NodeCounters)> = samples
            .into_iter()
            .map(|(node, counters)| (node.to_string(), counters))
            .collect();
        let mut inner = self.inner();
        inner.recorder.record(now_ms, &samples);
        inner.recorder.close_minutes(now_ms);
    }

    /// One auto-scaler round: the pool's GETs and hits since the last round decide
    /// the new size. Returns the size decided, if the manager is in automatic mode.
    pub async fn autoscale_round(self: &Arc<Self>) -> Option<usize> {
        let _guard = self.resize_lock.lock().await;
        let pool = self.pool();
        let samples = self.read_counters(&pool).await;
        let (mode, params, gets, hits) = {
            let mut inner = self.inner();
            let (mut gets, mut hits) = (0, 0);
            for (node, counters) in &samples {
                let before = inner
                    .autoscale_baseline
                    .get(node)
                    .copied()
                    .unwrap_or_default();
                gets += counter_delta(before.gets, counters.gets);
                hits += counter_delta(before.hits, counters.hits);
                inner.autoscale_baseline.insert(node.clone(), *counters);
            }
            (inner.mode, inner.params, gets, hits)
        };
        if mode != Mode::Automatic {
            return None;
        }
        // Ejected nodes still count: an ejection is not a decision to shrink.
        let ejected = self.ejected_count();
        let wanted = pool.len() + ejected;
        let target = decide(&params, wanted, gets, hits).min(self.settings.slots.len());
        tracing::info!(gets, hits, size = wanted, target, "auto-scaler round");
        if target != wanted {
            let pool_target = target.saturating_sub(ejected).max(POOL_NODES_MIN);
            if let Err(error) = self.resize_locked(pool_target, Mode::Automatic).await {
                tracing::warn!(error = %error.message, "automatic resize failed");
            }
        }
        Some(target)
    }
}
