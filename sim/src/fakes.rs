//! Fake S3 and fake RDS: in-memory stores served as simulated hosts, and the
//! front-end's clients for them. Storage calls cross the simulated network, so
//! partitions and latency reach them like any other call.
//!
//! Both fakes sit behind one fault layer driven by a shared [`StorageFaults`]
//! controller: slow calls (heavy-tailed extra latency), a rate of 503s, throttling
//! (every call 503 `SlowDown` / "too many connections") and lost replies (a write
//! carried out, then answered 500). Draws come from a ChaCha8Rng seeded per router
//! and only when a fault is set, so a healthy run draws nothing.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Method;
use memring::net::client::{HttpClient, Reply};
use memring::storage::memory::{MemoryBlobStore, MemoryKeyIndex};
use memring::storage::{
    validate_object_name, BlobStore, IndexRow, KeyIndex, StorageError, StorageResult, Upserted,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Port of the fake S3.
pub const S3_PORT: u16 = 9000;
/// Port of the fake RDS.
pub const RDS_PORT: u16 = 9001;
/// Timeout of a storage call from the front-end.
pub const STORAGE_TIMEOUT_MS: u64 = 2_000;

/// Calls per fault rate's denominator: rates are per mille.
pub const PER_MILLE: u32 = 1_000;
/// Steps of the heavy-tail draw of a slow call's extra latency.
const SLOW_DRAW_STEPS: u128 = 1_000;
/// Body of a lost reply.
pub const REPLY_LOST_BODY: &str = "reply lost";
/// Body of a throttled S3 answer (S3's error code).
pub const S3_THROTTLED_BODY: &str = "SlowDown: please reduce your request rate";
/// Body of a throttled RDS answer.
pub const RDS_THROTTLED_BODY: &str = "too many connections";
/// Body of an injected error.
pub const INJECTED_ERROR_BODY: &str = "service unavailable (injected)";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FaultConfig {
    slow_extra_ms_max: u64,
    error_per_mille: u32,
    throttled: bool,
    lost_reply_per_mille: u32,
}

/// A fault controller for the fake S3 or RDS, shared by the router(s) it was
/// given to and whoever injects faults; cheap to clone (clones share it).
/// Default: healthy.
#[derive(Clone, Debug, Default)]
pub struct StorageFaults {
    config: Arc<Mutex<FaultConfig>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageFaults {
    fn config(&self) -> FaultConfig {
        *lock(&self.config)
    }

    /// Each call waits an extra 0..=extra_ms_max (simulated time), drawn with a
    /// heavy tail: mostly small, sometimes near the max. 0 turns it off.
    pub fn set_slow(&self, extra_ms_max: u64) {
        lock(&self.config).slow_extra_ms_max = extra_ms_max;
    }

    /// Fraction (per mille, capped at 1000) of calls answered 503 without doing
    /// anything.
    pub fn set_error_per_mille(&self, per_mille: u32) {
        lock(&self.config).error_per_mille = per_mille.min(PER_MILLE);
    }

    /// Throttling: while on, every call is answered 503 "SlowDown" (S3) / "too many
    /// connections" (RDS) without doing anything.
    pub fn set_throttled(&self, on: bool) {
        lock(&self.config).throttled = on;
    }

    /// Fraction (per mille, capped at 1000) of writes (S3 put/delete, RDS
    /// upsert/delete_all) that are carried out and then have their reply lost
    /// (answered 500, body "reply lost").
    pub fn set_lost_reply_per_mille(&self, per_mille: u32) {
        lock(&self.config).lost_reply_per_mille = per_mille.min(PER_MILLE);
    }

    /// Back to healthy.
    pub fn heal(&self) {
        *lock(&self.config) = FaultConfig::default();
    }

    /// Whether no fault is set.
    pub fn is_healthy(&self) -> bool {
        self.config() == FaultConfig::default()
    }
}

/// Which fake a fault layer guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    S3,
    Rds,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Rds => "rds",
        }
    }

    /// The random stream of this service: the same seed gives S3 and RDS
    /// independent draws.
    fn stream(self) -> u64 {
        match self {
            Service::S3 => 1,
            Service::Rds => 2,
        }
    }

    fn is_write(self, method: &Method, path: &str) -> bool {
        match self {
            Service::S3 => *method == Method::PUT || *method == Method::DELETE,
            Service::Rds => path == "/upsert" || path == "/delete_all",
        }
    }

    fn throttled_body(self) -> &'static str {
        match self {
            Service::S3 => S3_THROTTLED_BODY,
            Service::Rds => RDS_THROTTLED_BODY,
        }
    }
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Throttled,
    Error,
    Serve { lose_reply: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decision {
    delay_ms: u64,
    outcome: Outcome,
}

/// `true` with probability `per_mille / 1000`; draws only when it is non-zero.
fn chance(rng: &mut ChaCha8Rng, per_mille: u32) -> bool {
    per_mille > 0 && rng.gen_range(0..PER_MILLE) < per_mille
}

/// A heavy-tailed extra delay in `0..=max_ms`: `max · u⁴` with `u` uniform, so
/// the median is about max/16 and one call in ten waits more than half the max.
fn slow_delay_ms(rng: &mut ChaCha8Rng, max_ms: u64) -> u64 {
    let u = rng.gen_range(0..=SLOW_DRAW_STEPS);
    let scaled = u128::from(max_ms) * u.pow(4) / SLOW_DRAW_STEPS.pow(4);
    u64::try_from(scaled).unwrap_or(max_ms).min(max_ms)
}

fn decide(config: &FaultConfig, write: bool, rng: &mut ChaCha8Rng) -> Decision {
    let delay_ms = if config.slow_extra_ms_max > 0 {
        slow_delay_ms(rng, config.slow_extra_ms_max)
    } else {
        0
    };
    let outcome = if config.throttled {
        Outcome::Throttled
    } else if chance(rng, config.error_per_mille) {
        Outcome::Error
    } else {
        Outcome::Serve {
            lose_reply: write && chance(rng, config.lost_reply_per_mille),
        }
    };
    Decision { delay_ms, outcome }
}

/// The state of one router's fault layer.
#[derive(Clone)]
struct FaultGate {
    service: Service,
    faults: StorageFaults,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl FaultGate {
    fn new(service: Service, faults: StorageFaults, rng_seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
        rng.set_stream(service.stream());
        FaultGate {
            service,
            faults,
            rng: Arc::new(Mutex::new(rng)),
        }
    }
}

async fn fault_layer(State(gate): State<FaultGate>, request: Request, next: Next) -> Response {
    let config = gate.faults.config();
    if config == FaultConfig::default() {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let write = gate.service.is_write(&method, &path);
    let decision = decide(&config, write, &mut lock(&gate.rng));
    let service = gate.service.name();
    if decision.delay_ms > 0 {
        tracing::info!(
            "{service} fault: {method} {path} slowed by {} ms",
            decision.delay_ms
        );
        tokio::time::sleep(std::time::Duration::from_millis(decision.delay_ms)).await;
    }
    match decision.outcome {
        Outcome::Throttled => {
            tracing::info!("{service} fault: {method} {path} throttled");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                gate.service.throttled_body(),
            )
                .into_response()
        }
        Outcome::Error => {
            tracing::info!("{service} fault: {method} {path} answered 503");
            (StatusCode::SERVICE_UNAVAILABLE, INJECTED_ERROR_BODY).into_response()
        }
        Outcome::Serve { lose_reply: false } => next.run(request).await,
        Outcome::Serve { lose_reply: true } => {
            let done = next.run(request).await;
            tracing::info!(
                "{service} fault: {method} {path} carried out ({}), reply lost",
                done.status().as_u16()
            );
            (StatusCode::INTERNAL_SERVER_ERROR, REPLY_LOST_BODY).into_response()
        }
    }
}

fn storage_error(error: StorageError) -> Response {
    let status = match error {
        StorageError::AlreadyExists(_) => StatusCode::CONFLICT,
        StorageError::BadName(_) => StatusCode::BAD_REQUEST,
        StorageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, error.to_string()).into_response()
}

/// The fake S3's router over a durable (host-restart-proof) store, behind the
/// fault layer of `faults`; fault draws come from `rng_seed` (a rebuilt router,
/// e.g. after a host restart, starts its draws again from the seed).
pub fn s3_router(store: Arc<MemoryBlobStore>, faults: StorageFaults, rng_seed: u64) -> Router {
    Router::new()
        .route("/objects", get(list_objects))
        .route(
            "/objects/{*name}",
            get(get_object).put(put_object).delete(delete_object),
        )
        .with_state(store)
        .layer(axum::middleware::from_fn_with_state(
            FaultGate::new(Service::S3, faults, rng_seed),
            fault_layer,
        ))
}

async fn list_objects(State(store): State<Arc<MemoryBlobStore>>) -> Response {
    match store.list().await {
        Ok(names) => Json(names).into_response(),
        Err(error) => storage_error(error),
    }
}

async fn get_object(
    State(store): State<Arc<MemoryBlobStore>>,
    Path(name): Path<String>,
) -> Response {
    match store.get(&name).await {
        Ok(Some(bytes)) => bytes.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => storage_error(error),
    }
}

async fn put_object(
    State(store): State<Arc<MemoryBlobStore>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match store.put(&name, body).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(error) => storage_error(error),
    }
}

async fn delete_object(
    State(store): State<Arc<MemoryBlobStore>>,
    Path(name): Path<String>,
) -> Response {
    match store.delete(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => storage_error(error),
    }
}

#[derive(Serialize, Deserialize)]
struct UpsertRequest {
    key: String,
    object: String,
    mime: String,
}

#[derive(Serialize, Deserialize)]
struct UpsertReply {
    version: u64,
    previous_object: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct KeyRequest {
    key: String,
}

/// The fake RDS's router over a durable index, behind the fault layer of
/// `faults` (see [`s3_router`]).
pub fn rds_router(index: Arc<MemoryKeyIndex>, faults: StorageFaults, rng_seed: u64) -> Router {
    Router::new()
        .route("/upsert", post(upsert))
        .route("/get", post(get_row))
        .route("/keys", get(list_keys))
        .route("/delete_all", post(delete_all))
        .with_state(index)
        .layer(axum::middleware::from_fn_with_state(
            FaultGate::new(Service::Rds, faults, rng_seed),
            fault_layer,
        ))
}

async fn upsert(
    State(index): State<Arc<MemoryKeyIndex>>,
    Json(request): Json<UpsertRequest>,
) -> Response {
    match index
        .upsert(&request.key, &request.object, &request.mime)
        .await
    {
        Ok(done) => Json(UpsertReply {
            version: done.version,
            previous_object: done.previous_object,
        })
        .into_response(),
        Err(error) => storage_error(error),
    }
}

async fn get_row(
    State(index): State<Arc<MemoryKeyIndex>>,
    Json(request): Json<KeyRequest>,
) -> Response {
    match index.get(&request.key).await {
        Ok(row) => Json(row).into_response(),
        Err(error) => storage_error(error),
    }
}

async fn list_keys(State(index): State<Arc<MemoryKeyIndex>>) -> Response {
    match index.list().await {
        Ok(keys) => Json(keys).into_response(),
        Err(error) => storage_error(error),
    }
}

async fn delete_all(State(index): State<Arc<MemoryKeyIndex>>) -> Response {
    match index.delete_all().await {
        Ok(rows) => Json(rows).into_response(),
        Err(error) => storage_error(error),
    }
}

fn unavailable(error: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

async fn call(
    client: &HttpClient,
    method: Method,
    addr: &str,
    path: &str,
    body: Bytes,
) -> StorageResult<Reply> {
    let headers = [(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    )];
    client
        .send_with_timeout(method, addr, path, &headers, body, STORAGE_TIMEOUT_MS)
        .await
        .map_err(unavailable)
}

/// Any answer but a success is `Unavailable` (503s, lost replies, ...).
fn success(service: &str, reply: Reply) -> StorageResult<Reply> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(unavailable(format!("{service} answered {}", reply.status)))
    }
}

/// A success whose body is the expected JSON.
fn json_reply<T: serde::de::DeserializeOwned>(service: &str, reply: Reply) -> StorageResult<T> {
    let reply = success(service, reply)?;
    serde_json::from_slice(&reply.body)
        .map_err(|error| unavailable(format!("{service} answered bad JSON: {error}")))
}

/// The front-end's client of the fake S3. Names are checked before they are sent,
/// as every blob store refuses a bad name with `BadName`.
pub struct RemoteBlobStore {
    pub client: HttpClient,
    pub addr: String,
}

#[async_trait]
impl BlobStore for RemoteBlobStore {
    async fn put(&self, name: &str, bytes: Bytes) -> StorageResult<()> {
        validate_object_name(name)?;
        let reply = call(
            &self.client,
            Method::PUT,
            &self.addr,
            &format!("/objects/{name}"),
            bytes,
        )
        .await?;
        match reply.status {
            StatusCode::CREATED => Ok(()),
            StatusCode::CONFLICT => Err(StorageError::AlreadyExists(name.to_owned())),
            StatusCode::BAD_REQUEST => Err(StorageError::BadName(name.to_owned())),
            status => Err(unavailable(format!("s3 answered {status}"))),
        }
    }

    async fn get(&self, name: &str) -> StorageResult<Option<Bytes>> {
        validate_object_name(name)?;
        let reply = call(
            &self.client,
            Method::GET,
            &self.addr,
            &format!("/objects/{name}"),
            Bytes::new(),
        )
        .await?;
        match reply.status {
            StatusCode::OK => Ok(Some(reply.body)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::BAD_REQUEST => Err(StorageError::BadName(name.to_owned())),
            status => Err(unavailable(format!("s3 answered {status}"))),
        }
    }

    async fn delete(&self, name: &str) -> StorageResult<()> {
        validate_object_name(name)?;
        let reply = call(
            &self.client,
            Method::DELETE,
            &self.addr,
            &format!("/objects/{name}"),
            Bytes::new(),
        )
        .await?;
        match reply.status {
            StatusCode::BAD_REQUEST => Err(StorageError::BadName(name.to_owned())),
            _ => success("s3", reply).map(drop),
        }
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        let reply = call(
            &self.client,
            Method::GET,
            &self.addr,
            "/objects",
            Bytes::new(),
        )
        .await?;
        json_reply("s3", reply)
    }
}

/// The front-end's client of the fake RDS.
pub struct RemoteKeyIndex {
    pub client: HttpClient,
    pub addr: String,
}

fn json_body<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("requests serialize"))
}

