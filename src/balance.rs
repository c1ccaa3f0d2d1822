//! Balance planning: which cached keys change owner when the pool changes, and the
//! `move_keys` orders that hand them over.
//!
//! The rules reproduce the documented front-end exactly:
//! - old-new mapping: for each partition whose owner changes, `(partition, new
//!   owner)` is appended to the old owner's list; old owners are ordered by their
//!   first moved partition;
//! - balance result: for each old owner in that order, `dest` maps each new owner to
//!   the cached keys of the moved partitions (partition order, keys of one partition
//!   sorted); an entry is emitted when `dest` is non-empty or the old owner leaves;
//!   `port` is the manager's port for a leaving node and `-1` for a staying one.

use std::collections::BTreeSet;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::assign::{Assignment, Strategy};
use crate::ring::{partition, NodeId, Partition, Pool, PARTITION_COUNT};

/// The `port` value of a move order to a node that stays in the pool.
pub const STAYING_PORT: i32 = -1;

/// The front-end's index of cached keys: partition -> keys.
///
/// It remembers the order in which partitions were first cached (the documented
/// `Current cached keys` line prints in that order). A partition whose last key is
/// removed leaves the order; caching into it again appends it anew.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedKeys {
    /// Keys per partition, index = partition.
    keys: [BTreeSet<String>; PARTITION_COUNT],
    /// Partitions holding at least one key, in the order they were first cached.
    order: Vec<Partition>,
}

impl CachedKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `key` as cached. Returns false if it was already recorded.
    pub fn insert(&mut self, key: &str) -> bool {
        let partition = partition(key);
        let set = &mut self.keys[partition as usize];
        if set.contains(key) {
            return false;
        }
        if set.is_empty() {
            self.order.push(partition);
        }
        set.insert(key.to_owned());
        true
    }

    /// Forgets `key`. Returns false if it was not recorded.
    pub fn remove(&mut self, key: &str) -> bool {
        let partition = partition(key);
        let set = &mut self.keys[partition as usize];
        if !set.remove(key) {
            return false;
        }
        if set.is_empty() {
            self.order.retain(|&p| p != partition);
        }
        true
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys[partition(key) as usize].contains(key)
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The cached keys of `partition`, sorted.
    pub fn keys_of(&self, partition: Partition) -> &BTreeSet<String> {
        &self.keys[partition as usize]
    }

    /// `(partition, sorted keys)` in first-cached order; never an empty set.
    pub fn iter(&self) -> impl Iterator<Item = (Partition, &BTreeSet<String>)> {
        self.order.iter().map(|&p| (p, &self.keys[p as usize]))
    }

    /// Number of keys recorded.
    pub fn len(&self) -> usize {
        self.keys.iter().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for CachedKeys {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut index = CachedKeys::new();
        for key in iter {
            index.insert(key.as_ref());
        }
        index
    }
}

/// One move of the old-new mapping: a partition and its new owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Move {
    pub partition: Partition,
    pub to: NodeId,
}

/// The moves away from one old owner, in partition order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnerMoves {
    pub from: NodeId,
    pub moves: Vec<Move>,
}

/// The old-new mapping: old owners ordered by their first moved partition.
pub fn old_new_mapping(old: &Assignment, new: &Assignment) -> Vec<OwnerMoves> {
    let mut mapping: Vec<OwnerMoves> = Vec::new();
    for ((partition, old_owner), (_, new_owner)) in old.iter().zip(new.iter()) {
        if old_owner == new_owner {
            continue;
        }
        let step = Move {
            partition,
            to: new_owner.clone(),
        };
        match mapping.iter_mut().find(|entry| &entry.from == old_owner) {
            Some(entry) => entry.moves.push(step),
            None => mapping.push(OwnerMoves {
                from: old_owner.clone(),
                moves: vec![step],
            }),
        }
    }
    mapping
}

/// Where a node must send keys: new owner -> keys, in insertion order.
///
/// On the wire this is the documented JSON object `{"C": ["k1"], ...}`; its entry
/// order is kept both ways.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dest(pub Vec<(NodeId, Vec<String>)>);

impl Dest {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends `keys` to the list of `node`, creating it at the end if new.
    fn extend(&mut self, node: &NodeId, keys: impl IntoIterator<Item = String>) {
        let index = match self.0.iter().position(|(n, _)| n == node) {
            Some(index) => index,
            None => {
                self.0.push((node.clone(), Vec::new()));
                self.0.len() - 1
            }
        };
        self.0[index].1.extend(keys);
    }

    /// Every key listed, with its destination.
    pub fn iter_keys(&self) -> impl Iterator<Item = (&NodeId, &str)> {
        self.0
            .iter()
            .flat_map(|(node, keys)| keys.iter().map(move |key| (node, key.as_str())))
    }
}

impl Serialize for Dest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (node, keys) in &self.0 {
            map.serialize_entry(node, keys)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Dest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DestVisitor;
        impl<'de> Visitor<'de> for DestVisitor {
            type Value = Dest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object mapping node ids to lists of keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Dest, A::Error> {
                let mut dest = Dest::default();
                while let Some((node, keys)) = access.next_entry::<NodeId, Vec<String>>()? {
                    if dest.0.iter().any(|(n, _)| *n == node) {
                        return Err(serde::de::Error::custom(format!(
                            "node {node} is listed twice in dest"
                        )));
                    }
                    dest.0.push((node, keys));
                }
                Ok(dest)
            }
        }
        deserializer.deserialize_map(DestVisitor)
    }
}

