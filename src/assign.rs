//! Assignment of partitions to the nodes of a pool, behind a strategy seam.
//!
//! The documented strategy is [`Strategy::Modulo`]: region `i` belongs to
//! `pool[i % len]`. [`Strategy::Minimal`] sees the previous assignment and moves as
//! few partitions as a balanced assignment allows: adding a node moves only
//! partitions to the newcomer, taken from the most loaded nodes; removing one moves
//! only its partitions, to the least loaded nodes; loads never differ by more than
//! one partition.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::ring::{NodeId, Partition, Pool, PARTITION_COUNT};

/// The owner of every partition: index = partition.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(transparent)]
pub struct Assignment {
    owners: [NodeId; PARTITION_COUNT],
}

impl Assignment {
    /// An assignment from one owner per partition.
    pub fn from_owners(owners: [NodeId; PARTITION_COUNT]) -> Self {
        Assignment { owners }
    }

    /// The owner of `partition`.
    pub fn owner(&self, partition: Partition) -> &NodeId {
        &self.owners[partition as usize]
    }

    /// The owners, index = partition.
    pub fn owners(&self) -> &[NodeId; PARTITION_COUNT] {
        &self.owners
    }

    /// `(partition, owner)` in partition order.
    pub fn iter(&self) -> impl Iterator<Item = (Partition, &NodeId)> {
        self.owners
            .iter()
            .enumerate()
            .map(|(partition, owner)| (partition as Partition, owner))
    }

    /// An assignment from node ids as text, checking each is a member of `pool`.
    pub fn from_ids(ids: &[String], pool: &Pool) -> Result<Self, InputError> {
        if ids.len() != PARTITION_COUNT {
            return Err(InputError::BadAssignment(format!(
                "{} owners given, {PARTITION_COUNT} expected",
                ids.len()
            )));
        }
        let owners = ids
            .iter()
            .map(|id| {
                let node = NodeId::new(id)?;
                if pool.contains(&node) {
                    Ok(node)
                } else {
                    Err(InputError::BadAssignment(format!(
                        "{id} is not in the pool"
                    )))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Assignment {
            owners: std::array::from_fn(|p| owners[p].clone()),
        })
    }

    /// The partitions owned by `node`, ascending.
    pub fn partitions_of(&self, node: &NodeId) -> Vec<Partition> {
        self.iter()
            .filter(|(_, owner)| *owner == node)
            .map(|(partition, _)| partition)
            .collect()
    }
}

/// How partitions are allocated to nodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The documented rule: region `i` belongs to `pool[i % len]`.
    #[default]
    Modulo,
    /// Fewest moves for a balanced assignment, starting from the previous one.
    Minimal,
}

impl Strategy {
    /// The assignment for `pool`. `previous` is the assignment being replaced, if
    /// any; the modulo strategy does not look at it.
    pub fn assign(self, pool: &Pool, previous: Option<&Assignment>) -> Assignment {
        match (self, previous) {
            (Strategy::Modulo, _) | (Strategy::Minimal, None) => modulo(pool),
            (Strategy::Minimal, Some(previous)) => minimal(pool, previous),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Modulo => "modulo",
            Strategy::Minimal => "minimal",
        }
    }
}

/// The balanced loads for `pool` given current `loads` (index = pool position):
/// every node gets `16 / n`, and the `16 % n` currently most loaded nodes (ties
/// by join order) get one more, which keeps as many partitions in place as any
/// balanced assignment can.
pub fn balanced_quotas(loads: &[usize]) -> Vec<usize> {
    let n = loads.len();
    let (base, extra) = (PARTITION_COUNT / n, PARTITION_COUNT % n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(loads[i]), i));
    let mut quotas = vec![base; n];
    for &i in order.iter().take(extra) {
        quotas[i] += 1;
    }
    quotas
}

fn minimal(pool: &Pool, previous: &Assignment) -> Assignment {
    let nodes = pool.nodes();
    let position = |node: &NodeId| nodes.iter().position(|n| n == node);
    let mut owners: [Option<usize>; PARTITION_COUNT] =
        std::array::from_fn(|p| position(&previous.owners[p]));
    let mut loads = vec![0usize; nodes.len()];
    for owner in owners.iter().flatten() {
        loads[*owner] += 1;
    }
    let quotas = balanced_quotas(&loads);
    // Over-quota nodes give up their highest partitions.
    for (node, quota) in quotas.iter().enumerate() {
        for p in (0..PARTITION_COUNT).rev() {
            if loads[node] <= *quota {
                break;
            }
            if owners[p] == Some(node) {
                owners[p] = None;
                loads[node] -= 1;
            }
        }
    }
    // Orphans, lowest first, go to the least loaded node with room.
    for owner in owners.iter_mut().filter(|o| o.is_none()) {
        let node = (0..nodes.len())
            .filter(|&n| loads[n] < quotas[n])
            .min_by_key(|&n| (loads[n], n))
            .expect("quotas add up to the partition count");
        *owner = Some(node);
        loads[node] += 1;
    }
    Assignment {
        owners: std::array::from_fn(|p| {
            nodes[owners[p].expect("every partition was given an owner")].clone()
        }),
    }
}

fn modulo(pool: &Pool) -> Assignment {
    let nodes = pool.nodes();
    Assignment {
        owners: std::array::from_fn(|partition| nodes[partition % nodes.len()].clone()),
    }
}

impl FromStr for Strategy {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "modulo" => Ok(Strategy::Modulo),
            "minimal" => Ok(Strategy::Minimal),
            other => Err(InputError::UnknownStrategy(other.to_owned())),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_moves_only_what_it_must() {
        let four = Pool::parse_list("A,B,C,D").unwrap();
        let before = Strategy::Minimal.assign(&four, None);
        let three = Pool::parse_list("A,B,C").unwrap();
        let after = Strategy::Minimal.assign(&three, Some(&before));
        let moved: Vec<u8> = before
            .iter()
            .zip(after.iter())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect();
        // Only D's four partitions move (the documented modulo rule moves ten).
        assert_eq!(moved, [3, 7, 11, 15]);
        let five = Pool::parse_list("A,B,C,D,E").unwrap();
        let grown = Strategy::Minimal.assign(&five, Some(&before));
        let e = NodeId::new("E").unwrap();
        let moved: Vec<(u8, &NodeId)> = before
            .iter()
            .zip(grown.iter())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(moved.len(), 3);
        assert!(moved.iter().all(|(_, to)| **to == e));
    }

    #[test]
    fn modulo_follows_join_order() {
        let pool = Pool::parse_list("C,D,A,B").unwrap();
        let assignment = Strategy::Modulo.assign(&pool, None);
        let owners: Vec<&str> = assignment.owners().iter().map(NodeId::as_str).collect();
        assert_eq!(
            owners,
            ["C", "D", "A", "B", "C", "D", "A", "B", "C", "D", "A", "B", "C", "D", "A", "B"]
        );
        assert_eq!(
            assignment.partitions_of(&NodeId::new("A").unwrap()),
            [2, 6, 10, 14]
        );
    }
}
