//! The recorded history of client operations: each upload and read with its
//! invocation and completion in simulated milliseconds and its outcome.
//!
//! Every uploaded image carries its key and a unique generation in its bytes, so a
//! read says exactly which upload it returned.

use std::sync::{Arc, Mutex, MutexGuard};

/// What a client did.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// An upload; a retry of a timed-out upload is another op with the same
    /// generation.
    Upload {
        key: String,
        generation: u64,
    },
    Read {
        key: String,
    },
    /// `DELETE /api/clear/data`.
    ClearData,
    /// `DELETE /api/clear/cache`.
    ClearCache,
    /// `POST /api/list_keys`.
    ListKeys,
    /// A cache configuration sent to the manager.
    Config {
        capacity_mb: f64,
        policy: String,
    },
}

impl OpKind {
    /// The key this op is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            OpKind::Upload { key, .. } | OpKind::Read { key } => Some(key),
            _ => None,
        }
    }
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No answer yet (or never: the run ended first).
    Pending,
    /// The upload was acknowledged.
    Uploaded,
    /// The read answered: the generation it returned, or `None` for 404.
    Read(Option<u64>),
    /// The read returned bytes that are no upload of this key, or headers that do
    /// not match them.
    Corrupt(String),
    /// The listing answered these keys.
    Listed(Vec<String>),
    /// A clear or a configuration was acknowledged.
    Done,
    /// An error or a timeout; the effect is unknown.
    Failed(String),
}

/// One operation.
#[derive(Clone, Debug)]
pub struct Op {
    pub id: usize,
    pub client: String,
    pub kind: OpKind,
    pub invoke_ms: u64,
    pub complete_ms: Option<u64>,
    pub outcome: Outcome,
    /// Reads after the run healed, for the end-state check.
    pub final_check: bool,
    /// A read's version (from its ETag) and whether it was a cache hit.
    pub version: Option<u64>,
    pub cache_hit: Option<bool>,
}

/// The shared history of a run.
#[derive(Clone, Default)]
pub struct History {
    ops: Arc<Mutex<Vec<Op>>>,
}

/// Simulated milliseconds now.
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The mime type an upload of `generation` declares (and a read must give back).
pub fn mime_of(generation: u64) -> &'static str {
    ["image/png", "image/gif", "image/jpeg", "image/webp"][(generation % 4) as usize]
}

/// The signature every simulated image starts with: the front-end stores raster
/// images only.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The bytes of generation `generation` of `key`, `size_bytes` long at least.
pub fn image_bytes(key: &str, generation: u64, size_bytes: usize) -> Vec<u8> {
    let mut bytes = PNG_MAGIC.to_vec();
    bytes.extend_from_slice(format!("|{key}|{generation}|").as_bytes());
    let fill = (generation % 251) as u8;
    while bytes.len() < size_bytes {
        bytes.push(fill);
    }
    bytes
}

/// Which generation of `key` these bytes are, if they are one.
pub fn generation_of(key: &str, bytes: &[u8]) -> Result<u64, String> {
    let mut head = PNG_MAGIC.to_vec();
    head.extend_from_slice(format!("|{key}|").as_bytes());
    let rest = bytes
        .strip_prefix(head.as_slice())
        .ok_or_else(|| format!("bytes of another key or no image ({} bytes)", bytes.len()))?;
    let end = rest
        .iter()
        .position(|&b| b == b'|')
        .ok_or("no generation")?;
    let generation: u64 = std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or("bad generation")?;
    let expected = image_bytes(key, generation, bytes.len());
    if expected != bytes {
        return Err(format!("generation {generation} with damaged bytes"));
    }
    Ok(generation)
}

impl History {
    fn ops(&self) -> MutexGuard<'_, Vec<Op>> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the start of an operation; returns its id.
    pub fn invoke(&self, client: &str, kind: OpKind, final_check: bool) -> usize {
        let mut ops = self.ops();
        let id = ops.len();
        tracing::info!(target: "memring_sim::client", "invoke #{id} {client} {kind:?}");
        ops.push(Op {
            id,
            client: client.to_owned(),
            kind,
            invoke_ms: now_ms(),
            complete_ms: None,
            outcome: Outcome::Pending,
            final_check,
            version: None,
            cache_hit: None,
        });
        id
    }

    /// Records a read's version and cache state.
    pub fn read_details(&self, id: usize, version: u64, cache_hit: bool) {
        let mut ops = self.ops();
        ops[id].version = Some(version);
        ops[id].cache_hit = Some(cache_hit);
    }

    /// Records how operation `id` ended.
    pub fn complete(&self, id: usize, outcome: Outcome) {
        let mut ops = self.ops();
        let op = &mut ops[id];
        tracing::info!(target: "memring_sim::client", "complete #{id} {} {outcome:?}", op.client);
        op.complete_ms = Some(now_ms());
        op.outcome = outcome;
    }

    /// Every operation so far.
    pub fn snapshot(&self) -> Vec<Op> {
        self.ops().clone()
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self
            .complete_ms
            .map_or_else(|| "pending".to_owned(), |ms| format!("{ms}ms"));
        let what = match &self.kind {
            OpKind::Upload { key, generation } => format!("upload {key} gen {generation}"),
            OpKind::Read { key } => format!("read {key}"),
            OpKind::ClearData => "clear data".to_owned(),
            OpKind::ClearCache => "clear cache".to_owned(),
            OpKind::ListKeys => "list keys".to_owned(),
            OpKind::Config {
                capacity_mb,
                policy,
            } => format!("cache config {capacity_mb} MB {policy}"),
        };
        let what = match self.version {
            Some(version) => format!("{what} (v{version})"),
            None => what,
        };
        write!(
            f,
            "#{} {} {what}: {}ms..{done} -> {:?}{}",
            self.id,
            self.client,
            self.invoke_ms,
            self.outcome,
            if self.final_check { " (final)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_name_their_generation() {
        let bytes = image_bytes("k", 42, 300);
        assert_eq!(bytes.len(), 300);
        assert_eq!(generation_of("k", &bytes), Ok(42));
        assert!(generation_of("other", &bytes).is_err());
        let mut damaged = bytes.clone();
        damaged[200] ^= 1;
        assert!(generation_of("k", &damaged).is_err());
    }
}
