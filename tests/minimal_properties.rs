//! Properties of the `minimal` assignment over random resize sequences: balance,
//! single adds and removes that move only what they must, and optimality against a
//! brute-force minimum over every balanced assignment.

use memring::{Assignment, NodeId, Pool, Strategy as Assign, PARTITION_COUNT};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Add,
    Remove(usize),
    Replace(Vec<bool>, usize),
}

fn id(i: usize) -> NodeId {
    NodeId::new(&format!("n{i}")).unwrap()
}

fn loads(pool: &Pool, mapping: &Assignment) -> Vec<usize> {
    pool.nodes()
        .iter()
        .map(|n| mapping.partitions_of(n).len())
        .collect()
}

/// The fewest moves any balanced assignment of `new_pool` needs from `old`.
fn brute_force_minimum(old: &Assignment, new_pool: &Pool) -> usize {
    let n = new_pool.len();
    let (base, extra) = (PARTITION_COUNT / n, PARTITION_COUNT % n);
    let current: Vec<usize> = new_pool
        .nodes()
        .iter()
        .map(|node| old.partitions_of(node).len())
        .collect();
    let mut best_kept = 0;
    // Every way to choose which `extra` nodes hold one more partition.
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize != extra {
            continue;
        }
        let kept: usize = (0..n)
            .map(|i| current[i].min(base + usize::from(mask & (1 << i) != 0)))
            .sum();
        best_kept = best_kept.max(kept);
    }
    PARTITION_COUNT - best_kept
}

fn moved(old: &Assignment, new: &Assignment) -> Vec<(u8, NodeId, NodeId)> {
    old.iter()
        .zip(new.iter())
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, b)| (a.0, a.1.clone(), b.1.clone()))
        .collect()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Add),
        3 => (0usize..16).prop_map(Step::Remove),
        1 => (proptest::collection::vec(any::<bool>(), 16), 0usize..4).prop_map(|(keep, add)| Step::Replace(keep, add)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn minimal_is_balanced_and_moves_no_more_than_it_must(
        start in 1usize..=12,
        steps in proptest::collection::vec(step(), 1..12),
    ) {
        let mut next_id = start;
        let mut pool = Pool::new((0..start).map(id).collect()).unwrap();
        let mut mapping = Assign::Minimal.assign(&pool, None);
        for step in steps {
            let new_pool = match &step {
                Step::Add if pool.len() < 16 => { next_id += 1; pool.with_added(id(next_id)).unwrap() }
                Step::Remove(i) if pool.len() > 1 => pool.with_removed(&pool.nodes()[i % pool.len()].clone()).unwrap(),
                Step::Replace(keep, add) => {
                    let mut members: Vec<NodeId> = pool.nodes().iter().zip(keep).filter(|(_, k)| **k).map(|(n, _)| n.clone()).collect();
                    for _ in 0..*add { next_id += 1; members.push(id(next_id)); }
                    members.truncate(16);
                    if members.is_empty() { continue; }
                    pool.transition_to(&members).unwrap()
                }
                _ => continue,
            };
            let new_mapping = Assign::Minimal.assign(&new_pool, Some(&mapping));
            let moves = moved(&mapping, &new_mapping);

            // Ownership and balance.
            for owner in new_mapping.owners() {
                prop_assert!(new_pool.contains(owner));
            }
            let l = loads(&new_pool, &new_mapping);
            prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1, "loads {:?}", l);

            // Optimality against every balanced assignment.
            prop_assert_eq!(moves.len(), brute_force_minimum(&mapping, &new_pool));

            match &step {
                Step::Add if new_pool.len() > pool.len() => {
                    let newcomer = new_pool.nodes().last().unwrap();
                    let n = new_pool.len();
                    prop_assert!(moves.iter().all(|(_, _, to)| to == newcomer));
                    prop_assert!((PARTITION_COUNT / n..=PARTITION_COUNT.div_ceil(n)).contains(&moves.len()));
                    // Taken from the most loaded nodes.
                    let before = loads(&pool, &mapping);
                    let max_before = *before.iter().max().unwrap();
                    for (_, from, _) in &moves {
                        let i = pool.nodes().iter().position(|n| n == from).unwrap();
                        prop_assert!(before[i] + 1 >= max_before);
                    }
                }
                Step::Remove(_) if new_pool.len() < pool.len() => {
                    let gone = pool.nodes().iter().find(|n| !new_pool.contains(n)).unwrap();
                    let expected = mapping.partitions_of(gone);
                    let got: Vec<u8> = moves.iter().map(|(p, _, _)| *p).collect();
                    prop_assert_eq!(got, expected);
                }
                _ => {}
            }
            pool = new_pool;
            mapping = new_mapping;
        }
    }

    #[test]
    fn modulo_never_moves_fewer_than_minimal(n in 1usize..=8, grow in any::<bool>()) {
        prop_assume!(grow || n > 1);
        let pool = Pool::new((0..n).map(id).collect()).unwrap();
        let new_pool = if grow { pool.with_added(id(99)).unwrap() } else { pool.with_removed(&id(n - 1)).unwrap() };
        let old = Assign::Modulo.assign(&pool, None);
        let by_modulo = moved(&old, &Assign::Modulo.assign(&new_pool, Some(&old))).len();
        let by_minimal = moved(&old, &Assign::Minimal.assign(&new_pool, Some(&old))).len();
        prop_assert!(by_minimal <= by_modulo);
    }
}
