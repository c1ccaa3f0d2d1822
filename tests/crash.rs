//! The crash test in CI: twenty rounds of `memring up` (the binary this package
//! builds) killed with SIGKILL under load, restarted on the same data directory and
//! checked by `memring-sim`'s crash model (no acknowledged upload lost, every listed
//! key readable, no damaged or resurrected image).

use std::path::PathBuf;

use memring_sim::crash::{run, CrashConfig};

#[test]
fn twenty_kills_under_load_lose_nothing_acknowledged() {
    let mut config = CrashConfig::new(20, 7, PathBuf::from(env!("CARGO_BIN_EXE_memring")));
    // Shorter rounds than the command's, to stay well under 90 s in debug builds.
    config.round_ms_min = 150;
    config.round_ms_max = 700;
    let report = run(&config).expect("the crash test runs");
    println!("{}", report.summary());
    assert!(
        report.passed(),
        "{} violations (first in round {:?}; data kept in {:?}):\n{}",
        report.violation_count,
        report.first_violation_round,
        report.kept_dir,
        report.violations.join("\n")
    );
    assert_eq!(report.rounds, 20);
    assert_eq!(report.kills, 20);
    assert!(
        report.acknowledged_uploads > 0,
        "the load uploaded: {}",
        report.summary()
    );
    assert!(
        report.acknowledged_clears > 0,
        "the load cleared: {}",
        report.summary()
    );
    assert!(report.keys_checked > 0, "keys were checked");
}
