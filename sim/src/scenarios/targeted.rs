//! Targeted scenarios: each drives the system into one race or one crash that a
//! planted bug (or a regression) would turn into a violation, so that the bug is
//! caught in nearly every seed. Each is also a clean scenario of its own.
//!
//! - `rebalance-race`: uploads while the pool grows and shrinks, with delays
//!   between an upload's commit and its invalidations, and between a node's read
//!   of a moved value and its put (`stale-move`, `invalidate-stale-routing`).
//! - `eviction-race`: caches of a few images, re-uploads and delayed fills
//!   (`evict-drops-floor`).
//! - `clear-race`: `clear/data` every few hundred ms while uploads sit between
//!   their blob write and their row commit (`clear-races-upload`).
//! - `manager-power-loss`: resizes, then the manager loses power
//!   (`no-fsync`).
//! - `manager-disk-loss`: resizes, then the manager's disk is replaced
//!   (`manager-epoch-reset`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{problem, Harness, Scheduled};
use super::workload::{admin_loop, check_pool, final_reads, AdminMix, Workload};
use crate::checker::Invariant;
use crate::faults::Fault;
use crate::run::{Run, RunOutput};
use crate::world::WorldSpec;

fn summary(name: &str, run: &Run, finished: &super::harness::Finished, describe: &str) -> String {
    let (reads, uploads, failed) = finished.counts();
    format!(
        "{name} seed {}: {reads} reads, {uploads} uploads, {failed} failed, {} violations [{describe}]\n",
        run.seed,
        finished.violations.len()
    )
}

/// Waits for the end of the traffic, then checks the keys and the pool.
async fn end_checks(
    driver: &crate::driver::Driver,
    keys: usize,
    stop: &std::sync::atomic::AtomicBool,
    problems: &super::harness::Problems,
) {
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(
        crate::driver::CLIENT_TIMEOUT_MS + 2_000,
    ))
    .await;
    let mut found = Vec::new();
    final_reads(driver, keys, 30_000).await;
    check_pool(driver, None, &mut found).await;
    problems
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(found);
}

/// `rebalance-race`.
pub fn rebalance_race(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::randomized(run.seed);
    spec.cache.capacity = 8.0;
    let describe = spec.describe();
    let _hooks = run.buggify(
        &[
            "node.move.after_read",
            "upload.invalidate.before_send",
            "upload.after_commit",
        ],
        50,
    );
    let mut harness = Harness::new(spec);
    let workload = Workload {
        keys: 8,
        upload_percent: 40,
        ..Workload::default()
    };
    harness.clients(3, run.seed, workload);
    let (stop, problems, seed) = (harness.stop.clone(), harness.problems.clone(), run.seed);
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e1e);
        driver.wait_ready(30_000).await;
        let mut size = 1;
        while crate::history::now_ms() < 40_000 {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1_500))).await;
            let grow = size == 1 || (size < 5 && rng.gen_bool(0.55));
            let reply = driver
                .resize(if grow { "increase" } else { "decrease" })
                .await;
            match reply {
                Some(reply) if reply.status.is_success() => {
                    size = if grow { size + 1 } else { size - 1 };
                }
                other => problem(
                    &problems,
                    Invariant::Liveness,
                    format!(
                        "resize refused without a fault: {:?}",
                        other.map(|r| r.status)
                    ),
                ),
            }
        }
        end_checks(&driver, workload.keys, &stop, &problems).await;
    });
    let finished = harness.run(run, Vec::new(), 0);
    let text = summary("rebalance-race", run, &finished, &describe);
    finished.output(text)
}

/// `eviction-race`.
pub fn eviction_race(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::randomized(run.seed);
    // Room for three or four images per node: every fill evicts.
    spec.cache.capacity = 0.008;
    spec.floors_max = memring::cache::store::FLOORS_MAX_DEFAULT;
    let describe = spec.describe();
    let _hooks = run.buggify(&["read.before_fill"], 60);
    let mut harness = Harness::new(spec);
    let workload = Workload {
        keys: 10,
        upload_percent: 35,
        think_ms_max: 20,
        ..Workload::default()
    };
    harness.clients(3, run.seed, workload);
    let (stop, problems, seed) = (harness.stop.clone(), harness.problems.clone(), run.seed);
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xe71c);
        driver.wait_ready(30_000).await;
        // One or two nodes.
        if rng.gen_bool(0.5) {
            driver.resize("increase").await;
        }
        tokio::time::sleep(Duration::from_millis(40_000)).await;
        end_checks(&driver, workload.keys, &stop, &problems).await;
    });
    let finished = harness.run(run, Vec::new(), 0);
    let text = summary("eviction-race", run, &finished, &describe);
    finished.output(text)
}

