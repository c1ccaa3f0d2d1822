//! The bounded in-memory store of a cache node, with LRU and random replacement.
//!
//! Pure: no I/O, no clock; the random policy draws from a seeded generator. Every
//! entry carries the key index's version of the image, and the store never lets an
//! older version replace a newer one (put-if-newer).
//!
//! **Floors.** A key that leaves the store, by invalidation, eviction or removal,
//! leaves a *floor*: the lowest version a later put of that key may carry. So a late
//! put of an older image (a delayed fill or move) is refused even after the newer
//! image was evicted. Floors are bounded (`floors_max`); forgetting one, oldest
//! first, counts in [`CacheStore::floors_forgotten`], which the node puts in its
//! fence token, so that every put issued before the forgetting is refused (see
//! `docs/consistency.md`). Only `clear` drops floors, and a clear changes the
//! node's fence token too.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::str::FromStr;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One megabyte, as capacities are configured.
pub const MB: u64 = 1024 * 1024;

/// A map whose hasher has fixed keys: lookups only, its order is never used.
type FixedHashMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// The replacement policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Evict the least recently used entry.
    #[default]
    Lru,
    /// Evict a random entry.
    Rr,
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lru" => Ok(Policy::Lru),
            "rr" => Ok(Policy::Rr),
            other => Err(format!("unknown policy {other:?} (known: lru, rr)")),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Lru => "lru",
            Policy::Rr => "rr",
        })
    }
}

/// A cached image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub bytes: Bytes,
    pub mime: String,
    /// The key index's version of this image; larger is newer.
    pub version: u64,
}

impl Entry {
    /// What the entry counts against the capacity: key, value and mime type.
    pub fn size_bytes(&self, key: &str) -> u64 {
        (key.len() + self.bytes.len() + self.mime.len()) as u64
    }
}

/// What a put did.
#[derive(Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    Replaced,
    /// A newer version of the key is held, or the key's floor is higher: nothing
    /// changed.
    StaleRefused,
}

/// Why a put was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PutError {
    #[error("an item of {size_bytes} bytes cannot fit a cache of {capacity_bytes} bytes")]
    TooLarge {
        size_bytes: u64,
        capacity_bytes: u64,
    },
}

struct Slot {
    entry: Entry,
    size_bytes: u64,
    /// Position in the LRU order.
    tick: u64,
    /// Position in `keys` (for random eviction).
    index: usize,
}

/// The store.
pub struct CacheStore {
    capacity_bytes: u64,
    policy: Policy,
    slots: FixedHashMap<String, Slot>,
    /// LRU order: tick -> key, oldest first.
    recency: BTreeMap<u64, String>,
    /// Every key, for uniform random choice.
    keys: Vec<String>,
    tick: u64,
    used_bytes: u64,
    evictions: u64,
    rng: ChaCha8Rng,
    /// Key -> lowest version a put may carry.
    floors: FixedHashMap<String, u64>,
    /// Floor keys in the order they were first set, for the bound.
    floor_order: VecDeque<String>,
    floors_max: usize,
    /// Floors forgotten for the bound so far.
    floors_forgotten: u64,
    /// Whether an eviction or removal leaves a floor. Off only for the planted bug
    /// `evict-drops-floor`, which also drops the floor on a put.
    floors_on_removal: bool,
}

impl CacheStore {
    pub fn new(capacity_bytes: u64, policy: Policy, rng_seed: u64) -> Self {
        CacheStore {
            capacity_bytes,
            policy,
            slots: FixedHashMap::default(),
            recency: BTreeMap::new(),
            keys: Vec::new(),
            tick: 0,
            used_bytes: 0,
            evictions: 0,
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            floors: FixedHashMap::default(),
            floor_order: VecDeque::new(),
            floors_max: crate::limits::FLOORS_MAX_DEFAULT,
            floors_forgotten: 0,
            floors_on_removal: true,
        }
    }

    /// Sets the most floors kept (at least 1); extra ones are forgotten now.
    pub fn set_floors_max(&mut self, floors_max: usize) {
        self.floors_max = floors_max.max(1);
        self.enforce_floor_bound();
    }

    /// Reproduces bug 1 of the sim-power issue (the planted bug
    /// `evict-drops-floor`): puts drop the key's floor and removals leave none.
    pub fn set_legacy_floors(&mut self, legacy: bool) {
        self.floors_on_removal = !legacy;
    }

    /// Floors forgotten for the bound since the store was made.
    pub fn floors_forgotten(&self) -> u64 {
        self.floors_forgotten
    }

