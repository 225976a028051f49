//! Source-address identification (the `identify` lists): IPv4/IPv6 CIDR
//! prefixes and a longest-prefix-match table from prefix to trunk.
//!
//! Owns parsing `10.0.0.5`, `54.172.60.0/30`, `2600:1f18::/32`, matching a
//! source address (an IPv4-mapped IPv6 source such as `::ffff:10.0.0.5`
//! matches IPv4 prefixes), and choosing the most specific prefix when
//! several trunks cover an address. Does not own where the source address
//! comes from (the transport) nor what is done with an unknown source.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

/// An IP network: an address and a prefix length. The address has no host
/// bits set beyond the prefix (enforced by [`IpNet::from_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why an `identify` entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    #[error("'{text}' is not an IPv4 or IPv6 address")]
    BadAddress { text: String },
    #[error("prefix length '{text}' is not a number from 0 to {max}")]
    BadPrefix { text: String, max: u8 },
    #[error("'{text}' has host bits set beyond /{prefix} (did you mean {network}?)")]
    HostBits {
        text: String,
        prefix: u8,
        network: String,
    },
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        let host_bits = u32::from(width.saturating_sub(prefix));
        (all >> host_bits) << host_bits
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl IpNet {
    /// A network from an address and prefix; host bits are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let (value, width) = bits(addr);
        if prefix > width {
            return None;
        }
        let net = value & mask(prefix, width);
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(net).ok()?)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(net)),
        };
        Some(IpNet { addr, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (net, width) = bits(self.addr);
        let (value, ip_width) = bits(ip);
        width == ip_width && value & mask(self.prefix, width) == net
    }
}

impl FromStr for IpNet {
    type Err = CidrError;

    /// `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`. A bare address is a /32 or
    /// /128. Host bits beyond the prefix are refused, since they usually
    /// mean a typo in the prefix length.
    fn from_str(text: &str) -> Result<IpNet, CidrError> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr_text.trim()).map_err(|_| CidrError::BadAddress {
            text: addr_text.to_owned(),
        })?;
        let (value, width) = bits(addr);
        let prefix = match prefix_text {
            None => width,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= width)
                .ok_or_else(|| CidrError::BadPrefix {
                    text: p.to_owned(),
                    max: width,
                })?,
        };
        let net = IpNet::new(addr, prefix).ok_or_else(|| CidrError::BadPrefix {
            text: prefix.to_string(),
            max: width,
        })?;
        if bits(net.addr).0 != value {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                prefix,
                network: net.to_string(),
            });
        }
        Ok(net)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Longest-prefix-match table from networks to values (trunk indexes).
#[derive(Debug, Clone, Default)]
pub struct PrefixTable<T> {
    /// Sorted by prefix length, longest first, so the first hit wins.
    entries: Vec<(IpNet, T)>,
}

impl<T> PrefixTable<T> {
    pub fn new(mut entries: Vec<(IpNet, T)>) -> PrefixTable<T> {
        // Stable: among equal prefixes the earlier (config order) wins.
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.prefix));
        PrefixTable { entries }
    }

    /// The value of the most specific network containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        self.entries
            .iter()
            .find(|(net, _)| net.contains(ip))
            .map(|(_, value)| value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv4_slash_30_contains_exactly_four_addresses() {
        let n = net("54.172.60.0/30");
        assert!(n.contains(ip("54.172.60.0")));
        assert!(n.contains(ip("54.172.60.3")));
        assert!(!n.contains(ip("54.172.60.4")));
        assert!(!n.contains(ip("54.172.59.255")));
    }

    #[test]
    fn a_bare_address_is_a_host_network() {
        let n = net("10.0.0.5");
        assert_eq!(n.prefix(), 32);
        assert!(n.contains(ip("10.0.0.5")));
        assert!(!n.contains(ip("10.0.0.6")));
        assert_eq!(net("2001:db8::1").prefix(), 128);
    }

    #[test]
    fn ipv6_networks_match_ipv6_sources_only() {
        let n = net("2001:db8:10::/48");
        assert!(n.contains(ip("2001:db8:10:ffff::1")));
        assert!(!n.contains(ip("2001:db8:11::1")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn an_ipv4_mapped_source_matches_an_ipv4_network() {
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn host_bits_beyond_the_prefix_are_refused_with_the_network_suggested() {
        let err = "54.172.60.1/30".parse::<IpNet>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'54.172.60.1/30' has host bits set beyond /30 (did you mean 54.172.60.0/30?)"
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<IpNet>(),
            Err(CidrError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<IpNet>(),
            Err(CidrError::BadAddress { .. })
        ));
    }

    #[test]
    fn the_longest_prefix_wins_regardless_of_order() {
        let table = PrefixTable::new(vec![
            (net("10.0.0.0/8"), "wide"),
            (net("10.1.0.0/16"), "narrow"),
            (net("10.1.2.3"), "host"),
        ]);
        assert_eq!(table.lookup(ip("10.1.2.3")), Some(&"host"));
        assert_eq!(table.lookup(ip("10.1.9.9")), Some(&"narrow"));
        assert_eq!(table.lookup(ip("10.200.0.1")), Some(&"wide"));
        assert_eq!(table.lookup(ip("11.0.0.1")), None);
    }
}
