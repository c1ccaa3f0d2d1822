//! Running one scenario with one seed: the tracing capture, the scenario, the
//! checker's verdict and the report.

use std::fmt::Write as _;

use memring::hooks::{Plant, RunHooks};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;

use crate::checker::{context, Invariant, Violation};
pub use crate::context::{Run, RunOutput};
use crate::scenarios::Scenario;
use crate::trace::Recorder;

/// A finished run.
pub struct Report {
    pub output: RunOutput,
    pub trace: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.output.violations.is_empty()
    }

    /// A digest of the whole trace: two runs agree byte for byte if these agree.
    pub fn trace_hash(&self) -> String {
        use md5::{Digest, Md5};
        let mut hasher = Md5::new();
        for line in &self.trace {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        format!("{:x}", hasher.finalize())
    }

    /// The violations in one comparable form (invariant and message).
    pub fn verdict(&self) -> Vec<String> {
        self.output
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.invariant, v.message))
            .collect()
    }
}

/// Runs `scenario` with `seed`, capturing every log event of every host.
pub fn run(scenario: Scenario, seed: u64, plant: Option<Plant>) -> Report {
    run_with(seed, plant, |run| scenario.run(run))
}

/// [`run`], with `body` in place of the scenario's own function (a test runs a
/// scenario in a world of its own making).
pub fn run_with(seed: u64, plant: Option<Plant>, body: impl FnOnce(&Run) -> RunOutput) -> Report {
    let recorder = Recorder::default();
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("memring", LevelFilter::INFO)
        .with_target("memring::http", LevelFilter::DEBUG)
        .with_target("memring::buggify", LevelFilter::DEBUG)
        .with_target(crate::trace::INVARIANT_TARGET, LevelFilter::TRACE)
        .with_target("memring_sim", LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry()
        .with(recorder.layer())
        .with(filter);
    let run = Run {
        seed,
        plant,
        recorder: recorder.clone(),
    };
    // The plant is in force for the whole run; scenarios may turn buggify on.
    let _hooks = RunHooks::enter(plant, None);
    let mut output = tracing::subscriber::with_default(subscriber, || body(&run));
    for breach in recorder.breaches() {
        output.violations.push(Violation {
            invariant: Invariant::ProtocolBreach,
            message: breach,
            op: None,
        });
    }
    Report {
        output,
        trace: recorder.trace(),
    }
}

/// The command that replays a run.
pub fn replay_command(scenario: Scenario, seed: u64, plant: Option<&str>) -> String {
    let mut command = format!(
        "cargo run --release -p memring-sim -- run --scenario {} --seed {seed}",
        scenario.name()
    );
    if let Some(plant) = plant {
        let _ = write!(command, " --plant {plant}");
    }
    command
}

/// The violation report: the seed, the invariant, the operations around it, and
/// the replay command.
pub fn describe_violations(
    report: &Report,
    scenario: Scenario,
    seed: u64,
    plant: Option<&str>,
) -> String {
    let mut text = String::new();
    for violation in &report.output.violations {
        let _ = writeln!(
            text,
            "VIOLATION seed={seed} scenario={} invariant={}",
            scenario.name(),
            violation.invariant
        );
        let _ = writeln!(text, "  {}", violation.message);
        if let Some(op) = violation.op {
            let _ = writeln!(text, "  operations on the same key around it:");
            for near in context(&report.output.history, op, 4) {
                let marker = if near.id == op { ">>" } else { "  " };
                let _ = writeln!(text, "  {marker} {near}");
            }
        }
        let _ = writeln!(text, "  replay: {}", replay_command(scenario, seed, plant));
    }
    text
}
