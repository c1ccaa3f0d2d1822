//! Regression: the ten documented balance logs, reproduced line by line.
//!
//! The fixture `tests/data/documented_frontend_readme.md` is the documented
//! front-end README, kept verbatim. Each `[old] -> [new]` heading is followed by
//! the log the original front-end printed; memring must print the same lines,
//! except that `Paylod` is spelled `Payload`.

use std::process::Command;

use memring::plan::{run_plan, PlanRequest};
use memring::Strategy;

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
