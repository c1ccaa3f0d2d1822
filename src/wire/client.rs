//! One typed client per role: [`NodeClient`], [`ManagerClient`] and
//! [`FrontendClient`]. Each names its peer's calls, sends the bodies of
//! [`super::frontend`], [`super::node`] and [`super::manager`], and reads their
//! answers out of the envelope, so no caller spells a path or a JSON field.
//!
//! Every call has a timeout (the client's default unless the call names one).
//! Calls whose answer is more than a body (an item, an image) hand back the raw
//! [`Reply`] with the helpers of [`super::item`] to read it.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::envelope::{Content, Empty, Failure};
use super::frontend::{KeyList, Notified, Notify, PoolView, Uploaded};
use super::item::{fence_answer, FenceAnswer, ItemMeta, PutMarks};
use super::manager::{
    AggregateStats, CacheConfigSet, ManualResize, PoolChoice, PoolListing, PoolSize, ResizeConfig,
    Resized,
};
use super::node::{CacheConfig, Cleared, Invalidated, MoveDone, MoveDoneAck, MoveReport, Stats};
use super::{headers, paths};
use crate::autoscale::AutoParams;
use crate::balance::MoveKeysPayload;
use crate::net::client::{Answer, ClientError, HttpClient, Reply, Take};
use crate::ring::NodeId;

/// Why a typed call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer (refused connection, timeout, broken transfer).
    #[error(transparent)]
    Transport(#[from] ClientError),
    /// An answer that is not a success: its status, its envelope's message, and
    /// the epoch its headers name (a front-end's 409 to a notify names the epoch
    /// in force).
    #[error("{addr} answered {status}: {message}")]
    Refused {
        addr: String,
        status: StatusCode,
        message: String,
        epoch: Option<u64>,
    },
    /// A success whose body is not the documented one.
    #[error("{addr} answered {status} with a body that is not the documented one")]
    Malformed { addr: String, status: StatusCode },
}

impl CallError {
    /// The status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The epoch a front-end's 409 names (the epoch in force there).
    pub fn epoch_in_force(&self) -> Option<u64> {
        match self {
            CallError::Refused {
                status: StatusCode::CONFLICT,
                epoch,
                ..
            } => *epoch,
            _ => None,
        }
    }
}

/// Reads a whole answer: the body `T` on success, the envelope's message otherwise.
pub fn read_answer<T: DeserializeOwned>(addr: &str, reply: Reply) -> Result<T, CallError> {
    if reply.status.is_success() {
        return reply.json::<T>().ok_or(CallError::Malformed {
            addr: addr.to_owned(),
            status: reply.status,
        });
    }
    let message = reply
        .json::<Failure>()
        .map(|failure| failure.error.message)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(200)
                .collect()
        });
    let epoch = reply
        .headers
        .get(headers::EPOCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Err(CallError::Refused {
        addr: addr.to_owned(),
        status: reply.status,
        message,
        epoch,
    })
}

/// What a peer's client shares: the HTTP client, the peer and the timeout.
#[derive(Clone)]
struct Peer {
    http: HttpClient,
    addr: String,
    timeout_ms: u64,
}

impl Peer {
    fn new(http: HttpClient, addr: impl Into<String>) -> Self {
        let timeout_ms = http.settings().timeout_ms;
        Peer {
            http,
            addr: addr.into(),
            timeout_ms,
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        self.http
            .send_with_timeout(method, &self.addr, path, headers, body, self.timeout_ms)
            .await
    }

    async fn healthy(&self) -> bool {
        matches!(
            self.raw(Method::GET, paths::HEALTHZ, &[], Bytes::new()).await,
            Ok(reply) if reply.status.is_success()
        )
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T, CallError> {
        let reply = self.raw(method, path, &[], Bytes::new()).await?;
        read_answer(&self.addr, reply)
    }

    async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        extra: &[(HeaderName, HeaderValue)],
        body: &B,
    ) -> Result<T, CallError> {
        let bytes = serde_json::to_vec(body).expect("wire bodies always serialize");
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        headers.extend_from_slice(extra);
        let reply = self.raw(method, path, &headers, Bytes::from(bytes)).await?;
        read_answer(&self.addr, reply)
    }
}

/// How a node answered a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutAnswer {
    /// Stored (or replaced).
    Stored,
    /// The node knows a newer version of the key: nothing to do.
    Stale,
    /// Refused for its fence.
    Fenced(FenceAnswer),
    /// Any other answer.
    Other(StatusCode),
}

