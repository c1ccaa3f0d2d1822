//! Targeted scenarios: each drives the system into one race or one crash that a
//! planted bug (or a regression) would turn into a violation, so that the bug is
//! caught in nearly every seed. Each is also a clean scenario of its own. The
//! race scenarios are scripted: one control client lines the race up, cycle after
//! cycle, with only the buggify points the race needs.
//!
//! - `move-race`: a late put of a moved value into a node that already holds a
//!   newer image (`stale-move`).
//! - `join-race`: uploads whose invalidations go out while the pool grows
//!   (`invalidate-stale-routing`).
//! - `eviction-race`: a late fill of an old image after the new one was cached
//!   and evicted (`evict-drops-floor`).
//! - `clear-race`: `clear/data` every few hundred ms while uploads sit between
//!   their blob write and their row commit (`clear-races-upload`).
//! - `manager-power-loss`: resizes, then the manager loses power
//!   (`no-fsync`).
//! - `manager-disk-loss`: resizes, then the manager's disk is replaced
//!   (`manager-epoch-reset`).
//! - `node-death`: a pool node crashes under load; the manager must eject it and
//!   the front-end route around it within the health-check bound, and the node
//!   must rejoin once it is back (empty, cleared before it is routed to).

use memring::wire::change::Change;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{problem, Harness, Scheduled};
use super::workload::{check_pool, final_reads, key_name, AdminMix, Workload};
use crate::checker::Invariant;
use crate::context::{Run, RunOutput};
use crate::driver::Driver;
use crate::faults::Fault;
use crate::world::WorldSpec;

fn summary(name: &str, run: &Run, finished: &super::harness::Finished, describe: &str) -> String {
    let (reads, uploads, failed) = finished.counts();
    format!(
        "{name} seed {}: {reads} reads, {uploads} uploads, {failed} failed, {} violations [{describe}]\n",
        run.seed,
        finished.violations.len()
    )
}

/// Stops the workload clients, waits for the end of the traffic, then checks the
/// keys and the pool.
async fn end_checks_after(
    driver: &Driver,
    keys: usize,
    stop: &std::sync::atomic::AtomicBool,
    problems: &super::harness::Problems,
) {
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(
        crate::driver::CLIENT_TIMEOUT_MS + 2_000,
    ))
    .await;
    end_checks(driver, keys, problems).await;
}

/// Checks the keys and the pool.
async fn end_checks(driver: &Driver, keys: usize, problems: &super::harness::Problems) {
    let mut found = Vec::new();
    final_reads(driver, keys, 30_000).await;
    check_pool(driver, None, &mut found).await;
    problems
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(found);
}

/// Uploads every key and reads it, so that the pool's owners cache it.
async fn warm(driver: &Driver, keys: usize, generation: &mut u64) {
    for index in 0..keys {
        *generation += 1;
        driver.upload(&key_name(index), *generation, 2_048).await;
    }
    for index in 0..keys {
        driver.read(&key_name(index), false).await;
    }
    // Fills run in the background.
    tokio::time::sleep(Duration::from_millis(600)).await;
}

/// Uploads a new generation of every key at once.
async fn upload_all(driver: &Driver, keys: usize, generation: &mut u64) {
    let uploads = (0..keys).map(|index| {
        *generation += 1;
        let (driver, generation) = (driver.clone(), *generation);
        async move {
            driver.upload(&key_name(index), generation, 2_048).await;
        }
    });
    let uploads: Vec<_> = uploads.collect();
    futures::future::join_all(uploads).await;
}

async fn read_all(driver: &Driver, keys: usize) {
    for index in 0..keys {
        driver.read(&key_name(index), false).await;
    }
}

/// Keys of the scripted scenarios.
const SCRIPT_KEYS: usize = 8;
/// Cycles of the scripted scenarios.
const SCRIPT_CYCLES: usize = 6;

/// `move-race`: the pool grows while every key is cached on the old owner; the
/// old owner reads each moved value and waits (buggify) before its put; meanwhile
/// every key is uploaded again and read, which fills the new owner with the new
/// image. The late put of the old image must be refused (`stale-move`).
pub fn move_race(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::randomized(run.seed);
    spec.cache.capacity = 8.0;
    // A small floor bound would refuse the late moves by their fence, which hides
    // what this scenario looks at: the floor itself.
    spec.floors_max = memring::limits::FLOORS_MAX_DEFAULT;
    let describe = spec.describe();
    let _hooks = run.buggify_only(&["node.move.after_read"], 100, 800);
    let mut harness = Harness::new(spec);
    let (problems, seed) = (harness.problems.clone(), run.seed);
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x30e);
        driver.wait_ready(30_000).await;
        let mut generation = 0;
        for _ in 0..SCRIPT_CYCLES {
            warm(&driver, SCRIPT_KEYS, &mut generation).await;
            let delay_ms = rng.gen_range(150..400);
            let grow = driver.resize(Change::Increase);
            let race = async {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                upload_all(&driver, SCRIPT_KEYS, &mut generation).await;
                read_all(&driver, SCRIPT_KEYS).await;
            };
            let (grown, ()) = tokio::join!(grow, race);
            if grown.is_err() {
                problem(
                    &problems,
                    Invariant::Liveness,
                    "a resize failed without a fault".into(),
                );
            }
            // The late moves land; then every key must read its newest image.
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            read_all(&driver, SCRIPT_KEYS).await;
            if let Err(error) = driver.resize(Change::Decrease).await {
                problem(
                    &problems,
                    Invariant::Liveness,
                    format!("a shrink failed without a fault: {error}"),
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        end_checks(&driver, SCRIPT_KEYS, &problems).await;
    });
    let finished = harness.run(run, Vec::new(), 0);
    let text = summary("move-race", run, &finished, &describe);
    finished.output(text)
}

