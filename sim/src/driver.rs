//! Client operations inside the simulation, each recorded in the history, and the
//! control calls scenarios make (notify, resize, node listings).

use memring::wire::change::Change;
use memring::wire::{headers, paths};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use memring::net::client::{HttpClient, Reply};
use memring::net::form::upload_form;
use serde_json::Value;

use crate::history::{generation_of, History, OpKind, Outcome};
use crate::world::{trusted_client, FRONTEND_PORT, MANAGER_PORT, NODE_PORT};

/// Timeout of a client call to the front-end.
pub const CLIENT_TIMEOUT_MS: u64 = 10_000;
/// How a deliberately short attempt that timed out is recorded: the client gave
/// up, the system did not fail.
pub const GAVE_UP: &str = "client gave up after";

/// A client host's handle on the system.
#[derive(Clone)]
pub struct Driver {
    pub name: String,
    pub client: HttpClient,
    pub history: History,
    frontend: String,
    manager: String,
}

impl Driver {
    pub fn new(name: &str, history: History) -> Self {
        Driver {
            name: name.to_owned(),
            client: trusted_client(CLIENT_TIMEOUT_MS),
            history,
            frontend: format!("frontend:{FRONTEND_PORT}"),
            manager: format!("manager:{MANAGER_PORT}"),
        }
    }

