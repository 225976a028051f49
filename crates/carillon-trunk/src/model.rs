//! The validated trunk configuration: [`TrunkSet`] and what each trunk is
//! made of. Built only by the loader (`config`), so every value here has
//! been checked (URIs parse, prefixes are networks, limits are positive).
//!
//! Owns the data and the IP identify lookup; does not own run-time state
//! (contact liveness, call counts, registrations), which lives in
//! [`crate::Trunks`].

use std::borrow::Borrow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::cidr::{IpNet, PrefixTable};
use crate::config::ConfigProblem;

/// A trunk's name: the `NAME` of `[trunk.NAME]`, as the dialplan's
/// `trunk/NAME` targets refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkName(String);

impl TrunkName {
    pub(crate) fn new(name: impl Into<String>) -> TrunkName {
        TrunkName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for TrunkName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TrunkName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TrunkName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A GSM gateway port's name (`ports[].name`, e.g. `sim1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortName(String);

impl PortName {
    pub(crate) fn new(name: impl Into<String>) -> PortName {
        PortName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for PortName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// `kind = "carrier" | "gsm_gateway"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkKind {
    /// An ITSP / SIP carrier: contacts in failover order.
    Carrier,
    /// A GSM gateway: calls go out through one of its SIM ports.
    GsmGateway,
}

/// A codec name in `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (`ulaw`, PCMU).
    Ulaw,
    /// G.711 A-law (`alaw`, PCMA).
    Alaw,
    /// `g722`.
    G722,
    /// `g729`.
    G729,
    /// `opus`.
    Opus,
}

impl Codec {
    pub fn parse(name: &str) -> Option<Codec> {
        match name {
            "ulaw" => Some(Codec::Ulaw),
            "alaw" => Some(Codec::Alaw),
            "g722" => Some(Codec::G722),
            "g729" => Some(Codec::G729),
            "opus" => Some(Codec::Opus),
            _ => None,
        }
    }

    /// Whether the media plane can carry it: G.711 only today, so a trunk
    /// allowing `g722`, `g729` or `opus` is refused at load rather than
    /// offering a codec no call could use.
    pub fn is_available(self) -> bool {
        matches!(self, Codec::Ulaw | Codec::Alaw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Ulaw => "ulaw",
            Codec::Alaw => "alaw",
            Codec::G722 => "g722",
            Codec::G729 => "g729",
            Codec::Opus => "opus",
        }
    }
}

/// Outbound digest credentials (answering 401/407 from the far end).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `register = true`: outbound registration of this trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The registrar's SIP URI (`registrar`), also the REGISTER's
    /// Request-URI and the destination it is sent to.
    pub registrar: String,
    /// The host of `registrar`, the domain of the address-of-record.
    pub domain: String,
    /// Requested expiry in seconds (`expiry`, default 3600).
    pub expiry: u32,
}

/// `qualify_secs > 0`: OPTIONS pings to every contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualifyConfig {
    /// Time between the start of two pings (`qualify_secs`).
    pub interval: Duration,
    /// No final answer within this → the contact is Down
    /// (`qualify_timeout_secs`, default 2).
    pub timeout: Duration,
}

/// How a gateway picks its next port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortStrategy {
    /// The next eligible port after the one used last (`round_robin`).
    #[default]
    RoundRobin,
    /// The eligible port with the fewest calls up now, then the fewest
    /// calls placed since start, then config order (`least_used`).
    LeastUsed,
}

/// How a port is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRoute {
    /// The port is its own SIP peer (`contact = "sip:…"`): one SIP account
    /// per SIM, as many gateways offer.
    Contact(usize),
    /// Dinstar-style port groups: the gateway is one SIP peer (the trunk's
    /// `contacts`) and picks the port from a prefix the switch puts in
    /// front of the dialled number (`prefix = "01#"`).
    Prefix(String),
}

