//! `memring-sim`: run a scenario with a seed, sweep many seeds, or measure how fast
//! the simulation runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memring::plant::{Plant, Plants};
use memring_sim::run::{describe_violations, run};
use memring_sim::scenarios::Scenario;

#[derive(Parser)]
#[command(name = "memring-sim", about = "Deterministic simulation of memring")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed.
    Run {
        #[arg(long)]
        scenario: Scenario,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the trace (requests, answers, faults, log lines) here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Plant a bug: skip-invalidate, stale-move, ack-before-durable, stale-route.
        #[arg(long)]
        plant: Option<Plant>,
    },
    /// Run many seeds; list the failing ones; exit 1 if any fails.
    Swarm {
        #[arg(long)]
        scenario: Scenario,
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        #[arg(long, default_value_t = 1)]
        start: u64,
        /// Parallel runs (each run is single-threaded).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long)]
        plant: Option<Plant>,
    },
    /// Kill the real `memring up` under load, restart it, check what survived
    /// (real processes and time, outside the simulation); exit 1 on a violation.
    Crash {
        #[arg(long, default_value_t = 20)]
        rounds: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The memring executable (default: `memring` next to this one).
        #[arg(long)]
        memring: Option<PathBuf>,
        /// Keep the data directory and the process logs.
        #[arg(long)]
        keep: bool,
    },
    /// Simulated seconds per wall second for the standard world.
    Bench {
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn plants(plant: Option<Plant>) -> Plants {
    plant.map_or(Plants::none(), Plants::one)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            seed,
            trace,
            plant,
        } => {
            let report = run(scenario, seed, plants(plant));
            if let Some(path) = trace {
                let mut text = report.trace.join("\n");
                text.push('\n');
                if let Err(error) = std::fs::write(&path, text) {
                    eprintln!("error: cannot write {}: {error}", path.display());
                    return ExitCode::from(2);
                }
            }
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(report.output.text.as_bytes());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                let name = plant.map(|p| p.name());
                let _ =
                    stdout.write_all(describe_violations(&report, scenario, seed, name).as_bytes());
                ExitCode::FAILURE
            }
        }
        Command::Swarm {
            scenario,
            seeds,
            start,
            jobs,
            plant,
        } => {
            let failed = memring_sim::swarm::swarm(scenario, start, seeds, jobs, plants(plant));
            let name = plant.map(|p| p.name());
            for (seed, report) in &failed {
                print!("{}", describe_violations(report, scenario, *seed, name));
            }
            let failing: Vec<u64> = failed.iter().map(|(seed, _)| *seed).collect();
            println!(
                "swarm {}: {} seeds from {start}, {} failed{}",
                scenario.name(),
                seeds,
                failing.len(),
                if failing.is_empty() {
                    String::new()
                } else {
                    format!(": {failing:?}")
                }
            );
            if failing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Crash {
            rounds,
            seed,
            memring,
            keep,
        } => {
            let memring = match memring.map_or_else(memring_sim::crash::default_memring_path, Ok) {
                Ok(path) => path,
                Err(error) => {
                    eprintln!("error: cannot find the memring executable: {error}");
                    return ExitCode::from(2);
                }
            };
            let mut config = memring_sim::crash::CrashConfig::new(rounds, seed, memring);
            config.keep = keep;
            match memring_sim::crash::run(&config) {
                Ok(report) => {
                    println!("{}", report.summary());
                    if let Some(dir) = &report.kept_dir {
                        println!("crash: data and logs kept in {}", dir.display());
                    }
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        for violation in &report.violations {
                            println!("violation: {violation}");
                        }
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Bench { seed } => {
            let (simulated_s, wall_s) = memring_sim::swarm::bench(seed);
            println!(
                "standard world, 120 s simulated: {wall_s:.2} s wall, {:.0}x real time",
                simulated_s / wall_s
            );
            ExitCode::SUCCESS
        }
    }
}
