//! `memring-sim crash`: kill the real `memring up` process with SIGKILL while
//! requests are in flight, restart it on the same data directory, and check that
//! no acknowledged upload was lost and that every listed key reads back.
//!
//! Unlike the rest of this crate this runs outside the simulation: a real process,
//! real sockets, real files and the real clock. The workload and the kill moments
//! are drawn from a ChaCha8 seeded by `--seed` and the round, but the interleavings
//! are the operating system's, so a seed does not replay a run exactly.
//!
//! Each round runs three writers (fresh keys and re-uploads of recent keys), one
//! reader, and one client that clears the data (every 20 to 150 ms), clears the
//! cache, and now and then resizes the pool through the manager. After a random
//! 200 to 1500 ms the process is killed, restarted, and checked:
//!
//! - **lost**: a key with an acknowledged upload that no `clear/data` could have
//!   erased must read 200 with an image that cannot have been committed before that
//!   upload began. A clear could have erased an upload if it had not completed when
//!   the upload was invoked (a clear in flight or unanswered at the kill counts as
//!   completed at the kill).
//! - **unreadable listed key**: every key `list_keys` lists must read 200, which
//!   catches rows naming missing blobs.
//! - **damaged**: bytes read must be an exact image of the key, of a generation
//!   that was uploaded (during the round too).
//! - **resurrected**: an image committed before an acknowledged clear began must
//!   not be served after it.

use memring::wire::change::Change;
use memring::wire::paths;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read as _, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use memring::net::client::{ClientSettings, HttpClient};
use memring::net::TokioConnector;
use memring::wire::form::upload_form;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::history::{generation_of, image_bytes};

/// Timeout of every workload and check call.
const CALL_TIMEOUT_MS: u64 = 5_000;
/// Timeout of one readiness probe.
const PROBE_TIMEOUT_MS: u64 = 1_000;
/// Pause between readiness probes.
const PROBE_PAUSE_MS: u64 = 50;
/// How long a (re)started process may take to answer `/healthz` with 200.
const READY_TIMEOUT_MS: u64 = 60_000;
/// Starts tried before giving up (a chosen port may have been taken meanwhile).
const START_ATTEMPTS_MAX: u32 = 3;
/// Attempts at reading one key in the check (transport errors and 5xx only).
const CHECK_ATTEMPTS_MAX: u32 = 3;
/// Pause between those attempts.
const CHECK_RETRY_PAUSE_MS: u64 = 200;
/// Attempts at finding free ports.
const PORT_PICK_ATTEMPTS_MAX: u32 = 500;
/// Operations one client may start in a round (it is stopped at the kill anyway).
const CLIENT_OPS_MAX: u64 = 100_000;
/// A client stops on its own this long after the kill moment, whatever happens.
const CLIENT_OVERRUN_MS: u64 = 10_000;
/// Node slots and cache size given to `memring up`.
const NODE_SLOTS: u16 = 3;
const CAPACITY_MB: u32 = 1;
/// Image sizes.
const IMAGE_SIZE_BYTES_MIN: usize = 64;
const IMAGE_SIZE_BYTES_MAX: usize = 4_096;
/// Re-uploads pick among this many most recent keys.
const RECENT_KEYS_MAX: usize = 64;
/// Chance that a writer uploads a fresh key rather than a recent one.
const FRESH_KEY_PROBABILITY: f64 = 0.4;
/// The clearing client's pause between calls.
const CHAOS_PAUSE_MS_MIN: u64 = 20;
const CHAOS_PAUSE_MS_MAX: u64 = 150;
/// Violations kept in the report (all are counted).
const VIOLATIONS_KEPT_MAX: usize = 100;
/// Bytes of the process log shown when it does not come back.
const LOG_TAIL_BYTES: u64 = 4_096;
/// Lowest port picked; the highest is just below the ephemeral range.
const PORT_LOW: u16 = 10_000;

/// What to run.
#[derive(Clone, Debug)]
pub struct CrashConfig {
    pub rounds: u64,
    pub seed: u64,
    /// The `memring` executable.
    pub memring: PathBuf,
    /// Keep the data directory and the process logs (they are kept on failure too).
    pub keep: bool,
    /// The load lasts a random time in this range before the kill.
    pub round_ms_min: u64,
    pub round_ms_max: u64,
}

impl CrashConfig {
    /// The command's defaults: rounds of 200 to 1500 ms.
    pub fn new(rounds: u64, seed: u64, memring: PathBuf) -> Self {
        CrashConfig {
            rounds,
            seed,
            memring,
            keep: false,
            round_ms_min: 200,
            round_ms_max: 1_500,
        }
    }
}

/// The `memring` executable next to the current one (`target/<profile>/memring`).
pub fn default_memring_path() -> io::Result<PathBuf> {
    let current = std::env::current_exe()?;
    let dir = current
        .parent()
        .ok_or_else(|| io::Error::other("the current executable has no directory"))?;
    Ok(dir.join(format!("memring{}", std::env::consts::EXE_SUFFIX)))
}

