//! The manager's membership as a pure state machine: the pool in join order, the
//! nodes ejected for failing health checks, the epoch with its assignment, the
//! epoch the front-end acknowledged, and the health failures counted per node.
//!
//! Events (a resize asked for, a pick of nodes, health results, an
//! acknowledgement, a front-end ahead of us, a restart) go in; decisions come out
//! as [`Transition`]s, which the async shell in `resize.rs` and `health.rs`
//! carries out (configure the joiners, save, notify, stop the leavers) before it
//! commits them here. No I/O and no clock: the invariants below are asserted on
//! every change and checked with proptest.
//!
//! Invariants:
//! - the pool is never empty, has distinct nodes, and only slots;
//! - no node is in the pool and ejected at once; ejected nodes are slots;
//! - the assignment names only pool nodes;
//! - the epoch only grows, by one per committed pool change (a restart takes the
//!   saved one; a front-end ahead of us moves it past the front-end's);
//! - the acknowledged epoch is never ahead of the epoch;
//! - the last node is never ejected;
//! - a node leaves the ejected list only by joining the pool (so the front-end
//!   clears it before routing to it) or by a pick that drops it.

use std::collections::BTreeMap;

use crate::assign::{Assignment, Strategy};
use crate::limits::POOL_NODES_MIN;
use crate::ring::{NodeId, Pool};
use crate::wire::change::Change;

/// A pool change decided by the membership, to be carried out then committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub old: Vec<NodeId>,
    pub new: Vec<NodeId>,
    /// The ejected list once the change is committed.
    pub ejected_after: Vec<NodeId>,
}

impl Transition {
    /// Nodes in the new pool and not in the old one.
    pub fn joining(&self) -> Vec<NodeId> {
        self.new
            .iter()
            .filter(|n| !self.old.contains(n))
            .cloned()
            .collect()
    }

    /// Nodes in the old pool and not in the new one.
    pub fn leaving(&self) -> Vec<NodeId> {
        self.old
            .iter()
            .filter(|n| !self.new.contains(n))
            .cloned()
            .collect()
    }

    /// Which way the pool's size goes.
    pub fn change(&self) -> Change {
        Change::between(self.old.len(), self.new.len())
    }

    /// Whether the pool stays as it is (the ejected list may still change).
    pub fn keeps_pool(&self) -> bool {
        self.new == self.old
    }
}

/// What a round of health checks found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthVerdict {
    /// Pool nodes that failed `failures_max` checks in a row.
    pub eject: Vec<NodeId>,
    /// Ejected nodes that answered.
    pub rejoin: Vec<NodeId>,
}

impl HealthVerdict {
    pub fn is_empty(&self) -> bool {
        self.eject.is_empty() && self.rejoin.is_empty()
    }
}

/// The manager's membership (see the module documentation).
#[derive(Clone, Debug)]
pub struct Membership {
    slots: Vec<NodeId>,
    strategy: Strategy,
    failures_max: u32,
    pool: Vec<NodeId>,
    ejected: Vec<NodeId>,
    epoch: u64,
    mapping: Assignment,
    acked_epoch: Option<u64>,
    health_failures: BTreeMap<NodeId, u32>,
}

fn pool_of(nodes: &[NodeId]) -> Result<Pool, String> {
    Pool::new(nodes.to_vec()).map_err(|error| error.to_string())
}

impl Membership {
    /// A membership of `slots`, starting with `initial` (or the first slot) at
    /// epoch 0, nothing acknowledged.
    pub fn new(
        slots: Vec<NodeId>,
        initial: Option<Vec<NodeId>>,
        strategy: Strategy,
        failures_max: u32,
    ) -> Result<Self, String> {
        if slots.is_empty() || slots.len() > crate::limits::POOL_NODES_MAX {
            return Err(format!(
                "the manager needs 1 to {} node slots, got {}",
                crate::limits::POOL_NODES_MAX,
                slots.len()
            ));
        }
        pool_of(&slots)?;
        let pool = match initial {
            Some(pool) => {
                pool_of(&pool)?;
                if let Some(stranger) = pool.iter().find(|n| !slots.contains(n)) {
                    return Err(format!("initial pool node {stranger} is not a slot"));
                }
                pool
            }
            None => vec![slots[0].clone()],
        };
        let mapping = strategy.assign(&pool_of(&pool)?, None);
        let membership = Membership {
            slots,
            strategy,
            failures_max: failures_max.max(1),
            pool,
            ejected: Vec::new(),
            epoch: 0,
            mapping,
            acked_epoch: None,
            health_failures: BTreeMap::new(),
        };
        membership.check();
        Ok(membership)
    }

