//! The key index in SQLite, through sqlx, with embedded migrations.
//!
//! WAL journal with `synchronous = FULL`: an upsert is on disk when it returns.

use std::path::Path;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tokio::time::Duration;

use super::{IndexRow, KeyIndex, StorageError, StorageResult, Upserted};

/// Connections in the pool (SQLite has one writer; readers share).
const CONNECTIONS_MAX: u32 = 4;
/// How long a writer waits for the lock.
const BUSY_TIMEOUT_MS: u64 = 5_000;

fn unavailable(error: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

/// A key index in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteKeyIndex {
    pool: SqlitePool,
}

impl SqliteKeyIndex {
    /// Opens (and creates, and migrates) the index at `path`.
    pub async fn open(path: &Path) -> StorageResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(CONNECTIONS_MAX)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(unavailable)?;
        Ok(SqliteKeyIndex { pool })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn row_of(row: &sqlx::sqlite::SqliteRow) -> StorageResult<IndexRow> {
    let version: i64 = row.try_get("version").map_err(unavailable)?;
    Ok(IndexRow {
        key: row.try_get("key").map_err(unavailable)?,
        object: row.try_get("object").map_err(unavailable)?,
        mime: row.try_get("mime").map_err(unavailable)?,
        version: u64::try_from(version).map_err(unavailable)?,
    })
}

#[async_trait]
impl KeyIndex for SqliteKeyIndex {
    async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // A write first, so the transaction holds the write lock from here on.
        let version: i64 = sqlx::query_scalar(
            "UPDATE counter SET next_version = next_version + 1 WHERE id = 0 RETURNING next_version - 1",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let previous_object: Option<String> =
            sqlx::query_scalar("SELECT object FROM key_image WHERE key = ?")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO key_image (key, object, mime, version) VALUES (?, ?, ?, ?)
             ON CONFLICT(key) DO UPDATE SET object = excluded.object, mime = excluded.mime, version = excluded.version",
        )
        .bind(key)
        .bind(object)
        .bind(mime)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Upserted {
            version: u64::try_from(version).map_err(unavailable)?,
            previous_object,
        })
    }

    async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>> {
        let row = sqlx::query("SELECT key, object, mime, version FROM key_image WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(row_of).transpose()
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        sqlx::query_scalar("SELECT key FROM key_image ORDER BY key")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn delete_all(&self) -> StorageResult<Vec<IndexRow>> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("UPDATE counter SET next_version = next_version WHERE id = 0")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let rows = sqlx::query("SELECT key, object, mime, version FROM key_image ORDER BY key")
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("DELETE FROM key_image")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        rows.iter().map(row_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::contract;
    use crate::storage::local::LocalBlobStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn sqlite_key_index_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteKeyIndex::open(&dir.path().join("index.sqlite"))
            .await
            .unwrap();
        contract::key_index(&index).await;
        index.close().await;
    }

    #[tokio::test]
    async fn the_production_pair_keeps_the_whole_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
        let index = SqliteKeyIndex::open(&dir.path().join("index.sqlite"))
            .await
            .unwrap();
        contract::all(&store, &index).await;
        index.close().await;
        // Versions keep growing across a reopen after the checks emptied the index.
        let index = SqliteKeyIndex::open(&dir.path().join("index.sqlite"))
            .await
            .unwrap();
        contract::all(&store, &index).await;
        index.close().await;
    }

    #[tokio::test]
    async fn rows_and_versions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let index = SqliteKeyIndex::open(&path).await.unwrap();
        let before = index.upsert("k", "o1", "image/png").await.unwrap();
        index.close().await;
        let index = SqliteKeyIndex::open(&path).await.unwrap();
        let row = index.get("k").await.unwrap().unwrap();
        assert_eq!((row.object.as_str(), row.version), ("o1", before.version));
        let after = index.upsert("k", "o2", "image/png").await.unwrap();
        assert!(after.version > before.version);
        index.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_upserts_get_distinct_versions() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(
            SqliteKeyIndex::open(&dir.path().join("index.sqlite"))
                .await
                .unwrap(),
        );
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let index = index.clone();
                tokio::spawn(async move {
                    index
                        .upsert("k", &format!("o{i}"), "image/png")
                        .await
                        .unwrap()
                        .version
                })
            })
            .collect();
        let mut versions = Vec::new();
        for task in tasks {
            versions.push(task.await.unwrap());
        }
        versions.sort();
        versions.dedup();
        assert_eq!(versions.len(), 20);
        let row = index.get("k").await.unwrap().unwrap();
        assert_eq!(row.version, *versions.last().unwrap());
        index.close().await;
    }
}
