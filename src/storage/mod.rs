//! Storage: the blob store (images) and the key index (key -> object, mime type,
//! version), as traits with real and in-memory implementations.

pub mod contract;
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
