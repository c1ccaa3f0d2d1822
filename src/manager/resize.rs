//! The resize protocol: one change of the pool at a time. The manager commits
//! the new pool and its epoch, saves them, notifies the front-end (which
//! rebalances before it answers), then stops each leaving node once it called
//! back after handing its keys over, or after a timeout. A front-end holding a
//! newer epoch makes the manager move past it; a pool the front-end never
//! acknowledged is told again.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::oneshot;

use super::membership::Transition;
use super::{ManagerState, Mode};
use crate::api::ApiError;
use crate::ring::NodeId;
use crate::wire::change::Change;
use crate::wire::client::CallError;
use crate::wire::frontend::Notify;

impl ManagerState {
    /// Grows (`+1`) or shrinks (`-1`) the pool by one node, by hand.
    pub async fn resize_by_one(self: &Arc<Self>, grow: bool) -> Result<Vec<NodeId>, ApiError> {
        let _guard = self.resize_lock.lock().await;
        let target = self
            .inner()
            .membership
            .step_target(grow)
            .map_err(ApiError::bad_request)?;
        self.inner().mode = Mode::Manual;
        self.resize_locked(target, Mode::Manual).await
    }

    /// Sets the pool to exactly `members`, by hand: survivors keep their join order
    /// and newcomers are appended (see [`crate::ring::Pool::transition_to`]). Every
    /// member must be a slot that is not ejected. This is how an operator picks the
    /// nodes rather than the count; the front-end takes pools from the manager only.
    pub async fn set_pool(self: &Arc<Self>, members: &[NodeId]) -> Result<Vec<NodeId>, ApiError> {
        let _guard = self.resize_lock.lock().await;
        let transition = self
            .inner()
            .membership
            .choose(members)
            .map_err(ApiError::bad_request)?;
        self.inner().mode = Mode::Manual;
        self.change_pool_locked(transition, Mode::Manual, true)
            .await
    }

    /// Resizes to `target` nodes. The caller holds `resize_lock`.
    pub(super) async fn resize_locked(
        self: &Arc<Self>,
        target: usize,
        mode: Mode,
    ) -> Result<Vec<NodeId>, ApiError> {
        let transition = self.inner().membership.resize_to(target);
        self.change_pool_locked(transition, mode, true).await
    }

    /// Carries out a pool change the membership decided: config to joiners, commit
    /// (the pool, the ejected list and the epoch in one step), save, notify, then
    /// each leaving node is stopped after its hand-over callback (when
    /// `wait_for_leavers`) or a timeout. The caller holds `resize_lock`, so the
    /// pool is still the one the transition was decided on.
    pub(super) async fn change_pool_locked(
        self: &Arc<Self>,
        transition: Transition,
        mode: Mode,
        wait_for_leavers: bool,
    ) -> Result<Vec<NodeId>, ApiError> {
        if transition.keeps_pool() {
            self.inner()
                .membership
                .commit(&transition)
                .map_err(ApiError::internal)?;
            return Ok(transition.old);
        }
        let (new, joining, leaving) = (
            transition.new.clone(),
            transition.joining(),
            transition.leaving(),
        );
        let change = transition.change();
        tracing::info!(old = ?transition.old, ?new, mode = mode.as_str(), "resizing the pool");

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
        let (epoch, mapping) = self
            .inner()
            .membership
            .commit(&transition)
            .map_err(ApiError::internal)?
            .expect("a changed pool takes a new epoch");
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
        let frontend = self.frontend_client()?;
        let mut epoch = epoch;
        let names = |nodes: &[NodeId]| nodes.iter().map(ToString::to_string).collect();
        for attempt in 1..=self.settings.notify_attempts_max {
            let notify = Notify {
                node_ip: names(pool),
                mode,
                change,
                epoch: Some(epoch),
                assignment: Some(names(mapping.owners())),
            };
            match frontend.notify(&notify).await {
                Ok(_) => {
                    self.inner().membership.acknowledge(epoch);
                    return Some(epoch);
                }
                Err(refusal) if refusal.status() == Some(http::StatusCode::CONFLICT) => {
                    let theirs = refusal.epoch_in_force();
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
                Err(CallError::Refused { status, .. }) => {
                    tracing::warn!(%status, attempt, "front-end refused the notify")
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
        let epoch = self.inner().membership.overtake(ours, theirs);
        self.persist().await;
        epoch
    }

    /// Tells the front-end the pool in force if it has not acknowledged it yet
    /// (every notify attempt failed, during a partition say).
    pub async fn renotify_if_behind(self: &Arc<Self>) {
        let behind = self.inner().membership.behind();
        if !behind {
            return;
        }
        let _guard = self.resize_lock.lock().await;
        let (pool, epoch, mapping, mode) = {
            let inner = self.inner();
            let membership = &inner.membership;
            (
                membership.pool().to_vec(),
                membership.epoch(),
                membership.mapping().clone(),
                inner.mode,
            )
        };
        tracing::info!(epoch, "telling the front-end the pool again");
        self.notify_frontend(&pool, mode, Change::Increase, epoch, &mapping)
            .await;
    }

    /// Stops a node that left the pool: it is cleared so that it rejoins empty.
    pub(super) async fn stop_node(&self, node: &NodeId) {
        if let Err(error) = self.node_client(node).clear().await {
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