/// The figures of a run.
#[derive(Debug, Default)]
pub struct CrashReport {
    pub rounds: u64,
    pub kills: u64,
    pub uploads: u64,
    pub acknowledged_uploads: u64,
    pub clears: u64,
    pub acknowledged_clears: u64,
    pub cache_clears: u64,
    pub resizes: u64,
    pub reads: u64,
    pub keys_checked: u64,
    pub lost: u64,
    pub unreadable_listed: u64,
    pub damaged: u64,
    pub resurrected: u64,
    /// The process did not come back after a kill.
    pub failed_restarts: u64,
    /// The first round with a violation, and how many rounds had one.
    pub first_violation_round: Option<u64>,
    pub rounds_with_violations: u64,
    /// Every violation, up to [`VIOLATIONS_KEPT_MAX`].
    pub violations: Vec<String>,
    pub violation_count: u64,
    pub wall_ms: u64,
    /// Where the data directory and logs were kept, if they were.
    pub kept_dir: Option<PathBuf>,
}

impl CrashReport {
    pub fn passed(&self) -> bool {
        self.violation_count == 0
    }

    /// The final line.
    pub fn summary(&self) -> String {
        format!(
            "crash: {} rounds, {} acknowledged uploads, {} clears, {} lost, {} unreadable listed keys \
             ({} kills, {} uploads invoked, {} clears acknowledged, {} cache clears, {} resizes, \
             {} reads, {} keys checked, {} damaged, {} resurrected, {} failed restarts, {:.1} s)",
            self.rounds,
            self.acknowledged_uploads,
            self.clears,
            self.lost,
            self.unreadable_listed,
            self.kills,
            self.uploads,
            self.acknowledged_clears,
            self.cache_clears,
            self.resizes,
            self.reads,
            self.keys_checked,
            self.damaged,
            self.resurrected,
            self.failed_restarts,
            self.wall_ms as f64 / 1_000.0,
        )
    }

    fn violation(&mut self, round: u64, text: String) {
        self.violation_count += 1;
        if self.violations.len() < VIOLATIONS_KEPT_MAX {
            self.violations.push(format!("round {round}: {text}"));
        }
    }
}

/// One upload as the clients saw it.
#[derive(Debug)]
struct UploadOp {
    generation: u64,
    invoke: Instant,
    /// When it was answered; for one without an answer, the kill (it may have run
    /// on until then). `None` while in flight.
    end: Option<Instant>,
    acknowledged: bool,
}

/// One `DELETE /api/clear/data` as the clients saw it.
#[derive(Debug)]
struct ClearOp {
    invoke: Instant,
    end: Option<Instant>,
    acknowledged: bool,
}

/// Everything the clients did, across rounds.
#[derive(Debug, Default)]
struct Model {
    uploads: Vec<UploadOp>,
    clears: Vec<ClearOp>,
    by_key: BTreeMap<String, Vec<usize>>,
    /// Keys in the order of their first upload.
    keys: Vec<String>,
}

/// How a call ended: acknowledged, refused (4xx: it did nothing, or nothing after
/// its answer), or not answered or failed with a 5xx (it may run on until the kill).
#[derive(Clone, Copy, Debug)]
enum Answer {
    Success,
    Refused,
    None,
}

impl Model {
    fn invoke_upload(&mut self, key: &str, generation: u64) -> usize {
        let id = self.uploads.len();
        self.uploads.push(UploadOp {
            generation,
            invoke: Instant::now(),
            end: None,
            acknowledged: false,
        });
        let ids = self.by_key.entry(key.to_owned()).or_default();
        if ids.is_empty() {
            self.keys.push(key.to_owned());
        }
        ids.push(id);
        id
    }

    fn finish_upload(&mut self, id: usize, answer: Answer) {
        let op = &mut self.uploads[id];
        match answer {
            Answer::Success => {
                op.end = Some(Instant::now());
                op.acknowledged = true;
            }
            Answer::Refused => op.end = Some(Instant::now()),
            // It may still commit until the process dies: its end is the kill.
            Answer::None => {}
        }
    }

    fn invoke_clear(&mut self) -> usize {
        self.clears.push(ClearOp {
            invoke: Instant::now(),
            end: None,
            acknowledged: false,
        });
        self.clears.len() - 1
    }

    fn finish_clear(&mut self, id: usize, answer: Answer) {
        let op = &mut self.clears[id];
        match answer {
            Answer::Success => {
                op.end = Some(Instant::now());
                op.acknowledged = true;
            }
            Answer::Refused => op.end = Some(Instant::now()),
            Answer::None => {}
        }
    }

    /// Ends every operation still open at `kill`.
    fn seal(&mut self, kill: Instant) {
        for op in &mut self.uploads {
            op.end.get_or_insert(kill);
        }
        for op in &mut self.clears {
            op.end.get_or_insert(kill);
        }
    }

    fn recent_key(&self, rng: &mut ChaCha8Rng) -> Option<String> {
        let start = self.keys.len().saturating_sub(RECENT_KEYS_MAX);
        let recent = &self.keys[start..];
        if recent.is_empty() {
            None
        } else {
            Some(recent[rng.gen_range(0..recent.len())].clone())
        }
    }

