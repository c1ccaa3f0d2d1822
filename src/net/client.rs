//! A kept-alive HTTP/1.1 client over any [`Connector`], with a timeout on every call
//! and a cap on every response body.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioIo, TokioTimer};
use thiserror::Error;

use super::{BoxIo, SharedConnector, Spawner, SpawnerExecutor};

/// Limits of a client.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    /// Whole-call timeout: connect, send, and read the full answer.
    pub timeout_ms: u64,
    /// Largest answer body accepted.
    pub body_max_bytes: usize,
    /// Idle kept-alive connections per peer.
    pub idle_per_host_max: usize,
    /// How long an idle connection is kept.
    pub idle_timeout_ms: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            timeout_ms: crate::limits::CLIENT_TIMEOUT_MS_DEFAULT,
            body_max_bytes: crate::limits::CLIENT_BODY_MAX_BYTES_DEFAULT,
            idle_per_host_max: crate::limits::CLIENT_IDLE_PER_HOST_MAX_DEFAULT,
            idle_timeout_ms: crate::limits::CLIENT_IDLE_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("call to {addr} timed out after {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("call to {addr} failed: {message}")]
    Transport { addr: String, message: String },
    /// No connection could be made: the request surely never reached the peer.
    #[error("could not connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("bad request to {addr}: {message}")]
    BadRequest { addr: String, message: String },
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The answer's body as JSON, if it is.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What a caller of [`HttpClient::send_taking`] does with an answer, once it has
/// seen its status and headers.
pub enum Take<A> {
    /// Leave the body unread (the connection is dropped).
    Refuse,
    /// Read the body whole.
    Read(A),
    /// Hand the body on as it arrives.
    Stream(A),
}

/// An answer, as [`Take`] had it.
pub enum Answer<A> {
    /// Its body was left unread: the reply's body is empty.
    Refused(Reply),
    Read(Reply, A),
    Streamed(Streamed, A),
}

/// An answer whose body is still arriving.
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: UpstreamBody,
}

