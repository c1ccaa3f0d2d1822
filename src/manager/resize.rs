//! The resize protocol: one change of the pool at a time. The manager commits
//! the new pool and its epoch, saves them, notifies the front-end (which
//! rebalances before it answers), then stops each leaving node once it called
//! back after handing its keys over, or after a timeout. A front-end holding a
//! newer epoch makes the manager move past it; a pool the front-end never
//! acknowledged is told again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http::Method;
use serde_json::json;
use tokio::sync::oneshot;

use super::{ManagerState, Mode};
use crate::api::ApiError;
use crate::limits::POOL_NODES_MIN;
use crate::ring::NodeId;
use crate::wire::change::Change;
use crate::wire::{headers, paths};

impl ManagerState {
    /// Grows (`+1`) or shrinks (`-1`) the pool by one node, by hand.
    pub async fn resize_by_one(self: &Arc<Self>, grow: bool) -> Result<Vec<NodeId>, ApiError> {
        let _guard = self.resize_lock.lock().await;
        let current = self.pool();
        let ejected = self.inner().ejected.len();
        let target = if grow {
            if current.len() + ejected >= self.settings.slots.len() {
                return Err(ApiError::bad_request(format!(
                    "the pool already has {} nodes, the most it can hold",
                    current.len() + ejected
                )));
            }
            current.len() + 1
        } else {
            if current.len() <= POOL_NODES_MIN {
                return Err(ApiError::bad_request(
                    "the pool has 1 node, the fewest it can hold",
                ));
            }
            current.len() - 1
        };
        self.inner().mode = Mode::Manual;
        self.resize_locked(target, Mode::Manual).await
    }

    /// Sets the pool to exactly `members`, by hand: survivors keep their join order
    /// and newcomers are appended (see [`crate::ring::Pool::transition_to`]). Every
    /// member must be a slot that is not ejected. This is how an operator picks the
    /// nodes rather than the count; the front-end takes pools from the manager only.
    pub async fn set_pool(self: &Arc<Self>, members: &[NodeId]) -> Result<Vec<NodeId>, ApiError> {
        let _guard = self.resize_lock.lock().await;
        let old = self.pool();
        let ejected = self.inner().ejected.clone();
        for node in members {
            if !self.settings.slots.contains(node) {
                return Err(ApiError::bad_request(format!(
                    "{node} is not one of the manager's node slots"
                )));
            }
            if ejected.contains(node) {
                return Err(ApiError::bad_request(format!(
                    "{node} is ejected (it fails its health checks)"
                )));
            }
        }
        let new = crate::ring::Pool::new(old.clone())
            .and_then(|pool| pool.transition_to(members))
            .map_err(|error| ApiError::bad_request(error.to_string()))?
            .nodes()
            .to_vec();
        self.inner().mode = Mode::Manual;
        self.change_pool_locked(old, new, None, Mode::Manual, true)
            .await
    }

    /// Resizes to `target` nodes. The caller holds `resize_lock`.
    pub(super) async fn resize_locked(
        self: &Arc<Self>,
        target: usize,
        mode: Mode,
    ) -> Result<Vec<NodeId>, ApiError> {
        let old = self.pool();
        let target = target.clamp(POOL_NODES_MIN, self.settings.slots.len());
        if target == old.len() {
            return Ok(old);
        }
        let ejected = self.inner().ejected.clone();
        let mut new = old.clone();
        // Growing takes free slots in slot order; shrinking removes the latest joiners.
        while new.len() < target {
            let Some(free) = self
                .settings
                .slots
                .iter()
                .find(|slot| !new.contains(slot) && !ejected.contains(slot))
            else {
                break;
            };
            new.push(free.clone());
        }
        new.truncate(target);
        self.change_pool_locked(old, new, None, mode, true).await
    }