    fn upload_of(&self, key: &str, generation: u64) -> Option<&UploadOp> {
        self.by_key
            .get(key)?
            .iter()
            .map(|&id| &self.uploads[id])
            .find(|op| op.generation == generation)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counters and violations of one round's clients.
#[derive(Default)]
struct RoundStats {
    reads: AtomicU64,
    reads_failed: AtomicU64,
    cache_clears: AtomicU64,
    resizes: AtomicU64,
    violations: Mutex<Vec<String>>,
}

/// The ports `memring up` listens on, the same at every start: the manager keeps
/// node ids that carry them.
#[derive(Clone, Copy, Debug)]
struct Ports {
    frontend: u16,
    manager: u16,
    node_base: u16,
}

/// The first port of the ephemeral range, so that no client connection of ours
/// holds a chosen port while the process is down.
fn ephemeral_port_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .filter(|&low: &u16| low > PORT_LOW + 1_000)
        .unwrap_or(32_768)
}

/// Picks free ports below the ephemeral range: the front-end's, the manager's and
/// [`NODE_SLOTS`] consecutive ones, each checked by binding it.
fn pick_ports() -> io::Result<Ports> {
    // Not the run's seed: two runs with one seed must not pick the same ports.
    let entropy = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(entropy ^ u64::from(std::process::id()));
    let high = ephemeral_port_low();
    let mut held: Vec<TcpListener> = Vec::new();
    let mut take = |count: u16, held: &mut Vec<TcpListener>| -> io::Result<u16> {
        for _ in 0..PORT_PICK_ATTEMPTS_MAX {
            let first = rng.gen_range(PORT_LOW..high - count);
            let bound: io::Result<Vec<TcpListener>> = (0..count)
                .map(|i| TcpListener::bind(("127.0.0.1", first + i)))
                .collect();
            if let Ok(listeners) = bound {
                held.extend(listeners);
                return Ok(first);
            }
        }
        Err(io::Error::other("no free ports found"))
    };
    let ports = Ports {
        frontend: take(1, &mut held)?,
        manager: take(1, &mut held)?,
        node_base: take(NODE_SLOTS, &mut held)?,
    };
    drop(held);
    Ok(ports)
}

/// The `memring up` process.
struct Server {
    memring: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    ports: Ports,
    child: Option<Child>,
    starts: u64,
    keep_logs: bool,
}

/// Why a start failed.
enum StartError {
    Exited(ExitStatus),
    NotReady,
}

impl Server {
    fn frontend(&self) -> String {
        format!("127.0.0.1:{}", self.ports.frontend)
    }

    fn manager(&self) -> String {
        format!("127.0.0.1:{}", self.ports.manager)
    }

    fn log_path(&self, start: u64) -> PathBuf {
        self.log_dir.join(format!("memring-{start}.log"))
    }

    fn spawn(&mut self) -> io::Result<()> {
        self.starts += 1;
        if !self.keep_logs && self.starts > 2 {
            // Logs of the last two starts are enough to explain a failure.
            let _ = std::fs::remove_file(self.log_path(self.starts - 2));
        }
        let log = File::create(self.log_path(self.starts))?;
        let ports = self.ports;
        let child = Command::new(&self.memring)
            .arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--frontend-port", &ports.frontend.to_string()])
            .args(["--manager-port", &ports.manager.to_string()])
            .args(["--node-port-base", &ports.node_base.to_string()])
            .args(["--node-slots", &NODE_SLOTS.to_string()])
            .args(["--capacity-mb", &CAPACITY_MB.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::other(format!("{}: {e}", self.memring.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the process and waits until it is ready; returns how long it took.
    async fn start(&mut self, client: &HttpClient) -> Result<Duration, String> {
        let started = Instant::now();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            self.spawn()
                .map_err(|e| format!("cannot start memring: {e}"))?;
            match self.wait_ready(client).await {
                Ok(()) => return Ok(started.elapsed()),
                Err(StartError::Exited(status)) => {
                    last = format!("memring exited with {status}");
                    self.child = None;
                }
                Err(StartError::NotReady) => {
                    self.kill();
                    last = format!("memring was not ready within {READY_TIMEOUT_MS} ms");
                }
            }
        }
        Err(format!(
            "{last} ({START_ATTEMPTS_MAX} attempts); the end of {}:\n{}",
            self.log_path(self.starts).display(),
            log_tail(&self.log_path(self.starts))
        ))
    }

    async fn wait_ready(&mut self, client: &HttpClient) -> Result<(), StartError> {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        let frontend = self.frontend();
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(StartError::Exited(status));
                }
            }
            let probe = client
                .send_with_timeout(
                    Method::GET,
                    &frontend,
                    paths::HEALTHZ,
                    &[],
                    Bytes::new(),
                    PROBE_TIMEOUT_MS,
                )
                .await;
            if matches!(probe, Ok(reply) if reply.status == StatusCode::OK) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(PROBE_PAUSE_MS)).await;
        }
        Err(StartError::NotReady)
    }

    /// SIGKILLs the process and reaps it; returns the moment it was dead.
    fn kill(&mut self) -> Instant {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is SIGKILL on unix: no clean shutdown of any kind.
            let _ = child.kill();
            let _ = child.wait();
        }
        Instant::now()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let length = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)));
    let mut tail = Vec::new();
    let _ = file.take(LOG_TAIL_BYTES).read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).into_owned()
}

