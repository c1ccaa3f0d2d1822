//! The upload path: blob under a fresh name, then the index row, then invalidation
//! of the key on every node with the row's version.
//!
//! The upload is acknowledged only once the index row is committed. If the commit
//! is not confirmed the previous image stays served (or, if the commit did land
//! with its answer lost, the new one); the blob is never half-written, as blobs
//! are put atomically under fresh names.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use http::Method;
use md5::{Digest, Md5};
use rand::RngCore;
use tracing::Instrument;

use super::{lock, FrontendState};
use crate::api::ApiError;
use crate::node::protocol::item_path;
use crate::plant::Plant;
use crate::storage::StorageError;

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
    let object = put_blob(state, &upload).await?;
    if state.settings.plants.has(Plant::AckBeforeDurable) {
        // Planted bug: acknowledge now and commit in the background.
        let state = state.clone();
        let spawner = state.client.spawner();
        spawner.spawn(async move { commit(&state, upload, object).await }.in_current_span());
        return Ok(0);
    }
    commit(state, upload, object).await
}

/// Commits the index row for an object already written, then invalidates.
async fn commit(
    state: &Arc<FrontendState>,
    upload: Upload,
    object: String,
) -> Result<u64, ApiError> {
    let upserted = match state.index.upsert(&upload.key, &object, &upload.mime).await {
        Ok(upserted) => upserted,
        Err(error) => {
            // The blob is not deleted: the row may have committed with its answer
            // lost, and then it points at this blob. Unreferenced, it is garbage
            // that `clear/data` sweeps; deleted, it could lose the key's image.
            tracing::warn!(%object, %error, "the key index did not confirm the upload");
            return Err(ApiError::unavailable(format!(
                "the key index did not commit: {error}"
            )));
        }
    };
    if !state.settings.plants.has(Plant::SkipInvalidate) {
        invalidate_everywhere(state, &upload.key, upserted.version).await;
    }
    lock(&state.cached).remove(&upload.key);
    if let Some(previous) = upserted.previous_object {
        if previous != object {
            if let Err(error) = state.blobs.delete(&previous).await {
                tracing::warn!(%previous, %error, "could not delete the replaced object");
            }
        }
    }
    Ok(upserted.version)
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

/// Invalidates `key` at `version` on every node of the pool. A node that does not
/// confirm is quarantined: reads bypass it until it has been cleared.
pub(super) async fn invalidate_everywhere(state: &Arc<FrontendState>, key: &str, version: u64) {
    let Some(routing) = state.routing() else {
        return;
    };
    let path = format!("{}?version={version}", item_path(key));
    let calls = routing.pool.nodes().iter().map(|node| {
        let path = path.clone();
        async move {
            let addr = state.node_addr(node);
            let outcome = state
                .client
                .send_with_timeout(
                    Method::DELETE,
                    &addr,
                    &path,
                    &[],
                    Bytes::new(),
                    state.settings.node_timeout_ms,
                )
                .await;
            (node, outcome)
        }
    });
    for (node, outcome) in join_all(calls).await {
        let confirmed = matches!(&outcome, Ok(reply) if reply.status.is_success());
        if !confirmed {
            tracing::warn!(%node, %key, "invalidation not confirmed");
            state.quarantine(node);
        }
    }
}
