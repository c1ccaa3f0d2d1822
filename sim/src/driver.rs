//! Client operations inside the simulation, each recorded in the history, and the
//! control calls scenarios make (notify, resize, node listings).

use memring::wire::change::Change;
use memring::wire::{headers, paths};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use memring::autoscale::AutoParams;
use memring::cache::store::Policy;
use memring::net::client::HttpClient;
use memring::stats::NodeCounters;
use memring::wire::client::{CallError, FrontendClient, ManagerClient, NodeClient};
use memring::wire::form::upload_form;
use memring::wire::frontend::{KeyList, PoolView};
use memring::wire::manager::{AggregateStats, ResizeConfig, Resized};
use memring::wire::node::CacheConfig;

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

    /// Records a control call whose answer has no body to read back.
    async fn recorded_call(
        &self,
        kind: OpKind,
        call: impl std::future::Future<Output = Result<(), CallError>>,
    ) -> Outcome {
        let id = self.history.invoke(&self.name, kind, false);
        let outcome = match call.await {
            Ok(()) => Outcome::Done,
            Err(CallError::Refused { status, .. }) => Outcome::Failed(format!("status {status}")),
            Err(error) => Outcome::Failed(error.to_string()),
        };
        self.history.complete(id, outcome.clone());
        outcome
    }

    /// `DELETE /api/clear/data`; recorded.
    pub async fn clear_data(&self) -> Outcome {
        let frontend = self.frontend_client();
        self.recorded_call(OpKind::ClearData, frontend.clear_data())
            .await
    }

    /// `DELETE /api/clear/cache`; recorded.
    pub async fn clear_cache(&self) -> Outcome {
        let frontend = self.frontend_client();
        self.recorded_call(OpKind::ClearCache, frontend.clear_cache())
            .await
    }

    /// The manager's cache configuration; recorded.
    pub async fn set_cache_config(&self, capacity_mb: f64, policy: Policy) -> Outcome {
        let manager = self.manager_client().with_timeout_ms(CLIENT_TIMEOUT_MS);
        let config = CacheConfig {
            capacity: capacity_mb,
            policy,
        };
        let kind = OpKind::Config {
            capacity_mb,
            policy: policy.to_string(),
        };
        self.recorded_call(kind, async {
            manager.set_cache_config(&config).await.map(|_| ())
        })
        .await
    }

    /// Switches the manager to automatic mode.
    pub async fn automatic(&self, params: &AutoParams) -> Result<ResizeConfig, CallError> {
        self.manager_client().automatic(params).await
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
            Ok(reply) if reply.status == StatusCode::OK => match reply.json::<KeyList>() {
                Some(list) => Outcome::Listed(list.keys),
                None => Outcome::Corrupt("list_keys answered no key list".into()),
            },
            Ok(reply) => Outcome::Failed(format!("status {}", reply.status)),
            Err(error) => Outcome::Failed(error.to_string()),
        };
        self.history.complete(id, outcome.clone());
        outcome
    }

    /// A client of the manager; control calls wait up to 120 s.
    fn manager_client(&self) -> ManagerClient {
        ManagerClient::new(self.client.clone(), self.manager.clone()).with_timeout_ms(120_000)
    }

    /// A client of the front-end.
    fn frontend_client(&self) -> FrontendClient {
        FrontendClient::new(self.client.clone(), self.frontend.clone())
    }

    /// A client of the node on `host`.
    fn node_client(&self, host: &str) -> NodeClient {
        NodeClient::new(self.client.clone(), format!("{host}:{NODE_PORT}"))
    }

    /// Sets the manager's pool to exactly `members` (an operator picking the
    /// nodes); the manager tells the front-end.
    pub async fn set_pool(&self, members: &[&str]) -> bool {
        self.set_pool_call(members).await.is_ok()
    }

    /// [`Driver::set_pool`], with the answer.
    pub async fn set_pool_call(&self, members: &[&str]) -> Result<Resized, CallError> {
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        self.manager_client().choose_pool(&members).await
    }

    /// Grows or shrinks the pool by one through the manager.
    pub async fn resize(&self, change: Change) -> Result<Resized, CallError> {
        self.manager_client().resize(change).await
    }

    /// The manager's pool, in join order.
    pub async fn manager_pool(&self) -> Option<Vec<String>> {
        self.manager_listing().await.map(|(pool, _)| pool)
    }

    /// The manager's pool, in join order, and its ejected nodes.
    pub async fn manager_listing(&self) -> Option<(Vec<String>, Vec<String>)> {
        let listing = self
            .manager_client()
            .with_timeout_ms(self.client.settings().timeout_ms)
            .pool_listing()
            .await
            .ok()?;
        Some((listing.node_ip_list, listing.ejected_ip_list))
    }

    /// The front-end's `/api/pool` answer.
    async fn pool_view(&self) -> Option<PoolView> {
        self.frontend_client().pool().await.ok()
    }

    /// The front-end's routing pool.
    pub async fn frontend_pool(&self) -> Option<Vec<String>> {
        let pool = self.pool_view().await?.pool?;
        Some(pool.iter().map(ToString::to_string).collect())
    }

    /// The nodes the front-end has quarantined.
    pub async fn quarantined(&self) -> Option<Vec<String>> {
        Some(self.pool_view().await?.quarantined)
    }

    /// Cache hits the front-end threw away.
    pub async fn discarded_hits(&self) -> Option<u64> {
        Some(self.pool_view().await?.discarded_hits)
    }

    /// The keys a node holds, sorted.
    pub async fn node_keys(&self, node: &str) -> Option<Vec<String>> {
        Some(self.node_client(node).keys().await.ok()?.keys)
    }

    /// A node's counters.
    pub async fn node_stats(&self, node: &str) -> Option<NodeCounters> {
        Some(self.node_client(node).stats().await.ok()?.content)
    }

    /// The manager's aggregate statistics.
    pub async fn aggregate_stats(&self) -> Option<AggregateStats> {
        self.manager_client()
            .with_timeout_ms(self.client.settings().timeout_ms)
            .aggregate_stats()
            .await
            .ok()
    }
}
