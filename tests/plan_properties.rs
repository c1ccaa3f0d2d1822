//! Properties of the balance planner over random pools, transitions and key sets,
//! plus a differential check of `memring plan --json` against a plain model of the
//! documented rule.

use std::collections::BTreeSet;

use md5::{Digest, Md5};
use memring::balance::{plan, BalancePlan, CachedKeys, PlanSettings};
use memring::plan::{run_plan, PlanRequest};
use memring::Strategy as AssignStrategy;
use memring::{NodeId, Pool, PARTITION_COUNT};
use proptest::prelude::*;
use proptest::sample::subsequence;

const MANAGER_PORT: u16 = 5004;

/// A random transition: old pool in join order, new member list, cached keys.
#[derive(Debug, Clone)]
struct Case {
    from: Vec<String>,
    to: Vec<String>,
    cached: Vec<String>,
}

fn node_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z]",
        "[a-z][a-z0-9_-]{0,10}",
        "10\\.0\\.[0-9]{1,2}\\.[0-9]{1,3}",
        "10\\.0\\.0\\.[0-9]{1,3}:5[0-9]{3}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    // Printable ASCII without space and comma (the CLI splits keys on commas).
    "[!-+\\--~]{1,48}"
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::btree_set(node_id(), 2..=32),
        proptest::collection::vec(key(), 0..40),
    )
        .prop_flat_map(|(ids, cached)| {
            let ids: Vec<String> = ids.into_iter().collect();
            let count = ids.len();
            (
                Just(ids),
                Just(cached),
                1..=count.min(16),
                any::<u64>(),
                any::<u64>(),
            )
        })
        .prop_flat_map(|(ids, cached, old_len, shuffle_seed, pick_seed)| {
            // Old pool: the first `old_len` ids, in a seeded shuffled order.
            let mut old: Vec<String> = ids[..old_len].to_vec();
            shuffle(&mut old, shuffle_seed);
            let others: Vec<String> = ids[old_len..].to_vec();
            let max_new = others.len();
            (
                Just(old.clone()),
                subsequence(old, 0..=old_len),
                subsequence(others, 0..=max_new),
                Just(cached),
                Just(pick_seed),
            )
        })
        .prop_filter_map(
            "new pool must hold 1..=16 nodes",
            |(from, survivors, newcomers, cached, seed)| {
                let mut to: Vec<String> = survivors.into_iter().chain(newcomers).collect();
                shuffle(&mut to, seed);
                (1..=16)
                    .contains(&to.len())
                    .then_some(Case { from, to, cached })
            },
        )
}

/// A small deterministic Fisher-Yates shuffle (xorshift), so cases stay replayable.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn ids(list: &[String]) -> Vec<NodeId> {
    list.iter().map(|s| NodeId::new(s).unwrap()).collect()
}

fn plan_of(case: &Case) -> BalancePlan {
    let old_pool = Pool::new(ids(&case.from)).unwrap();
    let new_pool = old_pool.transition_to(&ids(&case.to)).unwrap();
    let cached: CachedKeys = case.cached.iter().collect();
    let settings = PlanSettings {
        strategy: AssignStrategy::Modulo,
        manager_port: MANAGER_PORT,
    };
    plan(&old_pool, &new_pool, &cached, settings)
}

fn model_partition(key: &str) -> usize {
    (Md5::digest(key.as_bytes())[0] >> 4) as usize
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn json_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| json_str(s)).collect();
    format!("[{}]", items.join(","))
}

