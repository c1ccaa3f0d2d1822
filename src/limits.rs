//! Every default and limit of the services, in one place.
//!
//! This module imports nothing: the core, the seams, the services and the binary
//! all read their numbers from here, so a number has one name and one value. The
//! pure core keeps the constants that define its model (16 partitions, a key of
//! at most 48 characters) next to the code they shape.

// --- Ports -------------------------------------------------------------------

/// Default port of the front-end.
pub const FRONTEND_PORT_DEFAULT: u16 = 5000;
/// Default port of a cache node.
pub const NODE_PORT_DEFAULT: u16 = 5001;
/// Default port of the manager.
pub const MANAGER_PORT_DEFAULT: u16 = 5004;
/// Default port of the first node `memring up` starts; the others follow it.
pub const UP_NODE_PORT_BASE_DEFAULT: u16 = 5101;

// --- The pool ----------------------------------------------------------------

/// Fewest nodes a pool runs with.
pub const POOL_NODES_MIN: usize = 1;
/// Most nodes a pool runs with (the manager has at most 8 node slots).
pub const POOL_NODES_MAX: usize = 8;
/// Largest epoch a notify may carry (2^53, exact in every JSON reader): one near
/// `u64::MAX` would leave the manager no epoch to move past it with.
pub const EPOCH_MAX: u64 = 1 << 53;

// --- Front-end ---------------------------------------------------------------

/// Default largest upload, in bytes (32 MiB).
pub const UPLOAD_MAX_BYTES_DEFAULT: usize = 32 * 1024 * 1024;
/// Default cap on the image bytes the front-end's answers hold at once (128 MiB:
/// four of the largest images read whole).
pub const RESPONSE_BUDGET_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// Node answers of at least this size are streamed to the client as they
/// arrive, not read whole first.
pub const STREAM_MIN_BYTES: u64 = 256 * 1024;
/// The share of the response budget a streamed answer takes: about what the
/// front-end buffers of it at once (hyper's read buffer and write queue).
pub const STREAM_SHARE_BYTES: u64 = 1024 * 1024;
/// How long the front-end waits for the manager's pool listing.
pub const MANAGER_LISTING_TIMEOUT_MS: u64 = 2_000;
/// Default timeout of a cache call on the read path.
pub const NODE_TIMEOUT_MS_DEFAULT: u64 = 1_000;
/// Default timeout of a move order (a node moves many keys).
pub const MOVE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default pause between two rounds of clearing quarantined nodes.
pub const HEAL_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default pause between two reads of the manager's pool.
pub const SYNC_INTERVAL_MS_DEFAULT: u64 = 5_000;

// --- Manager -----------------------------------------------------------------

/// Default pause between two statistics rounds.
pub const STATS_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Default pause between two auto-scaler rounds.
pub const AUTOSCALE_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default pause between two health rounds.
pub const HEALTH_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default timeout of one health check.
pub const HEALTH_TIMEOUT_MS_DEFAULT: u64 = 500;
/// Default number of failed checks in a row before a pool node is ejected.
pub const HEALTH_FAILURES_MAX_DEFAULT: u32 = 3;
/// Default time a leaving node gets to hand its keys over.
pub const MOVE_CALLBACK_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default timeout of one notify (the front-end answers after its rebalance).
pub const NOTIFY_TIMEOUT_MS_DEFAULT: u64 = 15_000;
/// Default number of notify attempts before the front-end's sync takes over.
pub const NOTIFY_ATTEMPTS_MAX_DEFAULT: usize = 3;
/// Largest body the manager reads (its calls carry small JSON).
pub const MANAGER_BODY_MAX_BYTES: usize = 64 * 1024;

// --- Cache nodes -------------------------------------------------------------

/// Largest cache capacity, in MB.
pub const CAPACITY_MB_MAX: u64 = 64 * 1024;
/// Smallest cache capacity, in MB (1 KB): a cache of 0 would drop everything.
pub const CAPACITY_MB_MIN: f64 = 0.001;
/// Default number of floors (versions of keys that left) a node keeps.
pub const FLOORS_MAX_DEFAULT: usize = 65_536;

// --- Servers -----------------------------------------------------------------

/// Time a client gets to send a request head (idle kept-alive connections close
/// then too).
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Time connections get to finish when a server stops.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 5_000;
/// Connections a server holds at once.
pub const CONNECTIONS_MAX_DEFAULT: usize = 4_096;
/// A write that makes no progress this long drops the connection.
pub const WRITE_STALL_TIMEOUT_MS_DEFAULT: u64 = 15_000;
/// A read that waits this long drops the connection.
pub const READ_STALL_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// A request body gets this long before it must keep its pace.
pub const BODY_GRACE_MS_DEFAULT: u64 = 10_000;
/// The pace a request body must keep: each of these bytes buys one more second.
pub const BODY_RATE_BYTES_PER_S_DEFAULT: u64 = 16 * 1024;

// --- Clients -----------------------------------------------------------------

/// Default whole-call timeout of a client.
pub const CLIENT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Largest answer body a client accepts.
pub const CLIENT_BODY_MAX_BYTES_DEFAULT: usize = 64 * 1024 * 1024;
/// Idle kept-alive connections a client keeps per peer.
pub const CLIENT_IDLE_PER_HOST_MAX_DEFAULT: usize = 64;
/// How long a client keeps an idle connection: below the servers' head timeout,
/// so a connection the server is closing is never picked for a new request.
pub const CLIENT_IDLE_TIMEOUT_MS_DEFAULT: u64 = 5_000;

// --- Input -------------------------------------------------------------------

/// Shortest token, in characters.
pub const TOKEN_BYTES_MIN: usize = 16;
/// Longest token, in characters.
pub const TOKEN_BYTES_MAX: usize = 256;
/// Most characters of an input an error message echoes.
pub const ECHO_CHARS_MAX: usize = 64;
