//! The manager's durable state: the pool in join order, the resize mode and its
//! parameters, and the cache configuration, so that a restarted manager still owns
//! the pool it announced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::autoscale::AutoParams;
use crate::ring::NodeId;
use crate::wire::node::CacheConfig;

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

/// The file operations a durable file needs. Production uses the real file system
/// ([`RealDisk`]); the simulation uses a disk model in which writes that were not
/// synced are lost at a crash.
#[async_trait]
pub trait Disk: Send + Sync + 'static {
    /// The file's bytes, or `None` if it does not exist.
    async fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>>;
    /// Creates or truncates the file and writes `bytes` (not yet durable).
    async fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes the file's bytes durable (fsync).
    async fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    /// Renames atomically (the new name is not durable until the directory is synced).
    async fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    async fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The real file system, through tokio (fsyncs run on the blocking pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDisk;

#[async_trait]
impl Disk for RealDisk {
    async fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        tokio::fs::write(path, bytes).await
    }

    async fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        let file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
        file.sync_all().await
    }

    async fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        tokio::fs::rename(from, to).await
    }

    async fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(std::io::Error::other)?
    }
}

/// State in a file, replaced atomically and durably: written aside, synced,
/// renamed over the old file, and the directory synced. A crash at any point
/// leaves either the old state or the new one.
pub struct FileStateStore {
    pub path: PathBuf,
    pub disk: Arc<dyn Disk>,
}

impl FileStateStore {
    /// A state file on the real file system.
    pub fn real(path: PathBuf) -> Self {
        FileStateStore {
            path,
            disk: Arc::new(RealDisk),
        }
    }
}

#[async_trait]
impl StateStore for FileStateStore {
    async fn load(&self) -> Option<Vec<u8>> {
        match self.disk.read(&self.path).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the manager state");
                None
            }
        }
    }

    async fn save(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        let aside = self.path.with_extension("tmp");
        let durable = !crate::planted!(NoFsync);
        self.disk.write(&aside, &bytes).await?;
        if durable {
            self.disk.sync_file(&aside).await?;
        }
        self.disk.rename(&aside, &self.path).await?;
        if durable {
            let dir = match self.path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                _ => PathBuf::from("."),
            };
            self.disk.sync_dir(&dir).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_state_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::real(dir.path().join("manager-state.json"));
        assert_eq!(store.load().await, None);
        store.save(b"one".to_vec()).await.unwrap();
        store.save(b"two".to_vec()).await.unwrap();
        assert_eq!(store.load().await.as_deref(), Some(&b"two"[..]));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["manager-state.json"], "no file left aside");
    }
}
