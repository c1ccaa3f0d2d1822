//! The network seam: a listener and a connector, so that every service runs the same
//! code over real TCP (tokio) or a simulated network (turmoil).
//!
//! Services never touch sockets directly: they take a [`Listener`] to serve on and a
//! [`Connector`] to call other services with. [`server`] serves an axum router over a
//! listener; [`client`] is a kept-alive HTTP/1.1 client over a connector.

pub mod budget;
pub mod client;
pub mod guard;
pub mod server;

use std::io;
use std::sync::Arc;

use std::future::Future;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// Where a service starts its tasks (connections, fills, background loops).
///
/// Production spawns on the tokio runtime. The simulation spawns on the host's
/// `LocalSet`: tokio shards a runtime's task list by task id, and task ids come from
/// one process-wide counter, so the order in which a crashed host's tasks are
/// dropped (and its connections reset) would depend on every run before it in the
/// same process. A `LocalSet` keeps its tasks in spawn order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spawner {
    /// `tokio::spawn`.
    #[default]
    Tokio,
    /// `tokio::task::spawn_local`: the caller runs inside a `LocalSet`.
    Local,
}

impl Spawner {
    /// Starts `future` as a task.
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Spawner::Tokio => tokio::spawn(future),
            Spawner::Local => tokio::task::spawn_local(future),
        }
    }
}

/// hyper's executor over a [`Spawner`], for the client's connection tasks.
#[derive(Clone, Copy, Debug)]
pub struct SpawnerExecutor(pub Spawner);

impl<F> hyper::rt::Executor<F> for SpawnerExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future);
    }
}

/// A bidirectional byte stream: a TCP connection, real or simulated.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed connection.
pub type BoxIo = Box<dyn Io>;

/// Accepts connections for a server.
#[async_trait]
pub trait Listener: Send + 'static {
    /// The next connection and the peer's address.
    async fn accept(&mut self) -> io::Result<(BoxIo, String)>;
    /// The address this listener is bound to, as `host:port`.
    fn local_addr(&self) -> String;
    /// Where the server spawns its connection tasks.
    fn spawner(&self) -> Spawner {
        Spawner::Tokio
    }
}

/// Opens connections to `host:port` addresses.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn connect(&self, addr: &str) -> io::Result<BoxIo>;
    /// Where the services that use this connector spawn their tasks.
    fn spawner(&self) -> Spawner {
        Spawner::Tokio
    }
}

/// A [`Listener`] over a real TCP socket.
pub struct TokioListener {
    inner: tokio::net::TcpListener,
    local_addr: String,
}

impl TokioListener {
    /// Binds `addr` (`host:port`; port 0 picks a free one).
    pub async fn bind(addr: &str) -> io::Result<Self> {
        let inner = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = inner.local_addr()?.to_string();
        Ok(TokioListener { inner, local_addr })
    }
}

#[async_trait]
impl Listener for TokioListener {
    async fn accept(&mut self) -> io::Result<(BoxIo, String)> {
        let (stream, peer) = self.inner.accept().await?;
        // Small request/response exchanges: never wait for Nagle.
        stream.set_nodelay(true)?;
        Ok((Box::new(stream), peer.to_string()))
    }

    fn local_addr(&self) -> String {
        self.local_addr.clone()
    }
}

/// A [`Connector`] over real TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioConnector;

#[async_trait]
impl Connector for TokioConnector {
    async fn connect(&self, addr: &str) -> io::Result<BoxIo> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}

/// The shared connector type services hold.
pub type SharedConnector = Arc<dyn Connector>;
