//! The simulation as `cargo test` runs it: the documented logs reproduced on the
//! simulated network; determinism (a seed is the whole input of its run, in one
//! process or two); seeds of every scenario; each planted bug caught by a fixed
//! seed of its targeted scenario, and a small sample of catch rates.

use memring::hooks::Plant;
use memring_sim::documented::transitions;
use memring_sim::run::{describe_violations, run, run_with};
use memring_sim::scenarios::Scenario;
use memring_sim::swarm::{digest_line, targeted_scenario};

fn assert_passes(scenario: Scenario, seed: u64) {
    let report = run(scenario, seed, None);
    assert!(
        report.passed(),
        "{}",
        describe_violations(&report, scenario, seed, None)
    );
}

#[test]
fn documented_logs_are_reproduced_on_the_simulated_network() {
    let report = run(Scenario::DocumentedLogs, 1, None);
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
}

#[test]
fn a_seed_reproduces_its_trace_byte_for_byte() {
    let first = run(Scenario::Chaos, 7, None);
    let second = run(Scenario::Chaos, 7, None);
    assert!(first.trace.len() > 1_000, "the trace records the run");
    assert_eq!(first.trace, second.trace);
    assert_eq!(first.output.text, second.output.text);
    let other = run(Scenario::Chaos, 8, None);
    assert_ne!(first.trace, other.trace);
}

/// Runs before a seed must not change it: tokio's task ids are process-wide, and
/// once they decided the order in which a crashed host's tasks were dropped.
#[test]
fn a_seed_is_the_whole_input_of_its_run() {
    let alone = run(Scenario::Chaos, 22, None).trace_hash();
    for earlier in [20, 21] {
        let _ = run(Scenario::Chaos, earlier, None);
    }
    let after_others = run(Scenario::Chaos, 22, None).trace_hash();
    assert_eq!(alone, after_others, "seed 22 changed after seeds 20 and 21");
}

/// Two separate processes give the same digest as this one.
#[test]
fn trace_digests_agree_across_processes() {
    let here = digest_line(&run(Scenario::Chaos, 5, None));
    let in_process = |seed: u64| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_memring-sim"))
            .args([
                "run",
                "--scenario",
                "chaos",
                "--seed",
                &seed.to_string(),
                "--digest",
            ])
            .output()
            .expect("memring-sim runs");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|line| line.starts_with("digest "))
            .map(str::to_owned)
            .expect("a digest line")
    };
    let first = in_process(5);
    let second = in_process(5);
    assert_eq!(first, second, "two processes disagree");
    assert_eq!(first, here, "a process and this test disagree");
    assert_ne!(in_process(6), first);
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

/// Chaos seed 81 found a race the fixes before it missed: a node invalidated by
/// an upload, then cleared as it joined the pool (losing the floor), then given
/// the old image by its previous owner's move. Invalidation now goes again to a
/// node whose fence token changed since its call. Later harness changes reshaped
/// seed 81's run. With that fix undone, seeds 4, 15 and 185 are the ones of the
/// first 300 that fail now (operators pick nodes through the manager), each with
/// a stale read; seed 4 is the first.
#[test]
fn chaos_seed_4_invalidates_a_node_cleared_during_the_upload() {
    assert_passes(Scenario::Chaos, 4);
}

/// Chaos seed 698 found that the manager's listing could name a node in neither
/// its pool nor its ejected list: a health round took a rejoining node off the
/// ejected list before the resize that adds it to the pool (which first pushes
/// it the cache configuration) committed. The two lists now change in one step.
#[test]
fn chaos_seed_698_changes_the_pool_and_the_ejected_list_together() {
    assert_passes(Scenario::Chaos, 698);
}

/// Chaos seed 632 found that a successful upload settled its key although a
/// later, failed upload of it (row commit unknown) had marked it unsettled. With
/// the current harness no seed of the first 600 fails with that fix undone, so
/// the fix is guarded by the front-end's unit test
/// `only_marks_older_than_the_settler_are_settled`; this stays as a clean seed.
#[test]
fn chaos_seed_632_is_clean() {
    assert_passes(Scenario::Chaos, 632);
}

#[test]
fn targeted_scenarios_are_clean() {
    for scenario in [
        Scenario::MoveRace,
        Scenario::JoinRace,
        Scenario::EvictionRace,
        Scenario::ClearRace,
        Scenario::ManagerPowerLoss,
        Scenario::ManagerDiskLoss,
        Scenario::Rogue,
    ] {
        for seed in 1..=2 {
            assert_passes(scenario, seed);
        }
    }
}

/// A dead node is ejected, routed around, and rejoins once back, each within
/// the health-check bound (virtual time; this replaced a real-time test).
#[test]
fn a_dead_node_is_ejected_and_rejoins_within_the_bound() {
    for seed in 1..=3 {
        assert_passes(Scenario::NodeDeath, seed);
    }
}

/// The rogue scenario's attacks do harm when the roles hold no tokens: its
/// checks can fail (with the tokens, `targeted_scenarios_are_clean` runs it).
#[test]
fn rogue_attacks_are_seen_when_the_ports_are_open() {
    let report = run_with(1, None, |run| {
        let mut spec = memring_sim::world::WorldSpec::randomized(1);
        spec.tokens_off = true;
        memring_sim::scenarios::rogue::run_in(run, spec)
    });
    let seen: std::collections::BTreeSet<String> = report
        .output
        .violations
        .iter()
        .map(|v| v.invariant.to_string())
        .collect();
    for invariant in [
        "11. internal and admin calls need their tokens",
        "1. no stale read",
    ] {
        assert!(seen.contains(invariant), "{invariant} not seen: {seen:?}");
    }
}

#[test]
fn autoscale_grows_and_shrinks() {
    for seed in 1..=2 {
        assert_passes(Scenario::Autoscale, seed);
    }
}

/// One seed per planted bug that catches it on the bug's targeted scenario, and
/// passes without the bug: the catch is the bug's doing.
const CATCHING_SEEDS: [(Plant, u64); 9] = [
    (Plant::SkipInvalidate, 1),
    (Plant::StaleMove, 1),
    (Plant::AckBeforeDurable, 1),
    (Plant::StaleRoute, 2),
    (Plant::EvictDropsFloor, 1),
    (Plant::InvalidateStaleRouting, 2),
    (Plant::ClearRacesUpload, 1),
    (Plant::ManagerEpochReset, 1),
    (Plant::NoFsync, 1),
];

#[test]
fn every_planted_bug_is_caught_by_its_fixed_seed() {
    for (plant, seed) in CATCHING_SEEDS {
        let scenario = targeted_scenario(plant);
        let planted = run(scenario, seed, Some(plant));
        assert!(
            !planted.passed(),
            "{plant} was not caught by seed {seed} of {}",
            scenario.name()
        );
        assert_passes(scenario, seed);
    }
    assert_eq!(
        CATCHING_SEEDS.len(),
        Plant::ALL.len(),
        "every plant has a seed"
    );
}

/// A small sample of catch rates: seeds 101 to 105 of each targeted scenario
/// catch each bug at least four times in five.
#[test]
fn planted_bugs_are_caught_in_most_seeds() {
    let mut weak = Vec::new();
    for plant in Plant::ALL {
        let scenario = targeted_scenario(plant);
        let caught = (101..=105)
            .filter(|&seed| !run(scenario, seed, Some(plant)).passed())
            .count();
        if caught < 4 {
            weak.push(format!("{plant}: {caught}/5 on {}", scenario.name()));
        }
    }
    assert!(weak.is_empty(), "weak catches: {weak:?}");
}