    /// Moves the pool from `old` to `new`: config to joiners, commit, notify, then
    /// each leaving node is stopped after its hand-over callback (when
    /// `wait_for_leavers`) or a timeout. The caller holds `resize_lock`.
    ///
    /// `ejected`, when given, becomes the ejected list in the same step as the
    /// pool: a node is never in neither, nor in both, as the listing shows them.
    pub(super) async fn change_pool_locked(
        self: &Arc<Self>,
        old: Vec<NodeId>,
        new: Vec<NodeId>,
        ejected: Option<Vec<NodeId>>,
        mode: Mode,
        wait_for_leavers: bool,
    ) -> Result<Vec<NodeId>, ApiError> {
        if new == old {
            if let Some(ejected) = ejected {
                self.inner().ejected = ejected;
            }
            return Ok(old);
        }
        let joining: Vec<NodeId> = new.iter().filter(|n| !old.contains(n)).cloned().collect();
        let leaving: Vec<NodeId> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
        let change = Change::between(old.len(), new.len());
        tracing::info!(?old, ?new, mode = mode.as_str(), "resizing the pool");

        // Joining nodes get the cache configuration before they get keys.
        let config = self.inner().cache;
        for node in &joining {
            self.push_config(node, &config).await;
        }
        let waits: Vec<(NodeId, oneshot::Receiver<()>)> = leaving
            .iter()
            .map(|node| {
                let (sender, receiver) = oneshot::channel();
                self.callbacks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(node.clone(), sender);
                (node.clone(), receiver)
            })
            .collect();
        let (epoch, mapping) = {
            let mut inner = self.inner();
            let pool = crate::ring::Pool::new(new.clone())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            inner.mapping = self.settings.strategy.assign(&pool, Some(&inner.mapping));
            inner.epoch += 1;
            inner.pool = new.clone();
            if let Some(ejected) = ejected {
                inner.ejected = ejected;
            }
            debug_assert!(
                inner.pool.iter().all(|node| !inner.ejected.contains(node)),
                "a node is in the pool and ejected at once"
            );
            (inner.epoch, inner.mapping.clone())
        };
        self.persist().await;

        let notified = self
            .notify_frontend(&new, mode, change, epoch, &mapping)
            .await
            .is_some();
        let timeout = Duration::from_millis(self.settings.move_callback_timeout_ms);
        let stops = waits.into_iter().map(|(node, receiver)| async move {
            // Without a notified front-end no move order comes, and an ejected node
            // cannot call back: do not wait for them.
            if notified
                && wait_for_leavers
                && tokio::time::timeout(timeout, receiver).await.is_err()
            {
                tracing::warn!(%node, "no hand-over callback in time; stopping the node anyway");
            }
            self.callbacks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&node);
            self.stop_node(&node).await;
        });
        join_all(stops).await;
        Ok(new)
    }

    /// Tells the front-end the pool, its epoch and assignment; returns the epoch the
    /// front-end acknowledged, if it did.
    ///
    /// A front-end that holds a newer epoch refuses with 409 and names its epoch:
    /// this manager's saved state was lost or is older. The manager is the source
    /// of truth for the pool, so it moves its epoch past the front-end's, saves it,
    /// and tells the front-end again.
    pub(super) async fn notify_frontend(
        &self,
        pool: &[NodeId],
        mode: Mode,
        change: Change,
        epoch: u64,
        mapping: &crate::assign::Assignment,
    ) -> Option<u64> {
        let frontend = self.settings.frontend_addr.as_ref()?;
        let mut epoch = epoch;
        for attempt in 1..=self.settings.notify_attempts_max {
            let body = json!({
                "node_ip": pool,
                "mode": mode,
                "change": change,
                "epoch": epoch,
                "assignment": mapping,
            });
            let outcome = self
                .client
                .send_with_timeout(
                    Method::POST,
                    frontend,
                    paths::NOTIFY,
                    &[(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    )],
                    Bytes::from(body.to_string()),
                    self.settings.notify_timeout_ms,
                )
                .await;
            match outcome {
                Ok(reply) if reply.status.is_success() => {
                    let mut inner = self.inner();
                    inner.acked_epoch = Some(inner.acked_epoch.unwrap_or(0).max(epoch));
                    return Some(epoch);
                }
                Ok(reply) if reply.status == http::StatusCode::CONFLICT => {
                    let theirs = reply
                        .headers
                        .get(headers::EPOCH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    match theirs {
                        Some(theirs) if !crate::planted!(ManagerEpochReset) => {
                            epoch = self.overtake_epoch(epoch, theirs).await;
                            tracing::warn!(
                                theirs,
                                epoch,
                                "the front-end held a newer epoch; this manager's state was lost or older, so it moves past it"
                            );
                            continue;
                        }
                        _ => {
                            tracing::error!(
                                target: crate::INVARIANT_TARGET,
                                epoch,
                                theirs,
                                "the front-end refused this manager's epoch and the manager cannot move past it: its pool changes do not reach the front-end"
                            );
                            return None;
                        }
                    }
                }
                Ok(reply) => {
                    tracing::warn!(status = %reply.status, attempt, "front-end refused the notify")
                }
                Err(error) => tracing::warn!(%error, attempt, "notify failed"),
            }
            // 200 ms, 400 ms, 800 ms, ...
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(8))).await;
        }
        tracing::error!("front-end not notified; it will take the pool when it restarts");
        None
    }

    /// Moves this manager's epoch past `theirs` (the front-end's), saves it, and
    /// returns the new epoch. Leaves a newer epoch alone (one taken meanwhile).
    pub(super) async fn overtake_epoch(&self, ours: u64, theirs: u64) -> u64 {
        let epoch = {
            let mut inner = self.inner();
            if inner.epoch == ours {
                // The front-end refuses epochs past `EPOCH_MAX`, so this cannot
                // overflow; saturate anyway rather than wrap.
                inner.epoch = ours.max(theirs).saturating_add(1);
            }
            inner.epoch
        };
        self.persist().await;
        epoch
    }

    /// Tells the front-end the pool in force if it has not acknowledged it yet
    /// (every notify attempt failed, during a partition say).
    pub async fn renotify_if_behind(self: &Arc<Self>) {
        let behind = {
            let inner = self.inner();
            inner.acked_epoch.is_none_or(|acked| acked < inner.epoch)
        };
        if !behind {
            return;
        }
        let _guard = self.resize_lock.lock().await;
        let (pool, epoch, mapping, mode) = {
            let inner = self.inner();
            (
                inner.pool.clone(),
                inner.epoch,
                inner.mapping.clone(),
                inner.mode,
            )
        };
        tracing::info!(epoch, "telling the front-end the pool again");
        self.notify_frontend(&pool, mode, Change::Increase, epoch, &mapping)
            .await;
    }

    /// Stops a node that left the pool: it is cleared so that it rejoins empty.
    pub(super) async fn stop_node(&self, node: &NodeId) {
        let addr = self.node_addr(node);
        if let Err(error) = self
            .client
            .send(Method::DELETE, &addr, paths::NODE_CLEAR, &[], Bytes::new())
            .await
        {
            tracing::warn!(%node, %error, "could not clear a leaving node");
        }
    }

    /// A leaving node reports that it handed its keys over.
    pub fn move_done(&self, node: &NodeId) -> bool {
        let sender = self
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
        match sender {
            Some(sender) => sender.send(()).is_ok(),
            None => false,
        }
    }
}
