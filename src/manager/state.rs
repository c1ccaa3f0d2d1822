//! The manager's durable state: the pool in join order, the resize mode and its
//! parameters, and the cache configuration, so that a restarted manager still owns
//! the pool it announced.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::autoscale::AutoParams;
use crate::node::CacheConfig;
use crate::ring::NodeId;

/// What the manager keeps across restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    pub pool: Vec<NodeId>,
    /// The pool's epoch and assignment (older files have neither).
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub assignment: Option<Vec<String>>,
    /// Nodes out of the pool for failing their health checks.
    #[serde(default)]
    pub ejected: Vec<NodeId>,
    pub automatic: bool,
    pub params: AutoParams,
    pub cache: CacheConfig,
}

/// Where the state is kept.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    async fn load(&self) -> Option<Vec<u8>>;
    async fn save(&self, bytes: Vec<u8>) -> std::io::Result<()>;
}

/// State in a file, replaced atomically (written aside, then renamed).
pub struct FileStateStore {
    pub path: PathBuf,
}

#[async_trait]
impl StateStore for FileStateStore {
    async fn load(&self) -> Option<Vec<u8>> {
        tokio::fs::read(&self.path).await.ok()
    }

    async fn save(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        let aside = self.path.with_extension("tmp");
        tokio::fs::write(&aside, &bytes).await?;
        tokio::fs::rename(&aside, &self.path).await
    }
}

/// State in memory: survives a restart of the manager's task, not of the process
/// (the simulation keeps it outside the manager's host, as a disk would be).
#[derive(Default)]
pub struct MemoryStateStore {
    bytes: Mutex<Option<Vec<u8>>>,
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn load(&self) -> Option<Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn save(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        *self.bytes.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(())
    }
}
