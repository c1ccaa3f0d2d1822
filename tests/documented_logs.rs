//! Regression: the ten documented balance logs, reproduced line by line.
//!
//! The fixture `tests/data/documented_frontend_readme.md` is the documented
//! front-end README, kept verbatim. Each `[old] -> [new]` heading is followed by
//! the log the original front-end printed; memring must print the same lines,
//! except that `Paylod` is spelled `Payload`.

use std::process::Command;

use memring::plan::{run_plan, PlanRequest};
use memring::{plan, BalancePlan, CachedKeys, PlanSettings, Pool, Strategy};

const FIXTURE: &str = include_str!("data/documented_frontend_readme.md");
const CACHED: &str = "test,test123,testabc,k1,k2";

/// One documented transition: the pools as the heading lists them, and the log.
struct Transition {
    from: Vec<String>,
    to: Vec<String>,
    lines: Vec<String>,
}

fn parse_pool(text: &str) -> Vec<String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .expect("a pool heading looks like [A, B]");
    inner.split(',').map(|id| id.trim().to_owned()).collect()
}

fn documented_transitions() -> Vec<Transition> {
    let mut transitions = Vec::new();
    let mut lines = FIXTURE.lines();
    while let Some(line) = lines.next() {
        let Some((from, to)) = line.split_once(" -> ") else {
            continue;
        };
        if !line.starts_with('[') {
            continue;
        }
        assert_eq!(lines.next(), Some("```"), "a log block follows {line}");
        let log: Vec<String> = lines
            .by_ref()
            .take_while(|l| *l != "```")
            .map(|l| l.replace("with Paylod ", "with Payload "))
            .collect();
        transitions.push(Transition {
            from: parse_pool(from),
            to: parse_pool(to),
            lines: log,
        });
    }
    transitions
}

fn args(transition: &Transition, json: bool) -> PlanRequest {
    PlanRequest {
        from: transition.from.join(","),
        to: transition.to.join(","),
        cached: Some(CACHED.to_owned()),
        json,
        node_port: 5001,
        manager_port: 5004,
        strategy: Strategy::Modulo,
    }
}

fn plan_of(transition: &Transition) -> BalancePlan {
    let old_pool = Pool::parse_list(&transition.from.join(",")).unwrap();
    let members = Pool::parse_list(&transition.to.join(",")).unwrap();
    let new_pool = old_pool.transition_to(members.nodes()).unwrap();
    let cached: CachedKeys = CACHED.split(',').collect();
    plan(&old_pool, &new_pool, &cached, PlanSettings::default())
}

fn snapshot_name(transition: &Transition, index: usize) -> String {
    format!(
        "{:02}_{}_to_{}",
        index + 1,
        transition.from.concat(),
        transition.to.concat()
    )
}

#[test]
fn fixture_holds_ten_documented_transitions() {
    let transitions = documented_transitions();
    assert_eq!(transitions.len(), 10);
    for transition in &transitions {
        assert!(transition.lines.len() >= 6);
        assert!(transition.lines.iter().all(|l| l.starts_with("INFO:root:")));
    }
}

#[test]
fn plan_reproduces_each_documented_log_line_by_line() {
    for transition in documented_transitions() {
        let printed = run_plan(&args(&transition, false)).expect("documented input is valid");
        let printed: Vec<&str> = printed.lines().collect();
        for (i, expected) in transition.lines.iter().enumerate() {
            assert_eq!(
                printed.get(i).copied(),
                Some(expected.as_str()),
                "{:?} -> {:?}, line {}",
                transition.from,
                transition.to,
                i + 1
            );
        }
        assert_eq!(printed.len(), transition.lines.len());
    }
}

#[test]
fn memring_plan_binary_prints_the_documented_lines_exactly() {
    for transition in documented_transitions() {
        let output = Command::new(env!("CARGO_BIN_EXE_memring"))
            .arg("plan")
            .arg(format!("--from={}", transition.from.join(",")))
            .arg(format!("--to={}", transition.to.join(",")))
            .arg(format!("--cached={CACHED}"))
            .output()
            .expect("memring runs");
        assert!(output.status.success());
        assert!(output.stderr.is_empty());
        let expected: String = transition.lines.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
    }
}

#[test]
fn documented_logs_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (index, transition) in documented_transitions().iter().enumerate() {
            let name = snapshot_name(transition, index);
            let log = run_plan(&args(transition, false)).unwrap();
            insta::assert_snapshot!(format!("log_{name}"), log);
            let plan = plan_of(transition);
            insta::assert_json_snapshot!(format!("balance_{name}"), plan.balance_result);
        }
    });
}

#[test]
fn json_balance_result_matches_the_documented_log() {
    // The JSON form carries the same plan as the log: check the balance result of
    // every documented transition against the log's `Send to` lines.
    for transition in documented_transitions() {
        let json: serde_json::Value =
            serde_json::from_str(&run_plan(&args(&transition, true)).unwrap()).unwrap();
        let sends: Vec<&String> = transition
            .lines
            .iter()
            .filter(|l| l.starts_with("INFO:root:Send to: "))
            .collect();
        let entries = json["balance_result"].as_array().unwrap();
        assert_eq!(entries.len(), sends.len());
        for (entry, send) in entries.iter().zip(sends) {
            let node = entry["send_to"].as_str().unwrap();
            assert!(send.starts_with(&format!("INFO:root:Send to: {node}:5001/")));
            let port = entry["payload"]["port"].as_i64().unwrap();
            assert!(send.contains(&format!("{{'port': {port}, ")));
        }
        let new_pool: Vec<&str> = json["new_pool"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut members = transition.to.clone();
        members.sort();
        let mut sorted_pool: Vec<String> = new_pool.iter().map(|s| s.to_string()).collect();
        sorted_pool.sort();
        assert_eq!(sorted_pool, members);
    }
}
