//! What the load scenarios share: a world with client hosts, a control host, a
//! fault schedule applied through the [`FaultBook`], and the end of the run (the
//! checker over the history, the failures against the fault log).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::checker::{check_failures, check_history, Invariant, Violation};
use crate::context::{Run, RunOutput};
use crate::driver::Driver;
use crate::faults::{Fault, FaultBook, FaultLog};
use crate::history::{History, Op};
use crate::scenarios::workload::{
    admin_loop, client_loop, keep_last_final_reads, AdminMix, Workload,
};
use crate::world::{build, service_hosts, World, WorldSpec};

/// A fault of a schedule: injected at `at_ms`, healed at `until_ms`.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub at_ms: u64,
    pub until_ms: u64,
    pub fault: Fault,
}

/// Problems found by the control host, beyond the history.
pub type Problems = Arc<Mutex<Vec<Violation>>>;

/// Adds a problem.
pub fn problem(problems: &Problems, invariant: Invariant, message: String) {
    problems
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Violation {
            invariant,
            message,
            op: None,
        });
}

/// A load scenario being set up.
pub struct Harness {
    pub world: World,
    pub spec: WorldSpec,
    pub history: History,
    /// Set by the control host: the clients stop.
    pub stop: Arc<AtomicBool>,
    /// Set by the run loop once every fault is healed.
    pub healed: Arc<AtomicBool>,
    pub problems: Problems,
    book: FaultBook,
    clients: Vec<String>,
    /// Buggify delays the services now and then (see `run`), until every fault
    /// is healed.
    pub buggify_on: bool,
}

impl Harness {
    pub fn new(spec: WorldSpec) -> Self {
        let world = build(&spec);
        let mut hosts = service_hosts();
        hosts.retain(|h| spec.slots.contains(h) || !crate::world::SLOTS.contains(&h.as_str()));
        Harness {
            world,
            book: FaultBook::new(hosts, &spec),
            spec,
            history: History::default(),
            stop: Arc::default(),
            healed: Arc::default(),
            problems: Arc::default(),
            clients: Vec::new(),
            buggify_on: false,
        }
    }

    /// The fault log, for checks that run inside the simulation.
    pub fn fault_log(&self) -> FaultLog {
        self.book.log.clone()
    }

    /// Starts `count` workload clients (`client1`, ...).
    pub fn clients(&mut self, count: u64, seed: u64, workload: Workload) {
        for client in 1..=count {
            let name = format!("client{client}");
            let driver = Driver::new(&name, self.history.clone());
            let stop = self.stop.clone();
            self.world.sim.client(name.clone(), async move {
                driver.wait_ready(30_000).await;
                client_loop(driver, client, seed, workload, stop).await;
                Ok(())
            });
            self.clients.push(name);
        }
    }

    /// Starts the `admin` client host: administrative calls in `mix` until the
    /// clients stop.
    pub fn admin(&mut self, seed: u64, mix: AdminMix) {
        let stop = self.stop.clone();
        self.host("admin", move |driver| async move {
            driver.wait_ready(30_000).await;
            admin_loop(driver, seed, mix, stop).await;
        });
    }

