//! Fake S3 and fake RDS: in-memory stores served as simulated hosts, and the
//! front-end's clients for them. Storage calls cross the simulated network, so
//! partitions and latency reach them like any other call.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Method;
use memring::net::client::HttpClient;
use memring::storage::memory::{MemoryBlobStore, MemoryKeyIndex};
use memring::storage::{BlobStore, IndexRow, KeyIndex, StorageError, StorageResult, Upserted};
use serde::{Deserialize, Serialize};

/// Port of the fake S3.
pub const S3_PORT: u16 = 9000;
/// Port of the fake RDS.
pub const RDS_PORT: u16 = 9001;
/// Timeout of a storage call from the front-end.
pub const STORAGE_TIMEOUT_MS: u64 = 2_000;

fn storage_error(error: StorageError) -> Response {
    let status = match error {
        StorageError::AlreadyExists(_) => StatusCode::CONFLICT,
        StorageError::BadName(_) => StatusCode::BAD_REQUEST,
        StorageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, error.to_string()).into_response()
}

/// The fake S3's router over a durable (host-restart-proof) store.
pub fn s3_router(store: Arc<MemoryBlobStore>) -> Router {
    Router::new()
        .route("/objects", get(list_objects))
        .route(
            "/objects/{*name}",
            get(get_object).put(put_object).delete(delete_object),
        )
        .with_state(store)
}

async fn list_objects(State(store): State<Arc<MemoryBlobStore>>) -> Response {
    match store.list().await {
        Ok(names) => Json(names).into_response(),
        Err(error) => storage_error(error),
    }
}

async fn get_object(
    State(store): State<Arc<MemoryBlobStore>>,
    Path(name): Path<String>,
) -> Response {
    match store.get(&name).await {
        Ok(Some(bytes)) => bytes.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => storage_error(error),
    }
}

async fn put_object(
    State(store): State<Arc<MemoryBlobStore>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match store.put(&name, body).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(error) => storage_error(error),
    }
}

async fn delete_object(
    State(store): State<Arc<MemoryBlobStore>>,
    Path(name): Path<String>,
) -> Response {
    match store.delete(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => storage_error(error),
    }
}

#[derive(Serialize, Deserialize)]
struct UpsertRequest {
    key: String,
    object: String,
    mime: String,
}

#[derive(Serialize, Deserialize)]
struct UpsertReply {
    version: u64,
    previous_object: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct KeyRequest {
    key: String,
}

/// The fake RDS's router over a durable index.
pub fn rds_router(index: Arc<MemoryKeyIndex>) -> Router {
    Router::new()
        .route("/upsert", post(upsert))
        .route("/get", post(get_row))
        .route("/keys", get(list_keys))
        .route("/delete_all", post(delete_all))
        .with_state(index)
}

async fn upsert(
    State(index): State<Arc<MemoryKeyIndex>>,
    Json(request): Json<UpsertRequest>,
) -> Response {
    match index
        .upsert(&request.key, &request.object, &request.mime)
        .await
    {
        Ok(done) => Json(UpsertReply {
            version: done.version,
            previous_object: done.previous_object,
        })
        .into_response(),
        Err(error) => storage_error(error),
    }
}

async fn get_row(
    State(index): State<Arc<MemoryKeyIndex>>,
    Json(request): Json<KeyRequest>,
) -> Response {
    match index.get(&request.key).await {
        Ok(row) => Json(row).into_response(),
        Err(error) => storage_error(error),
    }
}

async fn list_keys(State(index): State<Arc<MemoryKeyIndex>>) -> Response {
    match index.list().await {
        Ok(keys) => Json(keys).into_response(),
        Err(error) => storage_error(error),
    }
}

async fn delete_all(State(index): State<Arc<MemoryKeyIndex>>) -> Response {
    match index.delete_all().await {
        Ok(rows) => Json(rows).into_response(),
        Err(error) => storage_error(error),
    }
}

fn unavailable(error: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

async fn call(
    client: &HttpClient,
    method: Method,
    addr: &str,
    path: &str,
    body: Bytes,
) -> StorageResult<memring::net::client::Reply> {
    let headers = [(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    )];
    client
        .send_with_timeout(method, addr, path, &headers, body, STORAGE_TIMEOUT_MS)
        .await
        .map_err(unavailable)
}

/// The front-end's client of the fake S3.
pub struct RemoteBlobStore {
    pub client: HttpClient,
    pub addr: String,
}

#[async_trait]
impl BlobStore for RemoteBlobStore {
    async fn put(&self, name: &str, bytes: Bytes) -> StorageResult<()> {
        let reply = call(
            &self.client,
            Method::PUT,
            &self.addr,
            &format!("/objects/{name}"),
            bytes,
        )
        .await?;
        match reply.status {
            StatusCode::CREATED => Ok(()),
            StatusCode::CONFLICT => Err(StorageError::AlreadyExists(name.to_owned())),
            StatusCode::BAD_REQUEST => Err(StorageError::BadName(name.to_owned())),
            status => Err(unavailable(format!("s3 answered {status}"))),
        }
    }

    async fn get(&self, name: &str) -> StorageResult<Option<Bytes>> {
        let reply = call(
            &self.client,
            Method::GET,
            &self.addr,
            &format!("/objects/{name}"),
            Bytes::new(),
        )
        .await?;
        match reply.status {
            StatusCode::OK => Ok(Some(reply.body)),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(unavailable(format!("s3 answered {status}"))),
        }
    }

    async fn delete(&self, name: &str) -> StorageResult<()> {
        let reply = call(
            &self.client,
            Method::DELETE,
            &self.addr,
            &format!("/objects/{name}"),
            Bytes::new(),
        )
        .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(unavailable(format!("s3 answered {}", reply.status)))
        }
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        let reply = call(
            &self.client,
            Method::GET,
            &self.addr,
            "/objects",
            Bytes::new(),
        )
        .await?;
        reply
            .json()
            .ok_or_else(|| unavailable(format!("s3 answered {}", reply.status)))
    }
}

/// The front-end's client of the fake RDS.
pub struct RemoteKeyIndex {
    pub client: HttpClient,
    pub addr: String,
}

fn json_body<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("requests serialize"))
}

#[async_trait]
impl KeyIndex for RemoteKeyIndex {
    async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted> {
        let body = json_body(&UpsertRequest {
            key: key.to_owned(),
            object: object.to_owned(),
            mime: mime.to_owned(),
        });
        let reply = call(&self.client, Method::POST, &self.addr, "/upsert", body).await?;
        let done: UpsertReply = reply
            .json()
            .ok_or_else(|| unavailable(format!("rds answered {}", reply.status)))?;
        Ok(Upserted {
            version: done.version,
            previous_object: done.previous_object,
        })
    }

    async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>> {
        let body = json_body(&KeyRequest {
            key: key.to_owned(),
        });
        let reply = call(&self.client, Method::POST, &self.addr, "/get", body).await?;
        if !reply.status.is_success() {
            return Err(unavailable(format!("rds answered {}", reply.status)));
        }
        serde_json::from_slice(&reply.body).map_err(unavailable)
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        let reply = call(&self.client, Method::GET, &self.addr, "/keys", Bytes::new()).await?;
        reply
            .json()
            .ok_or_else(|| unavailable(format!("rds answered {}", reply.status)))
    }

    async fn delete_all(&self) -> StorageResult<Vec<IndexRow>> {
        let reply = call(
            &self.client,
            Method::POST,
            &self.addr,
            "/delete_all",
            Bytes::new(),
        )
        .await?;
        reply
            .json()
            .ok_or_else(|| unavailable(format!("rds answered {}", reply.status)))
    }
}
