//! The random client workload shared by the load scenarios: uploads, re-uploads and
//! reads of a small hot key set (some uploads retried after a short timeout, some
//! read back at once), administrative calls (clears, listings, cache settings),
//! until told to stop; then the end-state checks.

use memring::cache::store::Policy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::{Invariant, Violation};
use crate::driver::Driver;
use crate::history::Outcome;

/// Shape of the workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub keys: usize,
    /// Out of 100: the share of uploads.
    pub upload_percent: u32,
    pub image_bytes: usize,
    /// Pause between operations, up to this.
    pub think_ms_max: u64,
    /// Out of 100: uploads read back by the same client at once.
    pub read_back_percent: u32,
    /// Out of 100: uploads sent with a short timeout and sent again if it passes.
    pub retry_percent: u32,
    /// The short timeout of those uploads.
    pub first_timeout_ms: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            keys: 12,
            upload_percent: 30,
            image_bytes: 2_048,
            think_ms_max: 30,
            read_back_percent: 30,
            retry_percent: 0,
            first_timeout_ms: 1_500,
        }
    }
}

/// The administrative calls a control client mixes in: weights out of 100 for
/// each call, and the pause between calls.
#[derive(Clone, Copy, Debug)]
pub struct AdminMix {
    pub clear_data: u32,
    pub clear_cache: u32,
    pub list_keys: u32,
    pub config: u32,
    pub pause_ms_min: u64,
    pub pause_ms_max: u64,
}

impl AdminMix {
    pub fn everyday() -> Self {
        AdminMix {
            clear_data: 10,
            clear_cache: 20,
            list_keys: 50,
            config: 20,
            pause_ms_min: 1_000,
            pause_ms_max: 6_000,
        }
    }
}

/// Administrative calls until `stop`.
pub async fn admin_loop(driver: Driver, seed: u64, mix: AdminMix, stop: Arc<AtomicBool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xad_0417);
    while !stop.load(Ordering::Relaxed) {
        let pause = rng.gen_range(mix.pause_ms_min..=mix.pause_ms_max);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let total = mix.clear_data + mix.clear_cache + mix.list_keys + mix.config;
        let mut pick = rng.gen_range(0..total.max(1));
        if pick < mix.clear_data {
            driver.clear_data().await;
            continue;
        }
        pick -= mix.clear_data;
        if pick < mix.clear_cache {
            driver.clear_cache().await;
            continue;
        }
        pick -= mix.clear_cache;
        if pick < mix.list_keys {
            driver.list_keys().await;
            continue;
        }
        let capacity_mb = [0.008, 0.02, 0.05, 1.0][rng.gen_range(0..4)];
        let policy = if rng.gen_bool(0.5) {
            Policy::Lru
        } else {
            Policy::Rr
        };
        driver.set_cache_config(capacity_mb, policy).await;
    }
}

pub fn key_name(index: usize) -> String {
    format!("key-{index}")
}

