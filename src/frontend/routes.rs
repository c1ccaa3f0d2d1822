//! The front-end's HTTP API: the documented calls, `/images/{key}` and `/healthz`.

use crate::wire::frontend::{KeyContent, KeyList, Notified, Notify, PoolView, Uploaded};
use crate::wire::{headers, paths};
use std::sync::Arc;

use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use base64::Engine;
use bytes::{Bytes, BytesMut};

use super::read::{read, ImageBody};
use super::rebalance::{clear_cache, manager_pool, rebalance_to, Directive};
use super::upload::{store, Upload};
use super::{lock, FrontendState};
use crate::api::parse_members;
use crate::api::{self, ApiError, JsonBody, PathParam};
use crate::auth::Access;
use crate::key::validate_key;
use crate::limits::EPOCH_MAX;
use crate::net::budget::BudgetedBody;

/// Room for the multipart framing and the key field around the file.
const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;
/// Longest `key` field read; a valid key is far shorter (48 characters).
const KEY_FIELD_BYTES_MAX: usize = 1024;

pub fn router(state: Arc<FrontendState>) -> Router {
    let body_max_bytes = state.settings.upload_max_bytes + MULTIPART_OVERHEAD_BYTES;
    let gate = |access| crate::auth::layer(&state.settings.secrets, access);
    Router::new()
        .route(paths::UPLOAD, post(upload))
        .route(paths::LIST_KEYS, post(list_keys).get(list_keys))
        .route(paths::KEY_ROUTE, post(key_content).get(key_content))
        .route(paths::IMAGES_ROUTE, get(image))
        .route(
            paths::NOTIFY,
            post(notify).route_layer(gate(Access::Cluster)),
        )
        .route(
            paths::CLEAR_DATA,
            delete(clear_data).route_layer(gate(Access::Admin)),
        )
        .route(
            paths::CLEAR_CACHE,
            delete(clear_cache_call).route_layer(gate(Access::Admin)),
        )
        .route(paths::POOL, get(pool))
        .route(paths::HEALTHZ, get(healthz))
        .fallback(api::not_found_fallback)
        .method_not_allowed_fallback(|| async { api::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_max_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            api::refuse_announced_oversize(body_max_bytes, request, next)
        }))
        .layer(axum::middleware::map_response(serve_safely))
        .with_state(state)
}

/// The policy every answer carries: nothing it runs may load or do anything
/// (`default-src 'none'`, `sandbox`), and browsers take its content type as given
/// rather than sniffing one (an image is never run as HTML or script).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// Adds `nosniff` and the sandboxing policy to an answer.
async fn serve_safely(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

fn multipart_error(error: MultipartError) -> ApiError {
    if crate::net::guard::is_body_too_slow(&error) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the upload did not arrive in time",
        );
    }
    let status = error.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the upload is too large".to_owned()
    } else {
        format!("bad multipart body: {}", error.body_text())
    };
    ApiError::new(status, message)
}

async fn upload(
    State(state): State<Arc<FrontendState>>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body with `key` and `file`: {}",
            rejection.body_text()
        ))
    })?;
    let limit = state.settings.upload_max_bytes;
    let mut key: Option<String> = None;
    let mut file: Option<(Bytes, Option<String>)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("key") => {
                if key.is_some() {
                    return Err(ApiError::bad_request("the form has two `key` fields"));
                }
                // Read as bytes, bounded: a key that is not UTF-8 is refused rather
                // than repaired (two different raw keys must not become one).
                let mut raw = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if raw.len() + chunk.len() > KEY_FIELD_BYTES_MAX {
                        return Err(ApiError::bad_request(format!(
                            "the `key` field is longer than {KEY_FIELD_BYTES_MAX} bytes"
                        )));
                    }
                    raw.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(raw.to_vec())
                    .map_err(|_| ApiError::bad_request("a key must be valid UTF-8"))?;
                key = Some(text);
            }
            Some("file") => {
                if file.is_some() {
                    return Err(ApiError::bad_request("the form has two `file` fields"));
                }
                let content_type = field.content_type().map(str::to_owned);
                let mut bytes = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("the file is larger than {limit} bytes"),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((bytes.freeze(), content_type));
            }
            // Unknown fields are drained and ignored.
            _ => while field.chunk().await.map_err(multipart_error)?.is_some() {},
        }
    }
    let key = key.ok_or_else(|| ApiError::bad_request("the form has no `key` field"))?;
    validate_key(&key).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let (bytes, content_type) =
        file.ok_or_else(|| ApiError::bad_request("the form has no `file` field"))?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the file is empty"));
    }
    let declared = content_type.as_deref().and_then(crate::mime::normalize);
    let mime = if state.settings.allow_any_type {
        // A part without a content type, or with the "unknown" one, is sniffed.
        declared
            .filter(|mime| mime != crate::mime::OCTET_STREAM)
            .unwrap_or_else(|| crate::mime::sniff(&bytes).to_owned())
    } else {
        crate::mime::raster_type(&bytes, declared.as_deref()).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "only raster images are stored (PNG, JPEG, GIF, WebP, BMP); this file looks like {} (a front-end started with --allow-any-type stores anything)",
                    crate::mime::sniff(&bytes)
                ),
            )
        })?
    };
    let version = store(&state, Upload { key, bytes, mime }).await?;
    Ok(api::ok_with(Uploaded { version }))
}

