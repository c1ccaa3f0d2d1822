//! The read path: the owning node first, then the key index and the blob store,
//! then a fill of the owning node.

use crate::wire::client::PutAnswer;
use crate::wire::item::{self, ItemMeta, PutMarks};
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use tracing::Instrument;

use super::{lock, FrontendState};
use crate::api::ApiError;
use crate::key::validate_key;
use crate::limits::{STREAM_MIN_BYTES, STREAM_SHARE_BYTES};
use crate::net::budget::Share;
use crate::net::client::{content_length, Answer, Take, UpstreamBody};
use crate::ring::partition;

/// How often a read retries the index when the object it named was replaced
/// between the two lookups.
const STORAGE_READ_ATTEMPTS_MAX: usize = 3;

/// An image's bytes: whole, or still arriving from the node that holds it.
pub enum ImageBody {
    Whole(Bytes),
    Streamed(UpstreamBody),
}

impl std::fmt::Debug for ImageBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageBody::Whole(bytes) => write!(f, "Whole({} bytes)", bytes.len()),
            ImageBody::Streamed(_) => f.write_str("Streamed"),
        }
    }
}

/// An image as a read returns it.
#[derive(Debug)]
pub struct Image {
    pub body: ImageBody,
    pub mime: String,
    pub version: u64,
    pub cache_hit: bool,
    /// Its share of the response budget, held until the answer is sent.
    pub share: Option<Arc<Share>>,
}

/// The answer when the response budget is spent.
pub(super) fn budget_spent() -> ApiError {
    ApiError::unavailable("too many large answers are in flight; try again shortly")
}

