//! The front-end's trust in the nodes, as a pure state machine: which nodes are
//! quarantined (bypassed until cleared), the fence token learned at each node's
//! last clear, and the nodes that left the routing but are still handing keys
//! over. No I/O and no clock; the shell in `mod.rs`, `read.rs`, `upload.rs` and
//! `rebalance.rs` feeds it what the nodes answered.
//!
//! Invariants, asserted where they change and checked with proptest:
//! - a quarantine is lifted only by a clear that began after it: a node that
//!   missed an invalidation while it was being healed stays quarantined;
//! - a node's fence token changes only to the token of a clear, or to a later
//!   token of the same clear (one that only forgot floors);
//! - hand-over counts never go below zero, and a node is listed while its count
//!   is above zero.

use std::collections::BTreeMap;

use crate::ring::NodeId;
use crate::wire::fence::Fence;

/// A heal in progress: the quarantine it may lift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealTicket(u64);

/// See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Quarantined nodes, each with the number of its latest quarantine.
    quarantine: BTreeMap<NodeId, u64>,
    quarantines_total: u64,
    /// Each node's fence token, as its last clear by this front-end gave it.
    fences: BTreeMap<NodeId, String>,
    /// Move orders out per node that left the routing.
    handing_over: BTreeMap<NodeId, u32>,
}

impl Trust {
    /// Quarantines `node` (again); returns whether it was trusted until now.
    pub fn quarantine(&mut self, node: &NodeId) -> bool {
        self.quarantines_total += 1;
        self.quarantine
            .insert(node.clone(), self.quarantines_total)
            .is_none()
    }

    pub fn is_quarantined(&self, node: &NodeId) -> bool {
        self.quarantine.contains_key(node)
    }

    /// Quarantined nodes, in node order.
    pub fn quarantined(&self) -> Vec<NodeId> {
        self.quarantine.keys().cloned().collect()
    }

    /// Taken before a healing clear of `node` goes out.
    pub fn heal_ticket(&self, node: &NodeId) -> Option<HealTicket> {
        self.quarantine.get(node).copied().map(HealTicket)
    }

    /// `node` confirmed a clear with `token`: the token is learned. With the
    /// ticket of a heal, the quarantine is lifted unless the node was quarantined
    /// again since the ticket was taken. Returns whether it was lifted.
    pub fn cleared(&mut self, node: &NodeId, token: String, heal: Option<HealTicket>) -> bool {
        self.fences.insert(node.clone(), token);
        let Some(HealTicket(ticket)) = heal else {
            return false;
        };
        match self.quarantine.get(node) {
            Some(&latest) if latest == ticket => {
                self.quarantine.remove(node);
                true
            }
            _ => false,
        }
    }

    /// The token learned at `node`'s last clear.
    pub fn fence(&self, node: &NodeId) -> Option<&str> {
        self.fences.get(node).map(String::as_str)
    }

    /// Takes `token` for `node` if it is the same life and clear as the token held
    /// but with more floors forgotten (the node said so when refusing a put).
    pub fn adopt_later_fence(&mut self, node: &NodeId, token: &str) -> bool {
        let Ok(offered) = token.parse::<Fence>() else {
            return false;
        };
        let Some(held) = self.fences.get(node).and_then(|t| t.parse::<Fence>().ok()) else {
            return false;
        };
        if offered.supersedes(&held) {
            self.fences.insert(node.clone(), token.to_owned());
            true
        } else {
            false
        }
    }

    /// Move orders went out to nodes leaving the routing.
    pub fn hand_over_begins(&mut self, nodes: &[NodeId]) {
        for node in nodes {
            *self.handing_over.entry(node.clone()).or_insert(0) += 1;
        }
    }

    /// Those move orders ended, however they ended.
    pub fn hand_over_ends(&mut self, nodes: &[NodeId]) {
        for node in nodes {
            let count = self
                .handing_over
                .get_mut(node)
                .expect("a hand-over ends only after it began");
            *count -= 1;
            if *count == 0 {
                self.handing_over.remove(node);
            }
        }
    }

    /// Every node an upload must invalidate: the routing pool, then the nodes
    /// still handing keys over.
    pub fn invalidation_targets(&self, pool: &[NodeId]) -> Vec<NodeId> {
        let mut targets = pool.to_vec();
        for node in self.handing_over.keys() {
            if !targets.contains(node) {
                targets.push(node.clone());
            }
        }
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: usize) -> NodeId {
        NodeId::new(&format!("10.0.0.{}", i + 1)).unwrap()
    }