    pub fn slots(&self) -> &[NodeId] {
        &self.slots
    }

    pub fn pool(&self) -> &[NodeId] {
        &self.pool
    }

    pub fn ejected(&self) -> &[NodeId] {
        &self.ejected
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn mapping(&self) -> &Assignment {
        &self.mapping
    }

    pub fn acked_epoch(&self) -> Option<u64> {
        self.acked_epoch
    }

    /// The size asked for: the pool and the ejected nodes, which rejoin when they
    /// answer again (an ejection is not a decision to shrink).
    pub fn wanted(&self) -> usize {
        self.pool.len() + self.ejected.len()
    }

    /// Whether the front-end still has to be told the pool in force.
    pub fn behind(&self) -> bool {
        self.acked_epoch.is_none_or(|acked| acked < self.epoch)
    }

    /// The pool size after one node more (`grow`) or one fewer, by hand; refused
    /// at the bounds.
    pub fn step_target(&self, grow: bool) -> Result<usize, String> {
        if grow {
            if self.wanted() >= self.slots.len() {
                return Err(format!(
                    "the pool already has {} nodes, the most it can hold",
                    self.wanted()
                ));
            }
            Ok(self.pool.len() + 1)
        } else {
            if self.pool.len() <= POOL_NODES_MIN {
                return Err("the pool has 1 node, the fewest it can hold".into());
            }
            Ok(self.pool.len() - 1)
        }
    }

    /// The change to `target` nodes: growing takes free slots (not ejected) in
    /// slot order, shrinking removes the latest joiners.
    pub fn resize_to(&self, target: usize) -> Transition {
        let target = target.clamp(POOL_NODES_MIN, self.slots.len());
        let mut new = self.pool.clone();
        while new.len() < target {
            let Some(free) = self
                .slots
                .iter()
                .find(|slot| !new.contains(slot) && !self.ejected.contains(slot))
            else {
                break;
            };
            new.push(free.clone());
        }
        new.truncate(target);
        self.transition(new, self.ejected.clone())
    }

    /// The change to exactly `members` (an operator's pick): survivors keep their
    /// join order and newcomers are appended. Every member must be a slot that is
    /// not ejected.
    pub fn choose(&self, members: &[NodeId]) -> Result<Transition, String> {
        for node in members {
            if !self.slots.contains(node) {
                return Err(format!("{node} is not one of the manager's node slots"));
            }
            if self.ejected.contains(node) {
                return Err(format!("{node} is ejected (it fails its health checks)"));
            }
        }
        let new = pool_of(&self.pool)?
            .transition_to(members)
            .map_err(|error| error.to_string())?
            .nodes()
            .to_vec();
        Ok(self.transition(new, self.ejected.clone()))
    }

    /// Counts a round of health results (`checked_pool` and `checked_ejected` are
    /// the lists the round checked) and says who is to be ejected or to rejoin.
    pub fn record_health(
        &mut self,
        results: &[(NodeId, bool)],
        checked_pool: &[NodeId],
        checked_ejected: &[NodeId],
    ) -> HealthVerdict {
        let mut verdict = HealthVerdict::default();
        for (node, healthy) in results {
            let failures = self.health_failures.entry(node.clone()).or_insert(0);
            *failures = if *healthy {
                0
            } else {
                failures.saturating_add(1)
            };
            if checked_pool.contains(node) && *failures >= self.failures_max {
                verdict.eject.push(node.clone());
            } else if checked_ejected.contains(node) && *healthy {
                verdict.rejoin.push(node.clone());
            }
        }
        verdict
    }

    /// The change a health verdict calls for, on the pool in force now (which may
    /// have changed since the round began). Never ejects the last node; a node
    /// rejoins only if it fits in the slots, else it stays ejected.
    pub fn after_health(&self, verdict: &HealthVerdict) -> Option<Transition> {
        if verdict.is_empty() {
            return None;
        }
        let old = &self.pool;
        let mut new: Vec<NodeId> = old
            .iter()
            .filter(|n| !verdict.eject.contains(n))
            .cloned()
            .collect();
        if new.is_empty() {
            // Never eject the last node: reads fall back to storage anyway.
            new.push(old[0].clone());
        }
        let mut gone: Vec<NodeId> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
        let mut back = Vec::new();
        for node in &verdict.rejoin {
            if !new.contains(node) && self.ejected.contains(node) && new.len() < self.slots.len() {
                new.push(node.clone());
                back.push(node.clone());
            }
        }
        let mut ejected_after = self.ejected.clone();
        ejected_after.retain(|n| !back.contains(n));
        ejected_after.append(&mut gone);
        Some(self.transition(new, ejected_after))
    }

    fn transition(&self, new: Vec<NodeId>, ejected_after: Vec<NodeId>) -> Transition {
        Transition {
            old: self.pool.clone(),
            new,
            ejected_after,
        }
    }

    /// Commits a transition decided on the pool in force. A new pool takes the
    /// next epoch and its assignment, returned; a kept pool only takes the new
    /// ejected list (and returns `None`).
    pub fn commit(&mut self, transition: &Transition) -> Result<Option<(u64, Assignment)>, String> {
        assert_eq!(
            transition.old, self.pool,
            "a transition is committed on the pool it was decided on"
        );
        if transition.keeps_pool() {
            self.ejected = transition.ejected_after.clone();
            self.check();
            return Ok(None);
        }
        let pool = pool_of(&transition.new)?;
        let epoch_before = self.epoch;
        self.mapping = self.strategy.assign(&pool, Some(&self.mapping));
        self.epoch += 1;
        self.pool = transition.new.clone();
        self.ejected = transition.ejected_after.clone();
        self.check();
        assert!(self.epoch > epoch_before, "epochs only grow");
        Ok(Some((self.epoch, self.mapping.clone())))
    }

    /// The front-end acknowledged `epoch`.
    pub fn acknowledge(&mut self, epoch: u64) {
        assert!(
            epoch <= self.epoch,
            "only epochs this manager sent are acknowledged"
        );
        self.acked_epoch = Some(self.acked_epoch.unwrap_or(0).max(epoch));
    }

    /// The front-end holds `theirs`, newer than the epoch `ours` we sent: this
    /// manager's state was lost or is older. Moves past it (unless the epoch moved
    /// meanwhile) and returns the epoch to send.
    pub fn overtake(&mut self, ours: u64, theirs: u64) -> u64 {
        let before = self.epoch;
        if self.epoch == ours {
            // The front-end refuses epochs past `EPOCH_MAX`, so this cannot
            // overflow; saturate anyway rather than wrap.
            self.epoch = ours.max(theirs).saturating_add(1);
        }
        assert!(self.epoch >= before, "epochs only grow");
        self.epoch
    }

    /// Takes up a saved membership; refuses one that does not fit the slots.
    /// The assignment is rebuilt if the saved one does not fit the pool; ejected
    /// nodes that are not slots, or are in the pool, are dropped.
    pub fn restore(
        &mut self,
        pool: Vec<NodeId>,
        ejected: Vec<NodeId>,
        epoch: u64,
        assignment: Option<&[String]>,
    ) -> Result<(), String> {
        let checked = pool_of(&pool)?;
        if let Some(stranger) = pool.iter().find(|n| !self.slots.contains(n)) {
            return Err(format!("saved pool node {stranger} is not a slot"));
        }
        self.mapping = assignment
            .and_then(|ids| Assignment::from_ids(ids, &checked).ok())
            .unwrap_or_else(|| self.strategy.assign(&checked, None));
        self.ejected = ejected
            .into_iter()
            .filter(|node| self.slots.contains(node) && !pool.contains(node))
            .collect();
        self.pool = pool;
        self.epoch = epoch;
        self.acked_epoch = None;
        self.check();
        Ok(())
    }

    /// Asserts the invariants.
    fn check(&self) {
        assert!(!self.pool.is_empty(), "the pool is never empty");
        assert!(self.pool.len() <= self.slots.len());
        for (i, node) in self.pool.iter().enumerate() {
            assert!(self.slots.contains(node), "pool node {node} is a slot");
            assert!(
                !self.pool[..i].contains(node),
                "pool node {node} is listed once"
            );
            assert!(
                !self.ejected.contains(node),
                "{node} is in the pool and ejected at once"
            );
        }
        for (i, node) in self.ejected.iter().enumerate() {
            assert!(self.slots.contains(node), "ejected node {node} is a slot");
            assert!(
                !self.ejected[..i].contains(node),
                "ejected node {node} is listed once"
            );
        }
        assert!(
            self.mapping
                .owners()
                .iter()
                .all(|owner| self.pool.contains(owner)),
            "the assignment names only pool nodes"
        );
        assert!(self.acked_epoch.is_none_or(|acked| acked <= self.epoch));
    }
}

#[cfg(test)]
mod tests {
    use super::{Membership, Transition};
    use crate::assign::Strategy as Assign;
    use crate::ring::NodeId;
    use proptest::prelude::*;