/// Reads `key`: cache, else storage (then fills the cache). With `may_stream`, a
/// large cache hit comes back as a stream (see [`STREAM_MIN_BYTES`]); smaller
/// ones are read whole, so that a node failing mid-answer still falls back to
/// storage.
pub async fn read(
    state: &Arc<FrontendState>,
    key: &str,
    may_stream: bool,
) -> Result<Image, ApiError> {
    validate_key(key).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let owner = state
        .routing()
        .map(|routing| routing.mapping.owner(partition(key)).clone());
    let owner = owner.filter(|node| !state.is_quarantined(node));
    // An upload of this key in progress: the cache may be behind storage.
    let ticket = lock(&state.flux).read_ticket(key);
    let owner = owner.filter(|_| ticket.is_some());
    // The fence is taken before anything is read: a clear of the node after this
    // point makes the node refuse this read's fill.
    let fence = owner.as_ref().and_then(|node| state.fence(node));
    if let Some(node) = &owner {
        // A hit takes its share of the response budget before its body is read.
        let take = |status: StatusCode, headers: &http::HeaderMap| {
            if status != StatusCode::OK {
                return Take::Read(None);
            }
            let length = content_length(headers).unwrap_or(state.settings.upload_max_bytes as u64);
            let (stream, share_bytes) = if may_stream && length >= STREAM_MIN_BYTES {
                (true, length.min(STREAM_SHARE_BYTES))
            } else {
                (false, length)
            };
            match state.budget.try_take(share_bytes) {
                None => Take::Refuse,
                Some(share) if stream => Take::Stream(Some(share)),
                Some(share) => Take::Read(Some(share)),
            }
        };
        let answer = state.node_client(node).get_item(key, take).await;
        // A hit read after an upload of the key began may be older than it.
        let still_valid = || ticket.is_some_and(|t| lock(&state.flux).still_valid(key, t));
        let discard = || {
            tracing::debug!(%node, key, "an upload began during the cache read; reading storage");
            state
                .discarded_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let answer = match answer {
            Ok(Answer::Refused(_)) => return Err(budget_spent()),
            Ok(Answer::Streamed(streamed, share)) => {
                if still_valid() {
                    return Ok(hit(
                        &streamed.headers,
                        ImageBody::Streamed(streamed.body),
                        share,
                    ));
                }
                discard();
                None
            }
            Ok(Answer::Read(reply, share)) => Some(Ok((reply, share))),
            Err(error) => Some(Err(error)),
        };
        match answer {
            None => {}
            Some(Ok((reply, Some(_)))) if reply.status == StatusCode::OK && !still_valid() => {
                discard();
            }
            Some(Ok((reply, Some(share)))) if reply.status == StatusCode::OK => {
                return Ok(hit(
                    &reply.headers,
                    ImageBody::Whole(reply.body),
                    Some(share),
                ));
            }
            Some(Ok((reply, _))) if reply.status == StatusCode::NOT_FOUND => {}
            Some(Ok((reply, _))) => {
                tracing::debug!(%node, status = %reply.status, "cache read refused")
            }
            Some(Err(error)) => {
                tracing::debug!(%node, %error, "cache read failed; reading storage")
            }
        }
    }
    let stored = read_storage(state, key).await?;
    let share = state
        .budget
        .try_take(stored.bytes.len() as u64)
        .ok_or_else(budget_spent)?;
    if let (Some(node), Some(fence)) = (owner, fence) {
        fill(state, node, key, &stored, fence);
    }
    Ok(Image {
        body: ImageBody::Whole(stored.bytes),
        mime: stored.mime,
        version: stored.version,
        cache_hit: false,
        share: Some(Arc::new(share)),
    })
}

/// A cache hit, from the node's answer headers.
fn hit(headers: &http::HeaderMap, body: ImageBody, share: Option<Share>) -> Image {
    Image {
        body,
        mime: item::mime_of(headers),
        // A node always sends the version; without one the image counts as the
        // oldest (its ETag then never matches a stored version).
        version: item::version_of(headers).unwrap_or(0),
        cache_hit: true,
        share: share.map(Arc::new),
    }
}

/// An image as storage holds it.
#[derive(Clone, Debug)]
struct Stored {
    bytes: Bytes,
    mime: String,
    version: u64,
}

/// Reads the key index, then the blob it names.
async fn read_storage(state: &Arc<FrontendState>, key: &str) -> Result<Stored, ApiError> {
    for _ in 0..STORAGE_READ_ATTEMPTS_MAX {
        let row = state
            .index
            .get(key)
            .await
            .map_err(|error| ApiError::unavailable(error.to_string()))?
            .ok_or_else(|| ApiError::not_found(format!("unknown key {key:?}")))?;
        match state
            .blobs
            .get(&row.object)
            .await
            .map_err(|error| ApiError::unavailable(error.to_string()))?
        {
            Some(bytes) => {
                return Ok(Stored {
                    bytes,
                    mime: row.mime,
                    version: row.version,
                })
            }
            // A re-upload replaced the object between the two reads: look again.
            None => continue,
        }
    }
    Err(ApiError::unavailable(format!(
        "the object of key {key:?} keeps changing; try again"
    )))
}

/// Puts a value read from storage into its owner, in the background. The node
/// refuses it if it already knows a newer version.
fn fill(
    state: &Arc<FrontendState>,
    node: crate::ring::NodeId,
    key: &str,
    image: &Stored,
    fence: String,
) {
    let Ok(permit) = state.fills.clone().try_acquire_owned() else {
        return;
    };
    lock(&state.cached).insert(key);
    let spawner = state.client.spawner();
    let state = state.clone();
    let key = key.to_owned();
    let image = image.clone();
    let task = async move {
        let _permit = permit;
        crate::buggify!("read.before_fill");
        let meta = ItemMeta {
            mime: image.mime.clone(),
            version: image.version,
        };
        let sent_fence = fence;
        let marks = PutMarks {
            fence: Some(&sent_fence),
            moved: false,
        };
        match state
            .node_client(&node)
            .put_item(&key, &meta, marks, image.bytes)
            .await
        {
            Ok(PutAnswer::Fenced(refusal)) => {
                match refusal.current.as_deref() {
                    // The node only forgot floors: nothing stale got in, and later
                    // fills may use its new token.
                    Some(token) if refusal.floors_only => {
                        state.adopt_later_fence(&node, token);
                    }
                    // This front-end cleared the node since the fill began: the
                    // refusal is the fence doing its work.
                    _ if state.fence(&node).as_deref() != Some(sent_fence.as_str()) => {}
                    // The node was cleared or restarted behind this front-end's back:
                    // bypass it until the healer has cleared it and learned its token.
                    _ => state.quarantine(&node),
                }
            }
            Ok(PutAnswer::Stored | PutAnswer::Stale) => {}
            Ok(PutAnswer::Other(status)) => {
                tracing::debug!(%node, %key, %status, "fill refused")
            }
            Err(error) => tracing::debug!(%node, %key, %error, "fill failed"),
        }
    };
    spawner.spawn(task.in_current_span());
}