async fn list_keys(State(state): State<Arc<FrontendState>>) -> Result<Response, ApiError> {
    let keys = state
        .index
        .list()
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    Ok(api::ok_with(KeyList { keys }))
}

async fn key_content(
    State(state): State<Arc<FrontendState>>,
    PathParam(key): PathParam<String>,
) -> Result<Response, ApiError> {
    let image = read(&state, &key, false).await?;
    let ImageBody::Whole(bytes) = &image.body else {
        return Err(ApiError::internal("a read that may not stream streamed"));
    };
    // The base64 text is a third larger than the image: it takes that share too.
    let base64_share = state
        .budget
        .try_take(bytes.len() as u64 / 3 + 1024)
        .ok_or_else(super::read::budget_spent)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let response = api::ok_with(KeyContent {
        content: format!("data:{};base64,{encoded}", image.mime),
    });
    // The answer holds the image's share of the budget until it is sent.
    Ok(response.map(|body| {
        let body = BudgetedBody::new(body, image.share);
        axum::body::Body::new(BudgetedBody::new(body, Some(Arc::new(base64_share))))
    }))
}

async fn image(
    State(state): State<Arc<FrontendState>>,
    PathParam(key): PathParam<String>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A large hit streams from its node to the client, never held whole here.
    let image = read(&state, &key, true).await?;
    let etag = format!("\"v{}\"", image.version);
    let etag_value = HeaderValue::from_str(&etag).expect("an ETag of digits is a valid header");
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let mime = HeaderValue::from_str(&image.mime)
        .unwrap_or(HeaderValue::from_static(crate::mime::OCTET_STREAM));
    let cache_state = HeaderValue::from_static(if image.cache_hit { "hit" } else { "miss" });
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime),
            (header::ETAG, etag_value),
            (
                header::HeaderName::from_static(headers::CACHE_STATE),
                cache_state,
            ),
        ],
        match image.body {
            ImageBody::Whole(bytes) => axum::body::Body::new(BudgetedBody::new(
                http_body_util::Full::new(bytes),
                image.share,
            )),
            ImageBody::Streamed(stream) => {
                axum::body::Body::new(BudgetedBody::new(stream, image.share))
            }
        },
    )
        .into_response();
    // Whatever is not a raster image (stored with --allow-any-type, or before
    // the rule) is offered as a download, never shown in the page's origin.
    if !crate::mime::is_raster(&image.mime) {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    Ok(response)
}