/// What the clients of a round share.
#[derive(Clone)]
struct Clients {
    client: HttpClient,
    frontend: String,
    manager: String,
    model: Arc<Mutex<Model>>,
    stats: Arc<RoundStats>,
    generations: Arc<AtomicU64>,
    round: u64,
    /// Clients stop by themselves this late (they are normally aborted at the kill).
    stop_at: Instant,
}

impl Clients {
    async fn upload(&self, key: &str, size_bytes: usize) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let image = image_bytes(key, generation, size_bytes);
        let (body, content_type) = upload_form(Some(key), Some((&image, Some("image/png"))));
        let headers = [(
            CONTENT_TYPE,
            HeaderValue::from_str(&content_type).expect("the form's content type is ascii"),
        )];
        let id = lock(&self.model).invoke_upload(key, generation);
        let outcome = self
            .client
            .send(Method::POST, &self.frontend, paths::UPLOAD, &headers, body)
            .await;
        let answer = match outcome {
            Ok(reply) if reply.status == StatusCode::OK => Answer::Success,
            // A 5xx may leave work running (e.g. a commit not confirmed in time).
            Ok(reply) if reply.status.is_server_error() => Answer::None,
            Ok(_) => Answer::Refused,
            Err(_) => Answer::None,
        };
        lock(&self.model).finish_upload(id, answer);
    }

    async fn writer(self, writer: usize, mut rng: ChaCha8Rng) {
        for n in 0..CLIENT_OPS_MAX {
            if Instant::now() >= self.stop_at {
                break;
            }
            let recent = if rng.gen_bool(FRESH_KEY_PROBABILITY) {
                None
            } else {
                lock(&self.model).recent_key(&mut rng)
            };
            let key = recent.unwrap_or_else(|| format!("r{}w{writer}n{n}", self.round));
            let size_bytes = rng.gen_range(IMAGE_SIZE_BYTES_MIN..=IMAGE_SIZE_BYTES_MAX);
            self.upload(&key, size_bytes).await;
        }
    }

    async fn reader(self, mut rng: ChaCha8Rng) {
        for _ in 0..CLIENT_OPS_MAX {
            if Instant::now() >= self.stop_at {
                break;
            }
            let Some(key) = lock(&self.model).recent_key(&mut rng) else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let path = paths::image_path(&key);
            let outcome = self
                .client
                .send(Method::GET, &self.frontend, &path, &[], Bytes::new())
                .await;
            self.stats.reads.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok(reply) if reply.status == StatusCode::OK => {
                    let problem = match generation_of(&key, &reply.body) {
                        Err(why) => Some(why),
                        Ok(generation) => {
                            let model = lock(&self.model);
                            model
                                .upload_of(&key, generation)
                                .is_none()
                                .then(|| format!("generation {generation}, never uploaded"))
                        }
                    };
                    if let Some(problem) = problem {
                        lock(&self.stats.violations).push(format!(
                            "damaged: key {key:?} read during the load: expected an image of \
                             the key, read {problem}"
                        ));
                    }
                }
                Ok(reply) if reply.status == StatusCode::NOT_FOUND => {}
                _ => {
                    self.stats.reads_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    async fn clear_data(&self) {
        let id = lock(&self.model).invoke_clear();
        let outcome = self
            .client
            .send(
                Method::DELETE,
                &self.frontend,
                paths::CLEAR_DATA,
                &[],
                Bytes::new(),
            )
            .await;
        let answer = match outcome {
            Ok(reply) if reply.status == StatusCode::OK => Answer::Success,
            // A 5xx may leave work running (e.g. a commit not confirmed in time).
            Ok(reply) if reply.status.is_server_error() => Answer::None,
            Ok(_) => Answer::Refused,
            Err(_) => Answer::None,
        };
        lock(&self.model).finish_clear(id, answer);
    }

    async fn chaos(self, mut rng: ChaCha8Rng) {
        // At most one resize in flight; it runs aside as it can wait for hand-overs.
        // Dropping the set (at the abort) aborts it.
        let mut resizing: JoinSet<()> = JoinSet::new();
        for _ in 0..CLIENT_OPS_MAX {
            if Instant::now() >= self.stop_at {
                break;
            }
            let pause_ms = rng.gen_range(CHAOS_PAUSE_MS_MIN..=CHAOS_PAUSE_MS_MAX);
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            while resizing.try_join_next().is_some() {}
            let pick = rng.gen_range(0..100);
            if pick < 60 {
                self.clear_data().await;
            } else if pick < 85 {
                self.stats.cache_clears.fetch_add(1, Ordering::Relaxed);
                let _ = self
                    .client
                    .send(
                        Method::DELETE,
                        &self.frontend,
                        paths::CLEAR_CACHE,
                        &[],
                        Bytes::new(),
                    )
                    .await;
            } else if resizing.is_empty() {
                self.stats.resizes.fetch_add(1, Ordering::Relaxed);
                let change = if rng.gen_bool(0.5) {
                    Change::Increase
                } else {
                    Change::Decrease
                };
                let client = self.client.clone();
                let manager = self.manager.clone();
                resizing.spawn(async move {
                    let _ = client
                        .send_json(
                            Method::POST,
                            &manager,
                            paths::POOLSIZE_MANUAL,
                            &serde_json::json!({ "change": change }),
                        )
                        .await;
                });
            }
        }
    }
}

fn http_client() -> HttpClient {
    HttpClient::new(
        Arc::new(TokioConnector),
        ClientSettings {
            timeout_ms: CALL_TIMEOUT_MS,
            ..ClientSettings::default()
        },
    )
}

/// A read in the check, after retries.
enum KeyRead {
    Image(u64),
    Damaged(String),
    Missing,
    Failed(String),
}

async fn read_key(client: &HttpClient, frontend: &str, key: &str) -> KeyRead {
    let path = paths::image_path(key);
    let mut last = String::new();
    for attempt in 0..CHECK_ATTEMPTS_MAX {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(CHECK_RETRY_PAUSE_MS)).await;
        }
        match client
            .send(Method::GET, frontend, &path, &[], Bytes::new())
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => {
                return match generation_of(key, &reply.body) {
                    Ok(generation) => KeyRead::Image(generation),
                    Err(why) => KeyRead::Damaged(why),
                }
            }
            Ok(reply) if reply.status == StatusCode::NOT_FOUND => return KeyRead::Missing,
            Ok(reply) => {
                last = format!(
                    "status {} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            }
            Err(error) => last = error.to_string(),
        }
    }
    KeyRead::Failed(last)
}

async fn list_keys(client: &HttpClient, frontend: &str) -> Result<Vec<String>, String> {
    let mut last = String::new();
    for attempt in 0..CHECK_ATTEMPTS_MAX {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(CHECK_RETRY_PAUSE_MS)).await;
        }
        match client
            .send(Method::POST, frontend, paths::LIST_KEYS, &[], Bytes::new())
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => {
                let keys = reply
                    .json::<Value>()
                    .and_then(|value| serde_json::from_value(value.get("keys")?.clone()).ok());
                return keys.ok_or_else(|| {
                    format!(
                        "list_keys answered {}",
                        String::from_utf8_lossy(&reply.body)
                    )
                });
            }
            Ok(reply) => last = format!("list_keys answered status {}", reply.status),
            Err(error) => last = format!("list_keys failed: {error}"),
        }
    }
    Err(last)
}

