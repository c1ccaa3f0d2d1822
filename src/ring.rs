//! The hash ring: MD5 partitions, node ids and the pool in join order.
//!
//! The key space is cut into [`PARTITION_COUNT`] equal regions by the top four bits
//! of MD5(key). A [`Pool`] is the ordered list of cache nodes; an assignment strategy
//! (see [`crate::assign`]) maps each partition to one node of the pool.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// Number of equal regions of the MD5 hash space.
pub const PARTITION_COUNT: usize = 16;

/// Largest pool the core accepts: with more nodes than partitions some node would
/// own nothing.
pub const PLAN_NODES_MAX: usize = PARTITION_COUNT;

/// Longest node id accepted, in characters (a DNS name is at most 253).
pub const NODE_ID_CHARS_MAX: usize = 253 + 6;

/// A partition number in `0..PARTITION_COUNT`.
pub type Partition = u8;

/// The partition of a key: the top 4 bits of MD5(key), i.e. the first hex digit of
/// the digest.
pub fn partition(key: &str) -> Partition {
    partition_of_bytes(key.as_bytes())
}

/// [`partition`] over raw bytes.
pub fn partition_of_bytes(key: &[u8]) -> Partition {
    let digest = Md5::digest(key);
    let partition = digest[0] >> 4;
    debug_assert!((partition as usize) < PARTITION_COUNT);
    partition
}

/// The id of a cache node: a host name or an IP address, optionally with `:port`.
///
/// The id is kept exactly as given (it is what the documented logs print). IPv6
/// literals are written bare (`::1`) or in brackets (`[::1]`, `[::1]:5101`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// Validates and wraps a node id.
    pub fn new(id: &str) -> Result<Self, InputError> {
        parse_host_port(id)?;
        Ok(NodeId(id.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part, without brackets or port.
    pub fn host(&self) -> &str {
        parse_host_port(&self.0)
            .expect("validated at construction")
            .0
    }

    /// The port carried in the id, if any.
    pub fn port(&self) -> Option<u16> {
        parse_host_port(&self.0)
            .expect("validated at construction")
            .1
    }

    /// `host:port` to connect to: the id's own port, else `default_port`. IPv6 hosts
    /// are bracketed.
    pub fn address(&self, default_port: u16) -> String {
        let port = self.port().unwrap_or(default_port);
        let host = self.host();
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

/// Splits an id into host and optional port, checking both.
fn parse_host_port(id: &str) -> Result<(&str, Option<u16>), InputError> {
    let bad = |why: &str| InputError::BadNodeId {
        id: crate::error::echo(id),
        why: why.to_owned(),
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.chars().count() > NODE_ID_CHARS_MAX {
        return Err(bad("it is too long"));
    }
    if let Some(rest) = id.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("no closing ']'"))?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| bad("not an IPv6 address in brackets"))?;
        let port = match after {
            "" => None,
            _ => Some(
                parse_port(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("junk after ']'"))?,
                )
                .ok_or_else(|| bad("bad port"))?,
            ),
        };
        return Ok((host, port));
    }
    if id.parse::<Ipv6Addr>().is_ok() {
        return Ok((id, None));
    }
    let (host, port) = match id.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(port).ok_or_else(|| bad("bad port"))?)),
        None => (id, None),
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(bad(
            "a host may hold only letters, digits, '.', '-' and '_'",
        ));
    }
    Ok((host, port))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&port| port != 0)
}

