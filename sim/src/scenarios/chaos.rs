//! `chaos`: the random workload plus random faults from the whole menu, on every
//! host: node bounces and crashes, partitions (one-way too), clogged links whose
//! segments arrive late, paused hosts (zombies), slow links, a manager that loses
//! power (unsynced writes lost) or its disk, a front-end restart, and slow,
//! failing, throttling or reply-losing storage. Resizes, clears, listings and cache
//! settings go on meanwhile, and buggify points fire inside the services. A
//! browser evicts and edits, editors upload what it read lately while the pool
//! changes, and watchers read hot keys every few ms and each edited item at once
//! and again seconds later, so that short-lived stale images are seen. Each seed
//! leaves some kinds of administrative call out (swarm testing). Every fault is
//! healed before the end; then the system is checked at quiescence.

use memring::net::client::ClientError;
use memring::wire::change::Change;
use memring::wire::client::CallError;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{problem, Harness, Scheduled};
use super::workload::{
    check_pool, check_recovery, check_stats, final_reads_of, AdminMix, Workload,
};
use crate::checker::Invariant;
use crate::context::{Run, RunOutput};
use crate::driver::Driver;
use crate::faults::Fault;
use crate::world::{service_hosts, WorldSpec, SLOTS};

/// How long faults are injected, in simulated ms.
const FAULT_WINDOW_MS: u64 = 180_000;
/// Healing happens here; checks follow.
const HEAL_AT_MS: u64 = FAULT_WINDOW_MS + 2_000;
/// Keys the browsing client reads in turn.
const CATALOGUE_KEYS: usize = 40;
/// Out of 100: reads of the browsing client followed by an edit of the item.
const EDIT_PERCENT: u32 = 30;

/// Hot keys of the workload the watcher reads.
const HOT_KEYS: usize = 3;
/// How long after the control client starts a resize the editors edit.
const EDIT_WHILE_RESIZING_MS: u64 = 2_000;
/// Sessions editing while the pool changes.
const EDITORS: u64 = 4;
/// Items the browser read lately, which the editors pick from.
const BROWSED_REMEMBERED: usize = 6;
/// When the watcher looks at an edited item again, in ms after the edit (each
/// drawn from its range): at once, and then after pauses long enough that a
/// cache may have let the item go meanwhile.
const WATCH_AGAIN_MS: [(u64, u64); 5] = [
    (20, 100),
    (150, 400),
    (1_000, 3_000),
    (3_000, 6_000),
    (6_000, 10_000),
];
/// Most looks the watcher has to do; more edits are not watched.
const WATCH_QUEUE_MAX: usize = 256;
/// Edited items the lingerer reads over and over, the latest edits.
const LINGER_ITEMS: usize = 4;
/// How long the lingerer keeps reading an edited item, in ms (drawn): about as
/// long as most delayed fills and moves of its older image take to land.
const LINGER_MS: (u64, u64) = (3_000, 8_000);
/// The lingerer's pause between two reads, in ms (drawn): each lingering item is
/// read every few hundred ms, about as long as a small cache keeps an entry.
const LINGER_PAUSE_MS: (u64, u64) = (15, 60);

/// Catalogue items in the order a session met them, the latest last.
type Recent = Rc<RefCell<VecDeque<usize>>>;

/// Puts `item` last in `recent`, keeping at most `limit` items.
fn remember(recent: &Recent, item: usize, limit: usize) {
    let mut recent = recent.borrow_mut();
    recent.retain(|&other| other != item);
    recent.push_back(item);
    while recent.len() > limit {
        recent.pop_front();
    }
}

/// Edited items the watcher is to read, soonest first: (due ms, item).
type Watchlist = Rc<RefCell<BinaryHeap<Reverse<(u64, usize)>>>>;

/// Puts the looks at an item just edited on the watchlist.
fn watch_later(watchlist: &Watchlist, item: usize, rng: &mut ChaCha8Rng) {
    let now_ms = crate::history::now_ms();
    let mut watchlist = watchlist.borrow_mut();
    for (from_ms, to_ms) in WATCH_AGAIN_MS {
        if watchlist.len() < WATCH_QUEUE_MAX {
            watchlist.push(Reverse((now_ms + rng.gen_range(from_ms..to_ms), item)));
        }
    }
}

