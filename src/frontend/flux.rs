//! Keys with an upload in progress, as pure bookkeeping (no I/O, no clock), so
//! that reads stay linearizable: see [`Flux`]. The upload path marks keys in and
//! out of flux; the read path asks for a ticket before it reads a node and checks
//! it before it trusts the hit.

use std::collections::BTreeMap;

/// Buckets of the upload counters that reads compare (see [`Flux`]).
const FLUX_BUCKETS: usize = 4_096;
/// Most keys whose failed upload could not be settled, kept out of the cache.
const UNSETTLED_KEYS_MAX: usize = 4_096;

/// Keys with an upload in progress, so that reads stay linearizable.
///
/// From just before an upload's row commit until its invalidation has reached
/// every node, some nodes may still hold the old image while storage has the new
/// one: a read could see the new image and a later read the old. So reads of a key
/// in flux skip the cache, and a cache hit is thrown away if an upload of its key
/// began while the read was out (counted per bucket of keys). A failed upload whose
/// row may have committed keeps its key out of the cache until the key is settled
/// by a later upload or a clear.
#[derive(Default)]
pub struct Flux {
    /// Uploads in progress per key.
    active: BTreeMap<String, u32>,
    /// Uploads begun, per bucket of keys.
    begun: Vec<u64>,
    /// Keys whose failed upload could not be settled, with when they were added.
    unsettled: BTreeMap<String, u64>,
    /// The same keys, oldest first, for the bound.
    unsettled_order: BTreeMap<u64, String>,
    next_unsettled: u64,
}

/// What a read noted before asking the cache: its key's bucket and the uploads
/// begun in it then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTicket {
    bucket: usize,
    begun: u64,
}

pub fn flux_bucket(key: &str) -> usize {
    let digest = <md5::Md5 as md5::Digest>::digest(key.as_bytes());
    (usize::from(digest[0]) << 8 | usize::from(digest[1])) % FLUX_BUCKETS
}

impl Flux {
    pub fn new() -> Self {
        Flux {
            begun: vec![0; FLUX_BUCKETS],
            ..Flux::default()
        }
    }

    pub fn in_flux(&self, key: &str) -> bool {
        self.active.contains_key(key) || self.unsettled.contains_key(key)
    }

    /// A read may use the cache for `key` now; returns what to compare later.
    pub fn read_ticket(&self, key: &str) -> Option<ReadTicket> {
        if self.in_flux(key) {
            return None;
        }
        let bucket = flux_bucket(key);
        Some(ReadTicket {
            bucket,
            begun: self.begun[bucket],
        })
    }

    /// Whether no upload of `key` began since `ticket` was taken.
    pub fn still_valid(&self, key: &str, ticket: ReadTicket) -> bool {
        !self.in_flux(key) && self.begun[ticket.bucket] == ticket.begun
    }

    /// An upload of `key` is about to commit. Returns the mark to give [`end`]:
    /// keys made unsettled from now on are not this upload's to settle.
    ///
    /// [`end`]: Flux::end
    pub fn begin(&mut self, key: &str) -> u64 {
        *self.active.entry(key.to_owned()).or_insert(0) += 1;
        self.begun[flux_bucket(key)] += 1;
        self.mark()
    }

    /// The sequence number the next unsettled key will get.
    pub fn mark(&self) -> u64 {
        self.next_unsettled
    }