/// The documented rule, written out plainly over strings, rendered as the JSON
/// the `--json` flag promises.
fn model_json(case: &Case) -> String {
    let old_pool = case.from.clone();
    let mut new_pool: Vec<String> = old_pool
        .iter()
        .filter(|n| case.to.contains(n))
        .cloned()
        .collect();
    new_pool.extend(case.to.iter().filter(|n| !old_pool.contains(n)).cloned());
    let old_map: Vec<String> = (0..16)
        .map(|i| old_pool[i % old_pool.len()].clone())
        .collect();
    let new_map: Vec<String> = (0..16)
        .map(|i| new_pool[i % new_pool.len()].clone())
        .collect();

    // Old-new mapping, owners in order of first moved partition.
    let mut owners: Vec<(String, Vec<(usize, String)>)> = Vec::new();
    for p in 0..16 {
        if old_map[p] != new_map[p] {
            match owners.iter_mut().find(|(o, _)| *o == old_map[p]) {
                Some((_, moves)) => moves.push((p, new_map[p].clone())),
                None => owners.push((old_map[p].clone(), vec![(p, new_map[p].clone())])),
            }
        }
    }

    // Cached keys: partitions in first-cached order, keys sorted and distinct.
    let mut order: Vec<usize> = Vec::new();
    let mut sets: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 16];
    for key in &case.cached {
        let p = model_partition(key);
        if !order.contains(&p) {
            order.push(p);
        }
        sets[p].insert(key.clone());
    }

    let mut balance = Vec::new();
    for (owner, moves) in &owners {
        let mut dest: Vec<(String, Vec<String>)> = Vec::new();
        for (p, to) in moves {
            if sets[*p].is_empty() {
                continue;
            }
            match dest.iter_mut().find(|(d, _)| d == to) {
                Some((_, keys)) => keys.extend(sets[*p].iter().cloned()),
                None => dest.push((to.clone(), sets[*p].iter().cloned().collect())),
            }
        }
        let leaving = !new_pool.contains(owner);
        if dest.is_empty() && !leaving {
            continue;
        }
        let port = if leaving { MANAGER_PORT as i32 } else { -1 };
        let dest: Vec<String> = dest
            .iter()
            .map(|(d, keys)| format!("{}:{}", json_str(d), json_list(keys)))
            .collect();
        balance.push(format!(
            "{{\"send_to\":{},\"payload\":{{\"port\":{port},\"dest\":{{{}}}}}}}",
            json_str(owner),
            dest.join(",")
        ));
    }

    let old_new: Vec<String> = owners
        .iter()
        .map(|(owner, moves)| {
            let moves: Vec<String> = moves
                .iter()
                .map(|(p, to)| format!("{{\"partition\":{p},\"to\":{}}}", json_str(to)))
                .collect();
            format!(
                "{{\"from\":{},\"moves\":[{}]}}",
                json_str(owner),
                moves.join(",")
            )
        })
        .collect();
    let cached: Vec<String> = order
        .iter()
        .map(|&p| {
            let keys: Vec<String> = sets[p].iter().cloned().collect();
            format!("{{\"partition\":{p},\"keys\":{}}}", json_list(&keys))
        })
        .collect();
    format!(
        "{{\"old_pool\":{},\"new_pool\":{},\"old_mapping\":{},\"new_mapping\":{},\"old_new_mapping\":[{}],\"cached_keys\":[{}],\"balance_result\":[{}]}}\n",
        json_list(&old_pool),
        json_list(&new_pool),
        json_list(&old_map),
        json_list(&new_map),
        old_new.join(","),
        cached.join(","),
        balance.join(",")
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_partition_has_one_owner_in_its_pool(case in case()) {
        let plan = plan_of(&case);
        for (pool, mapping) in [(&plan.old_pool, &plan.old_mapping), (&plan.new_pool, &plan.new_mapping)] {
            prop_assert_eq!(mapping.owners().len(), PARTITION_COUNT);
            for owner in mapping.owners() {
                prop_assert!(pool.contains(owner));
            }
        }
        // Every node of a pool of at most 16 owns at least one partition.
        for node in plan.new_pool.nodes() {
            prop_assert!(!plan.new_mapping.partitions_of(node).is_empty());
        }
    }

    #[test]
    fn moves_are_exactly_the_changed_partitions(case in case()) {
        let plan = plan_of(&case);
        let mut moved: Vec<(u8, &NodeId, &NodeId)> = Vec::new();
        for owner in &plan.old_new_mapping {
            prop_assert!(!owner.moves.is_empty());
            for step in &owner.moves {
                moved.push((step.partition, &owner.from, &step.to));
            }
        }
        moved.sort();
        let changed: Vec<(u8, &NodeId, &NodeId)> = plan.old_mapping.iter()
            .zip(plan.new_mapping.iter())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((p, old), (_, new))| (p, old, new))
            .collect();
        prop_assert_eq!(moved, changed);
        // Old owners appear once each, ordered by their first moved partition.
        let firsts: Vec<u8> = plan.old_new_mapping.iter().map(|o| o.moves[0].partition).collect();
        prop_assert!(firsts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn moved_keys_go_to_their_new_owner_exactly_once(case in case()) {
        let plan = plan_of(&case);
        let mut sent: Vec<(&NodeId, &NodeId, &str)> = Vec::new();
        for entry in &plan.balance_result {
            for (to, key) in entry.payload.dest.iter_keys() {
                sent.push((&entry.send_to, to, key));
            }
        }
        let distinct: BTreeSet<&str> = case.cached.iter().map(String::as_str).collect();
        for key in distinct {
            let p = memring::partition(key);
            let old = plan.old_mapping.owner(p);
            let new = plan.new_mapping.owner(p);
            let copies: Vec<_> = sent.iter().filter(|(_, _, k)| *k == key).collect();
            if old == new {
                prop_assert!(copies.is_empty(), "unmoved key {} was sent", key);
            } else {
                prop_assert_eq!(copies.len(), 1, "key {} sent {} times", key, copies.len());
                prop_assert_eq!(copies[0].0, old);
                prop_assert_eq!(copies[0].1, new);
            }
        }
        prop_assert_eq!(sent.len(), sent.iter().map(|s| s.2).collect::<BTreeSet<_>>().len());
    }

    #[test]
    fn leaving_nodes_get_an_entry_and_ports_follow_the_rule(case in case()) {
        let plan = plan_of(&case);
        for node in plan.old_pool.nodes() {
            let entries: Vec<_> = plan.balance_result.iter().filter(|e| &e.send_to == node).collect();
            prop_assert!(entries.len() <= 1);
            if plan.new_pool.contains(node) {
                if let Some(entry) = entries.first() {
                    prop_assert_eq!(entry.payload.port, -1);
                    prop_assert!(!entry.payload.dest.is_empty());
                }
            } else {
                prop_assert_eq!(entries.len(), 1, "leaving node {} has no entry", node);
                prop_assert_eq!(entries[0].payload.port, i32::from(MANAGER_PORT));
            }
        }
    }

    /// `memring plan` prints the plan the library makes: its JSON is that plan,
    /// and its lines are that plan's documented lines.
    #[test]
    fn the_plan_command_prints_the_library_plan(case in case()) {
        let expected = plan_of(&case);
        let args = |json| PlanRequest {
            from: case.from.join(","),
            to: case.to.join(","),
            cached: Some(case.cached.join(",")),
            json,
            node_port: 5001,
            manager_port: MANAGER_PORT,
            strategy: AssignStrategy::Modulo,
        };
        let printed: serde_json::Value =
            serde_json::from_str(&run_plan(&args(true)).unwrap()).unwrap();
        prop_assert_eq!(printed, serde_json::to_value(&expected).unwrap());
        let lines: String = memring::render::plan_lines(&expected, 5001)
            .into_iter()
            .map(|line| format!("{}{line}\n", memring::render::LOG_PREFIX))
            .collect();
        prop_assert_eq!(run_plan(&args(false)).unwrap(), lines);
    }

    #[test]
    fn json_output_matches_the_documented_rule(case in case()) {
        let args = PlanRequest {
            from: case.from.join(","),
            to: case.to.join(","),
            cached: Some(case.cached.join(",")),
            json: true,
            node_port: 5001,
            manager_port: MANAGER_PORT,
            strategy: AssignStrategy::Modulo,
        };
        prop_assert_eq!(run_plan(&args).unwrap(), model_json(&case));
    }
}
