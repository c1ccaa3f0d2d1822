//! `documented-logs`: the ten documented transitions, each in a fresh world that
//! starts with the old pool in the documented join order. Five keys are uploaded
//! and read (so they are cached in that order), the new pool is picked through
//! the manager (which tells the front-end), and the front-end's rebalance lines
//! must equal the documented ones. Afterwards every moved key must
//! sit on its new owner and nowhere else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memring::balance::{plan, CachedKeys, PlanSettings};
use memring::ring::{partition, NodeId, Pool};

use crate::checker::{Invariant, Violation};
use crate::context::{Run, RunOutput};
use crate::documented::transitions;
use crate::driver::Driver;
use crate::history::History;
use crate::world::{build, WorldSpec};

/// The keys, in caching order.
pub const KEYS: [&str; 5] = ["test", "test123", "testabc", "k1", "k2"];

fn ids(names: &[String]) -> Vec<NodeId> {
    names
        .iter()
        .map(|n| NodeId::new(n).expect("documented ids are valid"))
        .collect()
}

pub fn run(run: &Run) -> RunOutput {
    let mut output = RunOutput::default();
    for (index, transition) in transitions().into_iter().enumerate() {
        run.recorder.clear_rebalance_lines();
        run.recorder.note(
            "sim",
            &format!(
                "world {}: {:?} -> {:?}",
                index + 1,
                transition.from,
                transition.to
            ),
        );
        let mut spec = WorldSpec::new(run.seed);
        spec.slots = vec!["A".into(), "B".into(), "C".into(), "D".into()];
        spec.initial_pool = transition.from.clone();
        let mut world = build(&spec);
        let sim = &mut world.sim;
        let history = History::default();
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();

        let old_pool = Pool::new(ids(&transition.from)).expect("documented pool");
        let new_pool = old_pool
            .transition_to(&ids(&transition.to))
            .expect("documented pool");
        let cached: CachedKeys = KEYS.iter().collect();
        let expected = plan(&old_pool, &new_pool, &cached, PlanSettings::default());

        let driver = Driver::new("client", history.clone());
        let found = problems.clone();
        let members = transition.to.clone();
        sim.client("client", async move {
            let problem = |text: String| found.lock().unwrap_or_else(|p| p.into_inner()).push(text);
            if !driver.wait_ready(30_000).await {
                problem("the front-end never became ready".into());
                return Ok(());
            }
            for (generation, key) in KEYS.iter().enumerate() {
                driver.upload(key, generation as u64 + 1, 1024).await;
            }
            for key in KEYS {
                driver.read(key, false).await;
            }
            // The fills run in the background: wait until each owner holds its keys.
            for key in KEYS {
                let owner = expected.old_mapping.owner(partition(key)).to_string();
                let mut held = false;
                for _ in 0..50 {
                    if driver
                        .node_keys(&owner)
                        .await
                        .is_some_and(|keys| keys.iter().any(|k| k == key))
                    {
                        held = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if !held {
                    problem(format!("{key} never reached its owner {owner}"));
                }
            }
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            // The pool is picked through the manager, which tells the front-end.
            if !driver.set_pool(&members).await {
                problem("the pool change was not acknowledged".into());
            }
            // Every moved key sits on its new owner, and nowhere else.
            for key in KEYS {
                let p = partition(key);
                let (old, new) = (expected.old_mapping.owner(p), expected.new_mapping.owner(p));
                if old == new {
                    continue;
                }
                for node in ["A", "B", "C", "D"] {
                    let holds = driver
                        .node_keys(node)
                        .await
                        .is_some_and(|keys| keys.iter().any(|k| k == key));
                    if holds != (node == new.as_str()) {
                        problem(format!(
                            "after the move, node {node} {} {key} (new owner {new})",
                            if holds { "holds" } else { "lacks" }
                        ));
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = sim.run() {
            problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("simulation error: {error}"));
        }
        output.history.extend(history.snapshot());

        let logged = run.recorder.rebalance_lines();
        for line in &logged {
            output.text.push_str(&format!("INFO:root:{line}\n"));
        }
        let logged_prefixed: Vec<String> =
            logged.iter().map(|l| format!("INFO:root:{l}")).collect();
        if logged_prefixed != transition.lines {
            output.violations.push(Violation {
                invariant: Invariant::Documented,
                message: format!(
                    "world {}: the rebalance log differs from the documented one (first difference at line {})",
                    index + 1,
                    logged_prefixed.iter().zip(&transition.lines).position(|(a, b)| a != b).unwrap_or(logged_prefixed.len().min(transition.lines.len())) + 1
                ),
                op: None,
            });
        }
        for problem in problems.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            output.violations.push(Violation {
                invariant: Invariant::Documented,
                message: format!("world {}: {problem}", index + 1),
                op: None,
            });
        }
    }
    output
}
