//! The upload path: blob under a fresh name, then the index row, then invalidation
//! of the key on every node with the row's version.
//!
//! The upload is acknowledged only once the index row is committed. If the commit
//! is not confirmed the previous image stays served (or, if the commit did land
//! with its answer lost, the new one); the blob is never half-written, as blobs
//! are put atomically under fresh names.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use md5::{Digest, Md5};
use rand::RngCore;
use tracing::Instrument;

use super::{lock, FrontendState};
use crate::api::ApiError;
use crate::ring::NodeId;
use crate::storage::{StorageError, Upserted};

/// Attempts at finding an unused object name.
const OBJECT_NAME_ATTEMPTS_MAX: usize = 3;

/// A validated upload.
pub struct Upload {
    pub key: String,
    pub bytes: Bytes,
    pub mime: String,
}

/// Stores an upload; returns the new version once the index row is durable.
pub async fn store(state: &Arc<FrontendState>, upload: Upload) -> Result<u64, ApiError> {
    // Planted bug `invalidate-stale-routing`: the pool is read once, as the upload
    // starts, and that is the pool its invalidation reaches.
    let pool_read_once = crate::planted!(InvalidateStaleRouting).then(|| {
        state
            .routing()
            .map(|routing| routing.pool.nodes().to_vec())
            .unwrap_or_default()
    });
    // Shared with other uploads, exclusive of `clear/data`, from the blob write to
    // the row commit: a clear never deletes the blob of a row about to commit.
    let gate = if crate::planted!(ClearRacesUpload) {
        None
    } else {
        Some(state.uploads_gate.read().await)
    };
    let object = put_blob(state, &upload).await?;
    crate::buggify!("upload.before_commit");
    if crate::planted!(AckBeforeDurable) {
        // Planted bug: acknowledge now and commit in the background.
        drop(gate);
        let state = state.clone();
        let spawner = state.client.spawner();
        spawner.spawn(
            async move {
                let _ = commit(&state, &upload, &object).await;
                finish(&state, &upload, &object, None, None).await;
            }
            .in_current_span(),
        );
        return Ok(0);
    }
    // From here until every node has the invalidation, reads of the key skip the
    // cache (see `Flux`). If this task is dropped on the way (the client went
    // away), the guard leaves the key unsettled for the healer.
    let flux = FluxGuard::begin(state, &upload.key);
    let committed = commit(state, &upload, &object).await;
    drop(gate);
    match committed {
        Ok(upserted) => {
            finish(state, &upload, &object, Some(&upserted), pool_read_once).await;
            flux.end(true);
            Ok(upserted.version)
        }
        Err(error) => {
            let settled = settle_unconfirmed(state, &upload.key).await;
            flux.end(settled);
            Err(error)
        }
    }
}

/// An upload's mark on its key while the key is in flux.
struct FluxGuard<'a> {
    state: &'a FrontendState,
    key: String,
    /// The flux mark when the upload began (see `Flux::begin`).
    mark: u64,
    ended: bool,
}

impl<'a> FluxGuard<'a> {
    fn begin(state: &'a FrontendState, key: &str) -> Self {
        let mark = lock(&state.flux).begin(key);
        FluxGuard {
            state,
            key: key.to_owned(),
            mark,
            ended: false,
        }
    }

    fn end(mut self, settled: bool) {
        lock(&self.state.flux).end(&self.key, settled, self.mark);
        self.ended = true;
    }
}

impl Drop for FluxGuard<'_> {
    fn drop(&mut self) {
        if !self.ended {
            lock(&self.state.flux).end(&self.key, false, self.mark);
        }
    }
}

/// Keys settled per healer round.
const SETTLE_KEYS_PER_ROUND_MAX: usize = 64;

/// Settles keys left unsettled by failed or abandoned uploads: learns each key's
/// version and invalidates the nodes with it. The healer calls this every round.
pub(super) async fn settle_unsettled(state: &Arc<FrontendState>) {
    // A key made unsettled again after this list was taken keeps its new mark:
    // the row read below may predate that upload's commit.
    let keys = lock(&state.flux).unsettled_keys(SETTLE_KEYS_PER_ROUND_MAX);
    for (key, mark) in keys {
        if settle_unconfirmed(state, &key).await {
            lock(&state.flux).settle_before(&key, mark);
        }
    }
}

/// After a commit that was not confirmed, the row may have landed: learn the
/// key's version and invalidate the nodes with it. Returns whether that worked.
async fn settle_unconfirmed(state: &Arc<FrontendState>, key: &str) -> bool {
    match state.index.get(key).await {
        Ok(Some(row)) => {
            invalidate_everywhere(state, key, row.version, None).await;
            true
        }
        // No row: the key was cleared, or the commit never landed. Nodes may still
        // hold an older image, so the key stays unsettled until an upload of it
        // invalidates them, or a cache clear empties them.
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(key, %error, "cannot settle an unconfirmed upload; its key bypasses the cache");
            false
        }
    }
}