async fn notify(
    State(state): State<Arc<FrontendState>>,
    JsonBody(notify): JsonBody<Notify>,
) -> Result<Response, ApiError> {
    // The mode and the change were checked as the body was read; the front-end
    // moves to the pool given (or the manager's) whatever they say.
    if notify.epoch.is_some_and(|epoch| epoch > EPOCH_MAX) {
        return Err(ApiError::bad_request(format!(
            "epoch must be at most {EPOCH_MAX}"
        )));
    }
    let members = parse_members(&notify.node_ip)?;
    let told = Directive {
        epoch: notify.epoch,
        assignment: notify.assignment,
    };
    // With a manager, a notify only prompts the front-end to take the manager's
    // pool: whoever sends it, the front-end moves to no pool but the manager's.
    let (members, directive) = match manager_pool(&state).await {
        None => (members, told),
        Some(Err(error)) => {
            return Err(ApiError::unavailable(format!(
                "the pool could not be confirmed with the manager: {error}"
            )))
        }
        Some(Ok(managers)) => {
            let agrees = super::routing::notify_agrees(
                &members,
                told.epoch,
                &managers.members,
                managers.epoch(),
            );
            if !agrees {
                // Move to the manager's pool anyway (it may be newer than the
                // one in force), then refuse what was told.
                if let Err(error) =
                    rebalance_to(&state, &managers.members, &managers.directive).await
                {
                    return epoch_refusal(&state, error);
                }
                let message = match told.epoch {
                    Some(epoch) if epoch < managers.epoch() => format!(
                        "epoch {epoch} is older than the manager's ({})",
                        managers.epoch()
                    ),
                    _ => "this pool is not the manager's; the front-end follows the manager's pool"
                        .to_owned(),
                };
                return epoch_refusal(&state, ApiError::new(StatusCode::CONFLICT, message));
            }
            (managers.members, managers.directive)
        }
    };
    let done = match rebalance_to(&state, &members, &directive).await {
        Ok(done) => done,
        Err(error) => return epoch_refusal(&state, error),
    };
    Ok(api::ok_with(Notified {
        pool: done.plan.new_pool.nodes().to_vec(),
        orders: done.plan.balance_result.len(),
        failed_orders: done.failed_orders,
    }))
}

/// A refusal for an epoch older than the pool in force names that epoch, so that
/// a manager that lost its state can move past it; other errors pass through.
fn epoch_refusal(state: &FrontendState, error: ApiError) -> Result<Response, ApiError> {
    if error.status != StatusCode::CONFLICT {
        return Err(error);
    }
    let epoch = state.routing().map_or(0, |routing| routing.epoch);
    let mut response = error.into_response();
    response.headers_mut().insert(
        header::HeaderName::from_static(headers::EPOCH),
        HeaderValue::from(epoch),
    );
    Ok(response)
}

async fn clear_data(State(state): State<Arc<FrontendState>>) -> Result<Response, ApiError> {
    // Waits for uploads between their blob write and their row commit, and holds
    // new ones back until the blobs are swept.
    let gate = if crate::planted!(ClearRacesUpload) {
        None
    } else {
        Some(state.uploads_gate.write().await)
    };
    let rows = state
        .index
        .delete_all()
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    let mut objects: Vec<String> = rows.into_iter().map(|row| row.object).collect();
    // Also sweep objects no row points at (left by a crash mid-upload).
    if let Ok(listed) = state.blobs.list().await {
        objects.extend(listed);
    }
    objects.sort();
    objects.dedup();
    for object in &objects {
        if let Err(error) = state.blobs.delete(object).await {
            tracing::warn!(%object, %error, "could not delete object");
        }
    }
    drop(gate);
    clear_cache(&state).await;
    Ok(api::ok())
}

async fn clear_cache_call(State(state): State<Arc<FrontendState>>) -> Response {
    clear_cache(&state).await;
    api::ok()
}

async fn pool(State(state): State<Arc<FrontendState>>) -> Response {
    let routing = state.routing();
    let quarantined: Vec<String> = lock(&state.trust)
        .quarantined()
        .iter()
        .map(ToString::to_string)
        .collect();
    api::ok_with(PoolView {
        pool: routing.as_ref().map(|r| r.pool.nodes().to_vec()),
        epoch: routing.as_ref().map(|r| r.epoch),
        mapping: routing.as_ref().map(|r| r.mapping.owners().to_vec()),
        quarantined,
        cached_keys: state.cached_keys().len(),
        discarded_hits: state
            .discarded_hits
            .load(std::sync::atomic::Ordering::Relaxed),
    })
}

async fn healthz(State(state): State<Arc<FrontendState>>) -> Response {
    if state.routing().is_some() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for the pool").into_response()
    }
}
