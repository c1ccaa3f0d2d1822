//! Every header of the roles' protocol, besides the standard ones.

/// An entry's version (the key index's version of the row).
pub const VERSION: &str = "x-memring-version";
/// A put's fence: the token of the node it is meant for. A node refuses a put
/// whose token is not its current one (it was cleared, or restarted, since the
/// sender learned the token).
pub const FENCE: &str = "x-memring-fence";
/// A move order's fences: the destinations' tokens (see
/// [`super::fence::encode_fences`]).
pub const FENCES: &str = "x-memring-fences";
/// On a put refused for its fence: why ([`super::fence::FenceRefusal`]).
pub const FENCE_MISMATCH: &str = "x-memring-fence-mismatch";
/// On a put refused only because the node forgot floors since the token was
/// issued: the node's current token, which the sender may adopt at once.
pub const FENCE_CURRENT: &str = "x-memring-fence-current";
/// On the front-end's 409 to a notify: the epoch in force.
pub const EPOCH: &str = "x-memring-epoch";
/// Marks a put that carries a moved value.
pub const MOVED: &str = "x-memring-moved";
/// The cluster token, on every internal call.
pub const CLUSTER_TOKEN: &str = "x-memring-cluster-token";
/// On an image answer: `hit` or `miss`.
pub const CACHE_STATE: &str = "x-memring-cache";
