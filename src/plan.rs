//! `memring plan`: the rebalance the core plans for a pool change, as the
//! documented log lines or as JSON. A function from a request to the text to
//! print, so tests call it without a process.

use crate::assign::Strategy;
use crate::balance::{plan, CachedKeys, PlanSettings};
use crate::error::InputError;
use crate::key::validate_key;
use crate::render::{plan_lines, LOG_PREFIX};
use crate::ring::{NodeId, Pool};

/// What to plan: the pools as the command line gives them.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    /// The current pool, in join order (comma-separated node ids).
    pub from: String,
    /// The members of the new pool: survivors keep their order, newcomers are
    /// appended in the order given.
    pub to: String,
    /// Cached keys, in the order they were cached (comma-separated).
    pub cached: Option<String>,
    /// One JSON object instead of the log lines.
    pub json: bool,
    /// Port of the cache nodes, for ids without a port of their own.
    pub node_port: u16,
    /// Port of the manager, sent to leaving nodes.
    pub manager_port: u16,
    pub strategy: Strategy,
}

/// Parses the comma-separated member list of `--to`.
fn parse_members(text: &str) -> Result<Vec<NodeId>, InputError> {
    // Pool::parse_list validates emptiness, ids, duplicates and the size limit.
    Ok(Pool::parse_list(text)?.nodes().to_vec())
}

/// Parses `--cached`: keys in caching order. An empty value means no keys.
fn parse_cached(text: Option<&str>) -> Result<CachedKeys, InputError> {
    let mut cached = CachedKeys::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(cached);
    };
    for key in text.split(',') {
        validate_key(key)?;
        cached.insert(key);
    }
    Ok(cached)
}

/// Runs `memring plan`: returns the text to print, newline-terminated.
pub fn run_plan(args: &PlanRequest) -> Result<String, InputError> {
    let old_pool = Pool::parse_list(&args.from)?;
    let new_pool = old_pool.transition_to(&parse_members(&args.to)?)?;
    let cached = parse_cached(args.cached.as_deref())?;
    let settings = PlanSettings {
        strategy: args.strategy,
        manager_port: args.manager_port,
    };
    let plan = plan(&old_pool, &new_pool, &cached, settings);
    if args.json {
        let mut text = serde_json::to_string(&plan).expect("a plan always serializes");
        text.push('\n');
        return Ok(text);
    }
    Ok(plan_lines(&plan, args.node_port)
        .into_iter()
        .map(|line| format!("{LOG_PREFIX}{line}\n"))
        .collect())
}
