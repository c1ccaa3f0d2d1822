//! Storage: the blob store (images) and the key index (key -> object, mime type,
//! version), as traits with real and in-memory implementations.

pub mod local;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a storage call failed.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("object already exists: {0}")]
    AlreadyExists(String),
    #[error("bad object name: {0}")]
    BadName(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// A row of the key index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    pub key: String,
    pub object: String,
    pub mime: String,
    pub version: u64,
}

/// What an upsert did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upserted {
    pub version: u64,
    pub previous_object: Option<String>,
}

/// Where images live, by object name.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores bytes under a new name: create-only and atomic, so no half-written
    /// object is ever visible. A taken name gives `AlreadyExists`.
    async fn put(&self, name: &str, bytes: Bytes) -> StorageResult<()>;
    async fn get(&self, name: &str) -> StorageResult<Option<Bytes>>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, name: &str) -> StorageResult<()>;
    /// Every object name, sorted.
    async fn list(&self) -> StorageResult<Vec<String>>;
}

/// The key index.
#[async_trait]
pub trait KeyIndex: Send + Sync + 'static {
    /// Points `key` at `object`, atomically, with a version larger than any this
    /// index ever gave (across `delete_all` and restarts). Durable when it returns.
    async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted>;
    async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>>;
    /// Every key, sorted.
    async fn list(&self) -> StorageResult<Vec<String>>;
    /// Deletes every row and returns them, sorted by key.
    async fn delete_all(&self) -> StorageResult<Vec<IndexRow>>;
}

/// Longest object name.
pub const OBJECT_NAME_CHARS_MAX: usize = 200;

/// Checks an object name: 1 to 200 characters of `[A-Za-z0-9._-]` in `/`-separated
/// segments, none empty, none `.` or `..`. Names are made by memring, never by
/// users, so this only guards against bugs.
pub fn validate_object_name(name: &str) -> StorageResult<()> {
    let bad = || Err(StorageError::BadName(name.to_owned()));
    if name.is_empty() || name.len() > OBJECT_NAME_CHARS_MAX {
        return bad();
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return bad();
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad();
        }
    }
    Ok(())
}

/// Behaviour every blob store must show; run against each implementation.
#[cfg(test)]
pub(crate) async fn conformance_blob(store: &dyn BlobStore) {
    assert_eq!(store.list().await.unwrap(), Vec::<String>::new());
    store
        .put("images/b/2", Bytes::from_static(b"two"))
        .await
        .unwrap();
    store
        .put("images/a/1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert!(matches!(
        store.put("images/a/1", Bytes::from_static(b"again")).await,
        Err(StorageError::AlreadyExists(_))
    ));
    assert_eq!(store.get("images/a/1").await.unwrap().unwrap(), "one");
    assert_eq!(store.get("images/none").await.unwrap(), None);
    assert_eq!(store.list().await.unwrap(), ["images/a/1", "images/b/2"]);
    store.delete("images/a/1").await.unwrap();
    store.delete("images/a/1").await.unwrap();
    assert_eq!(store.list().await.unwrap(), ["images/b/2"]);
    for bad in ["", "../x", "/abs", "a//b", "a/../b", "a b", "a/."] {
        assert!(
            matches!(
                store.put(bad, Bytes::new()).await,
                Err(StorageError::BadName(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(store.get(bad).await, Err(StorageError::BadName(_))),
            "{bad:?}"
        );
    }
}

/// Behaviour every key index must show; run against each implementation.
#[cfg(test)]
pub(crate) async fn conformance_index(index: &dyn KeyIndex) {
    let first = index.upsert("k", "o1", "image/png").await.unwrap();
    assert_eq!(first.previous_object, None);
    let second = index.upsert("k", "o2", "image/gif").await.unwrap();
    assert!(second.version > first.version);
    assert_eq!(second.previous_object.as_deref(), Some("o1"));
    let row = index.get("k").await.unwrap().unwrap();
    assert_eq!(
        (row.object.as_str(), row.mime.as_str(), row.version),
        ("o2", "image/gif", second.version)
    );
    index.upsert("a", "o3", "image/png").await.unwrap();
    assert_eq!(index.list().await.unwrap(), ["a", "k"]);
    assert_eq!(index.get("missing").await.unwrap(), None);
    let deleted = index.delete_all().await.unwrap();
    assert_eq!(
        deleted
            .iter()
            .map(|r| (r.key.as_str(), r.object.as_str()))
            .collect::<Vec<_>>(),
        [("a", "o3"), ("k", "o2")]
    );
    assert_eq!(index.delete_all().await.unwrap(), Vec::<IndexRow>::new());
    assert_eq!(index.list().await.unwrap(), Vec::<String>::new());
    let third = index.upsert("k", "o4", "image/png").await.unwrap();
    assert!(
        third.version > second.version,
        "versions keep growing after delete_all"
    );
    assert_eq!(third.previous_object, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for good in ["a", "images/0a/ff00", "x.y_z-1"] {
            assert!(validate_object_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "a b",
            "é",
            &"a".repeat(201),
        ] {
            assert!(validate_object_name(bad).is_err(), "{bad:?}");
        }
    }
}
