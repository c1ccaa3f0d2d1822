//! The cache node service: a thin HTTP shell around the pure [`CacheStore`].
//!
//! Items travel as raw bytes with their version and mime type in headers (see
//! [`protocol`]). `move_keys` keeps the documented JSON shape.

use crate::wire::{fence, headers, paths};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{self, ApiError, JsonBody, PathParam, RawBody};
use crate::auth::{Access, Secrets};
use crate::balance::MoveKeysPayload;
use crate::cache::store::{CacheStore, Entry, Policy, PutError, PutOutcome, MB};
use crate::limits;
use crate::net::client::HttpClient;
use crate::ring::NodeId;
use crate::stats::NodeCounters;

/// Keys sent at once while moving.
const MOVES_IN_FLIGHT_MAX: usize = 8;

/// A node's cache configuration, as the documented API carries it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Capacity in MB (fractions allowed).
    pub capacity: f64,
    pub policy: Policy,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 64.0,
            policy: Policy::Lru,
        }
    }
}

impl CacheConfig {
    pub fn validate(&self) -> Result<(), ApiError> {
        if !self.capacity.is_finite() || self.capacity < limits::CAPACITY_MB_MIN {
            return Err(ApiError::bad_request(format!(
                "capacity must be a number of MB of at least {} (1 KB): a cache of 0 would drop everything",
                limits::CAPACITY_MB_MIN
            )));
        }
        if self.capacity > limits::CAPACITY_MB_MAX as f64 {
            return Err(ApiError::bad_request(format!(
                "capacity must be at most {} MB",
                limits::CAPACITY_MB_MAX
            )));
        }
        Ok(())
    }

    pub fn capacity_bytes(&self) -> u64 {
        (self.capacity * MB as f64).round() as u64
    }
}

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// This node's id as the pool knows it.
    pub node_id: NodeId,
    /// Port of the other nodes, for ids without their own port.
    pub node_port: u16,
    /// The manager's host, for the move callback.
    pub manager_host: Option<String>,
    /// The manager's port. When set, the callback goes there whatever port a
    /// move order names: a node calls back only the manager it was given.
    pub manager_port: Option<u16>,
    /// The node slots of the cluster, as the manager is given them. When set, a
    /// move order that names any other destination is refused: keys go only to
    /// nodes of this cluster.
    pub peers: Option<Vec<NodeId>>,
    pub cache: CacheConfig,
    /// Seed of the random replacement policy.
    pub rng_seed: u64,
    /// Largest item body accepted.
    pub body_max_bytes: usize,
    /// Most version floors the store keeps (see [`CacheStore`]).
    pub floors_max: usize,
    /// This life of the node, part of its fence token; a restarted node must
    /// draw a new one (production seeds it from the operating system).
    pub incarnation: u64,
    /// The cluster token it requires and sends (see [`crate::auth`]).
    pub secrets: Secrets,
    /// Limits of its server.
    pub server: crate::net::server::ServerSettings,
}

/// Counters a node keeps (cumulative since start).
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    gets: AtomicU64,
    hits: AtomicU64,
}

/// A cache node's shared state.
pub struct NodeState {
    settings: NodeSettings,
    store: Mutex<CacheStore>,
    counters: Counters,
    client: HttpClient,
    /// Clears so far; read and changed only under the store lock.
    clears: AtomicU64,
}

impl NodeState {
    pub fn new(settings: NodeSettings, client: HttpClient) -> Arc<Self> {
        let mut store = CacheStore::new(
            settings.cache.capacity_bytes(),
            settings.cache.policy,
            settings.rng_seed,
        );
        store.set_floors_max(settings.floors_max);
        store.set_legacy_floors(crate::planted!(EvictDropsFloor));
        Arc::new(NodeState {
            settings,
            store: Mutex::new(store),
            counters: Counters::default(),
            client,
            clears: AtomicU64::new(0),
        })
    }

