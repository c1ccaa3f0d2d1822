//! `memring plan` as a user runs it: flags, ports and one-line errors on bad input.

use std::process::{Command, Output};

fn memring(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memring"))
        .args(args)
        .output()
        .expect("memring runs")
}

fn assert_refused(args: &[&str], needle: &str) {
    let output = memring(args);
    assert!(!output.status.success(), "{args:?} was accepted");
    assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr:?}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    let seventeen: Vec<String> = (0..17).map(|i| format!("n{i}")).collect();
    let seventeen = format!("--from={}", seventeen.join(","));
    let long_key = format!("--cached={}", "k".repeat(49));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["plan", "--from=", "--to=A"], "empty"),
        (vec!["plan", "--from=A", "--to="], "empty"),
        (vec!["plan", "--from=A,B,A", "--to=A"], "listed twice"),
        (vec!["plan", "--from=A", "--to=B,B"], "listed twice"),
        (vec!["plan", &seventeen, "--to=A"], "at most 16"),
        (vec!["plan", "--from=A", "--to=B", "--cached=a,,b"], "empty"),
        (vec!["plan", "--from=A", "--to=B", "--cached=,"], "empty"),
        (
            vec!["plan", "--from=A", "--to=B", "--cached=a b"],
            "white space",
        ),
        (vec!["plan", "--from=A", "--to=B", &long_key], "48"),
        (vec!["plan", "--from=A/B", "--to=B"], "bad node id"),
        (vec!["plan", "--from=A", "--to=B:0"], "bad port"),
        (
            vec!["plan", "--from=A", "--to=B", "--strategy=ring"],
            "ring",
        ),
        (vec!["plan", "--from=A"], "--to"),
        (vec!["plan", "--from=A", "--to=B", "--node-port=0"], "0"),
        (vec!["plan", "--from=A", "--to=B", "--bogus"], "--bogus"),
    ];
    for (args, needle) in cases {
        assert_refused(&args, needle);
    }
}

#[test]
fn ports_come_from_flags_or_from_the_node_id() {
    let output = memring(&[
        "plan",
        "--from=A,h2:6001,C",
        "--to=A",
        "--cached=test,k2,k1",
        "--node-port=7001",
        "--manager-port=7004",
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let sends: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("INFO:root:Send to: "))
        .collect();
    // Old owners: test (partition 0) and k2 (6) on A, k1 (11) on C. h2 leaves with
    // nothing cached; C leaves and hands k1 to A.
    assert_eq!(
        sends,
        [
            "INFO:root:Send to: h2:6001/api/cache/move_keys with Payload {'port': 7004, 'dest': {}}",
            "INFO:root:Send to: C:7001/api/cache/move_keys with Payload {'port': 7004, 'dest': {'A': ['k1']}}",
        ]
    );
}

#[test]
fn no_change_plans_no_moves() {
    let output = memring(&["plan", "--from=A,B", "--to=B,A", "--cached=test", "--json"]);
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["new_pool"], serde_json::json!(["A", "B"]));
    assert_eq!(json["old_new_mapping"], serde_json::json!([]));
    assert_eq!(json["balance_result"], serde_json::json!([]));
}

#[test]
fn help_is_not_an_error() {
    let output = memring(&["plan", "--help"]);
    assert!(output.status.success());
    assert!(String::from_utf8(output.stdout)
        .unwrap()
        .contains("--cached"));
}
