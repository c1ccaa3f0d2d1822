//! The manager's HTTP API, all under `/api/manager/`, in the documented envelopes.

use crate::wire::change::Change;
use crate::wire::paths;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ManagerState, Mode};
use crate::api::{self, ApiError, JsonBody};
use crate::auth::Access;
use crate::autoscale::AutoParams;
use crate::node::CacheConfig;
use crate::ring::NodeId;

pub fn router(state: Arc<ManagerState>) -> Router {
    let gate = |access| crate::auth::layer(&state.settings.secrets, access);
    // Reading is open; changing anything takes the admin token, and the
    // hand-over callback the cluster token.
    Router::new()
        .route(
            paths::POOL_NODE_LIST,
            post(set_pool_node_list)
                .route_layer(gate(Access::Admin))
                .merge(get(pool_node_list)),
        )
        .route(paths::POOLSIZE, get(poolsize))
        .route(paths::POOLSIZE_CONFIG, get(poolsize_config))
        .route(
            paths::POOLSIZE_MANUAL,
            post(manual).route_layer(gate(Access::Admin)),
        )
        .route(
            paths::POOLSIZE_AUTOMATIC,
            post(automatic).route_layer(gate(Access::Admin)),
        )
        .route(
            paths::MANAGER_CACHE_CONFIG,
            post(set_cache_config)
                .route_layer(gate(Access::Admin))
                .merge(get(get_cache_config)),
        )
        .route(paths::AGGREGATE_STATS, get(aggregate_stats))
        .route(
            paths::MANAGER_CACHE_CLEAR,
            delete(clear_cache).route_layer(gate(Access::Admin)),
        )
        .route(
            paths::MANAGER_DATA_CLEAR,
            delete(clear_data).route_layer(gate(Access::Admin)),
        )
        .route(
            paths::MOVE_DONE,
            post(move_done).route_layer(gate(Access::Cluster)),
        )
        .route(paths::HEALTHZ, get(|| async { "ok" }))
        .fallback(api::not_found_fallback)
        .method_not_allowed_fallback(|| async { api::method_not_allowed() })
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::limits::MANAGER_BODY_MAX_BYTES,
        ))
        .layer(axum::middleware::from_fn(|request, next| {
            api::refuse_announced_oversize(crate::limits::MANAGER_BODY_MAX_BYTES, request, next)
        }))
        .with_state(state)
}

async fn pool_node_list(State(state): State<Arc<ManagerState>>) -> Response {
    let pool = state.pool();
    let ids: Vec<usize> = pool
        .iter()
        .map(|node| {
            state
                .settings
                .slots
                .iter()
                .position(|slot| slot == node)
                .map_or(0, |i| i + 1)
        })
        .collect();
    let (epoch, assignment) = state.assignment();
    let ejected = state.inner().ejected.clone();
    api::ok_with(json!({ "content": {
        "node_id_list": ids,
        "node_ip_list": pool,
        "ejected_ip_list": ejected,
        "epoch": epoch,
        "assignment": assignment,
    } }))
}

#[derive(Deserialize)]
struct PoolNodeList {
    node_ip_list: Vec<String>,
}

/// Sets the pool to exactly the nodes listed (slots of this manager), by hand.
async fn set_pool_node_list(
    State(state): State<Arc<ManagerState>>,
    JsonBody(body): JsonBody<PoolNodeList>,
) -> Result<Response, ApiError> {
    let members = api::parse_members(&body.node_ip_list)?;
    let pool = state.set_pool(&members).await?;
    let wanted = pool.len() + state.inner().ejected.len();
    Ok(api::ok_with(json!({
        "content": { "size": pool.len(), "node_ip_list": pool, "wanted": wanted },
    })))
}

async fn poolsize(State(state): State<Arc<ManagerState>>) -> Response {
    api::ok_with(json!({ "content": { "size": state.pool().len() } }))
}

fn config_content(state: &ManagerState) -> Value {
    let inner = state.inner();
    let option = inner.mode.as_str();
    json!({
        "resize_pool_option": option,
        "resize_pool_parameters": {
            "max_miss_rate_threshold": inner.params.max_miss_rate_threshold,
            "min_miss_rate_threshold": inner.params.min_miss_rate_threshold,
            "ratio_expand_pool": inner.params.expand_ratio,
            "ratio_shrink_pool": inner.params.shrink_ratio,
            "auto_mode": inner.mode == Mode::Automatic,
        },
    })
}

