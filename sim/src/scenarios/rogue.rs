//! `rogue`: a host inside the network that holds no token attacks the system
//! while two clients upload and read and the pool changes through the manager.
//!
//! The attacks are the probe's findings (issue `hardening`): a notify naming a
//! pool of its own with the largest epoch (rogue notify); puts of forged images
//! with the largest version, deletes that raise a key's floor to the top, a
//! capacity of 0, clears and move orders sent to the nodes (forged puts); the
//! hand-over callback; resizes and clears. Half are sent with no token, half with
//! a wrong one. Every one must be refused with 401. One forged put or rogue notify
//! in four comes from an insider instead: it holds the cluster token but not the
//! node's fence, or names a pool that is not the manager's, and must be refused
//! with 409. The checker must see no stale or foreign image and a pool that
//! follows the manager.

use memring::wire::change::Change;
use memring::wire::{headers, paths};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use memring::net::client::HttpClient;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{problem, Harness, Problems};
use super::workload::{check_pool, final_reads, key_name, Workload};
use crate::checker::Invariant;
use crate::context::{Run, RunOutput};
use crate::world::{sim_client, WorldSpec, FRONTEND_PORT, MANAGER_PORT, NODE_PORT};

/// How long the attacks and the resizes go on, in simulated ms.
const ATTACK_WINDOW_MS: u64 = 40_000;
/// Pause between two attacks, in ms (drawn).
const ATTACK_PAUSE_MS: (u64, u64) = (50, 400);

/// One forged call.
struct Attack {
    what: &'static str,
    method: Method,
    addr: String,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

fn json_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))]
}

/// A forged call of kind `kind` against the node `node`, about key `key`.
fn attack(kind: u32, node: &str, key: &str, insider: bool) -> Attack {
    let frontend = format!("frontend:{FRONTEND_PORT}");
    let manager = format!("manager:{MANAGER_PORT}");
    let node_addr = format!("{node}:{NODE_PORT}");
    let item = paths::item_path(key);
    let json = |value: serde_json::Value| Bytes::from(value.to_string());
    match kind {
        ROGUE_NOTIFY => Attack {
            what: "rogue notify",
            method: Method::POST,
            addr: frontend,
            path: paths::NOTIFY.into(),
            headers: json_headers(),
            // An outsider names the largest epoch; an insider one the front-end
            // accepts (a larger one is refused as malformed before anything else).
            body: json(serde_json::json!({
                "node_ip": [format!("rogue:{NODE_PORT}")],
                "mode": "manual",
                "change": "increase",
                "epoch": if insider { memring::limits::EPOCH_MAX } else { u64::MAX },
            })),
        },
        FORGED_PUT => Attack {
            what: "forged put",
            method: Method::PUT,
            addr: node_addr,
            path: item,
            headers: vec![
                (CONTENT_TYPE, HeaderValue::from_static("text/html")),
                (
                    HeaderName::from_static(headers::VERSION),
                    HeaderValue::from(u64::MAX),
                ),
                (
                    HeaderName::from_static(headers::FENCE),
                    HeaderValue::from_static("1.0.0"),
                ),
            ],
            body: Bytes::from_static(b"<script>forged</script>"),
        },
        2 => Attack {
            what: "floor raised to the top",
            method: Method::DELETE,
            addr: node_addr,
            path: format!("{item}?version={}", u64::MAX),
            headers: Vec::new(),
            body: Bytes::new(),
        },
        3 => Attack {
            what: "capacity 0",
            method: Method::POST,
            addr: node_addr,
            path: paths::NODE_CONFIG.into(),
            headers: json_headers(),
            body: json(serde_json::json!({"capacity": 0, "policy": "lru"})),
        },
        4 => Attack {
            what: "node cleared",
            method: Method::DELETE,
            addr: node_addr,
            path: paths::NODE_CLEAR.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        },
        5 => Attack {
            what: "move order to a rogue address",
            method: Method::POST,
            addr: node_addr,
            path: paths::MOVE_KEYS.into(),
            headers: json_headers(),
            body: json(serde_json::json!({
                "mapping": {"0": format!("rogue:{NODE_PORT}")},
                "manager_port": 9,
            })),
        },
        6 => Attack {
            what: "hand-over callback",
            method: Method::POST,
            addr: manager.clone(),
            path: paths::MOVE_DONE.into(),
            headers: json_headers(),
            body: json(serde_json::json!({"node": node})),
        },
        7 => Attack {
            what: "resize",
            method: Method::POST,
            addr: manager,
            path: paths::POOLSIZE_MANUAL.into(),
            headers: json_headers(),
            body: json(serde_json::json!({"change": "increase"})),
        },
        _ => Attack {
            what: "data cleared",
            method: Method::DELETE,
            addr: frontend,
            path: paths::CLEAR_DATA.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        },
    }
}