    /// An upload of `key` that began at `mark` ended. `settled`: its version is
    /// on every node (or, after a failure, the key's row version is). That settles
    /// the key only if it was left unsettled before `mark`: a failed upload that
    /// ended later may have committed a newer row than the one invalidated.
    pub fn end(&mut self, key: &str, settled: bool, mark: u64) {
        if let Some(count) = self.active.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.active.remove(key);
            }
        }
        if settled {
            self.settle_before(key, mark);
        } else {
            // Marked again if it was already: the newest failure is what counts.
            if let Some(seq) = self.unsettled.remove(key) {
                self.unsettled_order.remove(&seq);
            }
            if self.unsettled.len() >= UNSETTLED_KEYS_MAX {
                if let Some((_, oldest)) = self.unsettled_order.pop_first() {
                    self.unsettled.remove(&oldest);
                }
            }
            let seq = self.next_unsettled;
            self.next_unsettled += 1;
            self.unsettled.insert(key.to_owned(), seq);
            self.unsettled_order.insert(seq, key.to_owned());
        }
        debug_assert_eq!(self.unsettled.len(), self.unsettled_order.len());
    }

    /// `key` is settled as of `mark`: no node holds anything older than the row
    /// read after `mark`. A key made unsettled at or after `mark` stays so.
    pub fn settle_before(&mut self, key: &str, mark: u64) {
        if let Some(&seq) = self.unsettled.get(key) {
            if seq < mark {
                self.unsettled.remove(key);
                self.unsettled_order.remove(&seq);
            }
        }
    }

    /// Every key made unsettled before `mark` is settled (every node was cleared
    /// after `mark`).
    pub fn settle_all_before(&mut self, mark: u64) {
        let later = self.unsettled_order.split_off(&mark);
        for key in self.unsettled_order.values() {
            self.unsettled.remove(key);
        }
        self.unsettled_order = later;
        debug_assert_eq!(self.unsettled.len(), self.unsettled_order.len());
    }

    /// Up to `count` unsettled keys, oldest first, each with the mark that
    /// settles it.
    pub fn unsettled_keys(&self, count: usize) -> Vec<(String, u64)> {
        self.unsettled_order
            .iter()
            .take(count)
            .map(|(&seq, key)| (key.clone(), seq + 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_skip_the_cache_while_a_key_is_in_flux() {
        let mut flux = Flux::new();
        let ticket = flux.read_ticket("k").expect("nothing in flux");
        assert!(flux.still_valid("k", ticket));
        let mark = flux.begin("k");
        assert_eq!(flux.read_ticket("k"), None);
        assert!(!flux.still_valid("k", ticket), "an upload began meanwhile");
        flux.end("k", true, mark);
        assert!(!flux.still_valid("k", ticket), "its counter moved on");
        assert!(flux.read_ticket("k").is_some());
    }

    #[test]
    fn unsettled_keys_are_bounded_and_settled() {
        let mut flux = Flux::new();
        for i in 0..=UNSETTLED_KEYS_MAX {
            let key = format!("k{i}");
            let mark = flux.begin(&key);
            flux.end(&key, false, mark);
        }
        assert_eq!(flux.unsettled.len(), UNSETTLED_KEYS_MAX);
        assert!(flux.read_ticket("k0").is_some(), "the oldest was dropped");
        let oldest = flux.unsettled_keys(2);
        assert_eq!(oldest[0].0, "k1");
        assert_eq!(oldest[1].0, "k2");
        assert_eq!(flux.read_ticket("k1"), None);
        flux.settle_before("k1", oldest[0].1);
        assert!(flux.read_ticket("k1").is_some());
        let mark = flux.mark();
        flux.settle_all_before(mark);
        assert!(flux.unsettled_keys(1).is_empty());
    }

    /// Chaos seed 632: an upload that succeeded must not settle a key that a
    /// later failed upload (whose row may have committed after its own) left
    /// unsettled; nor may the healer or a cache clear settle a mark newer than
    /// the row they read or the clear.
    #[test]
    fn only_marks_older_than_the_settler_are_settled() {
        let mut flux = Flux::new();
        let slow = flux.begin("k");
        let failed = flux.begin("k");
        flux.end("k", false, failed);
        flux.end("k", true, slow);
        assert_eq!(
            flux.read_ticket("k"),
            None,
            "the failed upload's mark stands"
        );

        // The healer listed the key, then another upload failed before it settled.
        let listed = flux.unsettled_keys(1)[0].1;
        let again = flux.begin("k");
        flux.end("k", false, again);
        flux.settle_before("k", listed);
        assert_eq!(
            flux.read_ticket("k"),
            None,
            "marked again after the listing"
        );
        let listed = flux.unsettled_keys(1)[0].1;
        flux.settle_before("k", listed);
        assert!(flux.read_ticket("k").is_some());

        // A clear settles what was marked before it began, not what came after.
        let before = flux.begin("a");
        flux.end("a", false, before);
        let clear = flux.mark();
        let after = flux.begin("b");
        flux.end("b", false, after);
        flux.settle_all_before(clear);
        assert!(flux.read_ticket("a").is_some());
        assert_eq!(flux.read_ticket("b"), None);
    }
}