/// `clear-race`.
pub fn clear_race(run: &Run) -> RunOutput {
    let spec = WorldSpec::randomized(run.seed);
    let describe = spec.describe();
    let _hooks = run.buggify(&["upload.before_commit"], 50);
    let mut harness = Harness::new(spec);
    let workload = Workload {
        keys: 16,
        upload_percent: 60,
        ..Workload::default()
    };
    harness.clients(3, run.seed, workload);
    let (stop, seed) = (harness.stop.clone(), run.seed);
    harness.host("admin", move |driver| async move {
        driver.wait_ready(30_000).await;
        let mix = AdminMix {
            clear_data: 80,
            clear_cache: 0,
            list_keys: 20,
            config: 0,
            pause_ms_min: 100,
            pause_ms_max: 700,
        };
        admin_loop(driver, seed, mix, stop).await;
    });
    let (stop, problems) = (harness.stop.clone(), harness.problems.clone());
    harness.host("control", move |driver| async move {
        driver.wait_ready(30_000).await;
        tokio::time::sleep(Duration::from_millis(30_000)).await;
        end_checks(&driver, workload.keys, &stop, &problems).await;
    });
    let finished = harness.run(run, Vec::new(), 0);
    let text = summary("clear-race", run, &finished, &describe);
    finished.output(text)
}

/// `manager-power-loss` and `manager-disk-loss`: resizes, then the manager
/// crashes at a random moment after the last one was acknowledged.
fn manager_crash(run: &Run, lose_disk: bool) -> RunOutput {
    let spec = WorldSpec::randomized(run.seed);
    let describe = spec.describe();
    let mut rng = ChaCha8Rng::seed_from_u64(run.seed ^ 0x3a7a);
    let resizes = rng.gen_range(2..5);
    let crash_at_ms = 16_000 + rng.gen_range(0..4_000);
    let mut harness = Harness::new(spec);
    let workload = Workload::default();
    harness.clients(2, run.seed, workload);
    let (stop, problems) = (harness.stop.clone(), harness.problems.clone());
    let acked: Arc<Mutex<Option<usize>>> = Arc::default();
    harness.host("control", move |driver| async move {
        driver.wait_ready(30_000).await;
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        for _ in 0..resizes {
            match driver.resize("increase").await {
                Some(reply) if reply.status.is_success() => {
                    let body: serde_json::Value = reply.json().unwrap_or_default();
                    *acked.lock().unwrap_or_else(|p| p.into_inner()) =
                        body["content"]["wanted"].as_u64().map(|w| w as usize);
                }
                other => problem(
                    &problems,
                    Invariant::Liveness,
                    format!("resize refused without a fault: {:?}", other.map(|r| r.status)),
                ),
            }
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
        // The crash comes and goes; then the pool must converge, and (unless the
        // disk was lost) be the size the last acknowledged resize asked for.
        while crate::history::now_ms() < crash_at_ms + 6_000 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let wanted = *acked.lock().unwrap_or_else(|p| p.into_inner());
        if !lose_disk {
            let mut last = None;
            for _ in 0..40 {
                last = driver.manager_pool().await.map(|pool| pool.len());
                if last.is_some() && last == wanted {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if last != wanted {
                problem(
                    &problems,
                    Invariant::DurableResize,
                    format!("the last acknowledged resize asked for {wanted:?} nodes; after the crash the manager has {last:?}"),
                );
            }
        }
        end_checks(&driver, workload.keys, &stop, &problems).await;
    });
    let fault = if lose_disk {
        Fault::CrashManagerLosingDisk
    } else {
        Fault::CrashManager
    };
    let schedule = vec![Scheduled {
        at_ms: crash_at_ms,
        until_ms: crash_at_ms + 3_000,
        fault,
    }];
    let finished = harness.run(run, schedule, crash_at_ms + 3_000);
    let name = if lose_disk {
        "manager-disk-loss"
    } else {
        "manager-power-loss"
    };
    let text = summary(name, run, &finished, &describe);
    finished.output(text)
}

pub fn manager_power_loss(run: &Run) -> RunOutput {
    manager_crash(run, false)
}

pub fn manager_disk_loss(run: &Run) -> RunOutput {
    manager_crash(run, true)
}
