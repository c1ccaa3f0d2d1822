//! The manager's HTTP API, all under `/api/manager/`, in the documented envelopes.

use crate::ring::NodeId;
use crate::wire::change::Change;
use crate::wire::paths;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;

use super::{ManagerState, Mode};
use crate::api::{self, ApiError, JsonBody};
use crate::auth::Access;
use crate::autoscale::AutoParams;
use crate::wire::client::CallError;
use crate::wire::envelope::Content;
use crate::wire::manager::{
    AggregateStats, CacheConfigSet, CurrentTotals, ManualResize, PoolChoice, PoolListing, PoolSize,
    ResizeConfig, ResizeParameters, Resized,
};
use crate::wire::node::{CacheConfig, MoveDone, MoveDoneAck};

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
    // One reading of the membership: the pool, the ejected list and the epoch
    // are shown as they were together.
    let membership = state.membership();
    let pool = membership.pool();
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
    let names = |nodes: &[NodeId]| nodes.iter().map(ToString::to_string).collect();
    api::ok_with(Content {
        content: PoolListing {
            node_id_list: ids,
            node_ip_list: names(pool),
            ejected_ip_list: names(membership.ejected()),
            epoch: Some(membership.epoch()),
            assignment: Some(names(membership.mapping().owners())),
        },
    })
}

/// The answer to a resize: the pool now, and the size asked for.
fn resized(state: &ManagerState, pool: Vec<NodeId>) -> Response {
    // Nodes ejected for failing health checks rejoin when they answer again: the
    // size asked for counts them.
    let wanted = pool.len() + state.ejected_count();
    api::ok_with(Content {
        content: Resized {
            size: pool.len(),
            node_ip_list: pool,
            wanted,
        },
    })
}

/// Sets the pool to exactly the nodes listed (slots of this manager), by hand.
async fn set_pool_node_list(
    State(state): State<Arc<ManagerState>>,
    JsonBody(body): JsonBody<PoolChoice>,
) -> Result<Response, ApiError> {
    let members = api::parse_members(&body.node_ip_list)?;
    let pool = state.set_pool(&members).await?;
    Ok(resized(&state, pool))
}

async fn poolsize(State(state): State<Arc<ManagerState>>) -> Response {
    api::ok_with(Content {
        content: PoolSize {
            size: state.pool().len(),
        },
    })
}

fn config_content(state: &ManagerState) -> Content<ResizeConfig> {
    let inner = state.inner();
    Content {
        content: ResizeConfig {
            resize_pool_option: inner.mode,
            resize_pool_parameters: ResizeParameters {
                max_miss_rate_threshold: inner.params.max_miss_rate_threshold,
                min_miss_rate_threshold: inner.params.min_miss_rate_threshold,
                ratio_expand_pool: inner.params.expand_ratio,
                ratio_shrink_pool: inner.params.shrink_ratio,
                auto_mode: inner.mode == Mode::Automatic,
            },
        },
    }
}

async fn poolsize_config(State(state): State<Arc<ManagerState>>) -> Response {
    api::ok_with(config_content(&state))
}

async fn manual(
    State(state): State<Arc<ManagerState>>,
    JsonBody(body): JsonBody<ManualResize>,
) -> Result<Response, ApiError> {
    let pool = state.resize_by_one(body.change == Change::Increase).await?;
    Ok(resized(&state, pool))
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
    Ok(api::ok_with(config_content(&state)))
}

async fn get_cache_config(State(state): State<Arc<ManagerState>>) -> Response {
    let config = state.inner().cache;
    api::ok_with(Content { content: config })
}

async fn set_cache_config(
    State(state): State<Arc<ManagerState>>,
    JsonBody(config): JsonBody<CacheConfig>,
) -> Result<Response, ApiError> {
    config.validate().map_err(ApiError::bad_request)?;
    let failed = state.set_cache_config(config).await;
    Ok(api::ok_with(CacheConfigSet {
        content: config,
        unreachable_nodes: failed,
    }))
}

async fn aggregate_stats(State(state): State<Arc<ManagerState>>) -> Response {
    let inner = state.inner();
    let points = inner.recorder.points();
    let totals = inner.recorder.latest_totals();
    let series = |f: &dyn Fn(&crate::stats::MinutePoint) -> f64| points.iter().map(f).collect();
    api::ok_with(Content {
        content: AggregateStats {
            minutes: points.iter().map(|p| p.minute).collect(),
            hit_rate: points.iter().map(|p| p.hit_rate).collect(),
            miss_rate: points.iter().map(|p| p.miss_rate).collect(),
            number_of_items_in_cache: points.iter().map(|p| p.items).collect(),
            total_size_of_items_in_cache: series(&|p| p.size_mb),
            number_of_requests_served_per_minute: points
                .iter()
                .map(|p| p.requests_per_minute)
                .collect(),
            number_of_nodes: inner.membership.pool().len(),
            current: CurrentTotals {
                number_of_items_in_cache: totals.items,
                total_size_of_items_in_cache: totals.used_bytes as f64 / (1024.0 * 1024.0),
                gets: totals.gets,
                hits: totals.hits,
                requests: totals.requests,
            },
        },
    })
}

async fn forward_clear(state: &ManagerState, what: Clear) -> Result<Response, ApiError> {
    let Some(frontend) = state.frontend_client() else {
        return Err(ApiError::unavailable("no front-end is configured"));
    };
    let outcome = match what {
        Clear::Cache => frontend.clear_cache().await,
        Clear::Data => frontend.clear_data().await,
    };
    match outcome {
        Ok(()) => Ok(api::ok()),
        Err(CallError::Refused { status, .. }) => Err(ApiError::new(
            status,
            format!("the front-end answered {status}"),
        )),
        Err(error) => Err(ApiError::unavailable(error.to_string())),
    }
}

/// What a clear forwarded to the front-end empties.
enum Clear {
    Cache,
    Data,
}

async fn clear_cache(State(state): State<Arc<ManagerState>>) -> Result<Response, ApiError> {
    forward_clear(&state, Clear::Cache).await
}

async fn clear_data(State(state): State<Arc<ManagerState>>) -> Result<Response, ApiError> {
    forward_clear(&state, Clear::Data).await
}

async fn move_done(
    State(state): State<Arc<ManagerState>>,
    JsonBody(body): JsonBody<MoveDone>,
) -> Result<Response, ApiError> {
    let expected = state.move_done(&body.node);
    Ok(api::ok_with(MoveDoneAck { expected }))
}
