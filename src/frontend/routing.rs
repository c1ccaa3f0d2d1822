//! The front-end's routing decisions, pure: the pool and assignment it routes by,
//! with the manager's epoch, and what it does with a pool it is told or reads
//! from the manager. The rule is that routing never goes back to an older epoch:
//! a notify of an older epoch is refused (409), and the periodic sync moves to
//! the manager's pool unless the front-end's is newer. `rebalance.rs` carries
//! the decisions out.

use crate::assign::Assignment;
use crate::ring::{NodeId, Pool};

/// The pool as the front-end routes by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    pub pool: Pool,
    pub mapping: Assignment,
    /// The manager's epoch of this pool; notifies of older epochs are refused.
    pub epoch: u64,
}

impl Routing {
    /// Whether a pool told with `epoch` is older than this one (and refused).
    /// A pool told without an epoch (the documented notify, no manager) is not.
    pub fn refuses(&self, epoch: Option<u64>) -> bool {
        epoch.is_some_and(|epoch| epoch < self.epoch)
    }

    /// Whether this routing already is `members` at `epoch`: nothing to do.
    pub fn is(&self, epoch: Option<u64>, members: &[NodeId]) -> bool {
        epoch == Some(self.epoch) && same_members(&self.pool, members)
    }

    /// Whether the front-end keeps this routing against the manager's pool
    /// (`members` at `epoch`): it is the same, or newer (a manager that lost its
    /// saved state is behind; it moves past the front-end's epoch when its next
    /// notify is refused).
    pub fn holds(&self, epoch: u64, members: &[NodeId]) -> bool {
        epoch < self.epoch || (epoch == self.epoch && same_members(&self.pool, members))
    }
}

/// Whether `pool` has exactly the nodes `members` (in any order).
pub fn same_members(pool: &Pool, members: &[NodeId]) -> bool {
    pool.len() == members.len() && members.iter().all(|node| pool.contains(node))
}

/// Whether what a notify told (`members`, and `epoch` if any) is the manager's
/// pool (`managers` at `managers_epoch`). Only then does the notify succeed.
pub fn notify_agrees(
    members: &[NodeId],
    epoch: Option<u64>,
    managers: &[NodeId],
    managers_epoch: u64,
) -> bool {
    epoch.is_none_or(|epoch| epoch == managers_epoch)
        && managers.len() == members.len()
        && members.iter().all(|node| managers.contains(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assign::Strategy as Assign;
    use proptest::prelude::*;

    fn nodes(picks: &[usize]) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::new();
        for i in picks {
            let node = NodeId::new(&format!("10.0.0.{}", i + 1)).unwrap();
            if !out.contains(&node) {
                out.push(node);
            }
        }
        out
    }

    fn routing(picks: &[usize], epoch: u64) -> Routing {
        let pool = Pool::new(nodes(picks)).unwrap();
        let mapping = Assign::default().assign(&pool, None);
        Routing {
            pool,
            mapping,
            epoch,
        }
    }

    proptest! {
        #[test]
        fn routing_never_goes_back_to_an_older_epoch(
            ours in proptest::collection::vec(0usize..6, 1..6),
            theirs in proptest::collection::vec(0usize..6, 1..6),
            our_epoch in 0u64..10,
            their_epoch in 0u64..10,
        ) {
            let routing = routing(&ours, our_epoch);
            let members = nodes(&theirs);
            // A told pool is refused exactly when it is older.
            prop_assert_eq!(routing.refuses(Some(their_epoch)), their_epoch < our_epoch);
            prop_assert!(!routing.refuses(None));
            // The sync keeps an older or equal routing only if it is the manager's.
            let holds = routing.holds(their_epoch, &members);
            if their_epoch > our_epoch {
                prop_assert!(!holds, "a newer manager pool is always taken");
            }
            if their_epoch < our_epoch {
                prop_assert!(holds, "an older manager pool is never taken");
            }
            if routing.is(Some(their_epoch), &members) {
                prop_assert!(holds);
            }
            // Members compare as sets.
            let mut reversed = members.clone();
            reversed.reverse();
            prop_assert_eq!(
                notify_agrees(&members, None, &reversed, their_epoch),
                true
            );
            prop_assert_eq!(
                notify_agrees(&members, Some(their_epoch + 1), &members, their_epoch),
                false
            );
        }
    }
}
