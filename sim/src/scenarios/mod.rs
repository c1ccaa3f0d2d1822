//! The scenarios `memring-sim run` knows.

pub mod autoscale;
pub mod chaos;
pub mod documented_logs;
pub mod harness;
pub mod resize_under_load;
pub mod rogue;
pub mod targeted;
pub mod workload;

use std::str::FromStr;

use crate::context::{Run, RunOutput};

/// A scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    DocumentedLogs,
    ResizeUnderLoad,
    Autoscale,
    Chaos,
    MoveRace,
    JoinRace,
    EvictionRace,
    ClearRace,
    ManagerPowerLoss,
    ManagerDiskLoss,
    Rogue,
    NodeDeath,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Scenario::DocumentedLogs,
        Scenario::ResizeUnderLoad,
        Scenario::Autoscale,
        Scenario::Chaos,
        Scenario::MoveRace,
        Scenario::JoinRace,
        Scenario::EvictionRace,
        Scenario::ClearRace,
        Scenario::ManagerPowerLoss,
        Scenario::ManagerDiskLoss,
        Scenario::Rogue,
        Scenario::NodeDeath,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::DocumentedLogs => "documented-logs",
            Scenario::ResizeUnderLoad => "resize-under-load",
            Scenario::Autoscale => "autoscale",
            Scenario::Chaos => "chaos",
            Scenario::MoveRace => "move-race",
            Scenario::JoinRace => "join-race",
            Scenario::EvictionRace => "eviction-race",
            Scenario::ClearRace => "clear-race",
            Scenario::ManagerPowerLoss => "manager-power-loss",
            Scenario::ManagerDiskLoss => "manager-disk-loss",
            Scenario::Rogue => "rogue",
            Scenario::NodeDeath => "node-death",
        }
    }

    pub fn run(self, run: &Run) -> RunOutput {
        match self {
            Scenario::DocumentedLogs => documented_logs::run(run),
            Scenario::ResizeUnderLoad => resize_under_load::run(run),
            Scenario::Autoscale => autoscale::run(run),
            Scenario::Chaos => chaos::run(run),
            Scenario::MoveRace => targeted::move_race(run),
            Scenario::JoinRace => targeted::join_race(run),
            Scenario::EvictionRace => targeted::eviction_race(run),
            Scenario::ClearRace => targeted::clear_race(run),
            Scenario::ManagerPowerLoss => targeted::manager_power_loss(run),
            Scenario::ManagerDiskLoss => targeted::manager_disk_loss(run),
            Scenario::Rogue => rogue::run(run),
            Scenario::NodeDeath => targeted::node_death(run),
        }
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario {s:?} (known: {})", known.join(", "))
            })
    }
}
