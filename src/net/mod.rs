//! The network seam: a listener and a connector, so that every service runs the same
//! code over real TCP (tokio) or a simulated network (turmoil).
//!
//! Services never touch sockets directly: they take a [`Listener`] to serve on and a
//! [`Connector`] to call other services with. [`server`] serves an axum router over a
//! listener; [`client`] is a kept-alive HTTP/1.1 client over a connector.

pub mod client;
pub mod form;
pub mod server;

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

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
}

/// Opens connections to `host:port` addresses.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn connect(&self, addr: &str) -> io::Result<BoxIo>;
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