    /// Waits until the front-end answers `/healthz` with 200 (bounded).
    pub async fn wait_ready(&self, limit_ms: u64) -> bool {
        let started = crate::history::now_ms();
        while crate::history::now_ms() - started < limit_ms {
            let reply = self
                .client
                .send(
                    Method::GET,
                    &self.frontend,
                    paths::HEALTHZ,
                    &[],
                    Bytes::new(),
                )
                .await;
            if matches!(reply, Ok(r) if r.status == StatusCode::OK) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Uploads generation `generation` of `key`; recorded.
    pub async fn upload(&self, key: &str, generation: u64, size_bytes: usize) -> Outcome {
        self.upload_attempt(key, generation, size_bytes, CLIENT_TIMEOUT_MS)
            .await
    }

    /// Uploads with a short first timeout; if it times out, sends the same upload
    /// again (the first may still arrive later: a duplicate). Each attempt is an
    /// operation of its own, with the same generation.
    pub async fn upload_with_retry(
        &self,
        key: &str,
        generation: u64,
        size_bytes: usize,
        first_timeout_ms: u64,
    ) -> Outcome {
        let first = self
            .upload_attempt(key, generation, size_bytes, first_timeout_ms)
            .await;
        match &first {
            Outcome::Failed(why) if why.starts_with(GAVE_UP) => {
                self.upload_attempt(key, generation, size_bytes, CLIENT_TIMEOUT_MS)
                    .await
            }
            _ => first,
        }
    }

    async fn upload_attempt(
        &self,
        key: &str,
        generation: u64,
        size_bytes: usize,
        timeout_ms: u64,
    ) -> Outcome {
        let id = self.history.invoke(
            &self.name,
            OpKind::Upload {
                key: key.to_owned(),
                generation,
            },
            false,
        );
        let image = crate::history::image_bytes(key, generation, size_bytes);
        let mime = crate::history::mime_of(generation);
        let (body, content_type) = upload_form(Some(key), Some((&image, Some(mime))));
        let headers = [(
            CONTENT_TYPE,
            HeaderValue::from_str(&content_type).expect("ascii"),
        )];
        let outcome = match self
            .client
            .send_with_timeout(
                Method::POST,
                &self.frontend,
                paths::UPLOAD,
                &headers,
                body,
                timeout_ms,
            )
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => Outcome::Uploaded,
            Ok(reply) => Outcome::Failed(format!("status {}", reply.status)),
            Err(memring::net::client::ClientError::Timeout { .. })
                if timeout_ms < CLIENT_TIMEOUT_MS =>
            {
                Outcome::Failed(format!("{GAVE_UP} {timeout_ms} ms"))
            }
            Err(error) => Outcome::Failed(error.to_string()),
        };
        self.history.complete(id, outcome.clone());
        outcome
    }

    /// Reads `key` through `/images/{key}`; recorded. The bytes must be an image
    /// of the key, its type the one uploaded, its ETag a version.
    pub async fn read(&self, key: &str, final_check: bool) -> Outcome {
        let id = self.history.invoke(
            &self.name,
            OpKind::Read {
                key: key.to_owned(),
            },
            final_check,
        );
        let path = paths::image_path(key);
        let outcome = match self
            .client
            .send(Method::GET, &self.frontend, &path, &[], Bytes::new())
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => match generation_of(key, &reply.body) {
                Ok(generation) => {
                    let header = |name: &str| {
                        reply
                            .headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let mime = header("content-type");
                    let etag = header("etag");
                    let version = etag
                        .strip_prefix("\"v")
                        .and_then(|rest| rest.strip_suffix('"'))
                        .and_then(|digits| digits.parse::<u64>().ok());
                    let hit = header(headers::CACHE_STATE) == "hit";
                    match version {
                        _ if mime != crate::history::mime_of(generation) => {
                            Outcome::Corrupt(format!(
                                "generation {generation} served as {mime:?}, uploaded as {:?}",
                                crate::history::mime_of(generation)
                            ))
                        }
                        None => Outcome::Corrupt(format!("bad ETag {etag:?}")),
                        Some(version) => {
                            self.history.read_details(id, version, hit);
                            Outcome::Read(Some(generation))
                        }
                    }
                }
                Err(why) => Outcome::Corrupt(why),
            },
            Ok(reply) if reply.status == StatusCode::NOT_FOUND => Outcome::Read(None),
            Ok(reply) => Outcome::Failed(format!("status {}", reply.status)),
            Err(error) => Outcome::Failed(error.to_string()),
        };
        self.history.complete(id, outcome.clone());
        outcome
    }

    /// A recorded call with no body to read back: clears and configurations.
    async fn recorded_call(
        &self,
        kind: OpKind,
        method: Method,
        to_manager: bool,
        path: &str,
        body: &Value,
    ) -> Outcome {
        let id = self.history.invoke(&self.name, kind, false);
        let outcome = match self
            .call_json_with_timeout(method, to_manager, path, body, CLIENT_TIMEOUT_MS)
            .await
        {
            Ok(reply) if reply.status.is_success() => Outcome::Done,
            Ok(reply) => Outcome::Failed(format!("status {}", reply.status)),
            Err(error) => Outcome::Failed(error),
        };
        self.history.complete(id, outcome.clone());
        outcome
    }

    /// `DELETE /api/clear/data`; recorded.
    pub async fn clear_data(&self) -> Outcome {
        self.recorded_call(
            OpKind::ClearData,
            Method::DELETE,
            false,
            paths::CLEAR_DATA,
            &Value::Null,
        )
        .await
    }

    /// `DELETE /api/clear/cache`; recorded.
    pub async fn clear_cache(&self) -> Outcome {
        self.recorded_call(
            OpKind::ClearCache,
            Method::DELETE,
            false,
            paths::CLEAR_CACHE,
            &Value::Null,
        )
        .await
    }

    /// The manager's cache configuration; recorded.
    pub async fn set_cache_config(&self, capacity_mb: f64, policy: &str) -> Outcome {
        let body = serde_json::json!({ "capacity": capacity_mb, "policy": policy });
        self.recorded_call(
            OpKind::Config {
                capacity_mb,
                policy: policy.to_owned(),
            },
            Method::POST,
            true,
            paths::MANAGER_CACHE_CONFIG,
            &body,
        )
        .await
    }

    /// `POST /api/list_keys`; recorded.
    pub async fn list_keys(&self) -> Outcome {
        let id = self.history.invoke(&self.name, OpKind::ListKeys, false);
        let outcome = match self
            .client
            .send(
                Method::POST,
                &self.frontend,
                paths::LIST_KEYS,
                &[],
                Bytes::new(),
            )
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => match reply.json::<Value>() {
                Some(body) => match body["keys"].as_array() {
                    Some(keys) => Outcome::Listed(
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect(),
                    ),
                    None => Outcome::Corrupt("list_keys without keys".into()),
                },
                None => Outcome::Corrupt("list_keys answered no JSON".into()),
            },
            Ok(reply) => Outcome::Failed(format!("status {}", reply.status)),
            Err(error) => Outcome::Failed(error.to_string()),
        };
        self.history.complete(id, outcome.clone());
        outcome
    }

