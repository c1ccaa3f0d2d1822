//! Simulation hooks: planted bugs and buggify fault points.
//!
//! Both exist only with the `sim` cargo feature, which the simulation enables; a
//! plain build of `memring` compiles neither (the [`planted!`] macro becomes
//! `false` and [`buggify!`] becomes nothing).
//!
//! - A **planted bug** is a deliberate, small deviation from the protocol, chosen
//!   for one simulated run, that proves the simulation's checker can fail.
//! - A **buggify point** (after FoundationDB) sits at a protocol step where a delay
//!   widens a race window. In a run with buggify on, each point is enabled with
//!   some probability for the whole run, with an intensity drawn for the run, and
//!   an enabled point delays the task that reaches it now and then, for a
//!   heavy-tailed simulated time.
//!
//! The run context is per thread: a simulated run is single-threaded, and the
//! simulation sets the context when a run starts and clears it when it ends, so
//! nothing outlives a run.

/// True when the planted bug `$plant` (a [`Plant`] variant) is active in this
/// simulated run; always false without the `sim` feature.
#[macro_export]
macro_rules! planted {
    ($plant:ident) => {{
        #[cfg(feature = "sim")]
        let active = $crate::hooks::is_planted($crate::hooks::Plant::$plant);
        #[cfg(not(feature = "sim"))]
        let active = false;
        active
    }};
}

/// A buggify point: in a simulated run with buggify on, may delay the caller.
/// Nothing at all without the `sim` feature.
#[macro_export]
macro_rules! buggify {
    ($point:expr) => {
        #[cfg(feature = "sim")]
        $crate::hooks::buggify_point($point).await;
    };
}

#[cfg(feature = "sim")]
pub use enabled::*;

#[cfg(feature = "sim")]
mod enabled {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::fmt;
    use std::str::FromStr;
    use std::time::Duration;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A planted bug.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Plant {
        /// An upload does not invalidate the cache.
        SkipInvalidate,
        /// A moved value overwrites a newer one on its destination.
        StaleMove,
        /// An upload is acknowledged before its index row commits.
        AckBeforeDurable,
        /// After a rebalance the front-end keeps routing by the old mapping.
        StaleRoute,
        /// A put drops the key's floor and an eviction leaves none (bug 1).
        EvictDropsFloor,
        /// An upload invalidates only the pool it read once (bug 2).
        InvalidateStaleRouting,
        /// `clear/data` does not wait for uploads between blob and row (the race).
        ClearRacesUpload,
        /// The manager keeps its older epoch when the front-end refuses it (bug 3).
        ManagerEpochReset,
        /// Durable writes skip fsync of the file and its directory (bug 4).
        NoFsync,
    }

    impl Plant {
        pub const ALL: [Plant; 9] = [
            Plant::SkipInvalidate,
            Plant::StaleMove,
            Plant::AckBeforeDurable,
            Plant::StaleRoute,
            Plant::EvictDropsFloor,
            Plant::InvalidateStaleRouting,
            Plant::ClearRacesUpload,
            Plant::ManagerEpochReset,
            Plant::NoFsync,
        ];