/// The kind of [`attack`] that is a rogue notify.
const ROGUE_NOTIFY: u32 = 0;
/// The kind of [`attack`] that is a forged put.
const FORGED_PUT: u32 = 1;

/// Attacks until the window ends; any answer but the expected refusal is a
/// problem.
async fn attack_loop(seed: u64, slots: Vec<String>, problems: Problems) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x2064e);
    let (bare, wrong) = (sim_client(5_000), sim_client(5_000));
    let wrong: HttpClient = wrong
        .with_default_header(
            HeaderName::from_static(headers::CLUSTER_TOKEN),
            HeaderValue::from_static("not-the-cluster-token-0000"),
        )
        .with_default_header(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer not-the-admin-token-0000"),
        );
    let inside = sim_client(5_000).with_default_header(
        HeaderName::from_static(headers::CLUSTER_TOKEN),
        HeaderValue::from_static(crate::world::CLUSTER_TOKEN),
    );
    let mut refused = 0;
    while crate::history::now_ms() < ATTACK_WINDOW_MS {
        tokio::time::sleep(Duration::from_millis(
            rng.gen_range(ATTACK_PAUSE_MS.0..ATTACK_PAUSE_MS.1),
        ))
        .await;
        let node = &slots[rng.gen_range(0..slots.len())];
        let key = key_name(rng.gen_range(0..4));
        let kind = rng.gen_range(0..9);
        // An insider's forged put (the cluster token, a made-up fence) or rogue
        // notify (the cluster token, a pool that is not the manager's).
        let insider = matches!(kind, FORGED_PUT | ROGUE_NOTIFY) && rng.gen_bool(0.25);
        let attack = attack(kind, node, &key, insider);
        let (client, expected) = if insider {
            (&inside, StatusCode::CONFLICT)
        } else if rng.gen_bool(0.5) {
            (&bare, StatusCode::UNAUTHORIZED)
        } else {
            (&wrong, StatusCode::UNAUTHORIZED)
        };
        let reply = client
            .send(
                attack.method.clone(),
                &attack.addr,
                &attack.path,
                &attack.headers,
                attack.body.clone(),
            )
            .await;
        match reply {
            Ok(reply) if reply.status == expected => refused += 1,
            Ok(reply) => problem(
                &problems,
                Invariant::Guarded,
                format!(
                    "{} ({} {}{}{}) was answered {}, not {expected}",
                    attack.what,
                    attack.method,
                    attack.addr,
                    attack.path,
                    if insider {
                        ", with the cluster token but not the manager's say"
                    } else {
                        ", without the right token"
                    },
                    reply.status
                ),
            ),
            // No fault is injected, but a call may still time out under load.
            Err(_) => {}
        }
    }
    refused
}

pub fn run(run: &Run) -> RunOutput {
    run_in(run, WorldSpec::randomized(run.seed))
}

/// The scenario in the world `spec`.
pub fn run_in(run: &Run, spec: WorldSpec) -> RunOutput {
    let describe = spec.describe();
    let slots = spec.slots.clone();
    let mut harness = Harness::new(spec);
    let workload = Workload::default();
    harness.clients(2, run.seed, workload);
    let problems = harness.problems.clone();
    let seed = run.seed;
    harness.host("rogue", move |driver| async move {
        driver.wait_ready(30_000).await;
        let refused = attack_loop(seed, slots, problems.clone()).await;
        if refused == 0 {
            problem(
                &problems,
                Invariant::Liveness,
                "no attack was answered".into(),
            );
        }
    });
    let stop = harness.stop.clone();
    let problems = harness.problems.clone();
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(23));
        driver.wait_ready(30_000).await;
        let mut size = 1;
        while crate::history::now_ms() < ATTACK_WINDOW_MS {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1_000..3_000))).await;
            let grow = size == 1 || (size < 5 && rng.gen_bool(0.6));
            let change = if grow {
                Change::Increase
            } else {
                Change::Decrease
            };
            match driver.resize(change).await {
                Ok(_) => {
                    size = if grow { size + 1 } else { size - 1 };
                }
                Err(error) => problem(
                    &problems,
                    Invariant::Liveness,
                    format!("resize {change} failed: {error}"),
                ),
            }
        }
        stop.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(
            crate::driver::CLIENT_TIMEOUT_MS + 500,
        ))
        .await;
        let mut found = Vec::new();
        final_reads(&driver, workload.keys, 30_000).await;
        check_pool(&driver, Some(size), &mut found).await;
        problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(found);
    });
    let finished = harness.run(run, Vec::new(), 0);
    let (reads, uploads, failed) = finished.counts();
    let summary = format!(
        "rogue seed {}: {} operations ({reads} reads, {uploads} uploads, {failed} failed), {} violations [{describe}]\n",
        run.seed,
        finished.ops.len(),
        finished.violations.len()
    );
    finished.output(summary)
}