/// One SIM port of a GSM gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: PortName,
    pub route: PortRoute,
    /// Concurrent calls on this port (`max_calls`, default 1: one SIM, one
    /// call).
    pub max_calls: u32,
}

/// The ports of a `gsm_gateway` trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub ports: Vec<PortConfig>,
    pub strategy: PortStrategy,
    /// A port reported failed by `call_failed` is skipped this long
    /// (`port_cooldown_secs`, default 60).
    pub cooldown: Duration,
}

/// One validated `[trunk.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkConfig {
    pub name: TrunkName,
    /// `enabled` (default true). A disabled trunk is validated like any
    /// other but never resolved, qualified, registered, identified or
    /// dialled.
    pub enabled: bool,
    pub kind: TrunkKind,
    /// Every SIP peer of the trunk: first the `contacts` in failover order,
    /// then any port contacts of a gateway not already listed.
    pub contacts: Vec<String>,
    /// How many of `contacts` come from the `contacts` key (the failover
    /// list); the rest belong to gateway ports.
    pub failover_len: usize,
    pub identify: Vec<IpNet>,
    pub credentials: Option<Credentials>,
    pub from_user: Option<String>,
    pub from_domain: Option<String>,
    pub send_pai: bool,
    pub registration: Option<RegistrationConfig>,
    pub qualify: Option<QualifyConfig>,
    pub max_calls: Option<u32>,
    pub max_cps: Option<u32>,
    /// Dialplan context for calls identified as coming from this trunk.
    pub context: Option<String>,
    pub allow: Vec<Codec>,
    /// Name of a dialplan numbering rule set, carried for the switch.
    pub numbering: Option<String>,
    /// How the trunk's peer sends and expects DTMF (`dtmf_mode`; RFC 4733
    /// by default).
    pub dtmf_mode: carillon_mediactl::DtmfMode,
    /// Present exactly for `kind = "gsm_gateway"`.
    pub gateway: Option<GatewayConfig>,
}

/// Every trunk of a configuration, in file order, with the identify table
/// (of the enabled trunks) and the loader's warnings.
#[derive(Debug, Clone)]
pub struct TrunkSet {
    pub(crate) trunks: Vec<TrunkConfig>,
    pub(crate) identify: PrefixTable<usize>,
    pub(crate) warnings: Vec<ConfigProblem>,
}

impl TrunkSet {
    pub(crate) fn new(trunks: Vec<TrunkConfig>, warnings: Vec<ConfigProblem>) -> TrunkSet {
        let entries = trunks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.enabled)
            .flat_map(|(i, t)| t.identify.iter().map(move |net| (*net, i)))
            .collect();
        TrunkSet {
            trunks,
            identify: PrefixTable::new(entries),
            warnings,
        }
    }

    /// No trunks at all (no `trunks.toml`).
    pub fn empty() -> TrunkSet {
        TrunkSet::new(Vec::new(), Vec::new())
    }

    /// What the loader found suspicious but valid, e.g. an enabled trunk
    /// still holding a `CHANGE-ME` placeholder or an `.example` host
    /// (`check-config` prints these as `warning:` lines).
    pub fn warnings(&self) -> &[ConfigProblem] {
        &self.warnings
    }

    /// The enabled trunk whose `identify` list holds the most specific
    /// network containing `src_ip` (longest prefix wins; on equal prefixes, which
    /// the loader refuses between trunks, the first trunk).
    pub fn identify(&self, src_ip: IpAddr) -> Option<&TrunkName> {
        self.identify
            .lookup(src_ip)
            .and_then(|&i| self.trunks.get(i))
            .map(|t| &t.name)
    }

    pub fn get(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name.as_str() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TrunkConfig> {
        self.trunks.iter()
    }

    pub fn len(&self) -> usize {
        self.trunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trunks.is_empty()
    }

    /// How many trunks are enabled (the rest are validated, never started).
    pub fn enabled_len(&self) -> usize {
        self.trunks.iter().filter(|t| t.enabled).count()
    }
}