/// A client of one role: the peer's address and the timeout of its calls.
macro_rules! role_client {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Peer);

        impl $name {
            pub fn new(http: HttpClient, addr: impl Into<String>) -> Self {
                $name(Peer::new(http, addr))
            }

            /// The same peer with another timeout for every call.
            pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
                self.0.timeout_ms = timeout_ms;
                self
            }

            pub fn addr(&self) -> &str {
                &self.0.addr
            }

            /// Whether `/healthz` answers with a success.
            pub async fn healthy(&self) -> bool {
                self.0.healthy().await
            }
        }
    };
}

role_client!(
    /// A client of one cache node.
    NodeClient
);
role_client!(
    /// A client of the manager.
    ManagerClient
);
role_client!(
    /// A client of the front-end.
    FrontendClient
);

impl NodeClient {
    /// Reads an item; `take` sees the status and headers first and decides
    /// whether the body is read whole, streamed or left unread.
    pub async fn get_item<A>(
        &self,
        key: &str,
        take: impl FnOnce(StatusCode, &HeaderMap) -> Take<A>,
    ) -> Result<Answer<A>, ClientError> {
        let peer = &self.0;
        peer.http
            .send_taking(
                Method::GET,
                &peer.addr,
                &paths::item_path(key),
                &[],
                Bytes::new(),
                peer.timeout_ms,
                take,
            )
            .await
    }

    /// Puts an item.
    pub async fn put_item(
        &self,
        key: &str,
        meta: &ItemMeta,
        marks: PutMarks<'_>,
        bytes: Bytes,
    ) -> Result<PutAnswer, ClientError> {
        let headers = meta.to_headers(marks);
        let reply = self
            .0
            .raw(Method::PUT, &paths::item_path(key), &headers, bytes)
            .await?;
        Ok(if let Some(fenced) = fence_answer(&reply.headers) {
            PutAnswer::Fenced(fenced)
        } else if reply.status.is_success() {
            PutAnswer::Stored
        } else if reply.status == StatusCode::CONFLICT {
            PutAnswer::Stale
        } else {
            PutAnswer::Other(reply.status)
        })
    }

    /// Drops a key: every version (`None`), or versions up to `version` (and
    /// keeps that version as the key's floor).
    pub async fn invalidate(
        &self,
        key: &str,
        version: Option<u64>,
    ) -> Result<Invalidated, CallError> {
        let mut path = paths::item_path(key);
        if let Some(version) = version {
            path.push_str(&format!("?version={version}"));
        }
        self.0.call(Method::DELETE, &path).await
    }

    /// Empties the node; answers its new fence token.
    pub async fn clear(&self) -> Result<Cleared, CallError> {
        self.0.call(Method::DELETE, paths::NODE_CLEAR).await
    }

    pub async fn config(&self) -> Result<CacheConfig, CallError> {
        let answer: Content<CacheConfig> = self.0.call(Method::GET, paths::NODE_CONFIG).await?;
        Ok(answer.content)
    }

    pub async fn set_config(&self, config: &CacheConfig) -> Result<(), CallError> {
        let _: Empty = self
            .0
            .call_json(Method::POST, paths::NODE_CONFIG, &[], config)
            .await?;
        Ok(())
    }

    pub async fn stats(&self) -> Result<Stats, CallError> {
        self.0.call(Method::GET, paths::NODE_STATS).await
    }

    pub async fn keys(&self) -> Result<KeyList, CallError> {
        self.0.call(Method::GET, paths::NODE_KEYS).await
    }

    /// Sends a move order with the destinations' fences (see
    /// [`super::fence::encode_fences`]).
    pub async fn move_keys(
        &self,
        payload: &MoveKeysPayload,
        fences: &str,
    ) -> Result<MoveReport, CallError> {
        let extra: Vec<(HeaderName, HeaderValue)> = HeaderValue::from_str(fences)
            .ok()
            .map(|value| (HeaderName::from_static(headers::FENCES), value))
            .into_iter()
            .collect();
        let answer: Content<MoveReport> = self
            .0
            .call_json(Method::POST, paths::MOVE_KEYS, &extra, payload)
            .await?;
        Ok(answer.content)
    }
}

impl ManagerClient {
    /// The pool, the ejected nodes, the epoch and the assignment in force.
    pub async fn pool_listing(&self) -> Result<PoolListing, CallError> {
        let answer: Content<PoolListing> = self.0.call(Method::GET, paths::POOL_NODE_LIST).await?;
        Ok(answer.content)
    }

