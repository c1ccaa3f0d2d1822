//! What a scenario is given ([`Run`]: the seed, the plant, the trace recorder,
//! and the buggify switches) and what it gives back ([`RunOutput`]). Kept apart
//! from `run`, which runs the scenarios, so that the scenarios import only
//! downward.

use memring::hooks::{BuggifySettings, Plant, RunHooks};

use crate::checker::Violation;
use crate::history::Op;
use crate::trace::Recorder;

/// What a scenario gets.
pub struct Run {
    pub seed: u64,
    pub plant: Option<Plant>,
    pub recorder: Recorder,
}

impl Run {
    /// Turns buggify on for the rest of the run: each point is enabled with some
    /// chance, `forced` ones always, and fires `fire_percent` of the time (0: the
    /// default). Scenarios call it before the simulation starts.
    pub fn buggify(&self, forced: &[&'static str], fire_percent: u32) -> RunHooks {
        self.enter_buggify(forced, fire_percent, 0, false)
    }

    /// Buggify for a scripted scenario: only the `forced` points, firing
    /// `fire_percent` of the time, for at least `delay_ms_min`.
    pub fn buggify_only(
        &self,
        forced: &[&'static str],
        fire_percent: u32,
        delay_ms_min: u64,
    ) -> RunHooks {
        self.enter_buggify(forced, fire_percent, delay_ms_min, true)
    }

    fn enter_buggify(
        &self,
        forced: &[&'static str],
        fire_percent: u32,
        delay_ms_min: u64,
        only_forced: bool,
    ) -> RunHooks {
        RunHooks::enter(
            self.plant,
            Some(BuggifySettings {
                seed: self.seed ^ 0xb0b0_fb0b,
                forced: forced.to_vec(),
                fire_percent,
                delay_ms_min,
                only_forced,
            }),
        )
    }
}

/// What a scenario gives back.
#[derive(Default)]
pub struct RunOutput {
    /// Text for standard output.
    pub text: String,
    pub violations: Vec<Violation>,
    pub history: Vec<Op>,
}
