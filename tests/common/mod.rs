//! Helpers for the integration tests: a whole system on ephemeral loopback ports and
//! a small HTTP client that speaks the documented API.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use memring::net::client::{ClientSettings, HttpClient, Reply};
use memring::net::TokioConnector;
use memring::up::{start_up, Up, UpSettings};
use serde_json::Value;

/// Settings for a test system on free ports under `dir`.
pub fn settings(dir: &Path) -> UpSettings {
    let mut settings = UpSettings::new(dir.to_path_buf());
    settings.frontend_port = 0;
    settings.manager_port = 0;
    settings.node_ports = vec![0; 8];
    settings.stats_interval_ms = 200;
    settings.rng_seed = 7;
    settings
}

/// Starts a system and waits until the front-end knows the pool.
pub async fn start(settings: UpSettings) -> Up {
    let up = start_up(settings).await.expect("memring starts");
    tokio::time::timeout(Duration::from_secs(10), up.ready())
        .await
        .expect("the front-end learns the pool");
    up
}

/// A client of the public API.
#[derive(Clone)]
pub struct Api {
    pub client: HttpClient,
    pub frontend: String,
    pub manager: String,
}

impl Api {
    pub fn new(up: &Up) -> Self {
        let settings = ClientSettings {
            timeout_ms: 30_000,
            ..ClientSettings::default()
        };
        Api {
            client: HttpClient::new(Arc::new(TokioConnector), settings),
            frontend: up.frontend.addr.clone(),
            manager: up.manager.addr.clone(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Reply {
        let headers: Vec<_> = content_type
            .map(|ct| (CONTENT_TYPE, HeaderValue::from_str(ct).unwrap()))
            .into_iter()
            .collect();
        self.client
            .send(method, addr, path, &headers, body)
            .await
            .expect("the call is answered")
    }

    /// POST with a JSON body given as text (so malformed JSON can be sent).
    pub async fn post_json(&self, addr: &str, path: &str, json: &str) -> Reply {
        self.call(
            Method::POST,
            addr,
            path,
            Bytes::from(json.to_owned()),
            Some("application/json"),
        )
        .await
    }

    /// Uploads through the documented multipart form.
    pub async fn upload(&self, key: Option<&str>, file: Option<(&[u8], Option<&str>)>) -> Reply {
        let (body, content_type) = memring::wire::form::upload_form(key, file);
        self.call(
            Method::POST,
            &self.frontend.clone(),
            "/api/upload",
            body,
            Some(&content_type),
        )
        .await
    }

    pub async fn upload_ok(&self, key: &str, bytes: &[u8]) {
        let reply = self
            .upload(Some(key), Some((bytes, Some("image/png"))))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(json(&reply)["success"], "true");
    }

    /// `GET /images/{key}`.
    pub async fn image(&self, key: &str) -> Reply {
        let path = format!("/images/{}", encode(key));
        self.call(
            Method::GET,
            &self.frontend.clone(),
            &path,
            Bytes::new(),
            None,
        )
        .await
    }

    pub async fn manager_get(&self, path: &str) -> Reply {
        self.call(Method::GET, &self.manager.clone(), path, Bytes::new(), None)
            .await
    }

    pub async fn resize(&self, change: &str) -> Reply {
        self.post_json(
            &self.manager.clone(),
            "/api/manager/poolsize/manual",
            &format!("{{\"change\":\"{change}\"}}"),
        )
        .await
    }
}

/// The value of `name=` in a log line (up to the next space).
pub fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    line[start..].split_whitespace().next()
}

impl Api {
    /// Waits (up to 5 s) until the front-end answers `/healthz` with 200, as it
    /// does once it has the manager's pool.
    pub async fn wait_healthy(&self) -> bool {
        for _ in 0..100 {
            let reply = self
                .call(
                    Method::GET,
                    &self.frontend.clone(),
                    "/healthz",
                    Bytes::new(),
                    None,
                )
                .await;
            if reply.status == StatusCode::OK {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

pub fn encode(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&reply.body)))
}

/// Asserts the documented failure envelope with this status.
pub fn assert_error(reply: &Reply, status: StatusCode) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = json(reply);
    assert_eq!(body["success"], "false");
    assert_eq!(body["error"]["code"], status.as_u16());
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

/// A small distinct "image" for key `key`, generation `generation`.
pub fn image_bytes(key: &str, generation: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(format!("{key}#{generation}").as_bytes());
    bytes.extend(std::iter::repeat_n(
        (generation % 251) as u8,
        1000 + generation as usize,
    ));
    bytes
}

/// Sends `request` as raw bytes and reads one answer (head and a body of its
/// `Content-Length`) as text; the whole exchange takes 10 s at most.
#[allow(dead_code)]
pub async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if answer.len() >= end + 4 + length {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .expect("the answer came within 10 s")
}