    /// Floors held now.
    pub fn floors_len(&self) -> usize {
        self.floors.len()
    }

    /// The floor of `key`, if it has one.
    pub fn floor(&self, key: &str) -> Option<u64> {
        self.floors.get(key).copied()
    }

    /// Raises the floor of `key` to `version` (never lowers it).
    fn raise_floor(&mut self, key: &str, version: u64) {
        match self.floors.get_mut(key) {
            Some(floor) => *floor = (*floor).max(version),
            None => {
                self.floors.insert(key.to_owned(), version);
                self.floor_order.push_back(key.to_owned());
                self.enforce_floor_bound();
            }
        }
        debug_assert_eq!(self.floors.len(), self.floor_order.len());
    }

    fn enforce_floor_bound(&mut self) {
        while self.floors.len() > self.floors_max {
            let oldest = self
                .floor_order
                .pop_front()
                .expect("every floor is in the order");
            self.floors.remove(&oldest);
            self.floors_forgotten += 1;
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The entry of `key`; counts as a use.
    pub fn get(&mut self, key: &str) -> Option<&Entry> {
        let tick = self.tick + 1;
        let slot = self.slots.get_mut(key)?;
        self.tick = tick;
        let old = std::mem::replace(&mut slot.tick, tick);
        let name = self
            .recency
            .remove(&old)
            .expect("every slot is in the order");
        self.recency.insert(tick, name);
        Some(&self.slots[key].entry)
    }

    /// The entry of `key`, without counting a use.
    pub fn peek(&self, key: &str) -> Option<&Entry> {
        self.slots.get(key).map(|slot| &slot.entry)
    }

    /// Stores `entry` unless a newer version is known; evicts to make room.
    pub fn put(&mut self, key: &str, entry: Entry) -> Result<PutOutcome, PutError> {
        let size_bytes = entry.size_bytes(key);
        if size_bytes > self.capacity_bytes {
            return Err(PutError::TooLarge {
                size_bytes,
                capacity_bytes: self.capacity_bytes,
            });
        }
        if let Some(&floor) = self.floors.get(key) {
            if entry.version < floor {
                return Ok(PutOutcome::StaleRefused);
            }
        }
        if let Some(slot) = self.slots.get(key) {
            if slot.entry.version > entry.version {
                return Ok(PutOutcome::StaleRefused);
            }
        }
        if !self.floors_on_removal {
            self.forget_floor(key);
        }
        let replaced = self.take(key).is_some();
        while self.used_bytes + size_bytes > self.capacity_bytes {
            self.evict_one();
        }
        let tick = self.next_tick();
        self.recency.insert(tick, key.to_owned());
        self.keys.push(key.to_owned());
        self.slots.insert(
            key.to_owned(),
            Slot {
                entry,
                size_bytes,
                tick,
                index: self.keys.len() - 1,
            },
        );
        self.used_bytes += size_bytes;
        debug_assert!(self.used_bytes <= self.capacity_bytes);
        Ok(if replaced {
            PutOutcome::Replaced
        } else {
            PutOutcome::Stored
        })
    }

    fn evict_one(&mut self) {
        let victim = match self.policy {
            Policy::Lru => self.recency.values().next().cloned(),
            Policy::Rr if self.keys.is_empty() => None,
            Policy::Rr => {
                let index = self.rng.gen_range(0..self.keys.len());
                Some(self.keys[index].clone())
            }
        };
        let victim = victim.expect("over capacity implies an entry to evict");
        self.remove(&victim);
        self.evictions += 1;
    }

    /// Removes `key` and refuses later puts of versions older than `version`.
    /// Returns true if an entry was removed.
    pub fn invalidate(&mut self, key: &str, version: u64) -> bool {
        let removed = self.take(key);
        let floor = removed.as_ref().map_or(version, |e| e.version.max(version));
        self.raise_floor(key, floor);
        removed.is_some()
    }

    /// Forgets the floor of `key`, if any. Only the planted bugs use this: a
    /// forgotten floor lets an older image back in.
    pub fn forget_floor(&mut self, key: &str) {
        if self.floors.remove(key).is_some() {
            self.floor_order.retain(|k| k != key);
        }
    }

    /// Removes `key` (it was evicted, or moved elsewhere); its version stays as
    /// the key's floor.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.take(key)?;
        if self.floors_on_removal {
            self.raise_floor(key, entry.version);
        }
        Some(entry)
    }

    /// Takes `key`'s entry out, leaving no floor.
    fn take(&mut self, key: &str) -> Option<Entry> {
        let slot = self.slots.remove(key)?;
        self.recency.remove(&slot.tick);
        self.keys.swap_remove(slot.index);
        if let Some(moved) = self.keys.get(slot.index) {
            self.slots
                .get_mut(moved)
                .expect("every listed key has a slot")
                .index = slot.index;
        }
        self.used_bytes -= slot.size_bytes;
        Some(slot.entry)
    }

    /// Drops every entry and every floor (the node changes its fence token).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.recency.clear();
        self.keys.clear();
        self.used_bytes = 0;
        self.floors.clear();
        self.floor_order.clear();
    }

