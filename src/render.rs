//! Rendering of a [`BalancePlan`] as the documented log lines.
//!
//! The original front-end logged Python reprs. This module writes the same text:
//! dicts in insertion order, sets sorted, strings quoted as Python quotes them.
//! The only deliberate difference is the spelling `Payload` (the original printed
//! `Paylod`).

use std::fmt::Write;

use crate::balance::{BalanceEntry, BalancePlan, Dest, MoveKeysPayload};
use crate::ring::NodeId;

/// The prefix Python's root logger puts before an INFO line.
pub const LOG_PREFIX: &str = "INFO:root:";

/// The path of the move order on a cache node.
pub const MOVE_KEYS_PATH: &str = "/api/cache/move_keys";

/// Python's `repr()` of a `str`.
///
/// Single quotes unless the text holds a single quote and no double quote; `\\`,
/// the chosen quote, `\n`, `\r`, `\t` and other control characters are escaped.
pub fn py_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || ((c as u32) >= 0x7f && (c as u32) <= 0xa0) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's repr of a list of strings: `['a', 'b']`.
fn py_str_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(py_str).collect();
    format!("[{}]", items.join(", "))
}

/// Python's repr of a set of strings, elements sorted; the empty set is `set()`.
fn py_str_set<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut items: Vec<&str> = items.into_iter().collect();
    if items.is_empty() {
        return "set()".to_owned();
    }
    items.sort_unstable();
    let items: Vec<String> = items.into_iter().map(py_str).collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's repr of a dict from the given already-rendered key/value pairs.
fn py_dict(entries: impl IntoIterator<Item = (String, String)>) -> String {
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn py_mapping<'a>(owners: impl IntoIterator<Item = (u8, &'a NodeId)>) -> String {
    py_dict(
        owners
            .into_iter()
            .map(|(partition, owner)| (partition.to_string(), py_str(owner.as_str()))),
    )
}

fn py_dest(dest: &Dest) -> String {
    py_dict(dest.0.iter().map(|(node, keys)| {
        (
            py_str(node.as_str()),
            py_str_list(keys.iter().map(String::as_str)),
        )
    }))
}

/// Python's repr of a move order's payload: `{'port': 5004, 'dest': {...}}`.
pub fn py_payload(payload: &MoveKeysPayload) -> String {
    format!(
        "{{'port': {}, 'dest': {}}}",
        payload.port,
        py_dest(&payload.dest)
    )
}

fn py_balance_entry(entry: &BalanceEntry) -> String {
    format!(
        "{{'send_to': {}, 'payload': {}}}",
        py_str(entry.send_to.as_str()),
        py_payload(&entry.payload)
    )
}

/// The `Send to:` line of one move order. `node_port` is used when the node id
/// carries no port of its own.
pub fn send_to_line(entry: &BalanceEntry, node_port: u16) -> String {
    format!(
        "Send to: {}{} with Payload {}",
        entry.send_to.address(node_port),
        MOVE_KEYS_PATH,
        py_payload(&entry.payload)
    )
}

/// The documented log lines of a plan, without the `INFO:root:` prefix, in order:
/// `Old mapping`, `New mapping`, `Old-new mapping`, `Current cached keys`,
/// `Balance result`, then one `Send to:` line per balance entry.
pub fn plan_lines(plan: &BalancePlan, node_port: u16) -> Vec<String> {
    let old_new = py_dict(plan.old_new_mapping.iter().map(|owner| {
        let moves: Vec<String> = owner
            .moves
            .iter()
            .map(|step| format!("({}, {})", step.partition, py_str(step.to.as_str())))
            .collect();
        (
            py_str(owner.from.as_str()),
            format!("[{}]", moves.join(", ")),
        )
    }));
    let cached = py_dict(plan.cached_keys.iter().map(|entry| {
        (
            entry.partition.to_string(),
            py_str_set(entry.keys.iter().map(String::as_str)),
        )
    }));
    let balance: Vec<String> = plan.balance_result.iter().map(py_balance_entry).collect();

    let mut lines = vec![
        format!("Old mapping: {}", py_mapping(plan.old_mapping.iter())),
        format!("New mapping: {}", py_mapping(plan.new_mapping.iter())),
        format!("Old-new mapping: {old_new}"),
        format!("Current cached keys: {cached}"),
        format!("Balance result: [{}]", balance.join(", ")),
    ];
    lines.extend(
        plan.balance_result
            .iter()
            .map(|entry| send_to_line(entry, node_port)),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_repr() {
        assert_eq!(py_str("test"), "'test'");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a\"b"), "'a\"b'");
        assert_eq!(py_str("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(py_str("back\\slash"), "'back\\\\slash'");
        assert_eq!(py_str("a\u{1}\n"), "'a\\x01\\n'");
        assert_eq!(py_str("é"), "'é'");
    }

    #[test]
    fn python_set_and_list_repr() {
        assert_eq!(py_str_set(["b", "a"]), "{'a', 'b'}");
        assert_eq!(py_str_set(Vec::<&str>::new()), "set()");
        assert_eq!(py_str_list(["b", "a"]), "['b', 'a']");
        assert_eq!(py_str_list(Vec::<&str>::new()), "[]");
    }
}