    /// The current fence token: this life, the clears so far and the floors the
    /// store forgot so far. Call with the store lock held so it cannot change under
    /// the caller.
    fn fence_token(&self, store: &CacheStore) -> String {
        fence::Fence {
            incarnation: self.settings.incarnation,
            clears: self.clears.load(Ordering::Relaxed),
            floors_forgotten: store.floors_forgotten(),
        }
        .to_string()
    }

    fn store(&self) -> MutexGuard<'_, CacheStore> {
        // A panic while holding the lock cannot leave the store half-updated in a
        // way that matters more than losing the node; keep serving.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The node's counters now.
    pub fn counters(&self) -> NodeCounters {
        let store = self.store();
        NodeCounters {
            items: store.len() as u64,
            used_bytes: store.used_bytes(),
            requests: self.counters.requests.load(Ordering::Relaxed),
            gets: self.counters.gets.load(Ordering::Relaxed),
            hits: self.counters.hits.load(Ordering::Relaxed),
        }
    }

    /// Keys held, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.store().keys_sorted()
    }

    pub fn node_id(&self) -> &NodeId {
        &self.settings.node_id
    }
}

/// The node's router.
pub fn router(state: Arc<NodeState>) -> Router {
    let body_max_bytes = state.settings.body_max_bytes;
    Router::new()
        .route(
            paths::ITEM_ROUTE,
            get(get_item).put(put_item).delete(invalidate_item),
        )
        .route(paths::NODE_CLEAR, axum::routing::delete(clear).post(clear))
        .route(
            paths::NODE_CONFIG,
            get(get_config).post(set_config).put(set_config),
        )
        .route(paths::NODE_STATS, get(stats))
        .route(paths::NODE_KEYS, get(keys))
        .route(paths::MOVE_KEYS, post(move_keys))
        // Every call but the health check is internal to the cluster.
        .route_layer(crate::auth::layer(&state.settings.secrets, Access::Cluster))
        .route(paths::HEALTHZ, get(|| async { "ok" }))
        .fallback(api::not_found_fallback)
        .method_not_allowed_fallback(|| async { api::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_max_bytes))
        .layer(middleware::from_fn(move |request, next| {
            api::refuse_announced_oversize(body_max_bytes, request, next)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

async fn count_request(
    State(state): State<Arc<NodeState>>,
    request: Request,
    next: Next,
) -> Response {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

async fn get_item(
    State(state): State<Arc<NodeState>>,
    PathParam(key): PathParam<String>,
) -> Response {
    state.counters.gets.fetch_add(1, Ordering::Relaxed);
    let hit = state.store().get(&key).cloned();
    match hit {
        Some(entry) => {
            state.counters.hits.fetch_add(1, Ordering::Relaxed);
            let mime = HeaderValue::from_str(&entry.mime)
                .unwrap_or(HeaderValue::from_static(crate::mime::OCTET_STREAM));
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, mime),
                    (
                        header::HeaderName::from_static(headers::VERSION),
                        HeaderValue::from(entry.version),
                    ),
                ],
                entry.bytes,
            )
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn version_of(headers: &HeaderMap) -> Result<u64, ApiError> {
    headers
        .get(headers::VERSION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "header {} must be a version number",
                headers::VERSION
            ))
        })
}

async fn put_item(
    State(state): State<Arc<NodeState>>,
    PathParam(key): PathParam<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let version = version_of(&headers)?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::mime::OCTET_STREAM)
        .to_owned();
    let entry = Entry {
        bytes: body,
        mime,
        version,
    };
    let moved = headers.contains_key(headers::MOVED);
    let fence = headers
        .get(headers::FENCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<fence::Fence>().ok());
    let mut store = state.store();
    let current = state.fence_token(&store);
    let refusal = match fence {
        // A put with no fence cannot prove it is not older than a clear.
        None => Some(fence::FenceRefusal::Reset),
        Some(fence) => fence.refusal(&current.parse().expect("own token parses")),
    };
    if let Some(refusal) = refusal {
        drop(store);
        let mut response = ApiError::new(StatusCode::CONFLICT, "stale fence token").into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::HeaderName::from_static(headers::FENCE_MISMATCH),
            HeaderValue::from_static(refusal.as_str()),
        );
        if refusal == fence::FenceRefusal::FloorsForgotten {
            // Nothing stale got in: the sender may take the new token at once.
            if let Ok(value) = HeaderValue::from_str(&current) {
                headers.insert(
                    header::HeaderName::from_static(headers::FENCE_CURRENT),
                    value,
                );
            }
        }
        return Ok(response);
    }
    if moved && crate::planted!(StaleMove) {
        // Planted bug: a moved value replaces whatever is here, newer or not.
        store.remove(&key);
        store.forget_floor(&key);
    }
    let outcome = store.put(&key, entry);
    drop(store);
    match outcome {
        Ok(PutOutcome::Stored) => Ok(StatusCode::CREATED.into_response()),
        Ok(PutOutcome::Replaced) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(PutOutcome::StaleRefused) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "a newer version of this key is known",
        )),
        Err(error @ PutError::TooLarge { .. }) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            error.to_string(),
        )),
    }
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<u64>,
}