#[async_trait]
impl KeyIndex for RemoteKeyIndex {
    async fn upsert(&self, key: &str, object: &str, mime: &str) -> StorageResult<Upserted> {
        let body = json_body(&UpsertRequest {
            key: key.to_owned(),
            object: object.to_owned(),
            mime: mime.to_owned(),
        });
        let reply = call(&self.client, Method::POST, &self.addr, "/upsert", body).await?;
        let done: UpsertReply = json_reply("rds", reply)?;
        Ok(Upserted {
            version: done.version,
            previous_object: done.previous_object,
        })
    }

    async fn get(&self, key: &str) -> StorageResult<Option<IndexRow>> {
        let body = json_body(&KeyRequest {
            key: key.to_owned(),
        });
        let reply = call(&self.client, Method::POST, &self.addr, "/get", body).await?;
        json_reply("rds", reply)
    }

    async fn list(&self) -> StorageResult<Vec<String>> {
        let reply = call(&self.client, Method::GET, &self.addr, "/keys", Bytes::new()).await?;
        json_reply("rds", reply)
    }

    async fn delete_all(&self) -> StorageResult<Vec<IndexRow>> {
        let reply = call(
            &self.client,
            Method::POST,
            &self.addr,
            "/delete_all",
            Bytes::new(),
        )
        .await?;
        json_reply("rds", reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn a_healthy_config_draws_nothing() {
        let mut rng = rng();
        for write in [false, true] {
            let decision = decide(&FaultConfig::default(), write, &mut rng);
            assert_eq!(
                decision,
                Decision {
                    delay_ms: 0,
                    outcome: Outcome::Serve { lose_reply: false }
                }
            );
        }
        assert_eq!(rng.get_word_pos(), 0, "no random word was used");
    }

    #[test]
    fn slow_delays_are_heavy_tailed_and_bounded() {
        let mut rng = rng();
        let max_ms = 1_000;
        let mut delays: Vec<u64> = (0..10_000)
            .map(|_| slow_delay_ms(&mut rng, max_ms))
            .collect();
        delays.sort_unstable();
        assert!(delays.iter().all(|d| *d <= max_ms));
        let median = delays[delays.len() / 2];
        assert!(median < max_ms / 10, "mostly small: median {median} ms");
        let near_max = delays.iter().filter(|d| **d >= max_ms * 9 / 10).count();
        assert!(
            (100..1_000).contains(&near_max),
            "sometimes near the max: {near_max} of 10000"
        );
        assert_eq!(slow_delay_ms(&mut rng, 0), 0);
    }

    #[test]
    fn throttling_wins_and_lost_replies_hit_only_writes() {
        let mut rng = rng();
        let throttled = FaultConfig {
            throttled: true,
            error_per_mille: PER_MILLE,
            lost_reply_per_mille: PER_MILLE,
            ..FaultConfig::default()
        };
        assert_eq!(
            decide(&throttled, true, &mut rng).outcome,
            Outcome::Throttled
        );
        let lossy = FaultConfig {
            lost_reply_per_mille: PER_MILLE,
            ..FaultConfig::default()
        };
        assert_eq!(
            decide(&lossy, true, &mut rng).outcome,
            Outcome::Serve { lose_reply: true }
        );
        assert_eq!(
            decide(&lossy, false, &mut rng).outcome,
            Outcome::Serve { lose_reply: false }
        );
    }

    #[test]
    fn error_rates_are_per_mille() {
        let mut rng = rng();
        let config = FaultConfig {
            error_per_mille: 250,
            ..FaultConfig::default()
        };
        let errors = (0..4_000)
            .filter(|_| decide(&config, false, &mut rng).outcome == Outcome::Error)
            .count();
        assert!(
            (800..1_200).contains(&errors),
            "{errors} of 4000 at 250 per mille"
        );
    }

    #[test]
    fn the_controller_caps_rates_and_heals() {
        let faults = StorageFaults::default();
        assert!(faults.is_healthy());
        let shared = faults.clone();
        shared.set_error_per_mille(5_000);
        shared.set_lost_reply_per_mille(2_000);
        shared.set_slow(100);
        shared.set_throttled(true);
        assert_eq!(
            faults.config(),
            FaultConfig {
                slow_extra_ms_max: 100,
                error_per_mille: PER_MILLE,
                throttled: true,
                lost_reply_per_mille: PER_MILLE,
            },
            "clones share one controller"
        );
        faults.heal();
        assert!(shared.is_healthy());
    }

    #[test]
    fn writes_are_puts_deletes_upserts_and_delete_all() {
        assert!(Service::S3.is_write(&Method::PUT, "/objects/a"));
        assert!(Service::S3.is_write(&Method::DELETE, "/objects/a"));
        assert!(!Service::S3.is_write(&Method::GET, "/objects/a"));
        assert!(Service::Rds.is_write(&Method::POST, "/upsert"));
        assert!(Service::Rds.is_write(&Method::POST, "/delete_all"));
        assert!(!Service::Rds.is_write(&Method::POST, "/get"));
        assert!(!Service::Rds.is_write(&Method::GET, "/keys"));
    }
}
