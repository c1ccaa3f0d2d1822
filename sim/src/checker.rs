//! The checker: compares the recorded history with a model of the store.
//!
//! An upload U of a key is *superseded* at time t when another upload of the same
//! key was invoked after U was acknowledged and was itself acknowledged before t. A
//! read that begins at t may return any upload of its key that is not superseded at
//! t (overlapping uploads may land in either order), and may return "not found"
//! only if no upload of its key was acknowledged before t.

use std::collections::BTreeMap;
use std::fmt;

use crate::history::{Op, OpKind, Outcome};

/// The invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// A read returned an image older than one acknowledged before it began.
    NoStaleRead,
    /// At the end a key does not return its last acknowledged image.
    NoLostUpload,
    /// After healing, reads fail, or the pool misses the size last requested.
    Liveness,
    /// The manager's aggregates disagree with the nodes' counters.
    Statistics,
    /// The rebalance log or the key placement differs from the documented run.
    Documented,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::NoStaleRead => "1. no stale read",
            Invariant::NoLostUpload => "2. no lost upload",
            Invariant::Liveness => "3. liveness",
            Invariant::Statistics => "4. statistics",
            Invariant::Documented => "documented behaviour",
        })
    }
}

/// One broken invariant.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    pub message: String,
    /// The operation at fault, if one is.
    pub op: Option<usize>,
}

/// Everything known about one key's uploads.
struct Uploads<'a> {
    by_generation: BTreeMap<u64, &'a Op>,
}

impl Uploads<'_> {
    /// Is `upload` superseded for a read that began at `at_ms`?
    fn superseded_by(&self, upload: &Op, at_ms: u64) -> Option<&Op> {
        let acked_ms = match (&upload.outcome, upload.complete_ms) {
            (Outcome::Uploaded, Some(ms)) => ms,
            // Unacknowledged: it may have landed at any time, even late.
            _ => return None,
        };
        self.by_generation.values().copied().find(|other| {
            other.id != upload.id
                && other.invoke_ms > acked_ms
                && matches!(other.outcome, Outcome::Uploaded)
                && other.complete_ms.is_some_and(|done| done < at_ms)
        })
    }

    fn any_acked_before(&self, at_ms: u64) -> Option<&Op> {
        self.by_generation.values().copied().find(|upload| {
            matches!(upload.outcome, Outcome::Uploaded)
                && upload.complete_ms.is_some_and(|done| done < at_ms)
        })
    }
}

/// Checks invariants 1 and 2 over a history.
pub fn check_history(ops: &[Op]) -> Vec<Violation> {
    let mut uploads: BTreeMap<&str, Uploads> = BTreeMap::new();
    for op in ops {
        if let OpKind::Upload { key, generation } = &op.kind {
            uploads
                .entry(key.as_str())
                .or_insert_with(|| Uploads {
                    by_generation: BTreeMap::new(),
                })
                .by_generation
                .insert(*generation, op);
        }
    }
    let empty = Uploads {
        by_generation: BTreeMap::new(),
    };
    let mut violations = Vec::new();
    for op in ops {
        let OpKind::Read { key } = &op.kind else {
            continue;
        };
        let invariant = if op.final_check {
            Invariant::NoLostUpload
        } else {
            Invariant::NoStaleRead
        };
        let of_key = uploads.get(key.as_str()).unwrap_or(&empty);
        match &op.outcome {
            Outcome::Read(Some(generation)) => match of_key.by_generation.get(generation) {
                None => violations.push(Violation {
                    invariant,
                    message: format!(
                        "read of {key} returned generation {generation}, which was never uploaded"
                    ),
                    op: Some(op.id),
                }),
                Some(upload) => {
                    if let Some(newer) = of_key.superseded_by(upload, op.invoke_ms) {
                        violations.push(Violation {
                            invariant,
                            message: format!(
                                "read of {key} returned generation {generation} (#{}) although generation {} (#{}) was acknowledged before the read began",
                                upload.id,
                                match &newer.kind { OpKind::Upload { generation, .. } => *generation, OpKind::Read { .. } => 0 },
                                newer.id
                            ),
                            op: Some(op.id),
                        });
                    }
                }
            },
            Outcome::Read(None) => {
                if let Some(upload) = of_key.any_acked_before(op.invoke_ms) {
                    violations.push(Violation {
                        invariant,
                        message: format!(
                            "read of {key} found nothing although upload #{} was acknowledged before it began",
                            upload.id
                        ),
                        op: Some(op.id),
                    });
                }
            }
            Outcome::Corrupt(why) => violations.push(Violation {
                invariant,
                message: format!("read of {key} returned bytes of no upload: {why}"),
                op: Some(op.id),
            }),
            Outcome::Failed(why) if op.final_check => violations.push(Violation {
                invariant: Invariant::Liveness,
                message: format!("final read of {key} failed after healing: {why}"),
                op: Some(op.id),
            }),
            Outcome::Pending if op.final_check => violations.push(Violation {
                invariant: Invariant::Liveness,
                message: format!("final read of {key} never completed"),
                op: Some(op.id),
            }),
            _ => {}
        }
    }
    violations
}

