//! The cache node's HTTP API: items, clears, configuration, counters, keys and
//! the documented move order.

use super::hand_over::{callback_manager, hand_over, parse_fences};
use super::NodeState;
use crate::wire::envelope::Content;
use crate::wire::frontend::KeyList;
use crate::wire::item::{fence_refusal_headers, marks_of, ItemMeta, PutMarks};
use crate::wire::node::{CacheConfig, Cleared, Invalidated, Stats};
use crate::wire::{fence, paths};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::api::{self, ApiError, JsonBody, PathParam, RawBody};
use crate::auth::Access;
use crate::balance::MoveKeysPayload;
use crate::cache::store::{Entry, PutError, PutOutcome, MB};

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
            let meta = ItemMeta {
                mime: entry.mime,
                version: entry.version,
            };
            let mut response = (StatusCode::OK, entry.bytes).into_response();
            for (name, value) in meta.to_headers(PutMarks::default()) {
                response.headers_mut().insert(name, value);
            }
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn put_item(
    State(state): State<Arc<NodeState>>,
    PathParam(key): PathParam<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let ItemMeta { mime, version } =
        ItemMeta::from_headers(&headers).map_err(ApiError::bad_request)?;
    let entry = Entry {
        bytes: body,
        mime,
        version,
    };
    let marks = marks_of(&headers);
    let moved = marks.moved;
    let fence = marks.fence.and_then(|v| v.parse::<fence::Fence>().ok());
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
        // Refused only for forgotten floors, the answer names the current token:
        // nothing stale got in, and the sender may take the new token at once.
        for (name, value) in fence_refusal_headers(refusal, &current) {
            response.headers_mut().insert(name, value);
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
    api::ok_with(Invalidated { removed })
}

async fn clear(State(state): State<Arc<NodeState>>) -> Response {
    let fence = {
        let mut store = state.store();
        store.clear();
        state.clears.fetch_add(1, Ordering::Relaxed);
        state.fence_token(&store)
    };
    api::ok_with(Cleared { fence })
}

async fn get_config(State(state): State<Arc<NodeState>>) -> Response {
    let store = state.store();
    let config = CacheConfig {
        capacity: store.capacity_bytes() as f64 / MB as f64,
        policy: store.policy(),
    };
    api::ok_with(Content { content: config })
}

async fn set_config(
    State(state): State<Arc<NodeState>>,
    JsonBody(config): JsonBody<CacheConfig>,
) -> Result<Response, ApiError> {
    config.validate().map_err(ApiError::bad_request)?;
    let mut store = state.store();
    store.set_policy(config.policy);
    store.set_capacity(config.capacity_bytes());
    Ok(api::ok())
}

async fn stats(State(state): State<Arc<NodeState>>) -> Response {
    let counters = state.counters();
    api::ok_with(Stats {
        content: counters,
        hit_rate: counters.hit_rate(),
        miss_rate: counters.miss_rate(),
    })
}

async fn keys(State(state): State<Arc<NodeState>>) -> Response {
    api::ok_with(KeyList { keys: state.keys() })
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
    Ok(api::ok_with(Content { content: report }))
}