    /// Sets the pool to the nodes named (admin).
    pub async fn choose_pool(&self, nodes: &[String]) -> Result<Resized, CallError> {
        let body = PoolChoice {
            node_ip_list: nodes.to_vec(),
        };
        let answer: Content<Resized> = self
            .0
            .call_json(Method::POST, paths::POOL_NODE_LIST, &[], &body)
            .await?;
        Ok(answer.content)
    }

    /// One node more or one fewer (admin).
    pub async fn resize(&self, change: super::change::Change) -> Result<Resized, CallError> {
        let answer: Content<Resized> = self
            .0
            .call_json(
                Method::POST,
                paths::POOLSIZE_MANUAL,
                &[],
                &ManualResize { change },
            )
            .await?;
        Ok(answer.content)
    }

    pub async fn pool_size(&self) -> Result<usize, CallError> {
        let answer: Content<PoolSize> = self.0.call(Method::GET, paths::POOLSIZE).await?;
        Ok(answer.content.size)
    }

    pub async fn resize_config(&self) -> Result<ResizeConfig, CallError> {
        let answer: Content<ResizeConfig> =
            self.0.call(Method::GET, paths::POOLSIZE_CONFIG).await?;
        Ok(answer.content)
    }

    /// Switches to automatic mode with these parameters (admin).
    pub async fn automatic(&self, params: &AutoParams) -> Result<ResizeConfig, CallError> {
        let answer: Content<ResizeConfig> = self
            .0
            .call_json(Method::POST, paths::POOLSIZE_AUTOMATIC, &[], params)
            .await?;
        Ok(answer.content)
    }

    pub async fn cache_config(&self) -> Result<CacheConfig, CallError> {
        let answer: Content<CacheConfig> = self
            .0
            .call(Method::GET, paths::MANAGER_CACHE_CONFIG)
            .await?;
        Ok(answer.content)
    }

    /// Sets every node's cache configuration (admin).
    pub async fn set_cache_config(
        &self,
        config: &CacheConfig,
    ) -> Result<CacheConfigSet, CallError> {
        self.0
            .call_json(Method::POST, paths::MANAGER_CACHE_CONFIG, &[], config)
            .await
    }

    pub async fn aggregate_stats(&self) -> Result<AggregateStats, CallError> {
        let answer: Content<AggregateStats> =
            self.0.call(Method::GET, paths::AGGREGATE_STATS).await?;
        Ok(answer.content)
    }

    /// A leaving node's callback once its move order is done (cluster).
    pub async fn move_done(&self, node: &NodeId) -> Result<MoveDoneAck, CallError> {
        let body = MoveDone { node: node.clone() };
        self.0
            .call_json(Method::POST, paths::MOVE_DONE, &[], &body)
            .await
    }
}

impl FrontendClient {
    /// Uploads an image through the documented form.
    pub async fn upload(
        &self,
        key: &str,
        image: &[u8],
        mime: Option<&str>,
    ) -> Result<Uploaded, CallError> {
        let (body, content_type) = super::form::upload_form(Some(key), Some((image, mime)));
        let headers = [(
            CONTENT_TYPE,
            HeaderValue::from_str(&content_type).expect("the form's content type is ASCII"),
        )];
        let reply = self
            .0
            .raw(Method::POST, paths::UPLOAD, &headers, body)
            .await?;
        read_answer(&self.0.addr, reply)
    }

    /// Reads `/images/{key}`: the raw answer (bytes, type, ETag, cache state).
    pub async fn image(&self, key: &str) -> Result<Reply, ClientError> {
        self.0
            .raw(Method::GET, &paths::image_path(key), &[], Bytes::new())
            .await
    }

    pub async fn list_keys(&self) -> Result<KeyList, CallError> {
        self.0.call(Method::POST, paths::LIST_KEYS).await
    }

    /// The routing in force and the front-end's trust in the nodes.
    pub async fn pool(&self) -> Result<PoolView, CallError> {
        self.0.call(Method::GET, paths::POOL).await
    }

    /// Tells the front-end a pool (cluster). A 409 names the epoch in force
    /// ([`CallError::epoch_in_force`]).
    pub async fn notify(&self, notify: &Notify) -> Result<Notified, CallError> {
        self.0
            .call_json(Method::POST, paths::NOTIFY, &[], notify)
            .await
    }

    /// Empties every node (admin).
    pub async fn clear_cache(&self) -> Result<(), CallError> {
        let _: Empty = self.0.call(Method::DELETE, paths::CLEAR_CACHE).await?;
        Ok(())
    }

    /// Deletes every image (admin).
    pub async fn clear_data(&self) -> Result<(), CallError> {
        let _: Empty = self.0.call(Method::DELETE, paths::CLEAR_DATA).await?;
        Ok(())
    }
}