async fn invalidate_item(
    State(state): State<Arc<NodeState>>,
    PathParam(key): PathParam<String>,
    Query(query): Query<VersionQuery>,
) -> Response {
    let removed = match query.version {
        Some(version) => state.store().invalidate(&key, version),
        None => state.store().remove(&key).is_some(),
    };
    api::ok_with(json!({ "removed": removed }))
}

async fn clear(State(state): State<Arc<NodeState>>) -> Response {
    let fence = {
        let mut store = state.store();
        store.clear();
        state.clears.fetch_add(1, Ordering::Relaxed);
        state.fence_token(&store)
    };
    api::ok_with(json!({ "fence": fence }))
}

async fn get_config(State(state): State<Arc<NodeState>>) -> Response {
    let store = state.store();
    let config = CacheConfig {
        capacity: store.capacity_bytes() as f64 / MB as f64,
        policy: store.policy(),
    };
    api::ok_with(json!({ "content": config }))
}

async fn set_config(
    State(state): State<Arc<NodeState>>,
    JsonBody(config): JsonBody<CacheConfig>,
) -> Result<Response, ApiError> {
    config.validate()?;
    let mut store = state.store();
    store.set_policy(config.policy);
    store.set_capacity(config.capacity_bytes());
    Ok(api::ok())
}

async fn stats(State(state): State<Arc<NodeState>>) -> Response {
    let counters = state.counters();
    api::ok_with(json!({
        "content": counters,
        "hit_rate": counters.hit_rate(),
        "miss_rate": counters.miss_rate(),
    }))
}

async fn keys(State(state): State<Arc<NodeState>>) -> Response {
    api::ok_with(json!({ "keys": state.keys() }))
}

/// What became of the keys of one move order.
#[derive(Debug, Default, Serialize)]
struct MoveReport {
    moved: usize,
    missing: usize,
    failed: usize,
}

async fn move_keys(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    JsonBody(payload): JsonBody<MoveKeysPayload>,
) -> Result<Response, ApiError> {
    let fences = parse_fences(&headers);
    if payload.port != crate::balance::STAYING_PORT && !(1..=65535).contains(&payload.port) {
        return Err(ApiError::bad_request("port must be -1 or a TCP port"));
    }
    if let Some(peers) = &state.settings.peers {
        if let Some((stranger, _)) = payload
            .dest
            .0
            .iter()
            .find(|(node, _)| !peers.contains(node))
        {
            return Err(ApiError::bad_request(format!(
                "destination {} is not a node of this cluster",
                crate::error::echo(stranger.as_str())
            )));
        }
    }
    let report = hand_over(&state, &payload, &fences).await;
    tracing::info!(
        node = %state.settings.node_id,
        moved = report.moved,
        missing = report.missing,
        failed = report.failed,
        "move_keys done"
    );
    if payload.port != crate::balance::STAYING_PORT {
        callback_manager(&state, payload.port as u16).await;
    }
    Ok(api::ok_with(json!({ "content": report })))
}