impl FromStr for NodeId {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::new(s)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NodeId::new(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The cache pool: distinct node ids in join order, never empty, at most
/// [`POOL_NODES_MAX`] of them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(transparent)]
pub struct Pool {
    nodes: Vec<NodeId>,
}

impl Pool {
    /// A pool with these nodes in this join order.
    pub fn new(nodes: Vec<NodeId>) -> Result<Self, InputError> {
        if nodes.is_empty() {
            return Err(InputError::EmptyPool);
        }
        if nodes.len() > PLAN_NODES_MAX {
            return Err(InputError::TooManyNodes {
                count: nodes.len(),
                max: PLAN_NODES_MAX,
            });
        }
        for (i, node) in nodes.iter().enumerate() {
            if nodes[..i].contains(node) {
                return Err(InputError::DuplicateNode(node.to_string()));
            }
        }
        Ok(Pool { nodes })
    }

    /// Parses a comma-separated list of node ids (white space around each id is
    /// ignored).
    pub fn parse_list(text: &str) -> Result<Self, InputError> {
        if text.trim().is_empty() {
            return Err(InputError::EmptyPool);
        }
        let nodes = text
            .split(',')
            .map(|id| NodeId::new(id.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Pool::new(nodes)
    }

    /// The nodes in join order.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a pool holds at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn contains(&self, node: &NodeId) -> bool {
        self.nodes.contains(node)
    }

    /// The pool after adding `node` at the end (it joins last).
    pub fn with_added(&self, node: NodeId) -> Result<Self, InputError> {
        let mut nodes = self.nodes.clone();
        nodes.push(node);
        Pool::new(nodes)
    }

    /// The pool after removing `node`; the others keep their order.
    pub fn with_removed(&self, node: &NodeId) -> Result<Self, InputError> {
        if !self.contains(node) {
            return Err(InputError::UnknownNode(node.to_string()));
        }
        Pool::new(self.nodes.iter().filter(|n| *n != node).cloned().collect())
    }

    /// The pool whose members are exactly `members`: survivors keep their join
    /// order, newcomers are appended in the order given.
    pub fn transition_to(&self, members: &[NodeId]) -> Result<Self, InputError> {
        // Validate the member list on its own first, so duplicates are reported.
        Pool::new(members.to_vec())?;
        let survivors = self.nodes.iter().filter(|n| members.contains(n));
        let newcomers = members.iter().filter(|n| !self.nodes.contains(n));
        Pool::new(survivors.chain(newcomers).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<NodeId> {
        list.iter().map(|s| NodeId::new(s).unwrap()).collect()
    }

    #[test]
    fn partition_is_first_hex_digit_of_md5() {
        // md5("test") = 098f6bcd..., md5("k1") = b4eb...,
        assert_eq!(partition("test"), 0x0);
        assert_eq!(partition("test123"), 0xc);
        assert_eq!(partition("testabc"), 0xc);
        assert_eq!(partition("k1"), 0xb);
        assert_eq!(partition("k2"), 0x6);
        // md5("") = d41d8cd9...
        assert_eq!(partition(""), 0xd);
    }

    #[test]
    fn node_ids_accept_hosts_ips_and_ports() {
        for good in [
            "A",
            "node-1",
            "cache_2.internal",
            "10.0.0.7",
            "10.0.0.7:5101",
            "::1",
            "[::1]",
            "[fe80::1]:5001",
        ] {
            assert!(NodeId::new(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a b", "a,b", "a:", "a:0", "a:65536", "a:x", ":5001", "[::1", "[x]:1", "a/b", "é",
        ] {
            assert!(NodeId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_address_uses_own_port_or_default() {
        assert_eq!(NodeId::new("A").unwrap().address(5001), "A:5001");
        assert_eq!(NodeId::new("h:5101").unwrap().address(5001), "h:5101");
        assert_eq!(NodeId::new("::1").unwrap().address(5001), "[::1]:5001");
        assert_eq!(NodeId::new("[::1]:7").unwrap().address(5001), "[::1]:7");
    }

    #[test]
    fn pool_rejects_bad_shapes() {
        assert_eq!(Pool::new(vec![]), Err(InputError::EmptyPool));
        assert!(matches!(
            Pool::new(ids(&["A", "B", "A"])),
            Err(InputError::DuplicateNode(_))
        ));
        let seventeen: Vec<String> = (0..17).map(|i| format!("n{i}")).collect();
        let seventeen: Vec<&str> = seventeen.iter().map(String::as_str).collect();
        assert!(matches!(
            Pool::new(ids(&seventeen)),
            Err(InputError::TooManyNodes { count: 17, .. })
        ));
        assert_eq!(Pool::parse_list(" "), Err(InputError::EmptyPool));
    }

    #[test]
    fn transition_keeps_survivors_and_appends_newcomers() {
        let old = Pool::new(ids(&["C", "D"])).unwrap();
        let new = old.transition_to(&ids(&["A", "B", "C", "D"])).unwrap();
        assert_eq!(new.nodes(), ids(&["C", "D", "A", "B"]).as_slice());

        let old = Pool::new(ids(&["A", "B", "C", "D"])).unwrap();
        let new = old.transition_to(&ids(&["D", "B"])).unwrap();
        assert_eq!(new.nodes(), ids(&["B", "D"]).as_slice());

        let added = old.with_removed(&NodeId::new("A").unwrap()).unwrap();
        let added = added.with_added(NodeId::new("A").unwrap()).unwrap();
        assert_eq!(added.nodes(), ids(&["B", "C", "D", "A"]).as_slice());
    }
}
