//! Blobs on the local filesystem, through object_store's `LocalFileSystem`.
//!
//! Puts are create-only and atomic (written aside, then linked into place), so a
//! crash never leaves a half-written object under its name.
//!
//! Durability: a put returns `Ok` only once the object is on disk. After the link,
//! the new file is fsynced, then its parent directory and every directory above it
//! up to the store root (a put may have created `images/` and `images/ab/`), so
//! that after a power loss a committed index row never names a missing object. If
//! any fsync fails the put fails: the object may exist but is not promised, and
//! `clear/data` sweeps it as unreferenced. [`LocalBlobStore::open`] fsyncs the root
//! and its parent once, as it may have created the root. Deletes are not fsynced:
//! an object that comes back after a power loss is garbage that no row names.
//! The blocking filesystem calls run on tokio's blocking pool.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

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
    /// The canonical root directory: fsyncs of a put stop here.
    root: PathBuf,
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
        let io_error = |e: io::Error| StorageError::Unavailable(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let root = std::fs::canonicalize(dir).map_err(io_error)?;
        // The root (and the data directory holding it) may be new: make it durable.
        sync_path(&root).map_err(io_error)?;
        if let Some(parent) = root.parent() {
            sync_path(parent).map_err(io_error)?;
        }
        let inner = LocalFileSystem::new_with_prefix(&root).map_err(unavailable)?;
        Ok(LocalBlobStore { inner, root })
    }
}

/// Fsyncs a file or a directory (opened read-only, which Linux allows for both).
fn sync_path(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Fsyncs the object file at `file`, then each directory from its parent up to and
/// including `root`. Fails, syncing nothing above it, if `file` is not under `root`.
fn sync_object_and_parents(root: &Path, file: &Path) -> io::Result<()> {
    if !file.starts_with(root) || file == root {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not under {}", file.display(), root.display()),
        ));
    }
    sync_path(file)?;
    // `ancestors` is finite: one entry per path component.
    for dir in file.ancestors().skip(1) {
        sync_path(dir)?;
        if dir == root {
            break;
        }
    }
    Ok(())
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
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(StorageError::AlreadyExists(name.to_owned()))
            }
            Err(error) => return Err(unavailable(error)),
        }
        let file = self.inner.path_to_filesystem(&path).map_err(unavailable)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sync_object_and_parents(&root, &file))
            .await
            .map_err(|e| StorageError::Unavailable(format!("fsync task of {name}: {e}")))?
            .map_err(|e| StorageError::Unavailable(format!("fsync of {name}: {e}")))
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

    #[tokio::test]
    async fn a_put_makes_one_regular_file_in_new_directories_and_stays_create_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data").join("blobs");
        let store = LocalBlobStore::open(&root).unwrap();
        let name = "images/ab/0123456789abcdef0123456789abcdef";
        store.put(name, Bytes::from_static(b"first")).await.unwrap();
        let file = root
            .join("images")
            .join("ab")
            .join("0123456789abcdef0123456789abcdef");
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert!(meta.file_type().is_file(), "a regular file, not a link");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(meta.nlink(), 1, "the staging link is gone");
        }
        let siblings: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(siblings.len(), 1, "no staging file left: {siblings:?}");
        assert!(matches!(
            store.put(name, Bytes::from_static(b"second")).await,
            Err(StorageError::AlreadyExists(_))
        ));
        assert_eq!(store.get(name).await.unwrap().unwrap(), &b"first"[..]);
    }

    #[test]
    fn syncing_stops_at_the_root_and_refuses_paths_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let nested = root.join("images").join("cd");
        std::fs::create_dir_all(&nested).unwrap();
        let file = nested.join("object");
        std::fs::write(&file, b"bytes").unwrap();
        sync_object_and_parents(&root, &file).unwrap();
        let outside = sync_object_and_parents(&nested, &root.join("elsewhere"));
        assert_eq!(outside.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let itself = sync_object_and_parents(&root, &root);
        assert_eq!(itself.unwrap_err().kind(), io::ErrorKind::InvalidInput);
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
