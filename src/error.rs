//! Errors of bad input to the core, each with a one-line message.

use thiserror::Error;

use crate::limits::ECHO_CHARS_MAX;

/// Input the core refuses. The `Display` text is a single line meant for users.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("the pool is empty: give at least one node")]
    EmptyPool,
    #[error("the pool has {count} nodes; at most {max} are allowed")]
    TooManyNodes { count: usize, max: usize },
    #[error("node {0} is listed twice")]
    DuplicateNode(String),
    #[error("node {0} is not in the pool")]
    UnknownNode(String),
    #[error("bad node id {id:?}: {why}")]
    BadNodeId { id: String, why: String },
    #[error("bad key {key:?}: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("bad assignment: {0}")]
    BadAssignment(String),
    #[error("unknown assignment strategy {0:?} (known: modulo, minimal)")]
    UnknownStrategy(String),
}

/// At most [`ECHO_CHARS_MAX`] characters of `input`, marked when cut: errors quote
/// input to help its sender, never to reflect a megabyte back.
pub fn echo(input: &str) -> String {
    match input.char_indices().nth(ECHO_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_short_input_and_cuts_long_input() {
        assert_eq!(echo("key-1"), "key-1");
        let long = "é".repeat(1_000_000);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), ECHO_CHARS_MAX + 1);
        assert!(cut.ends_with('…'));
    }
}
