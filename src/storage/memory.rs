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
    use crate::storage::contract;

    #[tokio::test]
    async fn memory_blob_store_keeps_the_contract() {
        contract::blob_store(&MemoryBlobStore::default()).await;
    }

    #[tokio::test]
    async fn memory_key_index_keeps_the_contract() {
        contract::key_index(&MemoryKeyIndex::default()).await;
    }

    #[tokio::test]
    async fn memory_stores_keep_the_whole_contract_one_check_after_another() {
        let (store, index) = (MemoryBlobStore::default(), MemoryKeyIndex::default());
        contract::all(&store, &index).await;
        // The checks leave the stores empty, so they can run again.
        contract::all(&store, &index).await;
    }

    #[tokio::test]
    #[should_panic(expected = "a re-upsert of the same row must name that same object")]
    async fn the_contract_catches_an_index_that_forgets_a_retried_row() {
        /// Answers a re-upsert of the same object as if the key were new.
        struct Forgetful(MemoryKeyIndex);
        #[async_trait]
        impl KeyIndex for Forgetful {
            async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted> {
                let mut done = self.0.upsert(key, object, mime).await?;
                if done.previous_object.as_deref() == Some(object) {
                    done.previous_object = None;
                }
                Ok(done)
            }
            async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>> {
                self.0.get(key).await
            }
            async fn list(&self) -> StorageResult<Vec<String>> {
                self.0.list().await
            }
            async fn delete_all(&self) -> StorageResult<Vec<IndexRow>> {
                self.0.delete_all().await
            }
        }
        contract::key_index(&Forgetful(MemoryKeyIndex::default())).await;
    }

    #[tokio::test]
    #[should_panic(expected = "versions must keep growing after delete_all")]
    async fn the_contract_catches_an_index_that_resets_versions_on_delete_all() {
        /// Restarts its version counter on delete_all.
        #[derive(Default)]
        struct Resetting(Mutex<std::sync::Arc<MemoryKeyIndex>>);
        impl Resetting {
            fn current(&self) -> std::sync::Arc<MemoryKeyIndex> {
                lock(&self.0).clone()
            }
        }
        #[async_trait]
        impl KeyIndex for Resetting {
            async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted> {
                self.current().upsert(key, object, mime).await
            }
            async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>> {
                self.current().get(key).await
            }
            async fn list(&self) -> StorageResult<Vec<String>> {
                self.current().list().await
            }
            async fn delete_all(&self) -> StorageResult<Vec<IndexRow>> {
                let old = std::mem::take(&mut *lock(&self.0));
                old.delete_all().await
            }
        }
        contract::key_index(&Resetting::default()).await;
    }

    #[tokio::test]
    #[should_panic(expected = "a refused put must leave the first bytes")]
    async fn the_contract_catches_a_store_that_overwrites_on_a_refused_put() {
        /// Refuses a taken name but writes the new bytes anyway.
        #[derive(Default)]
        struct Overwriting(Mutex<BTreeMap<String, Bytes>>);
        #[async_trait]
        impl BlobStore for Overwriting {
            async fn put(&self, name: &str, bytes: Bytes) -> StorageResult<()> {
                validate_object_name(name)?;
                match lock(&self.0).insert(name.to_owned(), bytes) {
                    Some(_) => Err(StorageError::AlreadyExists(name.to_owned())),
                    None => Ok(()),
                }
            }
            async fn get(&self, name: &str) -> StorageResult<Option<Bytes>> {
                validate_object_name(name)?;
                Ok(lock(&self.0).get(name).cloned())
            }
            async fn delete(&self, name: &str) -> StorageResult<()> {
                validate_object_name(name)?;
                lock(&self.0).remove(name);
                Ok(())
            }
            async fn list(&self) -> StorageResult<Vec<String>> {
                Ok(lock(&self.0).keys().cloned().collect())
            }
        }
        contract::blob_store(&Overwriting::default()).await;
    }
}