    /// Starts another client host running `body` with its own driver.
    pub fn host<F, Fut>(&mut self, name: &str, body: F)
    where
        F: FnOnce(Driver) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        let driver = Driver::new(name, self.history.clone());
        let future = body(driver);
        self.world.sim.client(name.to_owned(), async move {
            future.await;
            Ok(())
        });
        self.clients.push(name.to_owned());
    }

    /// Runs the simulation to its end, injecting and healing `schedule`; every
    /// fault still in force at `heal_all_at_ms` is healed then. Returns the
    /// history (final reads deduplicated) and the violations found.
    pub fn run(mut self, run: &Run, mut schedule: Vec<Scheduled>, heal_all_at_ms: u64) -> Finished {
        schedule.sort_by_key(|s| s.at_ms);
        let mut active: Vec<Scheduled> = Vec::new();
        let mut next = 0;
        let mut healed_all = false;
        let mut violations = Vec::new();
        loop {
            let step = self.world.sim.step();
            let now_ms = self.world.sim.elapsed().as_millis() as u64;
            while next < schedule.len() && schedule[next].at_ms <= now_ms {
                let scheduled = schedule[next].clone();
                run.recorder.note_at(
                    now_ms as u128,
                    "fault",
                    &format!("inject {} until {}ms", scheduled.fault, scheduled.until_ms),
                );
                self.book.inject(&mut self.world, &scheduled.fault, now_ms);
                active.push(scheduled);
                next += 1;
            }
            let is_due = |s: &Scheduled| s.until_ms <= now_ms || now_ms >= heal_all_at_ms;
            // Most steps heal nothing: only then is the list split.
            let due: Vec<Scheduled> = if active.iter().any(is_due) {
                let (due, later) = active.drain(..).partition(is_due);
                active = later;
                due
            } else {
                Vec::new()
            };
            for scheduled in due {
                run.recorder.note_at(
                    now_ms as u128,
                    "fault",
                    &format!("heal {}", scheduled.fault),
                );
                self.book.heal(&mut self.world, &scheduled.fault, now_ms);
            }
            if !healed_all
                && now_ms >= heal_all_at_ms
                && active.is_empty()
                && next >= schedule.len()
            {
                healed_all = true;
                debug_assert!(!self.book.any_link_fault(), "every link fault is healed");
                run.recorder
                    .note_at(now_ms as u128, "fault", "all faults healed");
                self.healed.store(true, Ordering::Relaxed);
                // The checks after healing look at a system at rest (scenarios
                // that script their races with buggify keep it).
                if self.buggify_on {
                    memring::hooks::quiet_buggify();
                }
            }
            match step {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => {
                    violations.push(Violation {
                        invariant: Invariant::Liveness,
                        message: format!("simulation error: {error}"),
                        op: None,
                    });
                    break;
                }
            }
        }
        let mut ops = self.history.snapshot();
        keep_last_final_reads(&mut ops);
        violations.extend(check_history(&ops));
        let log = self.book.log.clone();
        // A connection cut by a fault stays stuck until its calls time out.
        let after_ms = crate::driver::CLIENT_TIMEOUT_MS + 2_000;
        // With buggify on, delays inside the services are faults too: a client
        // timeout is excused (an error answer is not; a hang fails liveness).
        let buggify_on = self.buggify_on;
        let timeouts_excused = |op: &Op| {
            buggify_on
                && matches!(&op.outcome, crate::history::Outcome::Failed(why) if why.contains("timed out"))
        };
        let failures: Vec<Op> = ops
            .iter()
            .filter(|op| !timeouts_excused(op))
            .cloned()
            .collect();
        violations.extend(check_failures(&failures, &|from, to| {
            log.storage_path_disturbed(from, to, after_ms)
        }));
        violations.extend(
            self.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..),
        );
        Finished {
            ops,
            violations,
            faults: log,
        }
    }
}

/// A finished load run.
pub struct Finished {
    pub ops: Vec<Op>,
    pub violations: Vec<Violation>,
    pub faults: FaultLog,
}

impl Finished {
    /// The output of a run, with a one-line summary.
    pub fn output(self, summary: String) -> RunOutput {
        RunOutput {
            text: summary,
            violations: self.violations,
            history: self.ops,
        }
    }

    /// Operations of each kind, for summaries: (reads, uploads, failed).
    pub fn counts(&self) -> (usize, usize, usize) {
        let reads = self
            .ops
            .iter()
            .filter(|op| matches!(op.kind, crate::history::OpKind::Read { .. }))
            .count();
        let uploads = self
            .ops
            .iter()
            .filter(|op| matches!(op.kind, crate::history::OpKind::Upload { .. }))
            .count();
        let failed = self
            .ops
            .iter()
            .filter(|op| matches!(op.outcome, crate::history::Outcome::Failed(_)))
            .count();
        (reads, uploads, failed)
    }
}
