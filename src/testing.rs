//! Helpers of the services' router-level unit tests (test builds only): a
//! connector that reaches nobody, a client on it, and one call through a router
//! without a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::net::client::{ClientSettings, HttpClient};
use crate::net::{BoxIo, Connector};

/// A connector every connection of which is refused at once: a service under
/// test calls its peers, and they are all down.
pub struct Unreachable;

#[async_trait::async_trait]
impl Connector for Unreachable {
    async fn connect(&self, addr: &str) -> std::io::Result<BoxIo> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("{addr} is unreachable in this test"),
        ))
    }
}

/// A client whose calls all fail to connect.
pub fn unreachable_client() -> HttpClient {
    HttpClient::new(Arc::new(Unreachable), ClientSettings::default())
}

/// An answer, whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as a wire type.
    pub fn body<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not the body expected ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a failure in the documented envelope with this status, and
    /// returns its message.
    pub fn refusal(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        let failure: crate::wire::envelope::Failure = self.body();
        assert_eq!(failure.success, "false");
        assert_eq!(failure.error.code, status.as_u16());
        failure.error.message
    }
}

/// Sends one request through `router`.
pub async fn call(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Body::from(body.into()))
        .expect("a valid request");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("routers do not fail");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A JSON body's headers.
pub const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