    /// Sets the capacity; lowering it evicts at once.
    pub fn set_capacity(&mut self, capacity_bytes: u64) {
        self.capacity_bytes = capacity_bytes;
        while self.used_bytes > self.capacity_bytes {
            self.evict_one();
        }
    }

    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Every key held, sorted.
    pub fn keys_sorted(&self) -> Vec<String> {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys
    }

    /// Entries evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(len: usize, version: u64) -> Entry {
        Entry {
            bytes: Bytes::from(vec![7u8; len]),
            mime: String::new(),
            version,
        }
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        // Keys of 1 byte, values of 9: each entry is 10 bytes; room for three.
        let mut store = CacheStore::new(30, Policy::Lru, 1);
        for key in ["a", "b", "c"] {
            assert_eq!(store.put(key, entry(9, 1)), Ok(PutOutcome::Stored));
        }
        assert!(store.get("a").is_some());
        assert!(store.peek("b").is_some()); // a peek is not a use
        store.put("d", entry(9, 1)).unwrap();
        assert_eq!(store.keys_sorted(), ["a", "c", "d"]);
        assert_eq!(store.evictions(), 1);
        store.put("e", entry(9, 1)).unwrap();
        assert_eq!(store.keys_sorted(), ["a", "d", "e"]);
    }

    #[test]
    fn random_eviction_follows_the_seed() {
        let run = |seed| {
            let mut store = CacheStore::new(55, Policy::Rr, seed);
            for i in 0..20 {
                store.put(&format!("{i:02}"), entry(9, 1)).unwrap();
            }
            store.keys_sorted()
        };
        assert_eq!(run(3), run(3));
        assert_eq!(run(3).len(), 5);
        assert!((0..10).any(|seed| run(seed) != run(3)));
    }

    #[test]
    fn too_large_is_refused_and_changes_nothing() {
        let mut store = CacheStore::new(20, Policy::Lru, 1);
        store.put("a", entry(9, 1)).unwrap();
        assert_eq!(
            store.put("a", entry(20, 2)),
            Err(PutError::TooLarge {
                size_bytes: 21,
                capacity_bytes: 20
            })
        );
        assert_eq!(store.peek("a").unwrap().version, 1);
        assert_eq!(store.used_bytes(), 10);
    }

    #[test]
    fn lowering_capacity_evicts_at_once() {
        let mut store = CacheStore::new(100, Policy::Lru, 1);
        for key in ["a", "b", "c", "d"] {
            store.put(key, entry(9, 1)).unwrap();
        }
        store.set_capacity(25);
        assert_eq!(store.keys_sorted(), ["c", "d"]);
        assert_eq!(store.used_bytes(), 20);
        store.set_capacity(0);
        assert!(store.is_empty());
    }

    #[test]
    fn replacing_adjusts_the_size() {
        let mut store = CacheStore::new(100, Policy::Lru, 1);
        store.put("a", entry(9, 1)).unwrap();
        assert_eq!(store.put("a", entry(19, 2)), Ok(PutOutcome::Replaced));
        assert_eq!(store.used_bytes(), 20);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn older_versions_are_refused() {
        let mut store = CacheStore::new(100, Policy::Lru, 1);
        store.put("a", entry(9, 5)).unwrap();
        assert_eq!(store.put("a", entry(9, 4)), Ok(PutOutcome::StaleRefused));
        assert_eq!(store.put("a", entry(8, 5)), Ok(PutOutcome::Replaced));
        assert_eq!(store.peek("a").unwrap().bytes.len(), 8);
    }

    #[test]
    fn tombstones_refuse_late_old_puts() {
        let mut store = CacheStore::new(100, Policy::Lru, 1);
        store.put("a", entry(9, 1)).unwrap();
        assert!(store.invalidate("a", 3));
        assert!(!store.invalidate("a", 2)); // keeps the higher floor
        assert_eq!(store.put("a", entry(9, 2)), Ok(PutOutcome::StaleRefused));
        assert_eq!(store.put("a", entry(9, 3)), Ok(PutOutcome::Stored));
        // Removing the entry keeps its version as the floor.
        store.remove("a");
        assert_eq!(store.put("a", entry(9, 1)), Ok(PutOutcome::StaleRefused));
        assert_eq!(store.put("a", entry(9, 3)), Ok(PutOutcome::Stored));
        store.invalidate("b", 9);
        store.clear();
        assert_eq!(store.put("b", entry(9, 1)), Ok(PutOutcome::Stored));
    }

    #[test]
    fn an_eviction_keeps_the_floor() {
        // Bug 1 of sim-power: v2 replaced the floor, and its eviction left none.
        let mut store = CacheStore::new(20, Policy::Lru, 1);
        store.put("k", entry(9, 1)).unwrap();
        store.invalidate("k", 2);
        assert_eq!(store.put("k", entry(9, 2)), Ok(PutOutcome::Stored));
        store.put("x", entry(9, 1)).unwrap();
        store.put("y", entry(9, 1)).unwrap(); // evicts k at version 2
        assert!(store.peek("k").is_none());
        assert_eq!(store.put("k", entry(9, 1)), Ok(PutOutcome::StaleRefused));
        assert_eq!(store.floor("k"), Some(2));
        // The planted bug restores the old behaviour.
        let mut legacy = CacheStore::new(20, Policy::Lru, 1);
        legacy.set_legacy_floors(true);
        legacy.invalidate("k", 2);
        legacy.put("k", entry(9, 2)).unwrap();
        legacy.put("x", entry(9, 1)).unwrap();
        legacy.put("y", entry(9, 1)).unwrap();
        assert_eq!(legacy.put("k", entry(9, 1)), Ok(PutOutcome::Stored));
    }

    #[test]
    fn floors_are_bounded_and_forgetting_is_counted() {
        let mut store = CacheStore::new(100, Policy::Lru, 1);
        store.set_floors_max(3);
        for i in 0..5 {
            store.invalidate(&i.to_string(), 10);
        }
        assert_eq!(store.floors_len(), 3);
        assert_eq!(store.floors_forgotten(), 2);
        // The oldest floors went first; the newest hold.
        assert_eq!(store.put("0", entry(1, 1)), Ok(PutOutcome::Stored));
        assert_eq!(store.put("4", entry(1, 1)), Ok(PutOutcome::StaleRefused));
        // Raising an existing floor does not count as a new one.
        store.invalidate("4", 12);
        assert_eq!(store.floors_forgotten(), 2);
        assert_eq!(store.floor("4"), Some(12));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, usize, u64),
        Get(u8),
        Peek(u8),
        Invalidate(u8, u64),
        Remove(u8),
        Capacity(u64),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..12, 0usize..200, 0u64..4).prop_map(|(k, n, v)| Op::Put(k, n, v)),
            4 => (0u8..12).prop_map(Op::Get),
            1 => (0u8..12).prop_map(Op::Peek),
            1 => (0u8..12, 0u64..4).prop_map(|(k, v)| Op::Invalidate(k, v)),
            1 => (0u8..12).prop_map(Op::Remove),
            1 => (0u64..2000).prop_map(Op::Capacity),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The capacity is never exceeded, the accounting is exact, and LRU evicts
        /// exactly what a plain recency list says it should.
        #[test]
        fn capacity_and_lru_order_hold(capacity in 0u64..2000, ops in proptest::collection::vec(op(), 1..120)) {
            let mut store = CacheStore::new(capacity, Policy::Lru, 9);
            // Model: keys oldest-first, each with its size.
            let mut model: Vec<(String, u64)> = Vec::new();
            let mut capacity = capacity;
            for op in ops {
                match op {
                    Op::Put(k, n, v) => {
                        let key = k.to_string();
                        let before = store.peek(&key).map(|e| e.version);
                        let outcome = store.put(&key, entry(n, v));
                        if let Ok(PutOutcome::Stored | PutOutcome::Replaced) = outcome {
                            prop_assert!(before.is_none_or(|b| b <= v));
                            model.retain(|(m, _)| *m != key);
                            let size = (key.len() + n) as u64;
                            while model.iter().map(|(_, s)| s).sum::<u64>() + size > capacity {
                                model.remove(0);
                            }
                            model.push((key, size));
                        }
                    }
                    Op::Get(k) => {
                        let key = k.to_string();
                        if store.get(&key).is_some() {
                            let at = model.iter().position(|(m, _)| *m == key).unwrap();
                            let item = model.remove(at);
                            model.push(item);
                        }
                    }
                    Op::Peek(k) => { store.peek(&k.to_string()); }
                    Op::Invalidate(k, v) => {
                        store.invalidate(&k.to_string(), v);
                        model.retain(|(m, _)| *m != k.to_string());
                    }
                    Op::Remove(k) => {
                        store.remove(&k.to_string());
                        model.retain(|(m, _)| *m != k.to_string());
                    }
                    Op::Capacity(c) => {
                        capacity = c;
                        store.set_capacity(c);
                        while model.iter().map(|(_, s)| s).sum::<u64>() > capacity {
                            model.remove(0);
                        }
                    }
                    Op::Clear => { store.clear(); model.clear(); }
                }
                let used: u64 = store.keys_sorted().iter().map(|k| store.peek(k).unwrap().size_bytes(k)).sum();
                prop_assert_eq!(store.used_bytes(), used);
                prop_assert!(store.used_bytes() <= store.capacity_bytes());
                let mut expected: Vec<String> = model.iter().map(|(k, _)| k.clone()).collect();
                expected.sort();
                prop_assert_eq!(store.keys_sorted(), expected);
            }
        }

        /// No put ever brings back a version older than one the store held or was
        /// told about, as long as no floor was forgotten (then the fence token
        /// changes instead) and no clear happened.
        #[test]
        fn versions_never_go_back(capacity in 0u64..400, floors_max in 1usize..6, lru in any::<bool>(), ops in proptest::collection::vec(op(), 1..150)) {
            let policy = if lru { Policy::Lru } else { Policy::Rr };
            let mut store = CacheStore::new(capacity, policy, 5);
            store.set_floors_max(floors_max);
            // Key -> highest version seen, and the forgotten count when it was seen.
            let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(k, n, v) => {
                        let key = k.to_string();
                        let outcome = store.put(&key, entry(n, v));
                        if let Some(&(high, forgotten)) = seen.get(&key) {
                            if v < high && forgotten == store.floors_forgotten() {
                                // Refused, as stale (or as too large: also nothing stored).
                                prop_assert!(
                                    !matches!(outcome, Ok(PutOutcome::Stored | PutOutcome::Replaced)),
                                    "version {} of {} stored after version {}", v, key, high
                                );
                            }
                        }
                        if matches!(outcome, Ok(PutOutcome::Stored | PutOutcome::Replaced)) {
                            // What is known from before a forgetting no longer binds.
                            let high = match seen.get(&key) {
                                Some(&(h, f)) if f == store.floors_forgotten() => h.max(v),
                                _ => v,
                            };
                            seen.insert(key, (high, store.floors_forgotten()));
                        }
                    }
                    Op::Get(k) => { store.get(&k.to_string()); }
                    Op::Peek(k) => { store.peek(&k.to_string()); }
                    Op::Invalidate(k, v) => {
                        let key = k.to_string();
                        let before = store.floors_forgotten();
                        store.invalidate(&key, v);
                        let high = match seen.get(&key) {
                            Some(&(h, f)) if f == before => h.max(v),
                            _ => v.max(store.floor(&key).unwrap_or(v)),
                        };
                        seen.insert(key, (high, store.floors_forgotten()));
                    }
                    Op::Remove(k) => { store.remove(&k.to_string()); }
                    Op::Capacity(c) => store.set_capacity(c),
                    Op::Clear => { store.clear(); seen.clear(); }
                }
                prop_assert!(store.floors_len() <= floors_max);
            }
        }

        #[test]
        fn random_policy_keeps_the_capacity(capacity in 0u64..2000, ops in proptest::collection::vec(op(), 1..120)) {
            let mut store = CacheStore::new(capacity, Policy::Rr, 4);
            for op in ops {
                match op {
                    Op::Put(k, n, v) => { let _ = store.put(&k.to_string(), entry(n, v)); }
                    Op::Get(k) => { store.get(&k.to_string()); }
                    Op::Peek(k) => { store.peek(&k.to_string()); }
                    Op::Invalidate(k, v) => { store.invalidate(&k.to_string(), v); }
                    Op::Remove(k) => { store.remove(&k.to_string()); }
                    Op::Capacity(c) => store.set_capacity(c),
                    Op::Clear => store.clear(),
                }
                let used: u64 = store.keys_sorted().iter().map(|k| store.peek(k).unwrap().size_bytes(k)).sum();
                prop_assert_eq!(store.used_bytes(), used);
                prop_assert!(store.used_bytes() <= store.capacity_bytes());
                prop_assert_eq!(store.len(), store.keys_sorted().len());
            }
        }
    }
}
