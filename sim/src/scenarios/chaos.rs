//! `chaos`: the random workload plus random faults from a menu — node bounces,
//! partitions between any two hosts (one-way too, S3 and RDS included), latency
//! spikes, a manager crash, a front-end restart — with resizes during the faults.
//! Every fault is healed before the end; then the system is checked at quiescence.

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
use crate::world::{build, WorldSpec, SLOTS};

/// How long faults are injected, in simulated ms.
const FAULT_WINDOW_MS: u64 = 60_000;
/// Healing happens here; checks follow.
const HEAL_AT_MS: u64 = FAULT_WINDOW_MS + 2_000;

/// One fault of the menu.
#[derive(Clone, Debug)]
enum Fault {
    Bounce(String),
    /// A node down for a while, then started again (empty).
    CrashNode(String),
    Partition(String, String),
    PartitionOneWay(String, String),
    LatencySpike(String, String),
    CrashManager,
    RestartFrontend,
}

fn hosts() -> Vec<String> {
    let mut hosts: Vec<String> = ["frontend", "manager", "s3", "rds"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    hosts.extend(SLOTS.iter().take(6).map(|s| s.to_string()));
    hosts
}

fn schedule(seed: u64) -> Vec<(u64, u64, Fault)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc4a0_5eed);
    let hosts = hosts();
    let mut faults = Vec::new();
    let count = rng.gen_range(6..14);
    for _ in 0..count {
        let at = rng.gen_range(2_000..FAULT_WINDOW_MS - 5_000);
        let lasts = rng.gen_range(1_000..8_000);
        let pick = |rng: &mut ChaCha8Rng| hosts[rng.gen_range(0..hosts.len())].clone();
        // Most faults touch the front-end, whose links carry every request.
        let pair = |rng: &mut ChaCha8Rng| loop {
            let a = if rng.gen_bool(0.7) {
                "frontend".to_owned()
            } else {
                pick(rng)
            };
            let b = pick(rng);
            if a != b {
                return if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
            }
        };
        let fault = match rng.gen_range(0..7) {
            6 => Fault::CrashNode(SLOTS[rng.gen_range(0..6)].to_owned()),
            0 => Fault::Bounce(SLOTS[rng.gen_range(0..6)].to_owned()),
            1 => {
                let (a, b) = pair(&mut rng);
                Fault::Partition(a, b)
            }
            2 => {
                let (a, b) = pair(&mut rng);
                Fault::PartitionOneWay(a, b)
            }
            3 => {
                let (a, b) = pair(&mut rng);
                Fault::LatencySpike(a, b)
            }
            4 => Fault::CrashManager,
            _ => Fault::RestartFrontend,
        };
        faults.push((at, at + lasts, fault));
    }
    faults.sort_by_key(|(at, _, _)| *at);
    faults
}

pub fn run(run: &Run) -> RunOutput {
    let mut spec = WorldSpec::new(run.seed);
    spec.plants = run.plants;
    let stats_interval_ms = spec.stats_interval_ms;
    let mut sim = build(&spec);
    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let healed = Arc::new(AtomicBool::new(false));
    let workload = Workload::default();
    let problems: Arc<Mutex<Vec<Violation>>> = Arc::default();

    for client in 1..=2u64 {
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
    let control_healed = healed.clone();
    sim.client("control", async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(99));
        let mut problems = Vec::new();
        driver.wait_ready(30_000).await;
        // Resizes during the faults; they may fail while faults last.
        let mut size: usize = 1;
        while crate::history::now_ms() < FAULT_WINDOW_MS {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(3_000..8_000))).await;
            let grow = size == 1 || (size < 6 && rng.gen_bool(0.6));
            let change = if grow { "increase" } else { "decrease" };
            if driver
                .resize(change)
                .await
                .is_some_and(|r| r.status.is_success())
            {
                size = if grow { size + 1 } else { size - 1 };
            }
        }
        while !control_healed.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(
            super::super::driver::CLIENT_TIMEOUT_MS + 2_000,
        ))
        .await;
        // After healing the front-end and the manager must agree on the pool (a
        // resize cut short by a fault leaves the size to the manager's records).
        final_reads(&driver, workload.keys, 30_000).await;
        check_pool(&driver, None, &mut problems).await;
        check_stats(&driver, stats_interval_ms, &mut problems).await;
        found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(problems);
        Ok(())
    });

    let faults = schedule(run.seed);
    let mut output = RunOutput::default();
    let mut active: Vec<(u64, Fault)> = Vec::new();
    let mut next = 0;
    let mut healed_all = false;
    loop {
        let step = sim.step();
        let now_ms = sim.elapsed().as_millis() as u64;
        while next < faults.len() && faults[next].0 <= now_ms {
            let (_, until, fault) = faults[next].clone();
            run.recorder.note_at(
                now_ms as u128,
                "fault",
                &format!("inject {fault:?} until {until}ms"),
            );
            match &fault {
                Fault::Bounce(host) => sim.bounce(host.as_str()),
                Fault::CrashNode(host) => sim.crash(host.as_str()),
                Fault::Partition(a, b) => sim.partition(a.as_str(), b.as_str()),
                Fault::PartitionOneWay(a, b) => sim.partition_oneway(a.as_str(), b.as_str()),
                Fault::LatencySpike(a, b) => {
                    sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(800))
                }
                Fault::CrashManager => sim.crash("manager"),
                Fault::RestartFrontend => sim.bounce("frontend"),
            }
            active.push((until, fault));
            next += 1;
        }
        let (due, later): (Vec<_>, Vec<_>) = active
            .drain(..)
            .partition(|(until, _)| *until <= now_ms || now_ms >= HEAL_AT_MS);
        active = later;
        for (_, fault) in due {
            run.recorder
                .note_at(now_ms as u128, "fault", &format!("heal {fault:?}"));
            match &fault {
                Fault::Bounce(_) | Fault::RestartFrontend => {}
                Fault::Partition(a, b) => sim.repair(a.as_str(), b.as_str()),
                Fault::PartitionOneWay(a, b) => sim.repair_oneway(a.as_str(), b.as_str()),
                Fault::LatencySpike(a, b) => sim.set_link_latency(
                    a.as_str(),
                    b.as_str(),
                    Duration::from_millis(spec.max_latency_ms),
                ),
                Fault::CrashManager => sim.bounce("manager"),
                Fault::CrashNode(host) => sim.bounce(host.as_str()),
            }
        }
        if !healed_all && now_ms >= HEAL_AT_MS && active.is_empty() && next >= faults.len() {
            healed_all = true;
            run.recorder
                .note_at(now_ms as u128, "fault", "all faults healed");
            healed.store(true, Ordering::Relaxed);
        }
        match step {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => {
                output.violations.push(Violation {
                    invariant: Invariant::Liveness,
                    message: format!("simulation error: {error}"),
                    op: None,
                });
                break;
            }
        }
    }
    let mut ops = history.snapshot();
    keep_last_final_reads(&mut ops);
    output.violations.extend(check_history(&ops));
    output
        .violations
        .extend(problems.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
    output.text = format!(
        "chaos seed {}: {} faults, {} operations, {} violations\n",
        run.seed,
        faults.len(),
        ops.len(),
        output.violations.len()
    );
    output.history = ops;
    output
}
