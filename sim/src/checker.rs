//! The checker: compares the recorded history with a model of the store.
//!
//! An upload U of a key is *superseded* at time t when another upload of the same
//! key was invoked after U was acknowledged and was itself acknowledged before t.
//! It is *erased* at t when a `clear/data` was invoked after U was acknowledged and
//! was acknowledged before t. A read that begins at t may return any upload of its
//! key that is neither, and may return "not found" only if every upload of its key
//! acknowledged before t may have been erased by a clear.
//!
//! Beyond that: reads of one client never go back in version (monotonic reads); no
//! two reads contradict one order of the uploads (per-key linearizability); a
//! listing names every key that surely exists and no key that surely does not;
//! headers match the bytes; and reads and uploads fail only while a fault is on the
//! path from the client to storage.

use std::collections::BTreeMap;
use std::fmt;

use crate::history::{Op, OpKind, Outcome};

/// The invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// A read returned an image older than one acknowledged before it began, or
    /// one erased by a clear acknowledged before it began.
    NoStaleRead,
    /// At the end a key does not return its last acknowledged image.
    NoLostUpload,
    /// After healing, reads fail, or the pool does not converge or recover.
    Liveness,
    /// The manager's aggregates disagree with the nodes' counters or the clients.
    Statistics,
    /// The rebalance log or the key placement differs from the documented run.
    Documented,
    /// A client read an older version after a newer one.
    MonotonicReads,
    /// Two reads of a key contradict every order of its uploads.
    Linearizable,
    /// A listing of the keys disagrees with the uploads and clears.
    ListKeys,
    /// A read or an upload failed with no fault on its path.
    NoSpuriousFailure,
    /// The manager lost a resize it had acknowledged.
    DurableResize,
    /// A service reported that its own protocol broke.
    ProtocolBreach,
    /// A call that needs a token was carried out without it.
    Guarded,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::NoStaleRead => "1. no stale read",
            Invariant::NoLostUpload => "2. no lost upload",
            Invariant::Liveness => "3. liveness",
            Invariant::Statistics => "4. statistics",
            Invariant::Documented => "documented behaviour",
            Invariant::MonotonicReads => "5. monotonic reads",
            Invariant::Linearizable => "6. per-key linearizability",
            Invariant::ListKeys => "7. list_keys agrees",
            Invariant::NoSpuriousFailure => "8. no failure without a fault",
            Invariant::DurableResize => "9. acknowledged resizes are durable",
            Invariant::ProtocolBreach => "10. no protocol breach reported by a service",
            Invariant::Guarded => "11. internal and admin calls need their tokens",
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

fn acked_at(op: &Op) -> Option<u64> {
    match (&op.outcome, op.complete_ms) {
        (Outcome::Uploaded, Some(ms)) => Some(ms),
        _ => None,
    }
}

fn generation_of_op(op: &Op) -> u64 {
    match &op.kind {
        OpKind::Upload { generation, .. } => *generation,
        _ => 0,
    }
}

/// The clears of a run.
struct Clears<'a> {
    ops: Vec<&'a Op>,
}

impl Clears<'_> {
    /// Was an upload acknowledged at `acked_ms` surely erased for a read at `at_ms`?
    fn surely_erased(&self, acked_ms: u64, at_ms: u64) -> bool {
        self.ops.iter().any(|clear| {
            clear.invoke_ms > acked_ms
                && matches!(clear.outcome, Outcome::Done)
                && clear.complete_ms.is_some_and(|done| done < at_ms)
        })
    }

    /// Until when a clear may take effect: its acknowledgement, or never known for
    /// one that failed or got no answer (its request may still arrive, late).
    fn effect_until(clear: &Op) -> Option<u64> {
        match clear.outcome {
            Outcome::Done => clear.complete_ms,
            _ => None,
        }
    }

    /// May an upload invoked at `invoked_ms` have been erased for a read at `at_ms`?
    fn maybe_erased(&self, invoked_ms: u64, at_ms: u64) -> bool {
        self.ops.iter().any(|clear| {
            clear.invoke_ms < at_ms
                && Self::effect_until(clear).is_none_or(|done| done > invoked_ms)
        })
    }

    /// May a clear have happened between `from_ms` and `to_ms`?
    fn any_between(&self, from_ms: u64, to_ms: u64) -> bool {
        self.ops.iter().any(|clear| {
            clear.invoke_ms < to_ms && Self::effect_until(clear).is_none_or(|d| d > from_ms)
        })
    }
}

/// Everything known about one key's uploads (retries share a generation).
struct Uploads<'a> {
    by_generation: BTreeMap<u64, Vec<&'a Op>>,
}

