//! Fault injection with bookkeeping: each fault is counted on the links it touches,
//! and a link's state is recomputed from all the faults on it, so healing one fault
//! never heals another that overlaps it.
//!
//! turmoil keeps one state per link direction (healthy, held, partitioned), and its
//! calls overwrite each other: releasing a hold would also lift a partition. The
//! book keeps counters per link and applies the strongest state in force:
//! partition, then one-way partitions, then hold (held segments are delivered when
//! the hold ends, as real TCP would deliver them after a heal), then healthy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::world::World;

/// A fault of the menu. Link faults name two hosts; `from` → `to` for one-way ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing crosses between the two hosts; segments in flight are dropped.
    Partition(String, String),
    /// Nothing crosses from the first host to the second.
    PartitionOneWay(String, String),
    /// Segments between the two hosts are held, and delivered late at the end.
    Clog(String, String),
    /// Every link of the host is held: a zombie that runs but is not heard.
    Pause(String),
    /// The link's largest latency rises to this many ms.
    Slow(String, String, u64),
    /// The host's software stops and starts again (empty) at once.
    Bounce(String),
    /// The host is down until the fault ends, then starts again.
    Crash(String),
    /// The manager loses power: unsynced writes are lost; back at the end.
    CrashManager,
    /// The manager's host is replaced: its saved state is gone; back at the end.
    CrashManagerLosingDisk,
    /// The front-end restarts (its memory is gone).
    RestartFrontend,
    /// The store ("s3" or "rds") answers up to this many ms late.
    StorageSlow(String, u64),
    /// The store answers 503 to this share (per mille) of calls.
    StorageErrors(String, u32),
    /// The store throttles every call.
    StorageThrottled(String),
    /// The store carries out this share (per mille) of writes and loses the reply.
    StorageLostReplies(String, u32),
}