/// What one round's check found.
#[derive(Default)]
struct CheckOutcome {
    keys_checked: u64,
    listed: u64,
    lost: u64,
    unreadable_listed: u64,
    damaged: u64,
    resurrected: u64,
    violations: Vec<String>,
}

/// The kinds of violation the check counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Lost,
    Unreadable,
    Damaged,
    Resurrected,
}

/// What the clears imply, once every operation has ended (sealed at the kill).
#[derive(Clone, Copy, Debug)]
struct Horizon {
    /// An upload invoked before the last clear ended could have been erased.
    clears_end: Option<Instant>,
    /// An image committed before an acknowledged clear began was erased.
    acknowledged_clear_invoke: Option<Instant>,
    epoch: Instant,
}

impl Horizon {
    fn of(model: &Model, epoch: Instant) -> Self {
        Horizon {
            clears_end: model.clears.iter().map(|c| c.end.unwrap_or(epoch)).max(),
            acknowledged_clear_invoke: model
                .clears
                .iter()
                .filter(|c| c.acknowledged)
                .map(|c| c.invoke)
                .max(),
            epoch,
        }
    }

    fn ended(&self, op: &UploadOp) -> Instant {
        op.end.unwrap_or(self.epoch)
    }

    fn erasable(&self, op: &UploadOp) -> bool {
        self.clears_end.is_some_and(|end| end > op.invoke)
    }

    fn surely_erased(&self, op: &UploadOp) -> bool {
        self.acknowledged_clear_invoke
            .is_some_and(|invoke| invoke > self.ended(op))
    }

    fn describe(&self, op: &UploadOp) -> String {
        format!(
            "generation {} (invoked at {} ms, {} at {} ms)",
            op.generation,
            op.invoke.duration_since(self.epoch).as_millis(),
            if op.acknowledged {
                "acknowledged"
            } else {
                "unacknowledged, ended"
            },
            self.ended(op).duration_since(self.epoch).as_millis(),
        )
    }
}

