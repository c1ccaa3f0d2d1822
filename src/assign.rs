//! Assignment of partitions to the nodes of a pool, behind a strategy seam.
//!
//! The documented strategy is [`Strategy::Modulo`]: region `i` belongs to
//! `pool[i % len]`. A strategy also sees the previous assignment, so that a
//! minimal-movement strategy can keep partitions where they are.

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
}

impl Strategy {
    /// The assignment for `pool`. `previous` is the assignment being replaced, if
    /// any; the modulo strategy does not look at it.
    pub fn assign(self, pool: &Pool, previous: Option<&Assignment>) -> Assignment {
        let _ = previous;
        match self {
            Strategy::Modulo => modulo(pool),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Modulo => "modulo",
        }
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