/// The operations on the same key as `op`, around it, for a report.
pub fn context(ops: &[Op], op_id: usize, radius: usize) -> Vec<&Op> {
    let key = ops[op_id].kind.key();
    let same_key: Vec<&Op> = ops.iter().filter(|op| op.kind.key() == key).collect();
    let at = same_key.iter().position(|op| op.id == op_id).unwrap_or(0);
    let from = at.saturating_sub(radius);
    let to = (at + radius + 1).min(same_key.len());
    same_key[from..to].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, kind: OpKind, invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        Op {
            id,
            client: "c".into(),
            kind,
            invoke_ms,
            complete_ms: Some(complete_ms),
            outcome,
            final_check: false,
        }
    }

    fn upload(id: usize, generation: u64, from: u64, to: u64) -> Op {
        op(
            id,
            OpKind::Upload {
                key: "k".into(),
                generation,
            },
            from,
            to,
            Outcome::Uploaded,
        )
    }

    fn read(id: usize, from: u64, to: u64, got: Option<u64>) -> Op {
        op(
            id,
            OpKind::Read { key: "k".into() },
            from,
            to,
            Outcome::Read(got),
        )
    }

    #[test]
    fn a_read_after_a_newer_ack_must_not_see_the_older_image() {
        let ops = vec![
            upload(0, 1, 0, 10),
            upload(1, 2, 20, 30),
            read(2, 40, 50, Some(1)),
        ];
        let found = check_history(&ops);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].invariant, Invariant::NoStaleRead);
        // Overlapping with the newer upload, either image is fine.
        let ops = vec![
            upload(0, 1, 0, 10),
            upload(1, 2, 20, 30),
            read(2, 25, 50, Some(1)),
        ];
        assert!(check_history(&ops).is_empty());
        // Concurrent uploads may land in either order.
        let ops = vec![
            upload(0, 1, 0, 30),
            upload(1, 2, 5, 20),
            read(2, 40, 50, Some(1)),
        ];
        assert!(check_history(&ops).is_empty());
    }

    #[test]
    fn not_found_and_phantoms_are_caught() {
        let ops = vec![upload(0, 1, 0, 10), read(1, 20, 30, None)];
        assert_eq!(check_history(&ops).len(), 1);
        let ops = vec![read(0, 0, 5, None), upload(1, 1, 0, 10)];
        assert!(check_history(&ops).is_empty());
        let ops = vec![upload(0, 1, 0, 10), read(1, 20, 30, Some(9))];
        assert_eq!(check_history(&ops).len(), 1);
    }

    #[test]
    fn failed_final_reads_break_liveness() {
        let mut last = op(
            1,
            OpKind::Read { key: "k".into() },
            50,
            60,
            Outcome::Failed("timeout".into()),
        );
        last.final_check = true;
        let found = check_history(&[upload(0, 1, 0, 10), last]);
        assert_eq!(found[0].invariant, Invariant::Liveness);
    }
}