        pub fn name(self) -> &'static str {
            match self {
                Plant::SkipInvalidate => "skip-invalidate",
                Plant::StaleMove => "stale-move",
                Plant::AckBeforeDurable => "ack-before-durable",
                Plant::StaleRoute => "stale-route",
                Plant::EvictDropsFloor => "evict-drops-floor",
                Plant::InvalidateStaleRouting => "invalidate-stale-routing",
                Plant::ClearRacesUpload => "clear-races-upload",
                Plant::ManagerEpochReset => "manager-epoch-reset",
                Plant::NoFsync => "no-fsync",
            }
        }
    }

    impl FromStr for Plant {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, Self::Err> {
            Plant::ALL
                .into_iter()
                .find(|plant| plant.name() == s)
                .ok_or_else(|| {
                    let known: Vec<&str> = Plant::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown planted bug {s:?} (known: {})", known.join(", "))
                })
        }
    }

    impl fmt::Display for Plant {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.name())
        }
    }

    /// Chance that a point is enabled for a run, in percent.
    const POINT_ENABLED_PERCENT: u32 = 75;
    /// Chance that an enabled point fires when reached, in percent.
    const POINT_FIRES_PERCENT: u32 = 20;
    /// Longest buggify delay.
    const DELAY_MS_MAX: u64 = 3_000;
    /// Points in background tasks (a fill, a moved value's put): no client waits
    /// on them, so they may stall longer, as a put stuck on a slow connection does.
    /// Scripted scenarios (only forced points) keep [`DELAY_MS_MAX`]: their
    /// scripts wait for the delayed task at known times.
    pub const BACKGROUND_POINTS: [&str; 2] = ["read.before_fill", "node.move.after_read"];
    /// Longest buggify delay at those points.
    const BACKGROUND_DELAY_MS_MAX: u64 = 15_000;

    struct Context {
        plant: Option<Plant>,
        /// Present when buggify is on for this run.
        buggify: Option<Buggify>,
    }

    /// How buggify behaves in a run.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct BuggifySettings {
        pub seed: u64,
        /// Points enabled for the whole run whatever the draw (targeted scenarios).
        pub forced: Vec<&'static str>,
        /// Chance that an enabled point fires when reached, in percent (0: default).
        pub fire_percent: u32,
        /// Shortest delay of a firing point.
        pub delay_ms_min: u64,
        /// Only the forced points are enabled (scripted scenarios).
        pub only_forced: bool,
    }

    struct Buggify {
        rng: ChaCha8Rng,
        forced: Vec<&'static str>,
        fire_percent: u32,
        delay_ms_min: u64,
        only_forced: bool,
        /// Each point's enablement, decided the first time it is reached.
        /// Each point's fire chance in percent (0: disabled), decided the first
        /// time it is reached.
        points: BTreeMap<&'static str, u32>,
        fired: u64,
        /// Set at quiescence: no point fires any more.
        quiet: bool,
    }

    thread_local! {
        static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
    }

    /// What a run's hooks did.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct HookReport {
        /// Buggify points reached in the run, with whether they were enabled.
        pub points: Vec<(&'static str, bool)>,
        pub fired: u64,
    }

    /// The hooks of one simulated run on this thread; dropping it ends the run.
    pub struct RunHooks {
        _not_send: std::marker::PhantomData<*const ()>,
    }

    impl RunHooks {
        /// Starts a run: `plant` is active, and buggify is on when `buggify` is
        /// given.
        pub fn enter(plant: Option<Plant>, buggify: Option<BuggifySettings>) -> RunHooks {
            CONTEXT.with(|context| {
                *context.borrow_mut() = Some(Context {
                    plant,
                    buggify: buggify.map(|settings| Buggify {
                        rng: ChaCha8Rng::seed_from_u64(settings.seed),
                        forced: settings.forced,
                        fire_percent: if settings.fire_percent == 0 {
                            POINT_FIRES_PERCENT
                        } else {
                            settings.fire_percent
                        },
                        delay_ms_min: settings.delay_ms_min,
                        only_forced: settings.only_forced,
                        points: BTreeMap::new(),
                        fired: 0,
                        quiet: false,
                    }),
                });
            });
            RunHooks {
                _not_send: std::marker::PhantomData,
            }
        }

        /// What buggify did so far.
        pub fn report(&self) -> HookReport {
            CONTEXT.with(|context| {
                let context = context.borrow();
                let Some(buggify) = context.as_ref().and_then(|c| c.buggify.as_ref()) else {
                    return HookReport::default();
                };
                HookReport {
                    points: buggify.points.iter().map(|(k, v)| (*k, *v > 0)).collect(),
                    fired: buggify.fired,
                }
            })
        }
    }

    impl Drop for RunHooks {
        fn drop(&mut self) {
            CONTEXT.with(|context| *context.borrow_mut() = None);
        }
    }

    /// Stops buggify for the rest of the run on this thread: the simulation calls
    /// it once every fault is healed, so that the checks after healing see the
    /// system at rest (delays already begun run their course).
    pub fn quiet_buggify() {
        CONTEXT.with(|context| {
            if let Some(buggify) = context
                .borrow_mut()
                .as_mut()
                .and_then(|c| c.buggify.as_mut())
            {
                buggify.quiet = true;
            }
        });
    }

    /// Whether `plant` is active in the run on this thread.
    pub fn is_planted(plant: Plant) -> bool {
        CONTEXT.with(|context| {
            context
                .borrow()
                .as_ref()
                .is_some_and(|c| c.plant == Some(plant))
        })
    }

    /// The delay a buggify point imposes now, if any.
    fn draw_delay(point: &'static str) -> Option<Duration> {
        CONTEXT.with(|context| {
            let mut context = context.borrow_mut();
            let buggify = context.as_mut()?.buggify.as_mut()?;
            if buggify.quiet {
                return None;
            }
            let fire_percent = match buggify.points.get(point) {
                Some(&fire_percent) => fire_percent,
                None => {
                    let forced = buggify.forced.contains(&point);
                    let enabled = forced
                        || (!buggify.only_forced
                            && buggify.rng.gen_range(0..100) < POINT_ENABLED_PERCENT);
                    // A point the run drew (rather than one a scenario forced)
                    // fires rarely, as asked, or often: runs differ in intensity.
                    let fire_percent = match (enabled, forced) {
                        (false, _) => 0,
                        (true, true) => buggify.fire_percent,
                        (true, false) => {
                            let scale = [1, 2, 4][buggify.rng.gen_range(0..3)];
                            (buggify.fire_percent * scale / 2).clamp(1, 95)
                        }
                    };
                    buggify.points.insert(point, fire_percent);
                    fire_percent
                }
            };
            if fire_percent == 0 || buggify.rng.gen_range(0..100) >= fire_percent {
                return None;
            }
            buggify.fired += 1;
            // Heavy tail: mostly tens of ms, now and then up to the maximum.
            let unit: f64 = buggify.rng.gen_range(0.0..1.0);
            let max_ms = if BACKGROUND_POINTS.contains(&point) && !buggify.only_forced {
                BACKGROUND_DELAY_MS_MAX
            } else {
                DELAY_MS_MAX
            };
            let span_ms = max_ms.saturating_sub(buggify.delay_ms_min) as f64;
            let delay_ms = buggify.delay_ms_min + (unit.powi(3) * span_ms) as u64 + 1;
            Some(Duration::from_millis(delay_ms))
        })
    }

    /// Reaches buggify point `point`.
    pub async fn buggify_point(point: &'static str) {
        if let Some(delay) = draw_delay(point) {
            tracing::debug!(target: "memring::buggify", point, delay_ms = delay.as_millis() as u64, "buggify");
            tokio::time::sleep(delay).await;
        }
    }
}