async fn poolsize_config(State(state): State<Arc<ManagerState>>) -> Response {
    api::ok_with(json!({ "content": config_content(&state) }))
}

#[derive(Deserialize)]
struct Manual {
    change: String,
}

async fn manual(
    State(state): State<Arc<ManagerState>>,
    JsonBody(body): JsonBody<Manual>,
) -> Result<Response, ApiError> {
    let change: Change = body.change.parse().map_err(ApiError::bad_request)?;
    let grow = change == Change::Increase;
    let pool = state.resize_by_one(grow).await?;
    // Nodes ejected for failing health checks rejoin when they answer again: the
    // size asked for counts them.
    let wanted = pool.len() + state.inner().ejected.len();
    Ok(api::ok_with(json!({
        "content": { "size": pool.len(), "node_ip_list": pool, "wanted": wanted },
    })))
}

async fn automatic(
    State(state): State<Arc<ManagerState>>,
    JsonBody(params): JsonBody<AutoParams>,
) -> Result<Response, ApiError> {
    params
        .validate()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    {
        let mut inner = state.inner();
        inner.params = params;
        inner.mode = Mode::Automatic;
    }
    state.persist().await;
    Ok(api::ok_with(json!({ "content": config_content(&state) })))
}

async fn get_cache_config(State(state): State<Arc<ManagerState>>) -> Response {
    let config = state.inner().cache;
    api::ok_with(json!({ "content": config }))
}

async fn set_cache_config(
    State(state): State<Arc<ManagerState>>,
    JsonBody(config): JsonBody<CacheConfig>,
) -> Result<Response, ApiError> {
    config.validate()?;
    let failed = state.set_cache_config(config).await;
    Ok(api::ok_with(json!({
        "content": config,
        "unreachable_nodes": failed,
    })))
}

async fn aggregate_stats(State(state): State<Arc<ManagerState>>) -> Response {
    let inner = state.inner();
    let points = inner.recorder.points();
    let totals = inner.recorder.latest_totals();
    let series = |f: &dyn Fn(&crate::stats::MinutePoint) -> Value| -> Vec<Value> {
        points.iter().map(f).collect()
    };
    api::ok_with(json!({
        "content": {
            "minutes": series(&|p| json!(p.minute)),
            "hit_rate": series(&|p| json!(p.hit_rate)),
            "miss_rate": series(&|p| json!(p.miss_rate)),
            "number_of_items_in_cache": series(&|p| json!(p.items)),
            "total_size_of_items_in_cache": series(&|p| json!(p.size_mb)),
            "number_of_requests_served_per_minute": series(&|p| json!(p.requests_per_minute)),
            "number_of_nodes": inner.pool.len(),
            "current": {
                "number_of_items_in_cache": totals.items,
                "total_size_of_items_in_cache": totals.used_bytes as f64 / (1024.0 * 1024.0),
                "gets": totals.gets,
                "hits": totals.hits,
                "requests": totals.requests,
            },
        },
    }))
}

async fn forward_clear(state: &ManagerState, path: &str) -> Result<Response, ApiError> {
    let Some(frontend) = &state.settings.frontend_addr else {
        return Err(ApiError::unavailable("no front-end is configured"));
    };
    let reply = state
        .client
        .send_with_timeout(
            Method::DELETE,
            frontend,
            path,
            &[],
            Bytes::new(),
            state.settings.notify_timeout_ms,
        )
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    if reply.status.is_success() {
        Ok(api::ok())
    } else {
        Err(ApiError::new(
            reply.status,
            format!("the front-end answered {}", reply.status),
        ))
    }
}

async fn clear_cache(State(state): State<Arc<ManagerState>>) -> Result<Response, ApiError> {
    forward_clear(&state, paths::CLEAR_CACHE).await
}

async fn clear_data(State(state): State<Arc<ManagerState>>) -> Result<Response, ApiError> {
    forward_clear(&state, paths::CLEAR_DATA).await
}

#[derive(Deserialize)]
struct MoveDone {
    node: NodeId,
}

async fn move_done(
    State(state): State<Arc<ManagerState>>,
    JsonBody(body): JsonBody<MoveDone>,
) -> Result<Response, ApiError> {
    let expected = state.move_done(&body.node);
    Ok(api::ok_with(json!({ "expected": expected })))
}