/// `join-race`: every key is uploaded again while the pool grows; each upload's
/// invalidations wait (buggify) before they go out, so the old owner hands the old
/// image to the new node before it hears of the new one. The upload must reach
/// the new node too (`invalidate-stale-routing`).
pub fn join_race(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::randomized(run.seed);
    spec.cache.capacity = 8.0;
    spec.floors_max = memring::limits::FLOORS_MAX_DEFAULT;
    let describe = spec.describe();
    let _hooks = run.buggify_only(&["upload.invalidate.before_send"], 100, 300);
    let mut harness = Harness::new(spec);
    let (problems, seed) = (harness.problems.clone(), run.seed);
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x101);
        driver.wait_ready(30_000).await;
        let mut generation = 0;
        for _ in 0..SCRIPT_CYCLES {
            warm(&driver, SCRIPT_KEYS, &mut generation).await;
            let delay_ms = rng.gen_range(20..200);
            let uploads = upload_all(&driver, SCRIPT_KEYS, &mut generation);
            let grow = async {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                driver.resize(Change::Increase).await
            };
            let ((), grown) = tokio::join!(uploads, grow);
            if let Err(error) = grown {
                problem(
                    &problems,
                    Invariant::Liveness,
                    format!("a resize failed without a fault: {error}"),
                );
            }
            read_all(&driver, SCRIPT_KEYS).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            read_all(&driver, SCRIPT_KEYS).await;
            if let Err(error) = driver.resize(Change::Decrease).await {
                problem(
                    &problems,
                    Invariant::Liveness,
                    format!("a shrink failed without a fault: {error}"),
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        end_checks(&driver, SCRIPT_KEYS, &problems).await;
    });
    let finished = harness.run(run, Vec::new(), 0);
    let text = summary("join-race", run, &finished, &describe);
    finished.output(text)
}