/// The documented body of `POST /api/cache/move_keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveKeysPayload {
    /// The manager's port if the node is leaving (it calls back when done), else -1.
    pub port: i32,
    pub dest: Dest,
}

/// One entry of the balance result: a move order for one old owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BalanceEntry {
    pub send_to: NodeId,
    pub payload: MoveKeysPayload,
}

/// The balance result for a change from `old` to `new` mapping.
///
/// `new_pool` tells which old owners leave; `manager_port` goes into their orders.
pub fn balance_result(
    old_new: &[OwnerMoves],
    cached: &CachedKeys,
    new_pool: &Pool,
    manager_port: u16,
) -> Vec<BalanceEntry> {
    let mut result = Vec::new();
    for owner in old_new {
        let mut dest = Dest::default();
        for step in &owner.moves {
            let keys = cached.keys_of(step.partition);
            if !keys.is_empty() {
                dest.extend(&step.to, keys.iter().cloned());
            }
        }
        let leaving = !new_pool.contains(&owner.from);
        if dest.is_empty() && !leaving {
            continue;
        }
        let port = if leaving {
            i32::from(manager_port)
        } else {
            STAYING_PORT
        };
        result.push(BalanceEntry {
            send_to: owner.from.clone(),
            payload: MoveKeysPayload { port, dest },
        });
    }
    result
}

/// A whole rebalance plan: the documented log's content, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BalancePlan {
    pub old_pool: Pool,
    pub new_pool: Pool,
    pub old_mapping: Assignment,
    pub new_mapping: Assignment,
    pub old_new_mapping: Vec<OwnerMoves>,
    pub cached_keys: Vec<CachedPartition>,
    pub balance_result: Vec<BalanceEntry>,
}

/// The cached keys of one partition, sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CachedPartition {
    pub partition: Partition,
    pub keys: Vec<String>,
}

/// Settings of a plan that do not change between rebalances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanSettings {
    pub strategy: Strategy,
    /// The manager's port, sent to leaving nodes so they can call back.
    pub manager_port: u16,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            strategy: Strategy::Modulo,
            manager_port: 5004,
        }
    }
}

/// Plans the move from `old_pool` (assigned as `old_mapping`) to `new_pool`.
pub fn plan_from(
    old_pool: &Pool,
    old_mapping: &Assignment,
    new_pool: &Pool,
    cached: &CachedKeys,
    settings: PlanSettings,
) -> BalancePlan {
    let new_mapping = settings.strategy.assign(new_pool, Some(old_mapping));
    plan_to(
        old_pool,
        old_mapping,
        new_pool,
        new_mapping,
        cached,
        settings.manager_port,
    )
}

/// Plans the move from `old_mapping` to a given `new_mapping` (one the manager
/// decided, for example).
pub fn plan_to(
    old_pool: &Pool,
    old_mapping: &Assignment,
    new_pool: &Pool,
    new_mapping: Assignment,
    cached: &CachedKeys,
    manager_port: u16,
) -> BalancePlan {
    let old_new_mapping = old_new_mapping(old_mapping, &new_mapping);
    let balance_result = balance_result(&old_new_mapping, cached, new_pool, manager_port);
    BalancePlan {
        old_pool: old_pool.clone(),
        new_pool: new_pool.clone(),
        old_mapping: old_mapping.clone(),
        new_mapping,
        old_new_mapping,
        cached_keys: cached
            .iter()
            .map(|(partition, keys)| CachedPartition {
                partition,
                keys: keys.iter().cloned().collect(),
            })
            .collect(),
        balance_result,
    }
}

/// Plans the move from `old_pool` to `new_pool`, both assigned by the strategy.
pub fn plan(
    old_pool: &Pool,
    new_pool: &Pool,
    cached: &CachedKeys,
    settings: PlanSettings,
) -> BalancePlan {
    let old_mapping = settings.strategy.assign(old_pool, None);
    plan_from(old_pool, &old_mapping, new_pool, cached, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_keys_remember_first_cached_partition_order() {
        let mut index: CachedKeys = ["test", "test123", "testabc", "k1", "k2"]
            .into_iter()
            .collect();
        let order: Vec<Partition> = index.iter().map(|(p, _)| p).collect();
        assert_eq!(order, [0, 12, 11, 6]);
        assert_eq!(index.len(), 5);
        assert!(!index.insert("k1"));

        // Emptying a partition drops it from the order; caching again appends it.
        assert!(index.remove("test"));
        assert!(!index.remove("test"));
        let order: Vec<Partition> = index.iter().map(|(p, _)| p).collect();
        assert_eq!(order, [12, 11, 6]);
        index.insert("test");
        let order: Vec<Partition> = index.iter().map(|(p, _)| p).collect();
        assert_eq!(order, [12, 11, 6, 0]);
        index.clear();
        assert!(index.is_empty());
    }

    #[test]
    fn dest_keeps_order_through_json() {
        let json = r#"{"port":5004,"dest":{"Z":["b","a"],"A":["c"]}}"#;
        let payload: MoveKeysPayload = serde_json::from_str(json).unwrap();
        assert_eq!(payload.dest.0[0].0.as_str(), "Z");
        assert_eq!(serde_json::to_string(&payload).unwrap(), json);
        let twice = r#"{"port":-1,"dest":{"A":["a"],"A":["c"]}}"#;
        assert!(serde_json::from_str::<MoveKeysPayload>(twice).is_err());
        let bad_node = r#"{"port":-1,"dest":{"a b":["a"]}}"#;
        assert!(serde_json::from_str::<MoveKeysPayload>(bad_node).is_err());
    }
}