/// Edited items the lingerer is reading: (until ms, item), oldest edit first.
type Lingering = Rc<RefCell<VecDeque<(u64, usize)>>>;

/// Has the lingerer read `item` over and over for a while, from now.
fn linger_on(lingering: &Lingering, item: usize, rng: &mut ChaCha8Rng) {
    let until_ms = crate::history::now_ms() + rng.gen_range(LINGER_MS.0..LINGER_MS.1);
    let mut lingering = lingering.borrow_mut();
    lingering.retain(|&(_, other)| other != item);
    lingering.push_back((until_ms, item));
    while lingering.len() > LINGER_ITEMS {
        lingering.pop_front();
    }
}

/// What the browser shares with the editors.
struct Recents {
    browsed: Recent,
    edited: Watchlist,
    lingering: Lingering,
}

/// One editor: for a while after each resize begins, uploads new images of items
/// the browser read lately, one after the other, and hands them to the watcher.
async fn edit_while_resizing(
    editor: Driver,
    seed: u64,
    first_generation: u64,
    recents: Recents,
    resize_started_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut generation = first_generation;
    while !stop.load(Ordering::Relaxed) {
        let since_ms = resize_started_ms.load(Ordering::Relaxed);
        let candidates: Vec<usize> = recents.browsed.borrow().iter().copied().collect();
        if since_ms == 0
            || crate::history::now_ms() >= since_ms + EDIT_WHILE_RESIZING_MS
            || candidates.is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let item = candidates[rng.gen_range(0..candidates.len())];
        generation += 1;
        if editor.upload(&catalogue_key(item), generation, 2_048).await
            == crate::history::Outcome::Uploaded
        {
            watch_later(&recents.edited, item, &mut rng);
            linger_on(&recents.lingering, item, &mut rng);
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(5..40))).await;
    }
}

fn catalogue_key(index: usize) -> String {
    format!("catalogue-{index}")
}

/// The hosts faults may reach: every service host and the workload clients.
fn hosts() -> Vec<String> {
    let mut hosts = service_hosts();
    hosts.extend(
        ["client1", "client2", "client3"]
            .iter()
            .map(|s| s.to_string()),
    );
    hosts
}

/// A random schedule of faults: one every 5 to 10 simulated seconds on average.
pub fn schedule(seed: u64) -> Vec<Scheduled> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc4a0_5eed);
    let hosts = hosts();
    let mut faults = Vec::new();
    // About one fault every 5 to 10 simulated seconds.
    let count = rng.gen_range(FAULT_WINDOW_MS / 10_000..FAULT_WINDOW_MS / 5_000);
    for _ in 0..count {
        let at_ms = rng.gen_range(2_000..FAULT_WINDOW_MS - 5_000);
        let lasts_ms = rng.gen_range(1_000..8_000);
        let pick = |rng: &mut ChaCha8Rng| hosts[rng.gen_range(0..hosts.len())].clone();
        // Most link faults touch the front-end, whose links carry every request.
        let pair = |rng: &mut ChaCha8Rng| loop {
            let a = if rng.gen_bool(0.6) {
                "frontend".to_owned()
            } else {
                pick(rng)
            };
            let b = pick(rng);
            if a != b {
                return if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
            }
        };
        let node = |rng: &mut ChaCha8Rng| SLOTS[rng.gen_range(0..SLOTS.len())].to_owned();
        let store = |rng: &mut ChaCha8Rng| if rng.gen_bool(0.5) { "s3" } else { "rds" }.to_owned();
        let fault = match rng.gen_range(0..18) {
            0 => Fault::Bounce(node(&mut rng)),
            1 => Fault::Crash(node(&mut rng)),
            2 | 3 => {
                let (a, b) = pair(&mut rng);
                Fault::Partition(a, b)
            }
            4 => {
                let (a, b) = pair(&mut rng);
                Fault::PartitionOneWay(a, b)
            }
            5 | 6 => {
                let (a, b) = pair(&mut rng);
                Fault::Clog(a, b)
            }
            7 => {
                let candidates = ["frontend", "manager", "s3", "rds"];
                let host = if rng.gen_bool(0.5) {
                    candidates[rng.gen_range(0..candidates.len())].to_owned()
                } else {
                    node(&mut rng)
                };
                Fault::Pause(host)
            }
            8 => {
                let (a, b) = pair(&mut rng);
                Fault::Slow(a, b, rng.gen_range(300..1_500))
            }
            9 | 17 => Fault::CrashManager,
            10 | 16 => Fault::CrashManagerLosingDisk,
            11 => Fault::RestartFrontend,
            12 => Fault::StorageSlow(store(&mut rng), rng.gen_range(200..1_800)),
            13 => Fault::StorageErrors(store(&mut rng), rng.gen_range(100..600)),
            14 => Fault::StorageThrottled(store(&mut rng)),
            _ => Fault::StorageLostReplies(store(&mut rng), rng.gen_range(200..800)),
        };
        faults.push(Scheduled {
            at_ms,
            until_ms: at_ms + lasts_ms,
            fault,
        });
    }
    faults.sort_by_key(|s| s.at_ms);
    faults
}

