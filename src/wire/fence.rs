//! Fence tokens on the wire: a node's token in one header, and the destinations'
//! tokens of a move order in another (`node=token` pairs, `;`-separated).

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

/// The value of the move order's fences header: `node=token` pairs.
pub fn encode_fences<N, T>(pairs: impl IntoIterator<Item = (N, T)>) -> String
where
    N: std::fmt::Display,
    T: std::fmt::Display,
{
    pairs
        .into_iter()
        .map(|(node, token)| format!("{node}={token}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The pairs of a move order's fences header (malformed pairs are skipped).
pub fn decode_fences(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(node, token)| (node.trim().to_owned(), token.trim().to_owned()))
        .collect()
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
    fn fences_headers_round_trip() {
        let text = encode_fences([("A".to_owned(), "t1"), ("B:5001".to_owned(), "t2")]);
        assert_eq!(text, "A=t1;B:5001=t2");
        assert_eq!(
            decode_fences(&text),
            vec![
                ("A".to_owned(), "t1".to_owned()),
                ("B:5001".to_owned(), "t2".to_owned())
            ]
        );
        assert_eq!(
            decode_fences("junk;C=t3"),
            vec![("C".to_owned(), "t3".to_owned())]
        );
    }
}
