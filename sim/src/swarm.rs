//! Many seeds at once, and the speed benchmark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memring::plant::Plants;

use crate::run::{run, Report};
use crate::scenarios::Scenario;

/// Runs seeds `start..start + seeds` on `jobs` threads (each run is one thread and
/// deterministic on its own); returns the failing seeds with their reports, in
/// seed order.
pub fn swarm(
    scenario: Scenario,
    start: u64,
    seeds: u64,
    jobs: usize,
    plants: Plants,
) -> Vec<(u64, Report)> {
    let next = Arc::new(AtomicU64::new(start));
    let failed: Arc<Mutex<Vec<(u64, Report)>>> = Arc::default();
    let end = start + seeds;
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let next = next.clone();
            let failed = failed.clone();
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let report = run(scenario, seed, plants);
                if !report.passed() {
                    failed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((seed, report));
                }
            });
        }
    });
    let mut failed = std::mem::take(&mut *failed.lock().unwrap_or_else(|p| p.into_inner()));
    failed.sort_by_key(|(seed, _)| *seed);
    failed
}

/// Runs the standard world (every host, idle-ish traffic) for 120 simulated
/// seconds; returns (simulated seconds, wall seconds).
pub fn bench(seed: u64) -> (f64, f64) {
    let spec = crate::world::WorldSpec::new(seed);
    let mut sim = crate::world::build(&spec);
    let history = crate::history::History::default();
    let driver = crate::driver::Driver::new("client", history);
    sim.client("client", async move {
        driver.wait_ready(30_000).await;
        let mut generation = 0;
        while crate::history::now_ms() < 120_000 {
            generation += 1;
            let key = format!("bench-{}", generation % 16);
            if generation % 4 == 0 {
                driver.upload(&key, generation, 4096).await;
            } else {
                driver.read(&key, false).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    });
    // Wall time is what this measures: the real clock is read outside the simulation.
    let started = std::time::Instant::now();
    let _ = sim.run();
    let wall_s = started.elapsed().as_secs_f64();
    (sim.elapsed().as_secs_f64(), wall_s)
}
