//! The enums of the pool calls' bodies: which way a resize goes, and how the
//! pool is resized.

use serde::{Deserialize, Serialize};

/// Which way a resize goes (`"increase"` or `"decrease"` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
#[serde(rename_all = "lowercase")]
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
        assert!(serde_json::from_str::<Change>("\"sideways\"").is_err());
        assert_eq!(
            serde_json::to_string(&Mode::Automatic).unwrap(),
            "\"automatic\""
        );
        assert_eq!(Change::between(1, 2), Change::Increase);
        assert_eq!(Change::between(3, 2), Change::Decrease);
    }
}