/// Sends every listed key this node holds to its destination, dropping it locally
/// once the destination has it (or has something newer).
async fn hand_over(
    state: &Arc<NodeState>,
    payload: &MoveKeysPayload,
    fences: &[(String, String)],
) -> MoveReport {
    let work: Vec<(String, String, Option<String>)> = payload
        .dest
        .iter_keys()
        .map(|(dest, key)| {
            let fence = fences
                .iter()
                .find(|(node, _)| node == dest.as_str())
                .map(|(_, token)| token.clone());
            (
                dest.address(state.settings.node_port),
                key.to_owned(),
                fence,
            )
        })
        .collect();
    let outcomes: Vec<Option<bool>> = stream::iter(work)
        .map(|(addr, key, fence)| {
            let state = state.clone();
            async move {
                let entry = state.store().peek(&key).cloned()?;
                crate::buggify!("node.move.after_read");
                let headers = [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_str(&entry.mime)
                            .unwrap_or(HeaderValue::from_static(crate::mime::OCTET_STREAM)),
                    ),
                    (
                        header::HeaderName::from_static(headers::VERSION),
                        HeaderValue::from(entry.version),
                    ),
                    (
                        header::HeaderName::from_static(headers::MOVED),
                        HeaderValue::from_static("1"),
                    ),
                ];
                let fence_header = fence.and_then(|token| HeaderValue::from_str(&token).ok()).map(|token| {
                    (header::HeaderName::from_static(headers::FENCE), token)
                });
                let headers: Vec<(header::HeaderName, HeaderValue)> =
                    headers.into_iter().chain(fence_header).collect();
                let sent = state
                    .client
                    .send(Method::PUT, &addr, &paths::item_path(&key), &headers, entry.bytes.clone())
                    .await;
                let delivered = matches!(&sent, Ok(reply) if reply.status.is_success() || reply.status == StatusCode::CONFLICT);
                if delivered {
                    // Drop the local copy unless it changed meanwhile.
                    let mut store = state.store();
                    if store.peek(&key).map(|e| e.version) == Some(entry.version) {
                        store.remove(&key);
                    }
                } else {
                    tracing::warn!(%key, %addr, outcome = ?sent.map(|r| r.status), "move of key failed");
                }
                Some(delivered)
            }
        })
        .buffered(MOVES_IN_FLIGHT_MAX)
        .collect()
        .await;
    let mut report = MoveReport::default();
    for outcome in outcomes {
        match outcome {
            None => report.missing += 1,
            Some(true) => report.moved += 1,
            Some(false) => report.failed += 1,
        }
    }
    report
}

/// The destinations' fence tokens sent with a move order.
fn parse_fences(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get(headers::FENCES)
        .and_then(|v| v.to_str().ok())
        .map(crate::wire::fence::decode_fences)
        .unwrap_or_default()
}

async fn callback_manager(state: &Arc<NodeState>, ordered_port: u16) {
    let Some(host) = &state.settings.manager_host else {
        tracing::warn!("move order asks for a manager callback but no manager is configured");
        return;
    };
    let port = match state.settings.manager_port {
        Some(port) if port != ordered_port => {
            tracing::warn!(
                ordered_port,
                port,
                "the move order names another manager port; calling back the configured one"
            );
            port
        }
        Some(port) => port,
        None => ordered_port,
    };
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let body = json!({ "node": state.settings.node_id });
    if let Err(error) = state
        .client
        .send_json(Method::POST, &addr, paths::MOVE_DONE, &body)
        .await
    {
        tracing::warn!(%error, "manager callback failed");
    }
}
