//! Many seeds at once, the planted-bug table, and the speed benchmark.
//!
//! A swarm never reports a failure it cannot reproduce: before it reports a
//! failing seed it runs that seed again, alone, in a fresh process (`memring-sim
//! run`) when the swarm runs from the command line, else on a fresh thread, and
//! compares the trace digest and the violations. A mismatch is reported as a
//! determinism failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memring::hooks::Plant;

use crate::run::{run, Report};
use crate::scenarios::Scenario;

/// How a failing seed is run again before it is reported.
#[derive(Clone, Debug)]
pub enum Rerun {
    /// In a fresh process of this program (`run --scenario .. --seed .. --digest`).
    Process(std::path::PathBuf),
    /// On a fresh thread of this process.
    Thread,
}

/// A failing seed and whether it failed the same way when run again alone.
pub struct Failed {
    pub seed: u64,
    pub report: Report,
    /// `None` if it replayed identically, else what differed.
    pub replay_mismatch: Option<String>,
}

/// The digest and verdict of a run, as `run --digest` prints them.
pub fn digest_line(report: &Report) -> String {
    format!(
        "digest {} violations {}",
        report.trace_hash(),
        report.output.violations.len()
    )
}

fn replay(
    scenario: Scenario,
    seed: u64,
    plant: Option<Plant>,
    how: &Rerun,
) -> Result<String, String> {
    match how {
        Rerun::Thread => {
            let report = std::thread::spawn(move || run(scenario, seed, plant))
                .join()
                .map_err(|_| "the replay panicked".to_owned())?;
            Ok(digest_line(&report))
        }
        Rerun::Process(program) => {
            let mut command = std::process::Command::new(program);
            command.args([
                "run",
                "--scenario",
                scenario.name(),
                "--seed",
                &seed.to_string(),
                "--digest",
            ]);
            if let Some(plant) = plant {
                command.args(["--plant", plant.name()]);
            }
            let output = command.output().map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&output.stdout);
            text.lines()
                .find(|line| line.starts_with("digest "))
                .map(str::to_owned)
                .ok_or_else(|| format!("no digest from the replay: {text}"))
        }
    }
}

/// Runs seeds `start..start + seeds` on `jobs` threads (each run is one thread and
/// deterministic on its own); returns the failing seeds, in seed order, each
/// checked by a replay.
pub fn swarm(
    scenario: Scenario,
    start: u64,
    seeds: u64,
    jobs: usize,
    plant: Option<Plant>,
    rerun: &Rerun,
) -> Vec<Failed> {
    let failed = run_seeds(scenario, start, seeds, jobs, plant);
    failed
        .into_iter()
        .map(|(seed, report)| {
            let here = digest_line(&report);
            let replay_mismatch = match replay(scenario, seed, plant, rerun) {
                Ok(line) if line == here => None,
                Ok(line) => Some(format!("swarm gave `{here}`, the replay `{line}`")),
                Err(error) => Some(error),
            };
            Failed {
                seed,
                report,
                replay_mismatch,
            }
        })
        .collect()
}

/// Runs the seeds; returns the failing ones with their reports, in seed order.
pub fn run_seeds(
    scenario: Scenario,
    start: u64,
    seeds: u64,
    jobs: usize,
    plant: Option<Plant>,
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
                let report = run(scenario, seed, plant);
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

/// The scenario each planted bug is aimed at.
pub fn targeted_scenario(plant: Plant) -> Scenario {
    match plant {
        Plant::SkipInvalidate | Plant::AckBeforeDurable | Plant::StaleRoute => {
            Scenario::ResizeUnderLoad
        }
        Plant::StaleMove => Scenario::MoveRace,
        Plant::InvalidateStaleRouting => Scenario::JoinRace,
        Plant::EvictDropsFloor => Scenario::EvictionRace,
        Plant::ClearRacesUpload => Scenario::ClearRace,
        Plant::ManagerEpochReset => Scenario::ManagerDiskLoss,
        Plant::NoFsync => Scenario::ManagerPowerLoss,
    }
}

/// One line of the planted-bug table.
pub struct PlantRow {
    pub plant: Plant,
    pub scenario: Scenario,
    pub caught: u64,
    pub seeds: u64,
}

/// Runs every planted bug on its targeted scenario (or on `scenario` for all),
/// over `seeds` seeds from `start`.
pub fn plants(
    start: u64,
    seeds: u64,
    jobs: usize,
    scenario: Option<Scenario>,
    mut progress: impl FnMut(&PlantRow),
) -> Vec<PlantRow> {
    let mut rows = Vec::new();
    for plant in Plant::ALL {
        let scenario = scenario.unwrap_or_else(|| targeted_scenario(plant));
        let failed = run_seeds(scenario, start, seeds, jobs, Some(plant));
        let row = PlantRow {
            plant,
            scenario,
            caught: failed.len() as u64,
            seeds,
        };
        progress(&row);
        rows.push(row);
    }
    rows
}

/// Runs the standard world (every host, idle-ish traffic) for 120 simulated
/// seconds; returns (simulated seconds, wall seconds).
pub fn bench(seed: u64) -> (f64, f64) {
    let spec = crate::world::WorldSpec::new(seed);
    let mut world = crate::world::build(&spec);
    let history = crate::history::History::default();
    let driver = crate::driver::Driver::new("client", history);
    world.sim.client("client", async move {
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
    let _ = world.sim.run();
    let wall_s = started.elapsed().as_secs_f64();
    (world.sim.elapsed().as_secs_f64(), wall_s)
}

/// Runs one chaos seed and measures its speed: (simulated seconds, wall seconds).
pub fn chaos_speed(seed: u64) -> (f64, f64, bool) {
    // Wall time is what this measures: the real clock is read outside the simulation.
    let started = std::time::Instant::now();
    let report = run(Scenario::Chaos, seed, None);
    let wall_s = started.elapsed().as_secs_f64();
    let simulated_s = report
        .output
        .history
        .iter()
        .filter_map(|op| op.complete_ms)
        .max()
        .unwrap_or(0) as f64
        / 1_000.0;
    (simulated_s, wall_s, report.passed())
}
