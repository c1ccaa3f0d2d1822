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
/// Header of a refused put whose fence token was out of date; its value says why
/// ([`FenceRefusal`]).
pub const FENCE_MISMATCH_HEADER: &str = "x-memring-fence-mismatch";
/// Header of a put refused only because the node forgot floors since the token was
/// issued: the node's current token, which the sender may adopt at once.
pub const FENCE_CURRENT_HEADER: &str = "x-memring-fence-current";

/// Header of the front-end's 409 to a notify of an older epoch: its own epoch.
pub const EPOCH_HEADER: &str = "x-memring-epoch";

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

/// A node's fence token: `{incarnation:016x}-{clears}-{floors_forgotten}`.
///
/// A put carries the token its sender learned; the node refuses it unless it is the
/// current one. The parts say why: a new incarnation or another clear means the
/// node lost its floors and maybe missed invalidations (the sender must clear it
/// again before trusting it); only forgotten floors means nothing stale got in, and
/// the sender may take the new token at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    pub incarnation: u64,
    pub clears: u64,
    pub floors_forgotten: u64,
}

/// Why a put's fence was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceRefusal {
    /// The node restarted or was cleared since the token was issued (or the put
    /// had no token).
    Reset,
    /// The node forgot floors since the token was issued.
    FloorsForgotten,
}

impl FenceRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            FenceRefusal::Reset => "reset",
            FenceRefusal::FloorsForgotten => "floors",
        }
    }
}

impl Fence {
    /// Why a put carrying `self` is refused by a node whose token is `current`.
    pub fn refusal(&self, current: &Fence) -> Option<FenceRefusal> {
        if self == current {
            None
        } else if self.incarnation == current.incarnation
            && self.clears == current.clears
            && self.floors_forgotten < current.floors_forgotten
        {
            Some(FenceRefusal::FloorsForgotten)
        } else {
            Some(FenceRefusal::Reset)
        }
    }

    /// Whether `self` is the same life and clear as `other`, but later.
    pub fn supersedes(&self, other: &Fence) -> bool {
        self.incarnation == other.incarnation
            && self.clears == other.clears
            && self.floors_forgotten > other.floors_forgotten
    }
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:016x}-{}-{}",
            self.incarnation, self.clears, self.floors_forgotten
        )
    }
}

impl std::str::FromStr for Fence {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "bad fence token {:?}",
                text.chars().take(64).collect::<String>()
            )
        };
        let mut parts = text.splitn(3, '-');
        let incarnation = parts.next().ok_or_else(bad)?;
        let clears = parts.next().ok_or_else(bad)?;
        let floors = parts.next().ok_or_else(bad)?;
        if incarnation.len() != 16 {
            return Err(bad());
        }
        Ok(Fence {
            incarnation: u64::from_str_radix(incarnation, 16).map_err(|_| bad())?,
            clears: clears.parse().map_err(|_| bad())?,
            floors_forgotten: floors.parse().map_err(|_| bad())?,
        })
    }
}

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
    fn fences_round_trip_and_say_why_they_are_refused() {
        let current = Fence {
            incarnation: 0xabc,
            clears: 2,
            floors_forgotten: 5,
        };
        let text = current.to_string();
        assert_eq!(text, "0000000000000abc-2-5");
        assert_eq!(text.parse::<Fence>(), Ok(current));
        assert!("abc-2-5".parse::<Fence>().is_err());
        assert!("0000000000000abc-2".parse::<Fence>().is_err());
        let older_floors = Fence {
            floors_forgotten: 4,
            ..current
        };
        assert_eq!(current.refusal(&current), None);
        assert_eq!(
            older_floors.refusal(&current),
            Some(FenceRefusal::FloorsForgotten)
        );
        assert!(current.supersedes(&older_floors));
        let older_clear = Fence {
            clears: 1,
            floors_forgotten: 9,
            ..current
        };
        assert_eq!(older_clear.refusal(&current), Some(FenceRefusal::Reset));
        let other_life = Fence {
            incarnation: 1,
            ..current
        };
        assert_eq!(other_life.refusal(&current), Some(FenceRefusal::Reset));
        // A token from the future is no better.
        assert_eq!(current.refusal(&older_floors), Some(FenceRefusal::Reset));
    }

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