/// `eviction-race`: one node with room for a few images. A read of key k
/// fills its old image late (buggify); meanwhile k is uploaded again, read (its
/// new image cached), and evicted by reads of other keys. The late fill of the
/// old image must be refused (`evict-drops-floor`).
pub fn eviction_race(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::randomized(run.seed);
    // Room for three images on the one node.
    spec.cache.capacity = 0.0065;
    spec.cache.policy = memring::cache::store::Policy::Lru;
    spec.floors_max = memring::limits::FLOORS_MAX_DEFAULT;
    let describe = spec.describe();
    let _hooks = run.buggify_only(&["read.before_fill"], 50, 2_500);
    let mut harness = Harness::new(spec);
    let problems = harness.problems.clone();
    harness.host("control", move |driver| async move {
        driver.wait_ready(30_000).await;
        let mut generation = 0;
        // Keys read once in a long while: each read of one misses and fills.
        const FILLERS: usize = 64;
        for filler in 0..FILLERS {
            generation += 1;
            driver
                .upload(&format!("filler-{filler}"), generation, 2_048)
                .await;
        }
        let mut next_filler = 0;
        let cycles = 80;
        for cycle in 0..cycles {
            let key = key_name(cycle % SCRIPT_KEYS);
            generation += 1;
            driver.upload(&key, generation, 2_048).await;
            // The fill of this read may come late: about 2.5 s after it.
            let first_read_ms = crate::history::now_ms();
            driver.read(&key, false).await;
            generation += 1;
            driver.upload(&key, generation, 2_048).await;
            driver.read(&key, false).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Keys not cached push k out (about half their fills are late).
            for _ in 0..6 {
                driver
                    .read(&format!("filler-{}", next_filler % FILLERS), false)
                    .await;
                next_filler += 1;
            }
            // Read k as the late fill lands, before later fills push it out.
            while crate::history::now_ms() < first_read_ms + 2_450 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for _ in 0..8 {
                driver.read(&key, false).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        end_checks(&driver, SCRIPT_KEYS, &problems).await;
    });
    let finished = harness.run(run, Vec::new(), 0);
    let text = summary("eviction-race", run, &finished, &describe);
    finished.output(text)
}

/// `clear-race`.
pub fn clear_race(run: &Run) -> RunOutput {
    let spec = WorldSpec::randomized(run.seed);
    let describe = spec.describe();
    // Only the point the race needs: other delays would make uploads time out,
    // and this scenario injects no fault that would excuse a failure.
    let _hooks = run.buggify_only(&["upload.before_commit"], 50, 0);
    let mut harness = Harness::new(spec);
    let workload = Workload {
        keys: 16,
        upload_percent: 60,
        ..Workload::default()
    };
    harness.clients(3, run.seed, workload);
    harness.admin(
        run.seed,
        AdminMix {
            clear_data: 80,
            clear_cache: 0,
            list_keys: 20,
            config: 0,
            pause_ms_min: 100,
            pause_ms_max: 700,
        },
    );
    let (stop, problems) = (harness.stop.clone(), harness.problems.clone());
    harness.host("control", move |driver| async move {
        driver.wait_ready(30_000).await;
        tokio::time::sleep(Duration::from_millis(30_000)).await;
        end_checks_after(&driver, workload.keys, &stop, &problems).await;
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
            match driver.resize(Change::Increase).await {
                Ok(resized) => {
                    *acked.lock().unwrap_or_else(|p| p.into_inner()) = Some(resized.wanted);
                }
                Err(error) => problem(
                    &problems,
                    Invariant::Liveness,
                    format!("resize refused without a fault: {error}"),
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
        end_checks_after(&driver, workload.keys, &stop, &problems).await;
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

/// How long the health checks may take to eject a dead node, or to take a live
/// one back: three failed checks a second apart, then the notify (virtual time).
const EJECTION_BOUND_MS: u64 = 8_000;

/// Polls `holds` every 250 ms until it is true or `bound_ms` pass; returns
/// whether it held.
async fn within<F, Fut>(bound_ms: u64, mut holds: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = crate::history::now_ms();
    loop {
        if holds().await {
            return true;
        }
        if crate::history::now_ms() - started >= bound_ms {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `node-death`: see the module documentation.
pub fn node_death(run: &Run) -> RunOutput {
    let spec = WorldSpec::randomized(run.seed);
    let describe = spec.describe();
    let mut rng = ChaCha8Rng::seed_from_u64(run.seed ^ 0xdead);
    let size = rng.gen_range(2..=4);
    // Any pool node but the first dies (the first may be the last one left).
    let victim = crate::world::SLOTS[rng.gen_range(1..size)].to_owned();
    let crash_at_ms = 12_000 + rng.gen_range(0..3_000);
    let dead_for_ms = 12_000 + rng.gen_range(0..4_000);
    let mut harness = Harness::new(spec);
    let workload = Workload::default();
    harness.clients(2, run.seed, workload);
    let (stop, problems) = (harness.stop.clone(), harness.problems.clone());
    let dead = victim.clone();
    harness.host("control", move |driver| async move {
        driver.wait_ready(30_000).await;
        for _ in 1..size {
            if let Err(error) = driver.resize(Change::Increase).await {
                problem(
                    &problems,
                    Invariant::Liveness,
                    format!("resize refused without a fault: {error}"),
                );
            }
        }
        while crate::history::now_ms() < crash_at_ms {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let ejected = within(EJECTION_BOUND_MS, || async {
            driver
                .manager_listing()
                .await
                .is_some_and(|(pool, ejected)| !pool.contains(&dead) && ejected.contains(&dead))
        })
        .await;
        if !ejected {
            problem(
                &problems,
                Invariant::Liveness,
                format!("{dead} died at {crash_at_ms} ms and was not ejected within {EJECTION_BOUND_MS} ms"),
            );
        }
        let routed_around = within(EJECTION_BOUND_MS, || async {
            driver
                .frontend_pool()
                .await
                .is_some_and(|pool| pool.len() == size - 1 && !pool.contains(&dead))
        })
        .await;
        if !routed_around {
            problem(
                &problems,
                Invariant::Liveness,
                format!("the front-end still routes to {dead}, ejected"),
            );
        }
        let back_at_ms = crash_at_ms + dead_for_ms;
        while crate::history::now_ms() < back_at_ms {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let rejoined = within(EJECTION_BOUND_MS, || async {
            let listed = driver
                .manager_listing()
                .await
                .is_some_and(|(pool, ejected)| pool.contains(&dead) && !ejected.contains(&dead));
            let routed = driver
                .frontend_pool()
                .await
                .is_some_and(|pool| pool.len() == size && pool.contains(&dead));
            listed && routed
        })
        .await;
        if !rejoined {
            problem(
                &problems,
                Invariant::Liveness,
                format!("{dead} came back at {back_at_ms} ms and did not rejoin within {EJECTION_BOUND_MS} ms"),
            );
        }
        end_checks_after(&driver, workload.keys, &stop, &problems).await;
    });
    let schedule = vec![Scheduled {
        at_ms: crash_at_ms,
        until_ms: crash_at_ms + dead_for_ms,
        fault: Fault::Crash(victim),
    }];
    let finished = harness.run(run, schedule, crash_at_ms + dead_for_ms);
    let text = summary("node-death", run, &finished, &describe);
    finished.output(text)
}