/// Judges what the check read of `key`, given every upload of it (`ops`) and
/// whether `list_keys` listed it.
fn judge(
    key: &str,
    ops: &[&UploadOp],
    horizon: &Horizon,
    listed: bool,
    read: &KeyRead,
) -> Option<(Verdict, String)> {
    // The acknowledged uploads that no clear can have erased.
    let kept: Vec<&UploadOp> = ops
        .iter()
        .copied()
        .filter(|op| op.acknowledged && !horizon.erasable(op))
        .collect();
    let newest_kept = kept.iter().max_by_key(|op| op.invoke);
    let expected = match newest_kept {
        Some(op) => format!("an image no older than {}", horizon.describe(op)),
        None => "any uploaded image, or 404".to_owned(),
    };
    match read {
        KeyRead::Image(generation) => {
            let Some(read_op) = ops.iter().find(|op| op.generation == *generation) else {
                return Some((
                    Verdict::Damaged,
                    format!(
                        "damaged: key {key:?}: expected {expected}, read generation \
                         {generation}, which was never uploaded"
                    ),
                ));
            };
            // Committed for sure before a kept upload began: superseded.
            if let Some(newer) = kept.iter().find(|op| horizon.ended(read_op) < op.invoke) {
                return Some((
                    Verdict::Lost,
                    format!(
                        "lost: key {key:?}: expected {expected}, read {}, which ended before \
                         {} began",
                        horizon.describe(read_op),
                        horizon.describe(newer)
                    ),
                ));
            }
            horizon.surely_erased(read_op).then(|| {
                (
                    Verdict::Resurrected,
                    format!(
                        "resurrected: key {key:?}: read {}, which ended before an acknowledged \
                         clear/data began (the newest at {} ms)",
                        horizon.describe(read_op),
                        horizon
                            .acknowledged_clear_invoke
                            .map_or(0, |i| i.duration_since(horizon.epoch).as_millis())
                    ),
                )
            })
        }
        KeyRead::Damaged(why) => Some((
            Verdict::Damaged,
            format!("damaged: key {key:?}: expected {expected}, read {why}"),
        )),
        KeyRead::Missing if listed => Some((
            Verdict::Unreadable,
            format!("unreadable listed key: {key:?} is listed but reads 404; expected {expected}"),
        )),
        KeyRead::Missing => newest_kept.map(|_| {
            (
                Verdict::Lost,
                format!("lost: key {key:?}: expected {expected}, read 404"),
            )
        }),
        KeyRead::Failed(why) if listed => Some((
            Verdict::Unreadable,
            format!("unreadable listed key: {key:?} is listed; expected {expected}, read {why}"),
        )),
        KeyRead::Failed(why) if newest_kept.is_some() => Some((
            Verdict::Lost,
            format!("lost: key {key:?}: expected {expected}, read {why}"),
        )),
        // Not listed, so it has no row: it should read 404.
        KeyRead::Failed(why) => Some((
            Verdict::Unreadable,
            format!("unreadable key: {key:?} is not listed; expected 404, read {why}"),
        )),
    }
}

/// Checks every key that may hold data, and every listed key, after a restart.
async fn check(client: &HttpClient, frontend: &str, model: &Model, epoch: Instant) -> CheckOutcome {
    let mut outcome = CheckOutcome::default();
    let listed: BTreeSet<String> = match list_keys(client, frontend).await {
        Ok(keys) => keys.into_iter().collect(),
        Err(error) => {
            outcome.unreadable_listed += 1;
            outcome
                .violations
                .push(format!("unreadable listed keys: {error}"));
            BTreeSet::new()
        }
    };
    outcome.listed = listed.len() as u64;
    let horizon = Horizon::of(model, epoch);
    // The listed keys, and every key with an upload no acknowledged clear erased.
    let mut keys: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    for (key, ids) in &model.by_key {
        if ids
            .iter()
            .any(|&id| !horizon.surely_erased(&model.uploads[id]))
        {
            keys.insert(key);
        }
    }
    for key in keys {
        outcome.keys_checked += 1;
        let ops: Vec<&UploadOp> = model
            .by_key
            .get(key)
            .map(|ids| ids.iter().map(|&id| &model.uploads[id]).collect())
            .unwrap_or_default();
        let read = read_key(client, frontend, key).await;
        if let Some((verdict, text)) = judge(key, &ops, &horizon, listed.contains(key), &read) {
            match verdict {
                Verdict::Lost => outcome.lost += 1,
                Verdict::Unreadable => outcome.unreadable_listed += 1,
                Verdict::Damaged => outcome.damaged += 1,
                Verdict::Resurrected => outcome.resurrected += 1,
            }
            outcome.violations.push(text);
        }
    }
    outcome
}

/// Runs the crash test. `Err` means it could not run at all (no executable, no
/// ports, the first start failed); a failed restart after a kill is a violation.
pub fn run(config: &CrashConfig) -> Result<CrashReport, String> {
    if config.round_ms_min == 0 || config.round_ms_min > config.round_ms_max {
        return Err("round durations must satisfy 0 < min <= max".to_owned());
    }
    if !config.memring.is_file() {
        return Err(format!(
            "no memring executable at {} (build it, or pass --memring)",
            config.memring.display()
        ));
    }
    // Real time on purpose: this drives a real process, outside the simulation.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(run_rounds(config))
}

