//! The enums of the pool calls' bodies: which way a resize goes, and how the
//! pool is resized.

use serde::{Deserialize, Serialize};

/// Which way a resize goes (`"increase"` or `"decrease"` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Change {
    Increase,
    Decrease,
}

impl Change {
    /// The change that takes `from` nodes to `to`.
    pub fn between(from: usize, to: usize) -> Self {
        if to > from {
            Change::Increase
        } else {
            Change::Decrease
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Change::Increase => "increase",
            Change::Decrease => "decrease",
        }
    }
}

/// How the pool is resized (`"manual"` or `"automatic"` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Mode {
    Manual,
    Automatic,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Manual => "manual",
            Mode::Automatic => "automatic",
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Change {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "increase" => Ok(Change::Increase),
            "decrease" => Ok(Change::Decrease),
            other => Err(format!(
                "change must be \"increase\" or \"decrease\", not {:?}",
                crate::error::echo(other)
            )),
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "manual" => Ok(Mode::Manual),
            "automatic" => Ok(Mode::Automatic),
            other => Err(format!(
                "mode must be \"manual\" or \"automatic\", not {:?}",
                crate::error::echo(other)
            )),
        }
    }
}

// Bodies are read through `FromStr`, so a bad word gets its message.
impl TryFrom<String> for Change {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_modes_are_lowercase_words_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&Change::Increase).unwrap(),
            "\"increase\""
        );
        assert_eq!(
            serde_json::from_str::<Change>("\"decrease\"").unwrap(),
            Change::Decrease
        );
        let refused = serde_json::from_str::<Change>("\"sideways\"").unwrap_err();
        assert!(refused.to_string().contains("change must be"), "{refused}");
        assert_eq!(
            serde_json::to_string(&Mode::Automatic).unwrap(),
            "\"automatic\""
        );
        assert_eq!(Change::between(1, 2), Change::Increase);
        assert_eq!(Change::between(3, 2), Change::Decrease);
        assert_eq!("increase".parse::<Change>(), Ok(Change::Increase));
        assert!("Increase".parse::<Change>().is_err());
        assert_eq!("manual".parse::<Mode>(), Ok(Mode::Manual));
        assert!("auto".parse::<Mode>().is_err());
    }
}
