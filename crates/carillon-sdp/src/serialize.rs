//! The SDP writer: CRLF line ends and the canonical line order of
//! RFC 8866 §5:
//!
//! ```text
//! session: v o s i u e* p* c b* (t r*)+ z k a* ; media: m i c b* k a*
//! ```
//!
//! Lines with unknown type letters are written just before the section's
//! `a=` lines. An empty `t=` list is written as `t=0 0` and an empty
//! session name as `s= ` (RFC 8866 §5.3), so the output is always valid.

use std::fmt::{self, Display, Formatter};

use crate::session::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, Rtcp, RtpMap, SessionDescription,
    UnknownLine,
};

impl SessionDescription {
    /// The serialized body, CRLF-terminated.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl Display for SessionDescription {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("v=0\r\n")?;
        write!(f, "o={}\r\n", self.origin)?;
        if self.session_name.is_empty() {
            f.write_str("s= \r\n")?;
        } else {
            write!(f, "s={}\r\n", self.session_name)?;
        }
        line(f, 'i', self.information.as_deref())?;
        line(f, 'u', self.uri.as_deref())?;
        for email in &self.emails {
            write!(f, "e={email}\r\n")?;
        }
        for phone in &self.phones {
            write!(f, "p={phone}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        bandwidths(f, &self.bandwidths)?;
        if self.times.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.times {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        line(f, 'z', self.time_zones.as_deref())?;
        line(f, 'k', self.encryption_key.as_deref())?;
        unknown(f, &self.unknown)?;
        attributes(f, &self.attributes)?;
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl Display for MediaDescription {
    /// The `m=` section, each line CRLF-terminated.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media.as_str(), self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.proto)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        line(f, 'i', self.title.as_deref())?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        bandwidths(f, &self.bandwidths)?;
        line(f, 'k', self.encryption_key.as_deref())?;
        unknown(f, &self.unknown)?;
        attributes(f, &self.attributes)
    }
}

fn line(f: &mut Formatter<'_>, kind: char, value: Option<&str>) -> fmt::Result {
    match value {
        Some(v) => write!(f, "{kind}={v}\r\n"),
        None => Ok(()),
    }
}

fn bandwidths(f: &mut Formatter<'_>, list: &[Bandwidth]) -> fmt::Result {
    list.iter()
        .try_for_each(|b| write!(f, "b={}:{}\r\n", b.bwtype, b.value))
}

fn unknown(f: &mut Formatter<'_>, list: &[UnknownLine]) -> fmt::Result {
    list.iter()
        .try_for_each(|u| write!(f, "{}={}\r\n", u.kind, u.value))
}

fn attributes(f: &mut Formatter<'_>, list: &[Attribute]) -> fmt::Result {
    list.iter().try_for_each(|a| write!(f, "a={a}\r\n"))
}

impl Display for Origin {
    /// The value of `o=`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type.as_str(),
            self.address
        )
    }
}

impl Display for Connection {
    /// The value of `c=`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.net_type,
            self.addr_type.as_str(),
            self.address
        )
    }
}

impl Display for RtpMap {
    /// The value of `a=rtpmap:`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        match self.channels {
            Some(ch) => write!(f, "/{ch}"),
            None => Ok(()),
        }
    }
}

impl Display for Rtcp {
    /// The value of `a=rtcp:`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        match &self.connection {
            Some(c) => write!(f, " {c}"),
            None => Ok(()),
        }
    }
}

impl Display for Attribute {
    /// The value of the `a=` line (without `a=`).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::RtpMap(m) => write!(f, "rtpmap:{m}"),
            Self::Fmtp(p) => write!(f, "fmtp:{} {}", p.payload_type, p.params),
            Self::Ptime(ms) => write!(f, "ptime:{ms}"),
            Self::MaxPtime(ms) => write!(f, "maxptime:{ms}"),
            Self::Direction(d) => f.write_str(d.as_str()),
            Self::Rtcp(r) => write!(f, "rtcp:{r}"),
            Self::RtcpMux => f.write_str("rtcp-mux"),
            Self::Other { name, value } => match value {
                Some(v) => write!(f, "{name}:{v}"),
                None => f.write_str(name),
            },
        }
    }
}
