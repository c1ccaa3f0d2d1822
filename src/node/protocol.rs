//! The internal protocol between the front-end and the cache nodes: raw bytes in
//! bodies, the index version and the mime type in headers, keys percent-encoded in
//! one path segment.

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Prefix of the item resource: `/api/cache/item/{key}`.
pub const ITEM_PATH: &str = "/api/cache/item/";
/// Header carrying an entry's version (the key index's version of the row).
pub const VERSION_HEADER: &str = "x-memring-version";
/// Header of a put: the fence token of the node it is meant for. A node refuses a
/// put whose token is not its current one (it was cleared, or restarted, since the
/// sender learned the token).
pub const FENCE_HEADER: &str = "x-memring-fence";
/// Header of a move order: `node=token` pairs, `;`-separated, for the destinations.
pub const FENCES_HEADER: &str = "x-memring-fences";
/// Header of a refused put whose fence token was out of date.
pub const FENCE_MISMATCH_HEADER: &str = "x-memring-fence-mismatch";

/// Header marking a put that carries a moved value.
pub const MOVED_HEADER: &str = "x-memring-moved";
/// The documented move order.
pub const MOVE_KEYS_PATH: &str = crate::render::MOVE_KEYS_PATH;
/// Clearing a node.
pub const CLEAR_PATH: &str = "/api/cache/clear";
/// A node's configuration.
pub const CONFIG_PATH: &str = "/api/cache/config";
/// A node's counters.
pub const STATS_PATH: &str = "/api/cache/stats";
/// The manager's callback after a leaving node handed its keys over.
pub const MOVE_DONE_PATH: &str = "/api/manager/move_keys_done";

/// Everything but unreserved characters is escaped, so a key is one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path of `key`'s item on a node.
pub fn item_path(key: &str) -> String {
    let mut path = String::with_capacity(ITEM_PATH.len() + key.len() * 3);
    path.push_str(ITEM_PATH);
    // "." and ".." are escaped too, so no client normalises them away.
    if key == "." || key == ".." {
        for _ in 0..key.len() {
            path.push_str("%2E");
        }
    } else {
        path.extend(percent_encode(key.as_bytes(), SEGMENT));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_one_segment() {
        assert_eq!(item_path("k1"), "/api/cache/item/k1");
        assert_eq!(
            item_path("../../etc/passwd"),
            "/api/cache/item/..%2F..%2Fetc%2Fpasswd"
        );
        assert_eq!(item_path(".."), "/api/cache/item/%2E%2E");
        assert_eq!(item_path("a?b#c%"), "/api/cache/item/a%3Fb%23c%25");
    }
}
