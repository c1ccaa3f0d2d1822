//! The simulation as `cargo test` runs it: the documented logs reproduced on the
//! simulated network, determinism, a few seeds of each scenario, and the planted
//! bugs caught by the checker.

use memring::plant::{Plant, Plants};
use memring_sim::documented::transitions;
use memring_sim::run::{describe_violations, run};
use memring_sim::scenarios::Scenario;

fn assert_passes(scenario: Scenario, seed: u64) {
    let report = run(scenario, seed, Plants::none());
    assert!(
        report.passed(),
        "{}",
        describe_violations(&report, scenario, seed, None)
    );
}

#[test]
fn documented_logs_are_reproduced_on_the_simulated_network() {
    let report = run(Scenario::DocumentedLogs, 1, Plants::none());
    assert!(
        report.passed(),
        "{}",
        describe_violations(&report, Scenario::DocumentedLogs, 1, None)
    );
    let printed: Vec<&str> = report
        .output
        .text
        .lines()
        .filter(|line| line.starts_with("INFO:root:"))
        .collect();
    let documented: Vec<String> = transitions().into_iter().flat_map(|t| t.lines).collect();
    assert_eq!(printed.len(), documented.len());
    for (i, (got, want)) in printed.iter().zip(&documented).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    // The balance results, as the simulated front-end logged them.
    let balance: Vec<&str> = printed
        .iter()
        .copied()
        .filter(|line| line.starts_with("INFO:root:Balance result: "))
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("sim_documented_balance_results", balance.join("\n")));
}

#[test]
fn a_seed_reproduces_its_trace_byte_for_byte() {
    let first = run(Scenario::Chaos, 7, Plants::none());
    let second = run(Scenario::Chaos, 7, Plants::none());
    assert!(first.trace.len() > 1_000, "the trace records the run");
    assert_eq!(first.trace, second.trace);
    assert_eq!(first.output.text, second.output.text);
    let other = run(Scenario::Chaos, 8, Plants::none());
    assert_ne!(first.trace, other.trace);
}

#[test]
fn resize_under_load_seeds_are_clean() {
    for seed in 1..=3 {
        assert_passes(Scenario::ResizeUnderLoad, seed);
    }
}

/// Fifty chaos seeds, in five tests so that the test runner spreads them over
/// the cores.
fn chaos_seeds(seeds: std::ops::RangeInclusive<u64>) {
    for seed in seeds {
        assert_passes(Scenario::Chaos, seed);
    }
}

#[test]
fn chaos_seeds_1_to_10_are_clean() {
    chaos_seeds(1..=10);
}

#[test]
fn chaos_seeds_11_to_20_are_clean() {
    chaos_seeds(11..=20);
}

#[test]
fn chaos_seeds_21_to_30_are_clean() {
    chaos_seeds(21..=30);
}

#[test]
fn chaos_seeds_31_to_40_are_clean() {
    chaos_seeds(31..=40);
}

#[test]
fn chaos_seeds_41_to_50_are_clean() {
    chaos_seeds(41..=50);
}

#[test]
fn autoscale_grows_and_shrinks() {
    for seed in 1..=2 {
        assert_passes(Scenario::Autoscale, seed);
    }
}

#[test]
fn every_planted_bug_is_caught_within_20_seeds() {
    for plant in Plant::ALL {
        let caught = (1..=20)
            .find(|&seed| !run(Scenario::ResizeUnderLoad, seed, Plants::one(plant)).passed());
        assert!(
            caught.is_some(),
            "{plant} was not caught in 20 seeds of resize-under-load"
        );
    }
}
