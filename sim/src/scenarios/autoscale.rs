//! `autoscale`: the working set outgrows a one-node pool, the auto-scaler grows the
//! pool; then traffic drops to a few hot keys and it shrinks. The size stays within
//! 1..8 throughout.

use memring::autoscale::AutoParams;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::workload::keep_last_final_reads;
use crate::checker::{check_history, Invariant, Violation};
use crate::context::{Run, RunOutput};
use crate::driver::Driver;
use crate::history::History;
use crate::world::{build, WorldSpec};

pub fn run(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::new(run.seed);
    // A small cache per node: 40 images of 16 KiB fit in about three nodes.
    spec.cache.capacity = 0.25;
    spec.autoscale_interval_ms = 20_000;
    spec.stats_interval_ms = 2_000;
    let mut world = build(&spec);
    let sim = &mut world.sim;
    let history = History::default();
    let problems: Arc<Mutex<Vec<Violation>>> = Arc::default();
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();

    let driver = Driver::new("client", history.clone());
    let found = problems.clone();
    let seen_sizes = sizes.clone();
    sim.client("client", async move {
        let mut problems = Vec::new();
        driver.wait_ready(30_000).await;
        let params = AutoParams {
            max_miss_rate_threshold: 0.5,
            min_miss_rate_threshold: 0.2,
            expand_ratio: 2.0,
            shrink_ratio: 0.5,
        };
        if driver.automatic(&params).await.is_err() {
            problems.push(Violation {
                invariant: Invariant::Liveness,
                message: "automatic mode refused".into(),
                op: None,
            });
        }
        let keys: Vec<String> = (0..40).map(|i| format!("wide-{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            driver.upload(key, i as u64 + 1, 16 * 1024).await;
        }
        let size_now = || {
            let driver = driver.clone();
            async move { driver.manager_pool().await.map_or(0, |pool| pool.len()) }
        };
        // Phase 1: scan the wide working set until the pool has grown.
        let mut grown = 0;
        for round in 0..40 {
            for key in &keys {
                driver.read(key, false).await;
            }
            let size = size_now().await;
            seen_sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(size);
            grown = grown.max(size);
            if size >= 3 && round > 3 {
                break;
            }
        }
        if grown < 2 {
            problems.push(Violation {
                invariant: Invariant::Liveness,
                message: format!("the pool never grew (largest {grown})"),
                op: None,
            });
        }
        // Phase 2: only two hot keys, always hits: the pool shrinks.
        let mut shrunk = usize::MAX;
        for _ in 0..600 {
            for key in &keys[..2] {
                driver.read(key, false).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let size = size_now().await;
            seen_sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(size);
            shrunk = shrunk.min(size);
            if size == 1 {
                break;
            }
        }
        if shrunk >= grown {
            problems.push(Violation {
                invariant: Invariant::Liveness,
                message: format!("the pool never shrank below {grown}"),
                op: None,
            });
        }
        for key in &keys {
            driver.read(key, true).await;
        }
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
    output
        .violations
        .extend(problems.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
    let sizes = sizes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(bad) = sizes.iter().find(|s| !(1..=8).contains(*s)) {
        output.violations.push(Violation {
            invariant: Invariant::Liveness,
            message: format!("pool size {bad} outside 1..8"),
            op: None,
        });
    }
    let mut walk = sizes.clone();
    walk.dedup();
    output.text = format!(
        "autoscale seed {}: pool sizes {:?}, {} violations\n",
        run.seed,
        walk,
        output.violations.len()
    );
    output.history = ops;
    output
}