impl Fault {
    /// Whether this fault may make a client's read or upload fail: faults on the
    /// path client → front-end → storage. Faults on nodes never may (reads go
    /// around nodes), nor those on the manager.
    pub fn touches_storage_path(&self) -> bool {
        let on_path =
            |host: &str| matches!(host, "frontend" | "s3" | "rds") || host.starts_with("client");
        match self {
            Fault::Partition(a, b)
            | Fault::PartitionOneWay(a, b)
            | Fault::Clog(a, b)
            | Fault::Slow(a, b, _) => on_path(a) && on_path(b),
            Fault::Pause(host) | Fault::Bounce(host) | Fault::Crash(host) => on_path(host),
            Fault::RestartFrontend => true,
            Fault::CrashManager | Fault::CrashManagerLosingDisk => false,
            Fault::StorageSlow(..)
            | Fault::StorageErrors(..)
            | Fault::StorageThrottled(_)
            | Fault::StorageLostReplies(..) => true,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Counters of the faults on one link (hosts in name order: `a` < `b`).
#[derive(Clone, Debug, Default)]
struct LinkFaults {
    partitions: u32,
    a_to_b_cut: u32,
    b_to_a_cut: u32,
    holds: u32,
    /// Largest-latency overrides in force.
    slow_ms: Vec<u64>,
}

/// When a fault was in force, for the checker.
#[derive(Clone, Debug)]
pub struct FaultSpan {
    pub fault: Fault,
    pub from_ms: u64,
    /// `None` while in force.
    pub until_ms: Option<u64>,
}

/// Every fault injected in a run, shared with the checker.
#[derive(Clone, Default)]
pub struct FaultLog {
    spans: Arc<Mutex<Vec<FaultSpan>>>,
}

impl FaultLog {
    pub fn spans(&self) -> Vec<FaultSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn open(&self, fault: &Fault, now_ms: u64) {
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(FaultSpan {
                fault: fault.clone(),
                from_ms: now_ms,
                until_ms: None,
            });
    }

    fn close(&self, fault: &Fault, now_ms: u64) {
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(span) = spans
            .iter_mut()
            .find(|span| span.until_ms.is_none() && span.fault == *fault)
        {
            span.until_ms = Some(now_ms);
        }
    }

    /// Whether any fault touching the storage path was in force during
    /// `[from_ms, to_ms]`, or ended less than `after_ms` before `from_ms` (a
    /// connection broken by a partition stays broken until its call times out).
    pub fn storage_path_disturbed(&self, from_ms: u64, to_ms: u64, after_ms: u64) -> bool {
        self.spans().iter().any(|span| {
            span.fault.touches_storage_path()
                && span.from_ms <= to_ms
                && span
                    .until_ms
                    .is_none_or(|until| until + after_ms >= from_ms)
        })
    }
}

/// The book: injects and heals faults on a world.
pub struct FaultBook {
    links: BTreeMap<(String, String), LinkFaults>,
    /// Every host, for pauses.
    hosts: Vec<String>,
    /// Each link's largest latency when no fault slows it.
    base_max_ms: BTreeMap<(String, String), u64>,
    default_max_ms: u64,
    /// Storage faults in force.
    storage: Vec<Fault>,
    pub log: FaultLog,
}

fn key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl FaultBook {
    pub fn new(hosts: Vec<String>, spec: &crate::world::WorldSpec) -> Self {
        let base_max_ms = spec
            .slow_links
            .iter()
            .map(|(a, b, ms)| (key(a, b), *ms))
            .collect();
        FaultBook {
            links: BTreeMap::new(),
            hosts,
            base_max_ms,
            default_max_ms: spec.max_latency_ms,
            storage: Vec::new(),
            log: FaultLog::default(),
        }
    }

    /// The links a fault touches, with how it changes their counters.
    fn touch(&mut self, fault: &Fault, delta: i32) -> Vec<(String, String)> {
        let mut touched = Vec::new();
        let mut change = |links: &mut BTreeMap<(String, String), LinkFaults>,
                          a: &str,
                          b: &str,
                          f: &dyn Fn(&mut LinkFaults, bool)| {
            let k = key(a, b);
            let forward = a <= b;
            f(links.entry(k.clone()).or_default(), forward);
            touched.push(k);
        };
        let add = |counter: &mut u32| {
            *counter = counter.saturating_add_signed(delta);
        };
        match fault {
            Fault::Partition(a, b) => change(&mut self.links, a, b, &|l, _| add(&mut l.partitions)),
            Fault::PartitionOneWay(from, to) => change(&mut self.links, from, to, &|l, forward| {
                if forward {
                    add(&mut l.a_to_b_cut)
                } else {
                    add(&mut l.b_to_a_cut)
                }
            }),
            Fault::Clog(a, b) => change(&mut self.links, a, b, &|l, _| add(&mut l.holds)),
            Fault::Pause(host) => {
                for other in self.hosts.clone() {
                    if other != *host {
                        change(&mut self.links, host, &other, &|l, _| add(&mut l.holds));
                    }
                }
            }
            Fault::Slow(a, b, ms) => change(&mut self.links, a, b, &|l, _| {
                if delta > 0 {
                    l.slow_ms.push(*ms);
                } else if let Some(at) = l.slow_ms.iter().position(|m| m == ms) {
                    l.slow_ms.remove(at);
                }
            }),
            _ => {}
        }
        touched
    }

    /// Sets each touched link to the state its counters call for.
    fn apply(&self, world: &World, links: &[(String, String)]) {
        let sim = &world.sim;
        for k in links {
            let state = self.links.get(k).cloned().unwrap_or_default();
            let (a, b) = (k.0.as_str(), k.1.as_str());
            // Start from healthy (this also schedules held segments), then cut.
            sim.release(a, b);
            if state.partitions > 0 {
                sim.partition(a, b);
            } else if state.a_to_b_cut > 0 || state.b_to_a_cut > 0 {
                if state.a_to_b_cut > 0 {
                    sim.partition_oneway(a, b);
                }
                if state.b_to_a_cut > 0 {
                    sim.partition_oneway(b, a);
                }
            } else if state.holds > 0 {
                sim.hold(a, b);
            }
            let base = self
                .base_max_ms
                .get(k)
                .copied()
                .unwrap_or(self.default_max_ms);
            let max_ms = state
                .slow_ms
                .iter()
                .copied()
                .max()
                .unwrap_or(base)
                .max(base);
            sim.set_link_max_message_latency(a, b, Duration::from_millis(max_ms));
        }
    }

    /// Sets each store's faults from the storage faults in force.
    fn apply_storage(&self, world: &World) {
        for (name, faults) in [("s3", &world.s3_faults), ("rds", &world.rds_faults)] {
            let mut slow_ms = 0;
            let mut errors = 0;
            let mut throttled = false;
            let mut lost = 0;
            for fault in &self.storage {
                match fault {
                    Fault::StorageSlow(store, ms) if store == name => slow_ms = slow_ms.max(*ms),
                    Fault::StorageErrors(store, pm) if store == name => errors = errors.max(*pm),
                    Fault::StorageThrottled(store) if store == name => throttled = true,
                    Fault::StorageLostReplies(store, pm) if store == name => lost = lost.max(*pm),
                    _ => {}
                }
            }
            faults.heal();
            faults.set_slow(slow_ms);
            faults.set_error_per_mille(errors);
            faults.set_throttled(throttled);
            faults.set_lost_reply_per_mille(lost);
        }
    }

    /// Injects `fault` now.
    pub fn inject(&mut self, world: &mut World, fault: &Fault, now_ms: u64) {
        self.log.open(fault, now_ms);
        match fault {
            Fault::Bounce(host) => world.sim.bounce(host.as_str()),
            Fault::Crash(host) => world.sim.crash(host.as_str()),
            Fault::CrashManager => {
                world.sim.crash("manager");
                world.manager_disk.crash();
            }
            Fault::CrashManagerLosingDisk => {
                world.sim.crash("manager");
                world.manager_disk.lose_everything();
            }
            Fault::RestartFrontend => world.sim.bounce("frontend"),
            Fault::StorageSlow(..)
            | Fault::StorageErrors(..)
            | Fault::StorageThrottled(_)
            | Fault::StorageLostReplies(..) => {
                self.storage.push(fault.clone());
                self.apply_storage(world);
            }
            _ => {
                let links = self.touch(fault, 1);
                self.apply(world, &links);
            }
        }
    }

    /// Heals `fault` now; other faults on the same links stay.
    pub fn heal(&mut self, world: &mut World, fault: &Fault, now_ms: u64) {
        self.log.close(fault, now_ms);
        match fault {
            Fault::Bounce(_) | Fault::RestartFrontend => {}
            Fault::Crash(host) => world.sim.bounce(host.as_str()),
            Fault::CrashManager | Fault::CrashManagerLosingDisk => world.sim.bounce("manager"),
            Fault::StorageSlow(..)
            | Fault::StorageErrors(..)
            | Fault::StorageThrottled(_)
            | Fault::StorageLostReplies(..) => {
                if let Some(at) = self.storage.iter().position(|f| f == fault) {
                    self.storage.remove(at);
                }
                self.apply_storage(world);
            }
            _ => {
                let links = self.touch(fault, -1);
                self.apply(world, &links);
            }
        }
    }

    /// Whether any link fault is still in force.
    pub fn any_link_fault(&self) -> bool {
        !self.storage.is_empty()
            || self.links.values().any(|l| {
                l.partitions + l.a_to_b_cut + l.b_to_a_cut + l.holds > 0 || !l.slow_ms.is_empty()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_faults_are_counted_per_link() {
        let spec = crate::world::WorldSpec::new(1);
        let mut book = FaultBook::new(crate::world::service_hosts(), &spec);
        let p = Fault::Partition("frontend".into(), "A".into());
        let c = Fault::Clog("A".into(), "frontend".into());
        book.touch(&p, 1);
        book.touch(&c, 1);
        book.touch(&Fault::Pause("A".into()), 1);
        let link = &book.links[&key("A", "frontend")];
        assert_eq!((link.partitions, link.holds), (1, 2));
        book.touch(&p, -1);
        let link = &book.links[&key("A", "frontend")];
        assert_eq!(
            (link.partitions, link.holds),
            (0, 2),
            "the clog and the pause stay"
        );
        book.touch(&c, -1);
        book.touch(&Fault::Pause("A".into()), -1);
        assert!(!book.any_link_fault());
        assert!(Fault::Partition("frontend".into(), "s3".into()).touches_storage_path());
        assert!(!Fault::Partition("frontend".into(), "A".into()).touches_storage_path());
        assert!(Fault::Pause("client1".into()).touches_storage_path());
    }
}