    async fn call_json_with_timeout(
        &self,
        method: Method,
        to_manager: bool,
        path: &str,
        body: &Value,
        timeout_ms: u64,
    ) -> Result<Reply, String> {
        let addr = if to_manager {
            &self.manager
        } else {
            &self.frontend
        };
        let bytes = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        self.client
            .send_with_timeout(
                method,
                addr,
                path,
                &[(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                bytes,
                timeout_ms,
            )
            .await
            .map_err(|error| error.to_string())
    }

    /// A JSON call to the front-end or the manager (not recorded as an operation).
    pub async fn call_json(
        &self,
        method: Method,
        to_manager: bool,
        path: &str,
        body: &Value,
    ) -> Option<Reply> {
        self.call_json_with_timeout(method, to_manager, path, body, 120_000)
            .await
            .ok()
    }

    /// Sets the manager's pool to exactly `members` (an operator picking the
    /// nodes); the manager tells the front-end.
    pub async fn set_pool(&self, members: &[&str]) -> bool {
        self.set_pool_call(members)
            .await
            .is_ok_and(|reply| reply.status.is_success())
    }

    /// [`Driver::set_pool`], with the answer; `Err(true)` when the call surely
    /// never reached the manager, `Err(false)` when its effect is unknown.
    pub async fn set_pool_call(&self, members: &[&str]) -> Result<Reply, bool> {
        let body = serde_json::json!({ "node_ip_list": members });
        self.client
            .send_with_timeout(
                Method::POST,
                &self.manager,
                paths::POOL_NODE_LIST,
                &[(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                Bytes::from(body.to_string()),
                120_000,
            )
            .await
            .map_err(|error| matches!(error, memring::net::client::ClientError::Connect { .. }))
    }

    /// Grows or shrinks the pool by one through the manager; `Err(true)` when the
    /// call surely never reached the manager (no connection), `Err(false)` when its
    /// effect is unknown.
    pub async fn resize_call(&self, change: Change) -> Result<Reply, bool> {
        let body = serde_json::json!({ "change": change });
        self.client
            .send_with_timeout(
                Method::POST,
                &self.manager,
                paths::POOLSIZE_MANUAL,
                &[(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                Bytes::from(body.to_string()),
                120_000,
            )
            .await
            .map_err(|error| matches!(error, memring::net::client::ClientError::Connect { .. }))
    }

    /// Grows or shrinks the pool by one through the manager.
    pub async fn resize(&self, change: Change) -> Option<Reply> {
        let body = serde_json::json!({ "change": change });
        self.call_json(Method::POST, true, paths::POOLSIZE_MANUAL, &body)
            .await
    }

    /// The manager's pool, in join order.
    pub async fn manager_pool(&self) -> Option<Vec<String>> {
        self.manager_listing().await.map(|(pool, _)| pool)
    }

    /// The manager's pool, in join order, and its ejected nodes.
    pub async fn manager_listing(&self) -> Option<(Vec<String>, Vec<String>)> {
        let reply = self
            .client
            .send(
                Method::GET,
                &self.manager,
                paths::POOL_NODE_LIST,
                &[],
                Bytes::new(),
            )
            .await
            .ok()?;
        let body: Value = reply.json()?;
        let ids = |field: &str| -> Option<Vec<String>> {
            body["content"][field].as_array().map(|ids| {
                ids.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        Some((
            ids("node_ip_list")?,
            ids("ejected_ip_list").unwrap_or_default(),
        ))
    }

    /// The front-end's `/api/pool` answer.
    async fn pool_view(&self) -> Option<Value> {
        let reply = self
            .client
            .send(Method::GET, &self.frontend, paths::POOL, &[], Bytes::new())
            .await
            .ok()?;
        reply.json()
    }

    /// The front-end's routing pool.
    pub async fn frontend_pool(&self) -> Option<Vec<String>> {
        let body = self.pool_view().await?;
        body["pool"].as_array().map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// The nodes the front-end has quarantined.
    pub async fn quarantined(&self) -> Option<Vec<String>> {
        let body = self.pool_view().await?;
        body["quarantined"].as_array().map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// Cache hits the front-end threw away.
    pub async fn discarded_hits(&self) -> Option<u64> {
        self.pool_view().await?["discarded_hits"].as_u64()
    }

    /// The keys a node holds, sorted.
    pub async fn node_keys(&self, node: &str) -> Option<Vec<String>> {
        let reply = self
            .client
            .send(
                Method::GET,
                &format!("{node}:{NODE_PORT}"),
                paths::NODE_KEYS,
                &[],
                Bytes::new(),
            )
            .await
            .ok()?;
        let body: Value = reply.json()?;
        body["keys"].as_array().map(|keys| {
            keys.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// A node's counters.
    pub async fn node_stats(&self, node: &str) -> Option<Value> {
        let reply = self
            .client
            .send(
                Method::GET,
                &format!("{node}:{NODE_PORT}"),
                paths::NODE_STATS,
                &[],
                Bytes::new(),
            )
            .await
            .ok()?;
        let body: Value = reply.json()?;
        Some(body["content"].clone())
    }

    /// The manager's aggregate statistics.
    pub async fn aggregate_stats(&self) -> Option<Value> {
        let reply = self
            .client
            .send(
                Method::GET,
                &self.manager,
                paths::AGGREGATE_STATS,
                &[],
                Bytes::new(),
            )
            .await
            .ok()?;
        let body: Value = reply.json()?;
        Some(body["content"].clone())
    }
}
