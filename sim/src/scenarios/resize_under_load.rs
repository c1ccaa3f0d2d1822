//! `resize-under-load`: two clients keep uploading, re-uploading and reading while
//! the pool changes, first by direct multi-node notifies (`[A]→[A,B,C,D]→[C,D]→[A]`),
//! then through the manager's manual calls along 1→2→3→4→3→8→1. Then the traffic
//! stops and the end state is checked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::workload::{
    check_pool, check_stats, client_loop, final_reads, keep_last_final_reads, Workload,
};
use crate::checker::{check_history, Invariant, Violation};
use crate::driver::Driver;
use crate::history::History;
use crate::run::{Run, RunOutput};
use crate::world::{build, WorldSpec};

/// The manual walk of pool sizes.
pub const SIZES: [usize; 7] = [1, 2, 3, 4, 3, 8, 1];
const CLIENTS: u64 = 2;

pub fn run(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::new(run.seed);
    spec.plants = run.plants;
    let stats_interval_ms = spec.stats_interval_ms;
    let mut sim = build(&spec);
    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workload = Workload::default();
    let problems: Arc<Mutex<Vec<Violation>>> = Arc::default();

    for client in 1..=CLIENTS {
        let driver = Driver::new(&format!("client{client}"), history.clone());
        let stop = stop.clone();
        let seed = run.seed;
        sim.client(format!("client{client}"), async move {
            driver.wait_ready(30_000).await;
            client_loop(driver, client, seed, workload, stop).await;
            Ok(())
        });
    }

    let driver = Driver::new("control", history.clone());
    let found = problems.clone();
    let seed = run.seed;
    sim.client("control", async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(17));
        let mut problems = Vec::new();
        if !driver.wait_ready(30_000).await {
            problems.push(Violation {
                invariant: Invariant::Liveness,
                message: "front-end never ready".into(),
                op: None,
            });
        }
        let mut pause = || Duration::from_millis(rng.gen_range(500..2_000));
        tokio::time::sleep(pause()).await;
        for (members, change) in [
            (&["A", "B", "C", "D"][..], "increase"),
            (&["C", "D"][..], "decrease"),
            (&["A"][..], "decrease"),
        ] {
            if !driver.notify(members, change).await {
                problems.push(Violation {
                    invariant: Invariant::Liveness,
                    message: format!("notify {members:?} not acknowledged"),
                    op: None,
                });
            }
            tokio::time::sleep(pause()).await;
        }
        for pair in SIZES.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let change = if to > from { "increase" } else { "decrease" };
            for _ in 0..from.abs_diff(to) {
                match driver.resize(change).await {
                    Some(reply) if reply.status.is_success() => {}
                    other => problems.push(Violation {
                        invariant: Invariant::Liveness,
                        message: format!(
                            "resize {change} towards {to} failed: {:?}",
                            other.map(|r| r.status)
                        ),
                        op: None,
                    }),
                }
                tokio::time::sleep(pause()).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Let in-flight operations finish, then check the end state.
        tokio::time::sleep(Duration::from_millis(
            super::super::driver::CLIENT_TIMEOUT_MS + 500,
        ))
        .await;
        final_reads(&driver, workload.keys, 30_000).await;
        check_pool(&driver, SIZES.last().copied(), &mut problems).await;
        check_stats(&driver, stats_interval_ms, &mut problems).await;
        found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(problems);
        Ok(())
    });

    let mut output = RunOutput::default();
    if let Err(error) = sim.run() {
        output.violations.push(Violation {
            invariant: Invariant::Liveness,
            message: format!("simulation error: {error}"),
            op: None,
        });
    }
    let mut ops = history.snapshot();
    keep_last_final_reads(&mut ops);
    output.violations.extend(check_history(&ops));
    // Without faults, no read may fail: a node that cannot answer is read around.
    for op in &ops {
        if let (crate::history::OpKind::Read { key }, crate::history::Outcome::Failed(why)) =
            (&op.kind, &op.outcome)
        {
            output.violations.push(Violation {
                invariant: Invariant::Liveness,
                message: format!("read of {key} failed without any fault: {why}"),
                op: Some(op.id),
            });
        }
    }
    output
        .violations
        .extend(problems.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
    let reads = ops
        .iter()
        .filter(|op| matches!(op.kind, crate::history::OpKind::Read { .. }))
        .count();
    let failed = ops
        .iter()
        .filter(|op| matches!(op.outcome, crate::history::Outcome::Failed(_)))
        .count();
    output.text = format!(
        "resize-under-load seed {}: {} operations ({} reads, {} failed), {} violations\n",
        run.seed,
        ops.len(),
        reads,
        failed,
        output.violations.len()
    );
    output.history = ops;
    output
}
