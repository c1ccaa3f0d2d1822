//! Blobs on the local filesystem, through object_store's `LocalFileSystem`.
//!
//! Puts are create-only and atomic (written aside, then linked into place), so a
//! crash never leaves a half-written object under its name.

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use super::{validate_object_name, BlobStore, StorageError, StorageResult};

/// A blob store rooted at a directory.
#[derive(Debug)]
pub struct LocalBlobStore {
    inner: LocalFileSystem,
}

fn unavailable(error: object_store::Error) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

fn object_path(name: &str) -> StorageResult<ObjectPath> {
    validate_object_name(name)?;
    ObjectPath::parse(name).map_err(|_| StorageError::BadName(name.to_owned()))
}

impl LocalBlobStore {
    /// Opens (and creates) the store at `dir`.
    pub fn open(dir: &Path) -> StorageResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Unavailable(format!("{}: {e}", dir.display())))?;
        let inner = LocalFileSystem::new_with_prefix(dir).map_err(unavailable)?;
        Ok(LocalBlobStore { inner })
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, name: &str, bytes: Bytes) -> StorageResult<()> {
        let path = object_path(name)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(StorageError::AlreadyExists(name.to_owned()))
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn get(&self, name: &str) -> StorageResult<Option<Bytes>> {
        let path = object_path(name)?;
        match self.inner.get(&path).await {
            Ok(result) => result.bytes().await.map(Some).map_err(unavailable),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn delete(&self, name: &str) -> StorageResult<()> {
        let path = object_path(name)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        let mut names: Vec<String> = self
            .inner
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(unavailable)?;
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_blob_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::storage::contract::blob_store(&LocalBlobStore::open(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn objects_survive_reopening_and_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        {
            let store = LocalBlobStore::open(&root).unwrap();
            for i in 0..20 {
                store
                    .put(&format!("images/{i:02}"), Bytes::from(vec![i as u8; 1000]))
                    .await
                    .unwrap();
            }
        }
        let store = LocalBlobStore::open(&root).unwrap();
        let names = store.list().await.unwrap();
        assert_eq!(names.len(), 20, "no staging files are listed: {names:?}");
        assert_eq!(
            store.get("images/07").await.unwrap().unwrap(),
            vec![7u8; 1000]
        );
        assert!(root.join("images").join("07").is_file());
        let on_disk: Vec<_> = std::fs::read_dir(root.join("images"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            on_disk.len(),
            20,
            "no staging files left behind: {on_disk:?}"
        );
        assert!(matches!(
            store.get("../escape").await,
            Err(StorageError::BadName(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_puts_of_one_name_let_exactly_one_win() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(LocalBlobStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.put("images/race", Bytes::from(vec![i; 4096])).await },
                )
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StorageError::AlreadyExists(_)) => {}
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(wins, 1);
        let bytes = store.get("images/race").await.unwrap().unwrap();
        assert!(bytes.iter().all(|b| *b == bytes[0]), "one whole object");
        assert_eq!(store.list().await.unwrap(), ["images/race"]);
    }
}