/// Commits the index row for an object already written.
async fn commit(
    state: &Arc<FrontendState>,
    upload: &Upload,
    object: &str,
) -> Result<Upserted, ApiError> {
    state
        .index
        .upsert(&upload.key, object, &upload.mime)
        .await
        .map_err(|error| {
            // The blob is not deleted: the row may have committed with its answer
            // lost, and then it points at this blob. Unreferenced, it is garbage
            // that `clear/data` sweeps; deleted, it could lose the key's image.
            tracing::warn!(%object, %error, "the key index did not confirm the upload");
            ApiError::unavailable(format!("the key index did not commit: {error}"))
        })
}

/// After the commit: invalidates the key everywhere, then deletes the replaced
/// object.
async fn finish(
    state: &Arc<FrontendState>,
    upload: &Upload,
    object: &str,
    upserted: Option<&Upserted>,
    pool_read_once: Option<Vec<NodeId>>,
) {
    let Some(upserted) = upserted else {
        return;
    };
    crate::buggify!("upload.after_commit");
    if !crate::planted!(SkipInvalidate) {
        invalidate_everywhere(state, &upload.key, upserted.version, pool_read_once).await;
    }
    lock(&state.cached).remove(&upload.key);
    if let Some(previous) = &upserted.previous_object {
        if previous != object {
            if let Err(error) = state.blobs.delete(previous).await {
                tracing::warn!(%previous, %error, "could not delete the replaced object");
            }
        }
    }
}

/// Writes the bytes under a fresh object name.
async fn put_blob(state: &Arc<FrontendState>, upload: &Upload) -> Result<String, ApiError> {
    let key_hash = Md5::digest(upload.key.as_bytes());
    for _ in 0..OBJECT_NAME_ATTEMPTS_MAX {
        let nonce = {
            let mut rng = lock(&state.rng);
            (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
        };
        let object = format!("images/{:02x}/{nonce:032x}", key_hash[0]);
        match state.blobs.put(&object, upload.bytes.clone()).await {
            Ok(()) => return Ok(object),
            Err(StorageError::AlreadyExists(_)) => continue,
            Err(error) => {
                return Err(ApiError::unavailable(format!(
                    "the blob store did not take the image: {error}"
                )))
            }
        }
    }
    Err(ApiError::internal("could not find a free object name"))
}

/// Rounds of invalidation while the pool keeps changing under an upload.
const INVALIDATION_ROUNDS_MAX: usize = 8;

/// Invalidates `key` at `version` on every node of the pool. A node that does not
/// confirm is quarantined: reads bypass it until it has been cleared.
///
/// The targets are the routing pool and the nodes that left it but are still
/// handing keys over (they would otherwise move an image invalidated meanwhile).
/// The pool may change while the calls are out: a node that joins during the
/// fan-out could then receive the old image from its previous owner after the
/// fan-out passed it by; and a node cleared after its invalidation (a join clears
/// the joining node) has lost the floor it set. So after each round the targets
/// are read again with their fence tokens, and nodes that joined or whose token
/// changed are invalidated (again), until a round finds every one done.
///
/// `pool_read_once` is only ever given by the planted bug
/// `invalidate-stale-routing`: then that pool is invalidated, once.
pub(super) async fn invalidate_everywhere(
    state: &Arc<FrontendState>,
    key: &str,
    version: u64,
    pool_read_once: Option<Vec<NodeId>>,
) {
    // Each node invalidated, with the fence token it had when the call went out:
    // a node cleared since (a join clears it, and a clear drops its floors) may
    // have taken the old image again, so it is invalidated again.
    let mut done: BTreeMap<NodeId, Option<String>> = BTreeMap::new();
    for _ in 0..INVALIDATION_ROUNDS_MAX {
        let targets = match &pool_read_once {
            Some(pool) => pool.clone(),
            None => state.invalidation_targets(),
        };
        let todo: Vec<(&NodeId, Option<String>)> = targets
            .iter()
            .map(|node| (node, state.fence(node)))
            .filter(|(node, fence)| done.get(*node) != Some(fence))
            .collect();
        if todo.is_empty() {
            return;
        }
        let calls = todo.into_iter().map(|(node, fence)| async move {
            crate::buggify!("upload.invalidate.before_send");
            let outcome = state.node_client(node).invalidate(key, Some(version)).await;
            (node, fence, outcome)
        });
        for (node, fence, outcome) in join_all(calls).await {
            let confirmed = outcome.is_ok();
            if !confirmed {
                tracing::warn!(%node, %key, "invalidation not confirmed");
                state.quarantine(node);
            }
            done.insert(node.clone(), fence);
        }
        if pool_read_once.is_some() {
            // Planted bug: the pool read once is the pool invalidated.
            return;
        }
    }
    // The pool kept changing: whoever was not reached is bypassed until cleared.
    for node in state.invalidation_targets() {
        if done.get(&node) != Some(&state.fence(&node)) {
            tracing::warn!(%node, %key, "pool kept changing; node not invalidated");
            state.quarantine(&node);
        }
    }
}
