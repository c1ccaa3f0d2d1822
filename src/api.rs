//! The documented JSON envelopes, built in one place.
//!
//! Success: `{"success": "true", ...fields}`. Failure:
//! `{"success": "false", "error": {"code": <HTTP status>, "message": "..."}}`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

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

/// The failure envelope as JSON.
pub fn error_body(status: StatusCode, message: &str) -> Value {
    json!({
        "success": "false",
        "error": { "code": status.as_u16(), "message": message },
    })
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

/// The success envelope with extra top-level fields.
pub fn ok_with(fields: Value) -> Response {
    let mut body = Map::new();
    body.insert("success".into(), Value::from("true"));
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    (StatusCode::OK, Json(Value::Object(body))).into_response()
}

/// The bare success envelope.
pub fn ok() -> Response {
    ok_with(json!({}))
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
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request(format!("bad JSON body: {error}")))
    }
}
