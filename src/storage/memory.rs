//! In-memory blob store and key index: deterministic, for tests and the simulation.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    validate_object_name, BlobStore, IndexRow, KeyIndex, StorageError, StorageResult, Upserted,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Objects in a sorted map.
#[derive(Default)]
pub struct MemoryBlobStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, name: &str, bytes: Bytes) -> StorageResult<()> {
        validate_object_name(name)?;
        let mut objects = lock(&self.objects);
        if objects.contains_key(name) {
            return Err(StorageError::AlreadyExists(name.to_owned()));
        }
        objects.insert(name.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, name: &str) -> StorageResult<Option<Bytes>> {
        validate_object_name(name)?;
        Ok(lock(&self.objects).get(name).cloned())
    }

    async fn delete(&self, name: &str) -> StorageResult<()> {
        validate_object_name(name)?;
        lock(&self.objects).remove(name);
        Ok(())
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        Ok(lock(&self.objects).keys().cloned().collect())
    }
}

#[derive(Default)]
struct IndexState {
    rows: BTreeMap<String, IndexRow>,
    /// Last version handed out.
    last_version: u64,
}

/// Rows in a sorted map, with a version counter that only grows.
#[derive(Default)]
pub struct MemoryKeyIndex {
    state: Mutex<IndexState>,
}

#[async_trait]
impl KeyIndex for MemoryKeyIndex {
    async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted> {
        let mut state = lock(&self.state);
        state.last_version += 1;
        let version = state.last_version;
        let row = IndexRow {
            key: key.to_owned(),
            object: object.to_owned(),
            mime: mime.to_owned(),
            version,
        };
        let previous_object = state.rows.insert(key.to_owned(), row).map(|old| old.object);
        Ok(Upserted {
            version,
            previous_object,
        })
    }

    async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>> {
        Ok(lock(&self.state).rows.get(key).cloned())
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        Ok(lock(&self.state).rows.keys().cloned().collect())
    }

    async fn delete_all(&self) -> StorageResult<Vec<IndexRow>> {
        Ok(std::mem::take(&mut lock(&self.state).rows)
            .into_values()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_blob_store_conforms() {
        super::super::conformance_blob(&MemoryBlobStore::default()).await;
    }

    #[tokio::test]
    async fn memory_key_index_conforms() {
        super::super::conformance_index(&MemoryKeyIndex::default()).await;
    }
}