/// What the control client knows of the pool changes it asked for: the sizes
/// (pool and ejected nodes) the manager may have. An acknowledged change narrows
/// them to one; a change whose answer was lost adds the size it would have made.
#[derive(Default)]
struct Resizes {
    /// The sizes the manager may have, and when the last acknowledgement came
    /// (`None`: nothing acknowledged yet, or an unknown change could not be
    /// followed).
    sizes: Option<(BTreeSet<usize>, u64)>,
}

impl Resizes {
    /// The sizes the manager may have now, if they are known: none if the
    /// manager's disk was lost since the last acknowledgement.
    fn kept(&self, log: &crate::faults::FaultLog) -> Option<&BTreeSet<usize>> {
        let (sizes, at_ms) = self.sizes.as_ref()?;
        let disk_lost = log.spans().iter().any(|span| {
            span.fault == Fault::CrashManagerLosingDisk && span.from_ms + 1_000 >= *at_ms
        });
        (!disk_lost).then_some(sizes)
    }

    /// The sizes one resize by `change` can reach from the sizes kept.
    fn after_resize(&self, grow: bool, log: &crate::faults::FaultLog) -> Option<BTreeSet<usize>> {
        let step = |size: usize| {
            if grow {
                size + 1
            } else {
                size.saturating_sub(1)
            }
        };
        self.kept(log)
            .map(|sizes| sizes.iter().map(|&size| step(size)).collect())
    }

    /// Takes an acknowledged change that made `wanted` nodes.
    fn acknowledge(&mut self, wanted: usize, now_ms: u64) {
        self.sizes = Some((BTreeSet::from([wanted]), now_ms));
    }

    /// Takes a change whose answer was lost: it may have made any of `possible`.
    fn unknown(&mut self, possible: Option<BTreeSet<usize>>) {
        match (&mut self.sizes, possible) {
            (Some((sizes, _)), Some(possible)) => sizes.extend(possible),
            (sizes, _) => *sizes = None,
        }
    }
}

/// Most nodes an operator's pick names (resizes grow to 6 at most, too).
const PICKED_NODES_MAX: usize = 6;