impl<'a> Uploads<'a> {
    /// The acknowledged upload that supersedes generation `generation` for a read
    /// at `at_ms`, if every attempt of it is superseded (an unacknowledged attempt
    /// may land at any time, even late).
    fn superseded_by(&self, generation: u64, at_ms: u64) -> Option<&'a Op> {
        let attempts = self.by_generation.get(&generation)?;
        let mut newer = None;
        for attempt in attempts {
            let acked_ms = acked_at(attempt)?;
            let found = self
                .by_generation
                .values()
                .flatten()
                .copied()
                .find(|other| {
                    generation_of_op(other) != generation
                        && other.invoke_ms > acked_ms
                        && acked_at(other).is_some_and(|done| done < at_ms)
                })?;
            newer = Some(found);
        }
        newer
    }

    /// Whether every attempt of `generation` was acknowledged and surely erased.
    fn erased(&self, generation: u64, at_ms: u64, clears: &Clears) -> bool {
        self.by_generation.get(&generation).is_some_and(|attempts| {
            attempts.iter().all(|attempt| {
                acked_at(attempt).is_some_and(|acked| clears.surely_erased(acked, at_ms))
            })
        })
    }

    /// An upload acknowledged before `at_ms` that no clear invoked before
    /// `until_ms` (the end of the reader's call) may have erased.
    fn surely_present(&self, at_ms: u64, until_ms: u64, clears: &Clears) -> Option<&'a Op> {
        self.by_generation
            .values()
            .flatten()
            .copied()
            .find(|upload| {
                acked_at(upload).is_some_and(|done| done < at_ms)
                    && !clears.maybe_erased(upload.invoke_ms, until_ms)
            })
    }

    /// Whether every attempt of `generation` was acknowledged before `at_ms`.
    fn all_acked_before(&self, generation: u64, at_ms: u64) -> bool {
        self.by_generation.get(&generation).is_some_and(|attempts| {
            attempts
                .iter()
                .all(|a| acked_at(a).is_some_and(|done| done < at_ms))
        })
    }
}

/// Checks the history: stale and lost reads, monotonic reads, per-key
/// linearizability, listings, and headers. Failures are left to
/// [`check_failures`].
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
                .entry(*generation)
                .or_default()
                .push(op);
        }
    }
    let clears = Clears {
        ops: ops
            .iter()
            .filter(|op| matches!(op.kind, OpKind::ClearData))
            .collect(),
    };
    let empty = Uploads {
        by_generation: BTreeMap::new(),
    };
    let mut violations = Vec::new();
    for op in ops {
        match &op.kind {
            OpKind::Read { key } => check_read(
                op,
                key,
                uploads.get(key.as_str()).unwrap_or(&empty),
                &clears,
                &mut violations,
            ),
            OpKind::ListKeys => check_listing(op, &uploads, &clears, &mut violations),
            _ => {}
        }
    }
    check_read_orders(ops, &uploads, &clears, &mut violations);
    violations
}

