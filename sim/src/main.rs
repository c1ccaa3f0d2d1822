//! `memring-sim`: run a scenario with a seed, sweep many seeds, table the planted
//! bugs, or measure how fast the simulation runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memring::hooks::Plant;
use memring_sim::run::{describe_violations, run};
use memring_sim::scenarios::Scenario;
use memring_sim::swarm::{digest_line, Rerun};

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
        /// Plant a bug (see `memring-sim plants`).
        #[arg(long)]
        plant: Option<Plant>,
        /// Also print the digest of the trace and the number of violations.
        #[arg(long)]
        digest: bool,
    },
    /// Run many seeds; list the failing ones (each replayed alone first); exit 1 if
    /// any fails.
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
    /// Run every planted bug on its targeted scenario (or on `--scenario`); exit 1
    /// if one is caught in fewer than 90% of the seeds (30% with a scenario given).
    Plants {
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        #[arg(long, default_value_t = 1)]
        start: u64,
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long)]
        scenario: Option<Scenario>,
    },
    /// Simulated seconds per wall second: the standard world, then one chaos seed.
    Bench {
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            seed,
            trace,
            plant,
            digest,
        } => {
            let report = run(scenario, seed, plant);
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
            if digest {
                let _ = writeln!(stdout, "{}", digest_line(&report));
            }
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
            let rerun = std::env::current_exe().map_or(Rerun::Thread, Rerun::Process);
            let failed = memring_sim::swarm::swarm(scenario, start, seeds, jobs, plant, &rerun);
            let name = plant.map(|p| p.name());
            let mut nondeterministic = Vec::new();
            for failure in &failed {
                print!(
                    "{}",
                    describe_violations(&failure.report, scenario, failure.seed, name)
                );
                match &failure.replay_mismatch {
                    None => println!("  replayed alone: the same trace and violations"),
                    Some(why) => {
                        println!("  NOT REPRODUCED alone: {why}");
                        nondeterministic.push(failure.seed);
                    }
                }
            }
            let failing: Vec<u64> = failed.iter().map(|f| f.seed).collect();
            println!(
                "swarm {}: {} seeds from {start}, {} failed{}{}",
                scenario.name(),
                seeds,
                failing.len(),
                if failing.is_empty() {
                    String::new()
                } else {
                    format!(": {failing:?}")
                },
                if nondeterministic.is_empty() {
                    String::new()
                } else {
                    format!(", not reproducible: {nondeterministic:?}")
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
        Command::Plants {
            seeds,
            start,
            jobs,
            scenario,
        } => {
            let required_percent = if scenario.is_some() { 30 } else { 90 };
            let rows = memring_sim::swarm::plants(start, seeds, jobs, scenario, |row| {
                println!(
                    "plant={} scenario={} caught={}/{}",
                    row.plant.name(),
                    row.scenario.name(),
                    row.caught,
                    row.seeds
                );
            });
            let weak: Vec<&str> = rows
                .iter()
                .filter(|row| row.caught * 100 < row.seeds * required_percent)
                .map(|row| row.plant.name())
                .collect();
            let caught: u64 = rows.iter().map(|row| row.caught).sum();
            let runs: u64 = rows.iter().map(|row| row.seeds).sum();
            println!(
                "plants: {} bugs, seeds {start}..{}, caught {caught}/{runs} runs; below {required_percent}%: {}",
                rows.len(),
                start + seeds - 1,
                if weak.is_empty() { "none".to_owned() } else { weak.join(", ") }
            );
            if weak.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Bench { seed } => {
            let (simulated_s, wall_s) = memring_sim::swarm::bench(seed);
            println!(
                "standard world, 120 s simulated: {wall_s:.2} s wall, {:.0}x real time",
                simulated_s / wall_s
            );
            let (simulated_s, wall_s, passed) = memring_sim::swarm::chaos_speed(seed);
            println!(
                "chaos seed {seed}, {simulated_s:.0} s simulated: {wall_s:.2} s wall, {:.0}x real time{}",
                simulated_s / wall_s,
                if passed { "" } else { " (the seed failed)" }
            );
            ExitCode::SUCCESS
        }
    }
}
