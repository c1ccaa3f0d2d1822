//! Planted bugs: deliberate one-line deviations, off by default, chosen at run time,
//! that prove the simulation's checker can fail.

use std::fmt;
use std::str::FromStr;

/// A planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plant {
    /// An upload does not invalidate the cache.
    SkipInvalidate,
    /// A moved value overwrites a newer one on its destination.
    StaleMove,
    /// An upload is acknowledged before its index row commits.
    AckBeforeDurable,
    /// After a rebalance the front-end keeps routing by the old mapping.
    StaleRoute,
}

impl Plant {
    pub const ALL: [Plant; 4] = [
        Plant::SkipInvalidate,
        Plant::StaleMove,
        Plant::AckBeforeDurable,
        Plant::StaleRoute,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Plant::SkipInvalidate => "skip-invalidate",
            Plant::StaleMove => "stale-move",
            Plant::AckBeforeDurable => "ack-before-durable",
            Plant::StaleRoute => "stale-route",
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

/// The planted bugs in force: none in production.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plants(Option<Plant>);

impl Plants {
    pub fn none() -> Self {
        Plants(None)
    }

    pub fn one(plant: Plant) -> Self {
        Plants(Some(plant))
    }

    pub fn has(self, plant: Plant) -> bool {
        self.0 == Some(plant)
    }
}