async fn run_rounds(config: &CrashConfig) -> Result<CrashReport, String> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("memring-crash-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let data_dir = dir.path().join("data");
    let log_dir = dir.path().join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let ports = pick_ports().map_err(|e| format!("ports: {e}"))?;
    let mut server = Server {
        memring: config.memring.clone(),
        data_dir,
        log_dir,
        ports,
        child: None,
        starts: 0,
        keep_logs: config.keep,
    };
    let mut report = CrashReport::default();
    let ready_ms = server.start(&http_client()).await?.as_millis();
    println!(
        "crash: memring up on front-end {}, manager {}, nodes {}..{}, data in {}; ready in {ready_ms} ms",
        server.frontend(),
        server.manager(),
        ports.node_base,
        ports.node_base + NODE_SLOTS - 1,
        dir.path().display()
    );
    let epoch = Instant::now();
    let model = Arc::new(Mutex::new(Model::default()));
    let generations = Arc::new(AtomicU64::new(1));
    for round in 1..=config.rounds {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(round);
        let load_ms = rng.gen_range(config.round_ms_min..=config.round_ms_max);
        let kill_at = Instant::now() + Duration::from_millis(load_ms);
        // A fresh client per round: the kept-alive connections died with the process.
        let client = http_client();
        let stats = Arc::new(RoundStats::default());
        let (uploads_before, clears_before) = {
            let model = lock(&model);
            (model.uploads.len(), model.clears.len())
        };
        let clients = Clients {
            client: client.clone(),
            frontend: server.frontend(),
            manager: server.manager(),
            model: model.clone(),
            stats: stats.clone(),
            generations: generations.clone(),
            round,
            stop_at: kill_at + Duration::from_millis(CLIENT_OVERRUN_MS),
        };
        let mut tasks: JoinSet<()> = JoinSet::new();
        for writer in 0..3 {
            let rng = ChaCha8Rng::seed_from_u64(rng.gen());
            tasks.spawn(clients.clone().writer(writer, rng));
        }
        tasks.spawn(clients.clone().reader(ChaCha8Rng::seed_from_u64(rng.gen())));
        tasks.spawn(clients.clone().chaos(ChaCha8Rng::seed_from_u64(rng.gen())));
        tokio::time::sleep_until(kill_at.into()).await;
        let kill = server.kill();
        report.kills += 1;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        lock(&model).seal(kill);

        let restart = server.start(&client).await;
        let mut round_violations: Vec<String> = std::mem::take(&mut *lock(&stats.violations));
        report.damaged += round_violations.len() as u64;
        let mut line_end = String::new();
        match restart {
            Ok(took) => {
                // No client runs now: the check takes the model and puts it back.
                let taken = std::mem::take(&mut *lock(&model));
                let checked = check(&client, &server.frontend(), &taken, epoch).await;
                *lock(&model) = taken;
                report.keys_checked += checked.keys_checked;
                report.lost += checked.lost;
                report.unreadable_listed += checked.unreadable_listed;
                report.damaged += checked.damaged;
                report.resurrected += checked.resurrected;
                round_violations.extend(checked.violations);
                line_end = format!(
                    "back in {} ms, {} keys checked ({} listed)",
                    took.as_millis(),
                    checked.keys_checked,
                    checked.listed
                );
            }
            Err(error) => {
                report.failed_restarts += 1;
                round_violations.push(format!("memring did not come back after the kill: {error}"));
            }
        }
        let (uploads, acknowledged, clears, clears_acknowledged) = {
            let model = lock(&model);
            let uploads = &model.uploads[uploads_before..];
            let clears = &model.clears[clears_before..];
            (
                uploads.len() as u64,
                uploads.iter().filter(|op| op.acknowledged).count() as u64,
                clears.len() as u64,
                clears.iter().filter(|op| op.acknowledged).count() as u64,
            )
        };
        report.rounds += 1;
        report.uploads += uploads;
        report.acknowledged_uploads += acknowledged;
        report.clears += clears;
        report.acknowledged_clears += clears_acknowledged;
        report.reads += stats.reads.load(Ordering::Relaxed);
        report.cache_clears += stats.cache_clears.load(Ordering::Relaxed);
        report.resizes += stats.resizes.load(Ordering::Relaxed);
        println!(
            "round {round}: killed after {load_ms} ms; {acknowledged}/{uploads} uploads acknowledged, \
             {clears_acknowledged}/{clears} clears acknowledged, {} reads ({} failed), {} cache clears, \
             {} resizes; {line_end}: {}",
            stats.reads.load(Ordering::Relaxed),
            stats.reads_failed.load(Ordering::Relaxed),
            stats.cache_clears.load(Ordering::Relaxed),
            stats.resizes.load(Ordering::Relaxed),
            if round_violations.is_empty() {
                "ok".to_owned()
            } else {
                format!("{} violations", round_violations.len())
            }
        );
        if !round_violations.is_empty() {
            report.rounds_with_violations += 1;
            report.first_violation_round.get_or_insert(round);
            for violation in round_violations {
                println!("  {violation}");
                report.violation(round, violation);
            }
        }
        if server.child.is_none() {
            // It did not come back: later rounds cannot run.
            break;
        }
    }
    server.kill();
    report.wall_ms = started.elapsed().as_millis() as u64;
    if config.keep || !report.passed() {
        report.kept_dir = Some(dir.keep());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upload of generation `generation` from `invoke_ms` to `end_ms`.
    fn upload(
        epoch: Instant,
        generation: u64,
        invoke_ms: u64,
        end_ms: u64,
        acknowledged: bool,
    ) -> UploadOp {
        UploadOp {
            generation,
            invoke: epoch + Duration::from_millis(invoke_ms),
            end: Some(epoch + Duration::from_millis(end_ms)),
            acknowledged,
        }
    }

    fn horizon(epoch: Instant, clears: &[(u64, u64, bool)]) -> Horizon {
        let mut model = Model::default();
        for &(invoke_ms, end_ms, acknowledged) in clears {
            model.clears.push(ClearOp {
                invoke: epoch + Duration::from_millis(invoke_ms),
                end: Some(epoch + Duration::from_millis(end_ms)),
                acknowledged,
            });
        }
        Horizon::of(&model, epoch)
    }

    fn verdict(
        ops: &[UploadOp],
        horizon: &Horizon,
        listed: bool,
        read: KeyRead,
    ) -> Option<Verdict> {
        let ops: Vec<&UploadOp> = ops.iter().collect();
        judge("k", &ops, horizon, listed, &read).map(|(verdict, _)| verdict)
    }

    #[test]
    fn an_acknowledged_upload_must_survive_and_not_be_superseded_by_an_older_one() {
        let epoch = Instant::now();
        let none = horizon(epoch, &[]);
        let ops = [
            upload(epoch, 1, 0, 10, true),
            upload(epoch, 2, 20, 30, true),
        ];
        assert_eq!(verdict(&ops, &none, true, KeyRead::Image(2)), None);
        assert_eq!(
            verdict(&ops, &none, true, KeyRead::Image(1)),
            Some(Verdict::Lost)
        );
        assert_eq!(
            verdict(&ops, &none, false, KeyRead::Missing),
            Some(Verdict::Lost)
        );
        assert_eq!(
            verdict(&ops, &none, false, KeyRead::Failed("503".into())),
            Some(Verdict::Lost)
        );
        // Overlapping uploads may land in either order.
        let overlapping = [
            upload(epoch, 1, 0, 20, true),
            upload(epoch, 2, 10, 30, true),
        ];
        assert_eq!(verdict(&overlapping, &none, true, KeyRead::Image(1)), None);
        // An unacknowledged upload may have landed, up to its end.
        let unacknowledged = [
            upload(epoch, 1, 0, 10, true),
            upload(epoch, 2, 20, 90, false),
        ];
        assert_eq!(
            verdict(&unacknowledged, &none, true, KeyRead::Image(2)),
            None
        );
        assert_eq!(
            verdict(&unacknowledged, &none, true, KeyRead::Image(1)),
            None
        );
    }

    #[test]
    fn a_clear_that_may_have_run_after_an_upload_began_excuses_its_absence() {
        let epoch = Instant::now();
        let ops = [upload(epoch, 1, 0, 10, true)];
        // Acknowledged after the upload: the key is gone, and must stay gone.
        let acknowledged = horizon(epoch, &[(15, 25, true)]);
        assert_eq!(verdict(&ops, &acknowledged, false, KeyRead::Missing), None);
        assert_eq!(
            verdict(&ops, &acknowledged, true, KeyRead::Image(1)),
            Some(Verdict::Resurrected)
        );
        // In flight at the kill (ended at the kill), invoked before the upload ended:
        // either outcome.
        let in_flight = horizon(epoch, &[(5, 100, false)]);
        assert_eq!(verdict(&ops, &in_flight, false, KeyRead::Missing), None);
        assert_eq!(verdict(&ops, &in_flight, true, KeyRead::Image(1)), None);
        // Completed before the upload began: it cannot excuse anything.
        let earlier = horizon(epoch, &[(0, 0, true)]);
        let later = [upload(epoch, 1, 5, 10, true)];
        assert_eq!(
            verdict(&later, &earlier, false, KeyRead::Missing),
            Some(Verdict::Lost)
        );
    }

    #[test]
    fn listed_keys_must_read_and_bytes_must_be_an_uploaded_image() {
        let epoch = Instant::now();
        let erased = horizon(epoch, &[(15, 25, true)]);
        let ops = [
            upload(epoch, 1, 0, 10, true),
            upload(epoch, 2, 12, 20, true),
        ];
        // Everything was possibly erased, yet a listed key must read.
        assert_eq!(
            verdict(&ops, &erased, true, KeyRead::Failed("503".into())),
            Some(Verdict::Unreadable)
        );
        assert_eq!(
            verdict(&ops, &erased, true, KeyRead::Missing),
            Some(Verdict::Unreadable)
        );
        assert_eq!(
            verdict(&ops, &erased, false, KeyRead::Failed("503".into())),
            Some(Verdict::Unreadable)
        );
        assert_eq!(verdict(&ops, &erased, true, KeyRead::Image(2)), None);
        assert_eq!(
            verdict(&ops, &erased, true, KeyRead::Image(3)),
            Some(Verdict::Damaged)
        );
        assert_eq!(
            verdict(
                &ops,
                &erased,
                true,
                KeyRead::Damaged("bytes of another key".into())
            ),
            Some(Verdict::Damaged)
        );
    }

    #[test]
    fn sealing_ends_open_operations_at_the_kill() {
        let mut model = Model::default();
        let kept = model.invoke_upload("k", 1);
        model.finish_upload(kept, Answer::Success);
        let open = model.invoke_upload("k", 2);
        model.finish_upload(open, Answer::None);
        let clear = model.invoke_clear();
        let kill = Instant::now() + Duration::from_millis(50);
        model.seal(kill);
        assert_eq!(model.uploads[open].end, Some(kill));
        assert_eq!(model.clears[clear].end, Some(kill));
        assert!(model.uploads[kept].end.unwrap() < kill);
        assert_eq!(model.keys, ["k"]);
        assert_eq!(model.upload_of("k", 2).map(|op| op.generation), Some(2));
    }
}