pub fn run(run: &Run) -> RunOutput {
    let spec = WorldSpec::randomized(run.seed);
    let slots = spec.slots.clone();
    let describe = spec.describe();
    let stats_interval_ms = spec.stats_interval_ms;
    // Buggify: each point enabled with some chance for this run, except the two
    // in background tasks (a fill, a moved value's put), which are always on: a
    // late put is what most cache races are made of.
    let _hooks = run.buggify(&memring::hooks::BACKGROUND_POINTS, 40);
    let mut harness = Harness::new(spec);
    harness.buggify_on = true;
    let workload = Workload {
        retry_percent: 20,
        ..Workload::default()
    };
    harness.clients(3, run.seed, workload);
    // When the control client last started a resize (simulated ms, 0 = never).
    let resize_started_ms = Arc::new(AtomicU64::new(0));
    let resizing = resize_started_ms.clone();
    // A client browsing a catalogue wider than the caches (its reads evict), who
    // now and then edits the item it just read: uploads a new image, reads it
    // back, browses on, and looks at the item again a few times later.
    let stop = harness.stop.clone();
    let browse_seed = run.seed;
    harness.host("browser", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(browse_seed ^ 0xb405e);
        driver.wait_ready(30_000).await;
        // The catalogue goes up eight items at a time.
        for batch in (0..CATALOGUE_KEYS).collect::<Vec<_>>().chunks(8) {
            let uploads = batch.iter().map(|&index| {
                let driver = driver.clone();
                async move {
                    driver
                        .upload(&catalogue_key(index), 9_000_000 + index as u64, 2_048)
                        .await
                }
            });
            futures::future::join_all(uploads).await;
        }
        // A second session on this host watches the hot keys and the items edited
        // lately, reading one every few ms: a stale image that sits in a cache
        // only briefly is seen. It looks at each edited item at once, then again
        // a few times later (see `WATCH_AGAIN_MS`).
        let (edited, browsed) = (Watchlist::default(), Recent::default());
        let lingering = Lingering::default();
        let watcher = Driver::new("watcher", driver.history.clone());
        let (watched, watch_stop) = (edited.clone(), stop.clone());
        let watch = async move {
            let mut rng = ChaCha8Rng::seed_from_u64(browse_seed ^ 0x3a7c4);
            while !watch_stop.load(Ordering::Relaxed) {
                let due = {
                    let mut watched = watched.borrow_mut();
                    match watched.peek() {
                        Some(&Reverse((due_ms, item)))
                            if due_ms <= crate::history::now_ms() && rng.gen_bool(0.7) =>
                        {
                            watched.pop();
                            Some(item)
                        }
                        _ => None,
                    }
                };
                let key = match due {
                    Some(item) => catalogue_key(item),
                    None => super::workload::key_name(rng.gen_range(0..HOT_KEYS)),
                };
                watcher.read(&key, false).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5..25))).await;
            }
        };
        tokio::task::spawn_local(watch);
        // And one more reads nothing but the hot keys, which uploads replace most.
        let hot_watcher = Driver::new("hot-watcher", driver.history.clone());
        let hot_stop = stop.clone();
        tokio::task::spawn_local(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(browse_seed ^ 0x4075);
            while !hot_stop.load(Ordering::Relaxed) {
                let key = super::workload::key_name(rng.gen_range(0..HOT_KEYS));
                hot_watcher.read(&key, false).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5..25))).await;
            }
        });
        // One more reads the items edited last over and over for a few seconds. An
        // older image of such an item may still be on its way to a cache (a fill
        // or a move held up), and a small cache keeps what lands only briefly:
        // reading often is how a stale image that got in is seen.
        let lingerer = Driver::new("lingerer", driver.history.clone());
        let (lingered, linger_stop) = (lingering.clone(), stop.clone());
        tokio::task::spawn_local(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(browse_seed ^ 0x1196e7);
            let mut turn = 0usize;
            while !linger_stop.load(Ordering::Relaxed) {
                let item = {
                    let mut lingered = lingered.borrow_mut();
                    let now_ms = crate::history::now_ms();
                    lingered.retain(|&(until_ms, _)| until_ms > now_ms);
                    turn = turn.wrapping_add(1);
                    (!lingered.is_empty()).then(|| lingered[turn % lingered.len()].1)
                };
                match item {
                    Some(item) => {
                        lingerer.read(&catalogue_key(item), false).await;
                        let pause_ms = rng.gen_range(LINGER_PAUSE_MS.0..LINGER_PAUSE_MS.1);
                        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        // More sessions edit items the browser read lately (likely cached, and
        // perhaps with a fill still on their way) while the pool changes: their
        // uploads race the routing switch, the moves and the fills of the items
        // they replace.
        for editor in 0..EDITORS {
            tokio::task::spawn_local(edit_while_resizing(
                Driver::new(&format!("editor{editor}"), driver.history.clone()),
                browse_seed ^ (0xed_170e + editor),
                8_000_000 + editor * 100_000,
                Recents {
                    browsed: browsed.clone(),
                    edited: edited.clone(),
                    lingering: lingering.clone(),
                },
                resizing.clone(),
                stop.clone(),
            ));
        }
        let mut generation = 9_000_000 + CATALOGUE_KEYS as u64;
        let mut index = 0;
        // Edited items to look at again: (step, item), soonest first.
        let mut revisits: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        let mut step: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            step += 1;
            let item = match revisits.peek() {
                Some(&Reverse((due, item))) if due <= step => {
                    revisits.pop();
                    item
                }
                _ => {
                    index = (index + 7) % CATALOGUE_KEYS;
                    index
                }
            };
            let seen = driver.read(&catalogue_key(item), false).await;
            remember(&browsed, item, BROWSED_REMEMBERED);
            // An item that is gone (a clear) is put back; others are edited now and then.
            let missing = seen == crate::history::Outcome::Read(None);
            if missing || rng.gen_range(0..100) < EDIT_PERCENT {
                generation += 1;
                if driver.upload(&catalogue_key(item), generation, 2_048).await
                    == crate::history::Outcome::Uploaded
                {
                    driver.read(&catalogue_key(item), false).await;
                    watch_later(&edited, item, &mut rng);
                    linger_on(&lingering, item, &mut rng);
                    for later in [8, 25, 60] {
                        revisits.push(Reverse((step + later, item)));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    });
    let seed = run.seed;
    // Swarm testing: each administrative call is in this run's mix or not (a
    // clear wipes out what a run built up).
    let mut mix_rng = ChaCha8Rng::seed_from_u64(seed ^ 0xad_5a7d);
    let mut weight = |w: u32, odds: f64| if mix_rng.gen_bool(odds) { w } else { 0 };
    let (clear_data, clear_cache, config) = (weight(25, 0.7), weight(15, 0.5), weight(20, 0.5));
    harness.admin(
        seed,
        AdminMix {
            clear_data,
            clear_cache,
            list_keys: 40,
            config,
            pause_ms_min: 500,
            pause_ms_max: 3_000,
        },
    );
    let stop = harness.stop.clone();
    let healed = harness.healed.clone();
    let problems = harness.problems.clone();
    let log = harness.fault_log();
    let resizes: Arc<Mutex<Resizes>> = Arc::default();
    harness.host("control", move |driver| async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(99));
        driver.wait_ready(30_000).await;
        // Resizes during the faults; they may fail while faults last. Now and
        // then an operator picks the nodes instead, through the manager: some of
        // the pool and perhaps free slots, so several may leave and join at once.
        let mut size: usize = 1;
        while crate::history::now_ms() < FAULT_WINDOW_MS {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(600..3_000))).await;
            // The manager still has what it last acknowledged (a power loss must
            // not take it back).
            let listing = driver.manager_listing().await;
            if let Some((pool, ejected)) = &listing {
                let known = resizes.lock().unwrap_or_else(|p| p.into_inner());
                let has = pool.len() + ejected.len();
                if let Some(sizes) = known.kept(&log).filter(|sizes| !sizes.contains(&has)) {
                    problem(
                        &problems,
                        Invariant::DurableResize,
                        format!(
                            "the acknowledged changes leave the manager {sizes:?} nodes; it has {} (and {} ejected)",
                            pool.len(),
                            ejected.len()
                        ),
                    );
                }
            }
            if rng.gen_bool(0.4) {
                if let Some((pool, ejected)) = listing {
                    let mut members: Vec<String> =
                        pool.iter().filter(|_| rng.gen_bool(0.6)).cloned().collect();
                    for slot in slots.iter().filter(|slot| !pool.contains(slot)) {
                        if members.len() < PICKED_NODES_MAX && rng.gen_bool(0.3) {
                            members.push(slot.clone());
                        }
                    }
                    if members.is_empty() {
                        members.push(pool[rng.gen_range(0..pool.len())].clone());
                    }
                    let unchanged =
                        members.len() == pool.len() && members.iter().all(|m| pool.contains(m));
                    if !unchanged {
                        resize_started_ms.store(crate::history::now_ms().max(1), Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
                        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
                        let reply = driver.set_pool_call(&refs).await;
                        let mut known = resizes.lock().unwrap_or_else(|p| p.into_inner());
                        match reply {
                            Ok(resized) => {
                                size = members.len();
                                // The manager must keep this pick like a resize.
                                known.acknowledge(resized.wanted, crate::history::now_ms());
                            }
                            Err(refusal) if never_changed(&refusal) => {}
                            _ => known.unknown(Some(BTreeSet::from([members.len() + ejected.len()]))),
                        }
                        continue;
                    }
                }
            }
            let grow = size == 1 || (size < 6 && rng.gen_bool(0.6));
            let change = if grow { Change::Increase } else { Change::Decrease };
            // The editors begin a little before the resize, so that uploads are
            // under way when the routing switches.
            resize_started_ms.store(crate::history::now_ms().max(1), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
            let reply = driver.resize(change).await;
            let mut known = resizes.lock().unwrap_or_else(|p| p.into_inner());
            match reply {
                Ok(resized) => {
                    let wanted = resized.wanted;
                    size = resized.size;
                    let now_ms = crate::history::now_ms();
                    if let Some(expected) = known.after_resize(grow, &log) {
                        if !expected.contains(&wanted) {
                            problem(
                                &problems,
                                Invariant::DurableResize,
                                format!("an acknowledged resize ({change}) reached {wanted} nodes; from the sizes acknowledged before it had to reach one of {expected:?}"),
                            );
                        }
                    }
                    known.acknowledge(wanted, now_ms);
                }
                // Refused outright, or never sent: nothing changed.
                Err(refusal) if never_changed(&refusal) => {}
                _ => {
                    let possible = known.after_resize(grow, &log);
                    known.unknown(possible);
                }
            }
        }
        while !healed.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(crate::driver::CLIENT_TIMEOUT_MS + 2_000)).await;
        let mut found = Vec::new();
        let mut keys: Vec<String> = (0..workload.keys).map(super::workload::key_name).collect();
        keys.extend((0..CATALOGUE_KEYS).map(catalogue_key));
        final_reads_of(&driver, &keys, 30_000).await;
        // An acknowledged resize survives a manager crash (not the loss of its disk).
        let expected = resizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kept(&log)
            .cloned();
        if let Some(wanted) = expected {
            let mut last = None;
            for _ in 0..60 {
                last = driver.manager_pool().await.map(|pool| pool.len());
                if last.is_some_and(|size| wanted.contains(&size)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if !last.is_some_and(|size| wanted.contains(&size)) {
                problem(
                    &problems,
                    Invariant::DurableResize,
                    format!("the acknowledged changes leave the manager {wanted:?} nodes; after healing it has {last:?}"),
                );
            }
        }
        // The manager re-tells the front-end any pool it has not acknowledged, and
        // moves past a newer epoch of the front-end's; the front-end re-reads the
        // manager's pool: they agree.
        check_pool(&driver, None, &mut found).await;
        // One more resize through the manager: the front-end must follow it.
        let now_size = driver.manager_pool().await.map_or(1, |pool| pool.len());
        let first = if now_size > 1 { Change::Decrease } else { Change::Increase };
        let mut resized = false;
        let second = if first == Change::Decrease { Change::Increase } else { Change::Decrease };
        for change in [first, second] {
            if driver.resize(change).await.is_ok() {
                resized = true;
                break;
            }
        }
        if !resized {
            problem(&problems, Invariant::Liveness, "no resize was taken after healing".into());
        }
        check_pool(&driver, None, &mut found).await;
        check_recovery(&driver, workload.keys, &mut found).await;
        check_stats(&driver, stats_interval_ms, &mut found).await;
        problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(found);
    });
    let faults = schedule(run.seed);
    let fault_count = faults.len();
    let finished = harness.run(run, faults, HEAL_AT_MS);
    let summary = format!(
        "chaos seed {}: {fault_count} faults, {} operations, {} violations [{describe}]\n",
        run.seed,
        finished.ops.len(),
        finished.violations.len()
    );
    finished.output(summary)
}

/// Whether a control call surely changed nothing: refused as bad input, or never
/// connected.
fn never_changed(error: &CallError) -> bool {
    error
        .status()
        .is_some_and(|status| status.is_client_error())
        || matches!(error, CallError::Transport(ClientError::Connect { .. }))
}