/// A body read from a peer as it arrives. It fails when the peer sends nothing
/// for its stall limit while it is being waited on; time the reader spends not
/// asking for more (its own client is slow) does not count.
pub struct UpstreamBody {
    inner: hyper::body::Incoming,
    stall: Duration,
    /// Armed while a frame is awaited.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl UpstreamBody {
    fn new(inner: hyper::body::Incoming, stall: Duration) -> Self {
        UpstreamBody {
            inner,
            stall,
            timer: None,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|frame| frame.map_err(std::io::Error::other)))
            }
            Poll::Pending => {
                let stall = this.stall;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the peer sent nothing for {} ms", stall.as_millis()),
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The `Content-Length` an answer announces, if it announces a valid one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Peers with a connection pool of their own; past it, peers share one.
const PEER_POOLS_MAX: usize = 64;

type Pool = Client<ConnectorService, Full<Bytes>>;

/// An HTTP client; cheap to clone (clones share the connection pools).
///
/// Each peer address gets a connection pool of its own. hyper-util's pool keeps
/// its peers in a map with random hashing and closes expired connections in that
/// map's order; with one peer per pool, the order in which connections close (and
/// so what the network sees) never depends on the hashing.
#[derive(Clone)]
pub struct HttpClient {
    pools: Arc<Mutex<BTreeMap<String, Pool>>>,
    shared: Pool,
    connector: SharedConnector,
    settings: ClientSettings,
    spawner: Spawner,
    /// Sent with every request unless the caller gives the same header (the
    /// cluster token of a role's internal calls).
    default_headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

fn build_pool(connector: &SharedConnector, settings: &ClientSettings, spawner: Spawner) -> Pool {
    Client::builder(SpawnerExecutor(spawner))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(settings.idle_timeout_ms))
        .pool_max_idle_per_host(settings.idle_per_host_max)
        .build(ConnectorService(connector.clone()))
}

impl HttpClient {
    pub fn new(connector: SharedConnector, settings: ClientSettings) -> Self {
        let spawner = connector.spawner();
        let shared = build_pool(&connector, &settings, spawner);
        HttpClient {
            pools: Arc::default(),
            shared,
            connector,
            settings,
            spawner,
            default_headers: Arc::default(),
        }
    }

    /// This client, sending `name: value` with every request from now on.
    pub fn with_default_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        let mut headers = (*self.default_headers).clone();
        headers.retain(|(known, _)| *known != name);
        headers.push((name, value));
        self.default_headers = Arc::new(headers);
        self
    }

    /// The connection pool of `addr`.
    fn pool(&self, addr: &str) -> Pool {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(addr) {
            return pool.clone();
        }
        if pools.len() >= PEER_POOLS_MAX {
            return self.shared.clone();
        }
        let pool = build_pool(&self.connector, &self.settings, self.spawner);
        pools.insert(addr.to_owned(), pool.clone());
        pool
    }

    pub fn settings(&self) -> ClientSettings {
        self.settings
    }

    /// Where the services holding this client spawn their tasks.
    pub fn spawner(&self) -> Spawner {
        self.spawner
    }

    /// Sends one request to `addr` (`host:port`) and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        addr: &str,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        self.send_with_timeout(
            method,
            addr,
            path_and_query,
            headers,
            body,
            self.settings.timeout_ms,
        )
        .await
    }

    /// [`HttpClient::send`] with its own timeout.
    pub async fn send_with_timeout(
        &self,
        method: Method,
        addr: &str,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout_ms: u64,
    ) -> Result<Reply, ClientError> {
        let admit_all = |_: StatusCode, _: &HeaderMap| Some(());
        self.send_admitting(
            method,
            addr,
            path_and_query,
            headers,
            body,
            timeout_ms,
            admit_all,
        )
        .await
        .map(|(reply, _)| reply)
    }

    /// [`HttpClient::send_with_timeout`], where `admit` sees the answer's status
    /// and headers before its body is read: when it returns `None` the body is
    /// left unread (the connection is dropped) and the reply comes back empty. A
    /// caller with a memory budget takes its share here, from `Content-Length`.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_admitting<A>(
        &self,
        method: Method,
        addr: &str,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout_ms: u64,
        admit: impl FnOnce(StatusCode, &HeaderMap) -> Option<A>,
    ) -> Result<(Reply, Option<A>), ClientError> {
        let take = |status: StatusCode, headers: &HeaderMap| match admit(status, headers) {
            Some(admitted) => Take::Read(admitted),
            None => Take::Refuse,
        };
        let answer = self
            .send_taking(
                method,
                addr,
                path_and_query,
                headers,
                body,
                timeout_ms,
                take,
            )
            .await?;
        Ok(match answer {
            Answer::Refused(reply) => (reply, None),
            Answer::Read(reply, admitted) => (reply, Some(admitted)),
            Answer::Streamed(..) => unreachable!("this caller never streams"),
        })
    }

    /// The general call: `take` sees the answer's status and headers and decides
    /// whether its body is read whole, streamed, or left unread. `timeout_ms`
    /// bounds the call until the body is read whole or, for a stream, until its
    /// headers arrived; a stream then fails if the peer stops sending for
    /// `timeout_ms` while it is being read.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_taking<A>(
        &self,
        method: Method,
        addr: &str,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout_ms: u64,
        take: impl FnOnce(StatusCode, &HeaderMap) -> Take<A>,
    ) -> Result<Answer<A>, ClientError> {
        let uri: Uri = format!("http://{addr}{path_and_query}").parse().map_err(
            |error: http::uri::InvalidUri| ClientError::BadRequest {
                addr: addr.to_owned(),
                message: error.to_string(),
            },
        )?;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in self.default_headers.iter() {
            if !headers.iter().any(|(given, _)| given == name) {
                request = request.header(name, value);
            }
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| ClientError::BadRequest {
                addr: addr.to_owned(),
                message: error.to_string(),
            })?;
        let transport = |message: String| ClientError::Transport {
            addr: addr.to_owned(),
            message,
        };
        let pool = self.pool(addr);
        let call = async {
            let response = pool.request(request).await.map_err(|error| {
                if error.is_connect() {
                    ClientError::Connect {
                        addr: addr.to_owned(),
                        message: format!("{error:#}"),
                    }
                } else {
                    transport(format!("{error:#}"))
                }
            })?;
            let (parts, body) = response.into_parts();
            let admitted = match take(parts.status, &parts.headers) {
                Take::Refuse => {
                    let reply = Reply {
                        status: parts.status,
                        headers: parts.headers,
                        body: Bytes::new(),
                    };
                    return Ok(Answer::Refused(reply));
                }
                Take::Stream(admitted) => {
                    let streamed = Streamed {
                        status: parts.status,
                        headers: parts.headers,
                        body: UpstreamBody::new(body, Duration::from_millis(timeout_ms)),
                    };
                    return Ok(Answer::Streamed(streamed, admitted));
                }
                Take::Read(admitted) => admitted,
            };
            // Read into one buffer of the announced size: collecting the frames
            // first and joining them after would hold the body twice.
            let announced = content_length(&parts.headers)
                .map_or(0, |length| usize::try_from(length).unwrap_or(usize::MAX))
                .min(self.settings.body_max_bytes);
            let mut buffer = bytes::BytesMut::with_capacity(announced);
            let mut body = std::pin::pin!(Limited::new(body, self.settings.body_max_bytes));
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| transport(error.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            let body = buffer.freeze();
            let reply = Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            };
            Ok(Answer::Read(reply, admitted))
        };
        match tokio::time::timeout(Duration::from_millis(timeout_ms), call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ClientError::Timeout {
                addr: addr.to_owned(),
                timeout_ms,
            }),
        }
    }

    /// Sends a JSON body.
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        value: &T,
    ) -> Result<Reply, ClientError> {
        let body = serde_json::to_vec(value).expect("values we send always serialize");
        let headers = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        self.send(method, addr, path, &headers, Bytes::from(body))
            .await
    }
}

/// Adapts a [`super::Connector`] to the connector hyper's pool expects.
#[derive(Clone)]
struct ConnectorService(SharedConnector);

impl tower::Service<Uri> for ConnectorService {
    type Response = PooledIo;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<PooledIo>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.0.clone();
        Box::pin(async move {
            let authority = uri.authority().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no authority in URI")
            })?;
            let addr = match authority.port_u16() {
                Some(_) => authority.as_str().to_owned(),
                None => format!("{}:80", authority.host()),
            };
            let io = connector.connect(&addr).await?;
            Ok(PooledIo(TokioIo::new(io)))
        })
    }
}

/// A connection as hyper's pool holds it.
struct PooledIo(TokioIo<BoxIo>);

impl Connection for PooledIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for PooledIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PooledIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