    #[derive(Clone, Debug)]
    enum Event {
        Quarantine(usize),
        /// A heal of the node begins; its clear confirms after `later` more events.
        HealBegins(usize),
        HealConfirms,
        PlainClear(usize, u64),
        HandOver(usize),
        HandOverEnds,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0usize..4).prop_map(Event::Quarantine),
            (0usize..4).prop_map(Event::HealBegins),
            Just(Event::HealConfirms),
            ((0usize..4), (0u64..100)).prop_map(|(n, t)| Event::PlainClear(n, t)),
            (0usize..4).prop_map(Event::HandOver),
            Just(Event::HandOverEnds),
        ]
    }

    proptest! {
        #[test]
        fn a_quarantine_is_lifted_only_by_a_clear_that_began_after_it(
            events in proptest::collection::vec(event(), 1..80),
        ) {
            let mut trust = Trust::default();
            // Heals in flight: node, ticket, and whether the node was quarantined
            // again since the heal began.
            let mut heals: Vec<(NodeId, Option<HealTicket>, bool)> = Vec::new();
            let mut handing: Vec<Vec<NodeId>> = Vec::new();
            let mut clears = 0u64;
            for event in events {
                match event {
                    Event::Quarantine(i) => {
                        let n = node(i);
                        trust.quarantine(&n);
                        prop_assert!(trust.is_quarantined(&n));
                        for heal in heals.iter_mut().filter(|h| h.0 == n) {
                            heal.2 = true;
                        }
                    }
                    Event::HealBegins(i) => {
                        let n = node(i);
                        let ticket = trust.heal_ticket(&n);
                        prop_assert_eq!(ticket.is_some(), trust.is_quarantined(&n));
                        heals.push((n, ticket, false));
                    }
                    Event::HealConfirms => {
                        if heals.is_empty() {
                            continue;
                        }
                        let (n, ticket, requarantined) = heals.remove(0);
                        clears += 1;
                        let was = trust.is_quarantined(&n);
                        let lifted = trust.cleared(&n, format!("t{clears}"), ticket);
                        let token = format!("t{clears}");
                        prop_assert_eq!(trust.fence(&n), Some(token.as_str()));
                        if requarantined {
                            prop_assert!(!lifted, "a quarantine newer than the heal was lifted");
                            prop_assert!(trust.is_quarantined(&n));
                        }
                        if lifted {
                            prop_assert!(was && !trust.is_quarantined(&n));
                        }
                    }
                    Event::PlainClear(i, t) => {
                        let n = node(i);
                        let was = trust.is_quarantined(&n);
                        let lifted = trust.cleared(&n, format!("p{t}"), None);
                        prop_assert!(!lifted);
                        prop_assert_eq!(trust.is_quarantined(&n), was, "only a heal lifts");
                    }
                    Event::HandOver(i) => {
                        let nodes = vec![node(i)];
                        trust.hand_over_begins(&nodes);
                        handing.push(nodes);
                    }
                    Event::HandOverEnds => {
                        if let Some(nodes) = handing.pop() {
                            trust.hand_over_ends(&nodes);
                        }
                    }
                }
                let targets = trust.invalidation_targets(&[node(0)]);
                for nodes in &handing {
                    prop_assert!(targets.contains(&nodes[0]), "a node handing over is invalidated");
                }
                prop_assert_eq!(targets.len(), {
                    let mut all: Vec<NodeId> = handing.iter().map(|n| n[0].clone()).collect();
                    all.push(node(0));
                    all.sort();
                    all.dedup();
                    all.len()
                });
            }
        }
    }

    #[test]
    fn a_node_quarantined_during_its_heal_stays_quarantined() {
        let mut trust = Trust::default();
        let n = node(0);
        assert!(trust.quarantine(&n));
        let ticket = trust.heal_ticket(&n);
        // An invalidation fails while the healing clear is out.
        assert!(!trust.quarantine(&n));
        assert!(!trust.cleared(&n, "1.1".into(), ticket));
        assert!(trust.is_quarantined(&n));
        // The next heal lifts it.
        let ticket = trust.heal_ticket(&n);
        assert!(trust.cleared(&n, "1.2".into(), ticket));
        assert!(!trust.is_quarantined(&n));
        assert_eq!(trust.fence(&n), Some("1.2"));
    }
}
