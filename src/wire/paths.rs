//! Every path of the three roles' HTTP APIs.

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

// --- Front-end ---------------------------------------------------------------

pub const UPLOAD: &str = "/api/upload";
pub const LIST_KEYS: &str = "/api/list_keys";
/// `/api/key/{key}`: an image as a base64 data URL.
pub const KEY_ROUTE: &str = "/api/key/{key}";
/// `/images/{key}`: an image's raw bytes.
pub const IMAGES_ROUTE: &str = "/images/{key}";
pub const NOTIFY: &str = "/api/notify";
pub const CLEAR_DATA: &str = "/api/clear/data";
pub const CLEAR_CACHE: &str = "/api/clear/cache";
/// The front-end's routing, for operators and tests.
pub const POOL: &str = "/api/pool";
/// Every role's health check.
pub const HEALTHZ: &str = "/healthz";

// --- Manager -----------------------------------------------------------------

pub const POOL_NODE_LIST: &str = "/api/manager/pool_node_list";
pub const POOLSIZE: &str = "/api/manager/poolsize";
pub const POOLSIZE_CONFIG: &str = "/api/manager/poolsize/config";
pub const POOLSIZE_MANUAL: &str = "/api/manager/poolsize/manual";
pub const POOLSIZE_AUTOMATIC: &str = "/api/manager/poolsize/automatic";
pub const MANAGER_CACHE_CONFIG: &str = "/api/manager/cache/config";
pub const AGGREGATE_STATS: &str = "/api/manager/aggregate_stats";
pub const MANAGER_CACHE_CLEAR: &str = "/api/manager/cache/clear";
pub const MANAGER_DATA_CLEAR: &str = "/api/manager/data/clear";
/// The manager's callback after a leaving node handed its keys over.
pub const MOVE_DONE: &str = "/api/manager/move_keys_done";

// --- Cache nodes -------------------------------------------------------------

/// Prefix of the item resource: `/api/cache/item/{key}`.
pub const ITEM: &str = "/api/cache/item/";
/// The item route as the node's router spells it.
pub const ITEM_ROUTE: &str = "/api/cache/item/{key}";
/// Clearing a node.
pub const NODE_CLEAR: &str = "/api/cache/clear";
/// A node's configuration.
pub const NODE_CONFIG: &str = "/api/cache/config";
/// A node's counters.
pub const NODE_STATS: &str = "/api/cache/stats";
/// The keys a node holds.
pub const NODE_KEYS: &str = "/api/cache/keys";
/// The documented move order (its path is part of the documented log lines).
pub const MOVE_KEYS: &str = crate::render::MOVE_KEYS_PATH;

/// Everything but unreserved characters is escaped, so a key is one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path of `key`'s image on the front-end.
pub fn image_path(key: &str) -> String {
    format!("/images/{}", segment(key))
}

/// `key` as one path segment: escaped, "." and ".." included, so no client
/// normalises them away.
fn segment(key: &str) -> String {
    if key == "." || key == ".." {
        "%2E".repeat(key.len())
    } else {
        percent_encode(key.as_bytes(), SEGMENT).to_string()
    }
}

/// The path of `key`'s item on a node.
pub fn item_path(key: &str) -> String {
    format!("{ITEM}{}", segment(key))
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
