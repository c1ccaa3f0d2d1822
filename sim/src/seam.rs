//! The turmoil side of the network seam: a listener and a connector over turmoil's
//! simulated TCP, so the production services run unchanged in the simulation.

use std::io;

use async_trait::async_trait;
use memring::net::{BoxIo, Connector, Listener, Spawner};

/// A [`Listener`] over a simulated TCP socket.
pub struct TurmoilListener {
    inner: turmoil::net::TcpListener,
    local_addr: String,
}

impl TurmoilListener {
    /// Binds `0.0.0.0:port` on the current simulated host.
    pub async fn bind(port: u16) -> io::Result<Self> {
        let inner = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        let local_addr = inner.local_addr()?.to_string();
        Ok(TurmoilListener { inner, local_addr })
    }
}

#[async_trait]
impl Listener for TurmoilListener {
    async fn accept(&mut self) -> io::Result<(BoxIo, String)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((Box::new(stream), peer.to_string()))
    }

    fn local_addr(&self) -> String {
        self.local_addr.clone()
    }

    fn spawner(&self) -> Spawner {
        Spawner::Local
    }
}

/// A [`Connector`] over simulated TCP; host names resolve through turmoil.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilConnector;

#[async_trait]
impl Connector for TurmoilConnector {
    async fn connect(&self, addr: &str) -> io::Result<BoxIo> {
        let stream = turmoil::net::TcpStream::connect(addr).await?;
        Ok(Box::new(stream))
    }

    fn spawner(&self) -> Spawner {
        Spawner::Local
    }
}