/// One client's loop. Generations are unique across clients: client `c` uses
/// `c * 1_000_000 + n`.
pub async fn client_loop(
    driver: Driver,
    client_index: u64,
    seed: u64,
    workload: Workload,
    stop: Arc<AtomicBool>,
) {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (client_index.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut next_generation = client_index * 1_000_000 + 1;
    while !stop.load(Ordering::Relaxed) {
        // Skewed: half the operations go to the three hottest keys.
        let index = if rng.gen_bool(0.5) {
            rng.gen_range(0..workload.keys.min(3))
        } else {
            rng.gen_range(0..workload.keys)
        };
        let key = key_name(index);
        if rng.gen_range(0..100) < workload.upload_percent {
            let outcome = if rng.gen_range(0..100) < workload.retry_percent {
                driver
                    .upload_with_retry(
                        &key,
                        next_generation,
                        workload.image_bytes,
                        workload.first_timeout_ms,
                    )
                    .await
            } else {
                driver
                    .upload(&key, next_generation, workload.image_bytes)
                    .await
            };
            next_generation += 1;
            if outcome == Outcome::Uploaded && rng.gen_range(0..100) < workload.read_back_percent {
                driver.read(&key, false).await;
            }
        } else {
            driver.read(&key, false).await;
        }
        let pause = rng.gen_range(0..=workload.think_ms_max);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// After the run: every key is read, retrying failures for up to `limit_ms`; the
/// last attempt of each is a final check for the checker.
pub async fn final_reads(driver: &Driver, keys: usize, limit_ms: u64) {
    let keys: Vec<String> = (0..keys).map(key_name).collect();
    final_reads_of(driver, &keys, limit_ms).await;
}

/// [`final_reads`] of the keys named.
pub async fn final_reads_of(driver: &Driver, keys: &[String], limit_ms: u64) {
    let started = crate::history::now_ms();
    for key in keys {
        let key = key.as_str();
        loop {
            let last_chance = crate::history::now_ms() - started >= limit_ms;
            let outcome = driver.read(key, true).await;
            if !matches!(outcome, Outcome::Failed(_)) || last_chance {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Retried final reads that failed before a later one succeeded are not final.
pub fn keep_last_final_reads(ops: &mut [crate::history::Op]) {
    let mut seen = std::collections::BTreeSet::new();
    for op in ops.iter_mut().rev() {
        if op.final_check && !seen.insert(op.kind.key().unwrap_or_default().to_owned()) {
            op.final_check = false;
        }
    }
}

/// How long after healing the front-end and the manager may take to agree.
pub const CONVERGENCE_MS_MAX: u64 = 30_000;

/// Checks that the front-end and the manager agree on the pool, of `size` nodes if
/// given, within [`CONVERGENCE_MS_MAX`].
pub async fn check_pool(driver: &Driver, size: Option<usize>, problems: &mut Vec<Violation>) {
    let started = crate::history::now_ms();
    let (mut manager, mut frontend) = (None, None);
    while crate::history::now_ms() - started < CONVERGENCE_MS_MAX {
        manager = driver.manager_pool().await;
        frontend = driver.frontend_pool().await;
        let agreed = match (&manager, &frontend) {
            (Some(m), Some(f)) => {
                let (mut m, mut f) = (m.clone(), f.clone());
                m.sort();
                f.sort();
                size.is_none_or(|size| m.len() == size) && m == f
            }
            _ => false,
        };
        if agreed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    problems.push(Violation {
        invariant: Invariant::Liveness,
        message: format!(
            "pool not converged within {CONVERGENCE_MS_MAX} ms: asked for {size:?} nodes, manager has {manager:?}, front-end routes by {frontend:?}"
        ),
        op: None,
    });
}

/// Checks that the manager's totals equal the sum of the pool nodes' counters once
/// traffic has stopped for more than one reporting period.
pub async fn check_stats(driver: &Driver, stats_interval_ms: u64, problems: &mut Vec<Violation>) {
    tokio::time::sleep(Duration::from_millis(stats_interval_ms * 2 + 100)).await;
    let Some(pool) = driver.manager_pool().await else {
        problems.push(Violation {
            invariant: Invariant::Statistics,
            message: "no pool from the manager".into(),
            op: None,
        });
        return;
    };
    let mut gets = 0;
    let mut hits = 0;
    for node in &pool {
        match driver.node_stats(node).await {
            Some(stats) => {
                gets += stats.gets;
                hits += stats.hits;
            }
            None => {
                problems.push(Violation {
                    invariant: Invariant::Statistics,
                    message: format!("no counters from node {node}"),
                    op: None,
                });
                return;
            }
        }
    }
    let Some(aggregate) = driver.aggregate_stats().await else {
        problems.push(Violation {
            invariant: Invariant::Statistics,
            message: "no aggregate statistics from the manager".into(),
            op: None,
        });
        return;
    };
    let (m_gets, m_hits) = (aggregate.current.gets, aggregate.current.hits);
    if m_gets != gets || m_hits != hits {
        problems.push(Violation {
            invariant: Invariant::Statistics,
            message: format!("manager reports gets={m_gets:?} hits={m_hits:?}, nodes sum to gets={gets} hits={hits}"),
            op: None,
        });
    }
}

/// After healing: quarantine ends within [`CONVERGENCE_MS_MAX`], and a second pass
/// of reads over the keys finds the cache working again (at least one hit).
pub async fn check_recovery(driver: &Driver, keys: usize, problems: &mut Vec<Violation>) {
    let started = crate::history::now_ms();
    let mut quarantined = None;
    while crate::history::now_ms() - started < CONVERGENCE_MS_MAX {
        quarantined = driver.quarantined().await;
        if quarantined.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !quarantined.as_ref().is_some_and(Vec::is_empty) {
        problems.push(Violation {
            invariant: Invariant::Liveness,
            message: format!(
                "quarantine did not end within {CONVERGENCE_MS_MAX} ms of healing: {quarantined:?}"
            ),
            op: None,
        });
        return;
    }
    // One key that exists is read until it is served from the cache again.
    for index in 0..keys {
        let key = key_name(index);
        if !matches!(driver.read(&key, false).await, Outcome::Read(Some(_))) {
            continue;
        }
        for _ in 0..5 {
            // The fill runs in the background.
            tokio::time::sleep(Duration::from_millis(300)).await;
            driver.read(&key, false).await;
            let last = driver.history.snapshot().last().map(|op| op.cache_hit);
            if last == Some(Some(true)) {
                return;
            }
        }
        problems.push(Violation {
            invariant: Invariant::Liveness,
            message: format!("the cache did not come back after healing: {key} never hit"),
            op: None,
        });
        return;
    }
}

/// Without faults, the nodes' hits add up to the hits the clients saw.
pub async fn check_client_hits(driver: &Driver, slots: &[String], problems: &mut Vec<Violation>) {
    let mut node_hits = 0;
    for slot in slots {
        match driver.node_stats(slot).await {
            Some(stats) => node_hits += stats.hits,
            None => {
                problems.push(Violation {
                    invariant: Invariant::Statistics,
                    message: format!("no counters from node {slot}"),
                    op: None,
                });
                return;
            }
        }
    }
    let client_hits = driver
        .history
        .snapshot()
        .iter()
        .filter(|op| op.cache_hit == Some(true))
        .count() as u64;
    // Hits the front-end threw away (an upload of the key began meanwhile).
    let discarded = driver.discarded_hits().await.unwrap_or(u64::MAX);
    if node_hits != client_hits.saturating_add(discarded) {
        problems.push(Violation {
            invariant: Invariant::Statistics,
            message: format!(
                "the nodes counted {node_hits} hits; the clients saw {client_hits} and the front-end discarded {discarded}"
            ),
            op: None,
        });
    }
}
