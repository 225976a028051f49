//! Our side of the wire: the local address and transport the trunks speak
//! from, fresh identifiers (branch, tag, Call-ID) from a seeded RNG, and
//! the two requests this crate originates, OPTIONS (RFC 3261 §11) and
//! REGISTER (§10.2), written with [`carillon_sip::MessageBuilder`].
//!
//! Owns only building bytes; sending them is the caller's (`poll_transmit`).

use bytes::Bytes;
use carillon_sip::{MessageBuilder, Method};
use carillon_transaction::TimerConfig;
use rand_chacha::rand_core::RngCore;

/// The transport our requests leave on; written in Via (RFC 3261 §18.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Reliable transports need no retransmission (RFC 3261 §17.1.2.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// Where our requests come from, and the seed of every identifier.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Host written in Via sent-by and Contact (an IP or a name; a bare
    /// IPv6 address is bracketed when written).
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// `User-Agent` header value, if any.
    pub user_agent: Option<String>,
    /// Seed of the RNG behind branches, tags, Call-IDs and cnonces.
    pub rng_seed: [u8; 32],
    /// Transaction timers (T1 drives OPTIONS/REGISTER retransmission over
    /// UDP and Timer F, 64×T1, the REGISTER timeout).
    pub timers: TimerConfig,
}

impl LocalConfig {
    /// `host:port` with an IPv6 host bracketed.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport.via_token(),
            self.host_port()
        )
    }

    fn contact_uri(&self, user: &str) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{user}@{}", self.host_port()),
            Transport::Tcp => format!("sip:{user}@{};transport=tcp", self.host_port()),
            Transport::Tls => format!("sips:{user}@{}", self.host_port()),
        }
    }
}

/// 16 lowercase hex digits.
pub(crate) fn token(rng: &mut impl RngCore) -> String {
    format!("{:016x}", rng.next_u64())
}

/// A fresh RFC 3261 branch (magic cookie first, §8.1.1.7).
pub(crate) fn branch(rng: &mut impl RngCore) -> String {
    format!("z9hG4bK{}", token(rng))
}

/// An OPTIONS ping to `contact` (RFC 3261 §11.1): a fresh Call-ID per ping.
pub(crate) struct Options<'a> {
    pub contact: &'a str,
    pub from_domain: &'a str,
    pub branch: &'a str,
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub cseq: u32,
}

pub(crate) fn options(local: &LocalConfig, o: &Options<'_>) -> Bytes {
    let mut b = MessageBuilder::request(&Method::Options, o.contact)
        .header("Via", local.via(o.branch))
        .header("Max-Forwards", "70")
        .header(
            "From",
            format!("<sip:carillon@{}>;tag={}", o.from_domain, o.from_tag),
        )
        .header("To", format!("<{}>", o.contact))
        .header("Call-ID", o.call_id)
        .header("CSeq", format!("{} OPTIONS", o.cseq))
        .header("Accept", "application/sdp");
    if let Some(ua) = &local.user_agent {
        b.push_header("User-Agent", ua.as_str());
    }
    b.build()
}

/// A REGISTER for `user@domain` binding our contact (RFC 3261 §10.2).
pub(crate) struct Register<'a> {
    pub registrar: &'a str,
    pub user: &'a str,
    pub domain: &'a str,
    pub branch: &'a str,
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub cseq: u32,
    pub expires: u32,
    pub authorization: Option<(&'a str, &'a str)>,
}

pub(crate) fn register(local: &LocalConfig, r: &Register<'_>) -> Bytes {
    let aor = format!("sip:{}@{}", r.user, r.domain);
    let mut b = MessageBuilder::request(&Method::Register, r.registrar)
        .header("Via", local.via(r.branch))
        .header("Max-Forwards", "70")
        .header("From", format!("<{aor}>;tag={}", r.from_tag))
        .header("To", format!("<{aor}>"))
        .header("Call-ID", r.call_id)
        .header("CSeq", format!("{} REGISTER", r.cseq))
        .header("Contact", format!("<{}>", local.contact_uri(r.user)))
        .header("Expires", r.expires.to_string());
    if let Some((name, value)) = r.authorization {
        b.push_header(name, value);
    }
    if let Some(ua) = &local.user_agent {
        b.push_header("User-Agent", ua.as_str());
    }
    b.build()
}

/// Our Contact URI for registrations of `user`.
pub(crate) fn contact_uri(local: &LocalConfig, user: &str) -> String {
    local.contact_uri(user)
}
