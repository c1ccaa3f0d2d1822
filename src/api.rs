//! The services' side of the envelope ([`crate::wire::envelope`]): errors as
//! answers, success answers, and extractors whose refusals are in the envelope.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::wire::envelope::{Empty, Failure, Success};

/// An error answer: its HTTP status is also the envelope's `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The failure envelope.
pub fn error_body(status: StatusCode, message: &str) -> Failure {
    Failure::new(status.as_u16(), message)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(error_body(self.status, &self.message))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection {
            JsonRejection::MissingJsonContentType(_) | JsonRejection::JsonSyntaxError(_) => {
                StatusCode::BAD_REQUEST
            }
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            _ => rejection.status(),
        };
        ApiError::new(status, format!("bad JSON body: {}", rejection.body_text()))
    }
}

/// The success envelope around a wire body (a struct: its fields follow the flag).
pub fn ok_with<T: Serialize>(body: T) -> Response {
    (StatusCode::OK, Json(Success::new(body))).into_response()
}

/// The bare success envelope.
pub fn ok() -> Response {
    ok_with(Empty {})
}

/// Answer for a route that does not exist, in the envelope.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such API call")
}

/// Answer for a known route called with the wrong method, in the envelope.
pub fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// A JSON body, parsed whatever the request's content type says (clients such as
/// `curl -d` send JSON as form data). Bad JSON is a 400 in the envelope.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(body) = RawBody::from_request(request, state).await?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request(format!("bad JSON body: {error}")))
    }
}

pub use crate::error::echo;

/// A path parameter; one that cannot be decoded (a key that is not valid UTF-8)
/// is a 400 in the envelope, not axum's plain-text answer.
pub struct PathParam<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PathParam<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParam(value))
            .map_err(|rejection| match rejection {
                PathRejection::FailedToDeserializePathParams(_) => {
                    ApiError::bad_request("the path cannot be decoded (a key must be valid UTF-8)")
                }
                other => ApiError::new(other.status(), echo(&other.body_text())),
            })
    }
}

/// A raw body; one over the size limit is a 413 in the envelope.
pub struct RawBody(pub axum::body::Bytes);

impl<S> axum::extract::FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection: BytesRejection| {
                if crate::net::guard::is_body_too_slow(&rejection) {
                    return ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "the body did not arrive in time",
                    );
                }
                let message = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "the body is too large".to_owned()
                } else {
                    format!(
                        "the body could not be read: {}",
                        echo(&rejection.body_text())
                    )
                };
                ApiError::new(rejection.status(), message)
            })
    }
}

/// Refuses a request whose `Content-Length` announces more than `max_bytes` with
/// 413 at once, before any of its body is read (the body limit alone would read
/// up to the limit first). Used as `middleware::from_fn` in every router.
pub async fn refuse_announced_oversize(
    max_bytes: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > max_bytes as u64) {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large")
            .into_response();
    }
    next.run(request).await
}

/// Parses and checks a list of node ids for a pool of the service.
pub fn parse_members(ids: &[String]) -> Result<Vec<crate::ring::NodeId>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::bad_request("a pool lists at least one node"));
    }
    if ids.len() > crate::limits::POOL_NODES_MAX {
        return Err(ApiError::bad_request(format!(
            "the list names {} nodes; a pool holds at most {}",
            ids.len(),
            crate::limits::POOL_NODES_MAX
        )));
    }
    let nodes = ids
        .iter()
        .map(|id| crate::ring::NodeId::new(id.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    crate::ring::Pool::new(nodes.clone())
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(nodes)
}