fn check_read(
    op: &Op,
    key: &str,
    of_key: &Uploads,
    clears: &Clears,
    violations: &mut Vec<Violation>,
) {
    let invariant = if op.final_check {
        Invariant::NoLostUpload
    } else {
        Invariant::NoStaleRead
    };
    match &op.outcome {
        Outcome::Read(Some(generation)) => {
            if !of_key.by_generation.contains_key(generation) {
                violations.push(Violation {
                    invariant,
                    message: format!(
                        "read of {key} returned generation {generation}, which was never uploaded"
                    ),
                    op: Some(op.id),
                });
            } else if let Some(newer) = of_key.superseded_by(*generation, op.invoke_ms) {
                violations.push(Violation {
                    invariant,
                    message: format!(
                        "read of {key} returned generation {generation} although generation {} (#{}) was acknowledged before the read began",
                        generation_of_op(newer),
                        newer.id
                    ),
                    op: Some(op.id),
                });
            } else if of_key.erased(*generation, op.invoke_ms, clears) {
                violations.push(Violation {
                    invariant,
                    message: format!(
                        "read of {key} returned generation {generation}, erased by a clear/data acknowledged before the read began"
                    ),
                    op: Some(op.id),
                });
            }
        }
        Outcome::Read(None) => {
            let until_ms = op.complete_ms.unwrap_or(u64::MAX);
            if let Some(upload) = of_key.surely_present(op.invoke_ms, until_ms, clears) {
                violations.push(Violation {
                    invariant,
                    message: format!(
                        "read of {key} found nothing although upload #{} was acknowledged before it began and no clear could have erased it",
                        upload.id
                    ),
                    op: Some(op.id),
                });
            }
        }
        Outcome::Corrupt(why) => violations.push(Violation {
            invariant,
            message: format!("read of {key} returned a wrong image or wrong headers: {why}"),
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

fn check_listing(
    op: &Op,
    uploads: &BTreeMap<&str, Uploads>,
    clears: &Clears,
    violations: &mut Vec<Violation>,
) {
    let Outcome::Listed(listed) = &op.outcome else {
        return;
    };
    let Some(complete_ms) = op.complete_ms else {
        return;
    };
    for (key, of_key) in uploads {
        if let Some(upload) = of_key.surely_present(op.invoke_ms, complete_ms, clears) {
            if !listed.iter().any(|k| k == key) {
                violations.push(Violation {
                    invariant: Invariant::ListKeys,
                    message: format!(
                        "list_keys left out {key}, whose upload #{} was acknowledged before the listing and no clear could have erased",
                        upload.id
                    ),
                    op: Some(op.id),
                });
            }
        }
    }
    for key in listed {
        let possible = uploads.get(key.as_str()).is_some_and(|of_key| {
            of_key.by_generation.values().flatten().any(|upload| {
                upload.invoke_ms < complete_ms
                    && !acked_at(upload)
                        .is_some_and(|acked| clears.surely_erased(acked, op.invoke_ms))
            })
        });
        if !possible {
            violations.push(Violation {
                invariant: Invariant::ListKeys,
                message: format!(
                    "list_keys named {key}, which no upload that could still exist created"
                ),
                op: Some(op.id),
            });
        }
    }
}

/// Monotonic reads per client, per-key linearizability, and one version per
/// upload.
fn check_read_orders(
    ops: &[Op],
    uploads: &BTreeMap<&str, Uploads>,
    clears: &Clears,
    violations: &mut Vec<Violation>,
) {
    let mut reads: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let (OpKind::Read { key }, Outcome::Read(_), Some(_)) =
            (&op.kind, &op.outcome, op.complete_ms)
        {
            reads.entry(key.as_str()).or_default().push(op);
        }
    }
    for (key, reads) in reads {
        let Some(of_key) = uploads.get(key) else {
            continue;
        };
        let mut versions: BTreeMap<u64, u64> = BTreeMap::new();
        for (i, first) in reads.iter().enumerate() {
            let first_done = first.complete_ms.expect("completed");
            if let (Outcome::Read(Some(generation)), Some(version)) =
                (&first.outcome, first.version)
            {
                let single = of_key
                    .by_generation
                    .get(generation)
                    .is_some_and(|a| a.len() == 1);
                match versions.insert(*generation, version) {
                    Some(other) if other != version && single => violations.push(Violation {
                        invariant: Invariant::Linearizable,
                        message: format!(
                            "generation {generation} of {key} was served as version {other} and as version {version}"
                        ),
                        op: Some(first.id),
                    }),
                    _ => {}
                }
            }
            for later in &reads[i + 1..] {
                if later.invoke_ms <= first_done {
                    continue;
                }
                // Monotonic reads: one client never goes back.
                if later.client == first.client {
                    match (first.version, later.version, &later.outcome) {
                        (Some(before), Some(after), _) if after < before => {
                            violations.push(Violation {
                                invariant: Invariant::MonotonicReads,
                                message: format!(
                                    "{} read {key} at version {after} after reading version {before} (#{})",
                                    later.client, first.id
                                ),
                                op: Some(later.id),
                            })
                        }
                        (Some(before), _, Outcome::Read(None))
                            if !clears.any_between(first.invoke_ms, later.complete_ms.unwrap_or(u64::MAX)) =>
                        {
                            violations.push(Violation {
                                invariant: Invariant::MonotonicReads,
                                message: format!(
                                    "{} found no {key} after reading version {before} (#{}), with no clear between",
                                    later.client, first.id
                                ),
                                op: Some(later.id),
                            })
                        }
                        _ => {}
                    }
                }
                // Linearizability: `first` returned U; every attempt of U' was
                // acknowledged before `first` began, so U' comes before U in any
                // order, and a later read cannot return U' again.
                if let (Outcome::Read(Some(seen)), Outcome::Read(Some(again))) =
                    (&first.outcome, &later.outcome)
                {
                    if seen != again
                        && of_key.all_acked_before(*again, first.invoke_ms)
                        && of_key.by_generation.contains_key(seen)
                    {
                        violations.push(Violation {
                            invariant: Invariant::Linearizable,
                            message: format!(
                                "read of {key} returned generation {again} after read #{} returned {seen}, although {again} was acknowledged before #{} began",
                                first.id, first.id
                            ),
                            op: Some(later.id),
                        });
                    }
                }
            }
        }
    }
}

/// Reads and uploads that failed with no fault on their path. `disturbed` says
/// whether a fault may explain a failure during `[from_ms, to_ms]`.
pub fn check_failures(ops: &[Op], disturbed: &dyn Fn(u64, u64) -> bool) -> Vec<Violation> {
    let mut violations = Vec::new();
    for op in ops {
        let what = match &op.kind {
            OpKind::Read { key } => format!("read of {key}"),
            OpKind::Upload { key, generation } => format!("upload of {key} gen {generation}"),
            _ => continue,
        };
        if let Outcome::Failed(why) = &op.outcome {
            if why.starts_with(crate::driver::GAVE_UP) {
                continue;
            }
            let until = op.complete_ms.unwrap_or(u64::MAX);
            if !disturbed(op.invoke_ms, until) {
                violations.push(Violation {
                    invariant: Invariant::NoSpuriousFailure,
                    message: format!("{what} failed with no fault on its path: {why}"),
                    op: Some(op.id),
                });
            }
        }
    }
    violations
}

/// The operations on the same key as `op`, around it, for a report (clears and
/// listings are shown too).
pub fn context(ops: &[Op], op_id: usize, radius: usize) -> Vec<&Op> {
    let key = ops[op_id].kind.key();
    let related: Vec<&Op> = ops
        .iter()
        .filter(|op| op.kind.key().is_none() || op.kind.key() == key)
        .collect();
    let at = related.iter().position(|op| op.id == op_id).unwrap_or(0);
    let from = at.saturating_sub(radius);
    let to = (at + radius + 1).min(related.len());
    related[from..to].to_vec()
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
            version: None,
            cache_hit: None,
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

    fn clear(id: usize, from: u64, to: u64) -> Op {
        op(id, OpKind::ClearData, from, to, Outcome::Done)
    }

    #[test]
    fn clears_erase_what_was_acknowledged_before_them() {
        // Acknowledged, then cleared: the image may not come back, 404 is fine.
        let ops = vec![
            upload(0, 1, 0, 10),
            clear(1, 20, 30),
            read(2, 40, 50, Some(1)),
        ];
        assert_eq!(check_history(&ops)[0].invariant, Invariant::NoStaleRead);
        let ops = vec![upload(0, 1, 0, 10), clear(1, 20, 30), read(2, 40, 50, None)];
        assert!(check_history(&ops).is_empty());
        // An upload overlapping the clear may or may not survive it.
        let ops = vec![
            upload(0, 1, 15, 25),
            clear(1, 20, 30),
            read(2, 40, 50, None),
        ];
        assert!(check_history(&ops).is_empty());
        let ops = vec![
            upload(0, 1, 15, 25),
            clear(1, 20, 30),
            read(2, 40, 50, Some(1)),
        ];
        assert!(check_history(&ops).is_empty());
        // An upload after the clear must be there.
        let ops = vec![clear(0, 0, 10), upload(1, 1, 20, 30), read(2, 40, 50, None)];
        assert_eq!(check_history(&ops).len(), 1);
    }

    #[test]
    fn listings_and_orders_are_checked() {
        let listing = |id, from, to, keys: &[&str]| {
            op(
                id,
                OpKind::ListKeys,
                from,
                to,
                Outcome::Listed(keys.iter().map(|k| k.to_string()).collect()),
            )
        };
        let ops = vec![upload(0, 1, 0, 10), listing(1, 20, 30, &[])];
        assert_eq!(check_history(&ops)[0].invariant, Invariant::ListKeys);
        let ops = vec![upload(0, 1, 0, 10), listing(1, 20, 30, &["k", "ghost"])];
        assert_eq!(check_history(&ops).len(), 1);
        let ops = vec![
            upload(0, 1, 0, 10),
            clear(1, 12, 15),
            listing(2, 20, 30, &["k"]),
        ];
        assert_eq!(check_history(&ops).len(), 1, "k was surely erased");
        // Two concurrent uploads: once a read saw 2, 1 may not come back.
        let ops = vec![
            upload(0, 1, 0, 30),
            upload(1, 2, 5, 20),
            read(2, 40, 50, Some(2)),
            read(3, 60, 70, Some(1)),
        ];
        assert_eq!(check_history(&ops)[0].invariant, Invariant::Linearizable);
        // Monotonic reads: the same client does not go back in version.
        let mut first = read(2, 40, 50, Some(2));
        first.version = Some(9);
        let mut second = read(3, 60, 70, Some(1));
        second.version = Some(7);
        let ops = vec![upload(0, 1, 0, 30), upload(1, 2, 0, 30), first, second];
        let found = check_history(&ops);
        assert!(found
            .iter()
            .any(|v| v.invariant == Invariant::MonotonicReads));
    }

    #[test]
    fn failures_need_a_fault() {
        let failed = op(
            0,
            OpKind::Read { key: "k".into() },
            10,
            20,
            Outcome::Failed("503".into()),
        );
        assert_eq!(
            check_failures(std::slice::from_ref(&failed), &|_, _| false).len(),
            1
        );
        assert!(check_failures(&[failed], &|_, _| true).is_empty());
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