    fn slots(count: usize) -> Vec<NodeId> {
        (1..=count)
            .map(|i| NodeId::new(&format!("10.0.0.{i}")).unwrap())
            .collect()
    }

    /// One event, as the shell would feed it.
    #[derive(Clone, Debug)]
    enum Event {
        Step(bool),
        ResizeTo(usize),
        Choose(Vec<usize>),
        /// Health of each slot (by index), checked on the pool in force.
        Health(Vec<bool>),
        Ack,
        FrontendAhead(u64),
        Restart,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            any::<bool>().prop_map(Event::Step),
            (0usize..10).prop_map(Event::ResizeTo),
            proptest::collection::vec(0usize..8, 0..9).prop_map(Event::Choose),
            proptest::collection::vec(proptest::bool::weighted(0.7), 8).prop_map(Event::Health),
            Just(Event::Ack),
            (0u64..50).prop_map(Event::FrontendAhead),
            Just(Event::Restart),
        ]
    }

    fn carry_out(m: &mut Membership, transition: Transition) {
        let ejected_before = m.ejected().to_vec();
        let epoch_before = m.epoch();
        let joining = transition.joining();
        let kept = transition.keeps_pool();
        let committed = m.commit(&transition).unwrap();
        assert_eq!(committed.is_none(), kept);
        if !kept {
            assert_eq!(m.epoch(), epoch_before + 1, "one epoch per pool change");
        }
        // A node leaves the ejected list only by joining the pool.
        for node in &ejected_before {
            if !m.ejected().contains(node) {
                assert!(
                    joining.contains(node),
                    "{node} left the ejected list without joining"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn membership_keeps_its_invariants_under_any_events(
            slot_count in 1usize..=8,
            failures_max in 1u32..4,
            events in proptest::collection::vec(event(), 1..60),
        ) {
            let all = slots(slot_count);
            let mut m = Membership::new(all.clone(), None, Assign::default(), failures_max).unwrap();
            let mut saved = (m.pool().to_vec(), m.ejected().to_vec(), m.epoch());
            for event in events {
                let epoch_before = m.epoch();
                match event {
                    Event::Step(grow) => {
                        if let Ok(target) = m.step_target(grow) {
                            let t = m.resize_to(target);
                            prop_assert_eq!(t.new.len(), target);
                            carry_out(&mut m, t);
                        } else if grow {
                            prop_assert_eq!(m.wanted(), slot_count);
                        } else {
                            prop_assert_eq!(m.pool().len(), 1);
                        }
                    }
                    Event::ResizeTo(target) => {
                        let t = m.resize_to(target);
                        prop_assert!(t.new.iter().all(|n| !m.ejected().contains(n)));
                        carry_out(&mut m, t);
                    }
                    Event::Choose(picks) => {
                        let members: Vec<NodeId> =
                            picks.iter().map(|i| all[i % slot_count].clone()).collect();
                        if let Ok(t) = m.choose(&members) {
                            let mut want = members.clone();
                            want.sort();
                            want.dedup();
                            let mut got = t.new.clone();
                            got.sort();
                            prop_assert_eq!(got, want, "a pick is the pool");
                            carry_out(&mut m, t);
                        }
                    }
                    Event::Health(healthy) => {
                        let results: Vec<(NodeId, bool)> = m
                            .pool()
                            .iter()
                            .chain(m.ejected())
                            .map(|n| {
                                let i = all.iter().position(|s| s == n).unwrap();
                                (n.clone(), healthy[i])
                            })
                            .collect();
                        let (pool, ejected) = (m.pool().to_vec(), m.ejected().to_vec());
                        let verdict = m.record_health(&results, &pool, &ejected);
                        if let Some(t) = m.after_health(&verdict) {
                            // The last node is never ejected.
                            prop_assert!(!t.new.is_empty());
                            carry_out(&mut m, t);
                        }
                    }
                    Event::Ack => {
                        let epoch = m.epoch();
                        m.acknowledge(epoch);
                        prop_assert!(!m.behind());
                    }
                    Event::FrontendAhead(ahead) => {
                        let ours = m.epoch();
                        let theirs = ours + ahead;
                        let sent = m.overtake(ours, theirs);
                        prop_assert!(sent > theirs, "the manager moves past the front-end");
                    }
                    Event::Restart => {
                        let (pool, ejected, epoch) = saved.clone();
                        let mut fresh =
                            Membership::new(all.clone(), None, Assign::default(), failures_max)
                                .unwrap();
                        fresh.restore(pool, ejected, epoch, None).unwrap();
                        prop_assert!(fresh.behind(), "a restarted manager tells the front-end again");
                        m = fresh;
                    }
                }
                // A restart takes the saved epoch, the newest: epochs still only grow.
                prop_assert!(m.epoch() >= epoch_before, "epochs only grow");
                saved = (m.pool().to_vec(), m.ejected().to_vec(), m.epoch());
            }
        }
    }

    #[test]
    fn the_last_node_is_never_ejected() {
        let mut m = Membership::new(slots(2), None, Assign::default(), 1).unwrap();
        let t = m.resize_to(2);
        m.commit(&t).unwrap();
        let results: Vec<(NodeId, bool)> = m.pool().iter().map(|n| (n.clone(), false)).collect();
        let pool = m.pool().to_vec();
        let verdict = m.record_health(&results, &pool, &[]);
        assert_eq!(verdict.eject.len(), 2);
        let t = m.after_health(&verdict).unwrap();
        assert_eq!(t.new, vec![pool[0].clone()]);
        assert_eq!(t.ejected_after, vec![pool[1].clone()]);
        m.commit(&t).unwrap();
        assert_eq!(m.wanted(), 2, "an ejection is not a decision to shrink");
    }

    #[test]
    fn an_ejected_node_rejoins_as_a_joiner_and_only_if_it_fits() {
        let mut m = Membership::new(slots(3), None, Assign::default(), 1).unwrap();
        let t = m.resize_to(3);
        m.commit(&t).unwrap();
        let gone = m.pool()[2].clone();
        let pool = m.pool().to_vec();
        let verdict = m.record_health(&[(gone.clone(), false)], &pool, &[]);
        let t = m.after_health(&verdict).unwrap();
        m.commit(&t).unwrap();
        assert_eq!(m.ejected(), std::slice::from_ref(&gone));
        // A grow cannot take the ejected slot, and the count includes it.
        assert!(m.step_target(true).is_err());
        let ejected = m.ejected().to_vec();
        let pool = m.pool().to_vec();
        let verdict = m.record_health(&[(gone.clone(), true)], &pool, &ejected);
        assert_eq!(verdict.rejoin, std::slice::from_ref(&gone));
        let t = m.after_health(&verdict).unwrap();
        assert_eq!(
            t.joining(),
            std::slice::from_ref(&gone),
            "a rejoining node is a joiner"
        );
        m.commit(&t).unwrap();
        assert!(m.ejected().is_empty());
    }

    #[test]
    fn a_pick_of_an_ejected_node_or_a_stranger_is_refused() {
        let mut m = Membership::new(slots(2), None, Assign::default(), 1).unwrap();
        let second = slots(2)[1].clone();
        let t = m.resize_to(2);
        m.commit(&t).unwrap();
        let pool = m.pool().to_vec();
        let verdict = m.record_health(&[(second.clone(), false)], &pool, &[]);
        let t = m.after_health(&verdict).unwrap();
        m.commit(&t).unwrap();
        assert!(m.choose(&[second]).unwrap_err().contains("ejected"));
        let stranger = NodeId::new("192.168.9.9").unwrap();
        assert!(m.choose(&[stranger]).unwrap_err().contains("slots"));
    }

    #[test]
    #[should_panic(expected = "decided on")]
    fn a_transition_decided_on_another_pool_is_not_committed() {
        let mut m = Membership::new(slots(3), None, Assign::default(), 1).unwrap();
        let first = m.resize_to(2);
        let second = m.resize_to(3);
        m.commit(&first).unwrap();
        m.commit(&second).unwrap();
    }
}
