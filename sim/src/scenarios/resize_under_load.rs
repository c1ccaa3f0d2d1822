//! `resize-under-load`: two clients keep uploading, re-uploading and reading while
//! the pool changes, first by multi-node pool picks through the manager
//! (`[A]→[A,B,C,D]→[C,D]→[A]`), then by its manual calls along 1→2→3→4→3→8→1. No fault is
//! injected, so no read and no upload may fail. Then the traffic stops and the end
//! state is checked, statistics included: the nodes' hits must be the hits the
//! clients saw.

use memring::wire::change::Change;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{problem, Harness};
use super::workload::{check_client_hits, check_pool, check_stats, final_reads, Workload};
use crate::checker::Invariant;
use crate::context::{Run, RunOutput};
use crate::world::WorldSpec;

/// The manual walk of pool sizes.
pub const SIZES: [usize; 7] = [1, 2, 3, 4, 3, 8, 1];
const CLIENTS: u64 = 2;

pub fn run(run: &Run) -> RunOutput {
    let spec = WorldSpec::randomized(run.seed);
    let describe = spec.describe();
    let stats_interval_ms = spec.stats_interval_ms;
    let slots = spec.slots.clone();
    let mut harness = Harness::new(spec);
    let workload = Workload::default();
    harness.clients(CLIENTS, run.seed, workload);
    let stop = harness.stop.clone();
    let problems = harness.problems.clone();
    let seed = run.seed;
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(17));
        if !driver.wait_ready(30_000).await {
            problem(
                &problems,
                Invariant::Liveness,
                "front-end never ready".into(),
            );
        }
        let mut pause = || Duration::from_millis(rng.gen_range(500..2_000));
        tokio::time::sleep(pause()).await;
        for members in [&["A", "B", "C", "D"][..], &["C", "D"][..], &["A"][..]] {
            if !driver.set_pool(members).await {
                problem(
                    &problems,
                    Invariant::Liveness,
                    format!("pool {members:?} not acknowledged"),
                );
            }
            // Long enough for the pool picked to carry traffic.
            tokio::time::sleep(pause() * 4).await;
        }
        for pair in SIZES.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let change = Change::between(from, to);
            for _ in 0..from.abs_diff(to) {
                match driver.resize(change).await {
                    Ok(_) => {}
                    Err(error) => problem(
                        &problems,
                        Invariant::Liveness,
                        format!("resize {change} towards {to} failed: {error}"),
                    ),
                }
                tokio::time::sleep(pause()).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Let in-flight operations finish, then check the end state.
        tokio::time::sleep(Duration::from_millis(
            crate::driver::CLIENT_TIMEOUT_MS + 500,
        ))
        .await;
        let mut found = Vec::new();
        final_reads(&driver, workload.keys, 30_000).await;
        check_pool(&driver, SIZES.last().copied(), &mut found).await;
        check_stats(&driver, stats_interval_ms, &mut found).await;
        check_client_hits(&driver, &slots, &mut found).await;
        problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(found);
    });
    let finished = harness.run(run, Vec::new(), 0);
    let (reads, uploads, failed) = finished.counts();
    let summary = format!(
        "resize-under-load seed {}: {} operations ({reads} reads, {uploads} uploads, {failed} failed), {} violations [{describe}]\n",
        run.seed,
        finished.ops.len(),
        finished.violations.len()
    );
    finished.output(summary)
}
