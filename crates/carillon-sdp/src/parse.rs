//! The SDP parser (RFC 8866 §5 and §9 grammar), tolerant where real phones
//! and gateways are sloppy:
//!
//! - CRLF or bare LF line ends, blank lines and trailing spaces ignored;
//! - unknown type letters and unknown or unparsable attributes kept verbatim;
//! - missing `s=` or `t=` accepted; line order inside a section not enforced.
//!
//! It is strict where the switch needs the value: `v=0` first, one `o=`
//! with a numeric version, well-formed `c=`, `b=`, `t=` and `m=` lines.
//! Every error carries its 1-based line number. The parser never panics.
//!
//! ```text
//!   v= ─► session section ──m=──► media section ──m=──► media section ...
//! ```

use std::str::FromStr;

use crate::direction::Direction;
use crate::error::ParseError;
use crate::session::{
    AddrType, Attribute, Bandwidth, Connection, Fmtp, MediaDescription, MediaType, Origin, Rtcp,
    RtpMap, SessionDescription, Timing, UnknownLine,
};

impl SessionDescription {
    /// Parses an SDP body.
    ///
    /// # Errors
    /// A [`ParseError`] naming the offending line.
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        Parser::default().run(input)
    }
}

impl FromStr for SessionDescription {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

#[derive(Default)]
struct Parser {
    seen_version: bool,
    origin: Option<Origin>,
    session_name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    times: Vec<Timing>,
    time_zones: Option<String>,
    encryption_key: Option<String>,
    attributes: Vec<Attribute>,
    unknown: Vec<UnknownLine>,
    media: Vec<MediaDescription>,
}

/// The `\n`-separated pieces of `text`, as `text.split('\n')` gives them,
/// found with a byte search rather than a `char` pattern.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b'\n') {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `s.split_once(char::from(byte))` for an ASCII `byte`, by a byte scan
/// (a `char` pattern goes through the generic searcher).
fn split_once_byte(s: &str, byte: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == byte)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Whether an ASCII byte is `char::is_whitespace` (space, `\t`, `\n`,
/// vertical tab, form feed, `\r`).
fn is_ascii_ws(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// `text.split_whitespace()` as an iterator of pieces: for ASCII text a
/// byte scan, otherwise the standard (Unicode) split.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let ascii = text.is_ascii();
    let mut unicode = (!ascii).then(|| text.split_whitespace());
    let mut rest = if ascii { text } else { "" };
    std::iter::from_fn(move || {
        if let Some(it) = unicode.as_mut() {
            return it.next();
        }
        let start = rest.bytes().position(|b| !is_ascii_ws(b))?;
        let tail = rest.get(start..)?;
        let end = tail.bytes().position(is_ascii_ws).unwrap_or(tail.len());
        let (word, after) = (tail.get(..end)?, tail.get(end..)?);
        rest = after;
        Some(word)
    })
}

fn set_once<T>(slot: &mut Option<T>, value: T, line: usize, kind: char) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateLine { line, kind });
    }
    *slot = Some(value);
    Ok(())
}

impl Parser {
    fn run(self, input: &[u8]) -> Result<SessionDescription, ParseError> {
        // One UTF-8 check for the whole body; only a body that fails it is
        // checked line by line, so the first error is still the first bad
        // line's.
        match std::str::from_utf8(input) {
            Ok(text) => self.run_lines(lines(text).map(Ok::<_, std::str::Utf8Error>)),
            Err(_) => self.run_lines(input.split(|b| *b == b'\n').map(std::str::from_utf8)),
        }
    }

    fn run_lines<'a, E>(
        mut self,
        lines: impl Iterator<Item = Result<&'a str, E>>,
    ) -> Result<SessionDescription, ParseError> {
        for (index, text) in lines.enumerate() {
            let line = index + 1;
            let text = text.map_err(|_| ParseError::InvalidUtf8 { line })?;
            let end = text
                .bytes()
                .rposition(|b| !matches!(b, b'\r' | b' ' | b'\t'))
                .map_or(0, |i| i + 1);
            let text = text.get(..end).unwrap_or_default();
            if text.trim_start().is_empty() {
                continue;
            }
            let bytes = text.as_bytes();
            let kind = match (bytes.first(), bytes.get(1)) {
                (Some(k), Some(b'=')) if k.is_ascii_alphabetic() => char::from(*k),
                _ => return Err(ParseError::MalformedLine { line }),
            };
            let value = text.get(2..).unwrap_or_default();
            if !self.seen_version {
                if kind != 'v' {
                    return Err(ParseError::MissingVersion { line });
                }
                if value.trim() != "0" {
                    return Err(ParseError::UnsupportedVersion {
                        line,
                        version: value.to_owned(),
                    });
                }
                self.seen_version = true;
                continue;
            }
            if kind == 'm' {
                if self.origin.is_none() {
                    return Err(ParseError::MissingOrigin);
                }
                self.media.push(parse_media(value, line)?);
                continue;
            }
            match self.media.last_mut() {
                Some(media) => media_line(media, kind, value, line)?,
                None => self.session_line(kind, value, line)?,
            }
        }
        if !self.seen_version {
            return Err(ParseError::Empty);
        }
        let origin = self.origin.ok_or(ParseError::MissingOrigin)?;
        Ok(SessionDescription {
            origin,
            session_name: self.session_name.unwrap_or_default(),
            information: self.information,
            uri: self.uri,
            emails: self.emails,
            phones: self.phones,
            connection: self.connection,
            bandwidths: self.bandwidths,
            times: self.times,
            time_zones: self.time_zones,
            encryption_key: self.encryption_key,
            attributes: self.attributes,
            unknown: self.unknown,
            media: self.media,
        })
    }

    fn session_line(&mut self, kind: char, value: &str, line: usize) -> Result<(), ParseError> {
        match kind {
            'v' => return Err(ParseError::DuplicateLine { line, kind }),
            'o' => set_once(&mut self.origin, parse_origin(value, line)?, line, kind)?,
            's' => set_once(&mut self.session_name, value.trim().to_owned(), line, kind)?,
            'i' => set_once(&mut self.information, value.to_owned(), line, kind)?,
            'u' => set_once(&mut self.uri, value.to_owned(), line, kind)?,
            'e' => self.emails.push(value.to_owned()),
            'p' => self.phones.push(value.to_owned()),
            'c' => set_once(
                &mut self.connection,
                parse_connection(value, line)?,
                line,
                kind,
            )?,
            'b' => self.bandwidths.push(parse_bandwidth(value, line)?),
            't' => self.times.push(parse_timing(value, line)?),
            // An r= before any t= belongs to the implied `t=0 0`, which is
            // what the serializer writes for an empty time list.
            'r' => {
                if self.times.is_empty() {
                    self.times.push(Timing::default());
                }
                if let Some(t) = self.times.last_mut() {
                    t.repeats.push(value.to_owned());
                }
            }
            'z' => set_once(&mut self.time_zones, value.to_owned(), line, kind)?,
            'k' => set_once(&mut self.encryption_key, value.to_owned(), line, kind)?,
            'a' => self.attributes.push(parse_attribute(value)),
            _ => self.unknown.push(UnknownLine {
                kind,
                value: value.to_owned(),
            }),
        }
        Ok(())
    }
}

fn media_line(
    media: &mut MediaDescription,
    kind: char,
    value: &str,
    line: usize,
) -> Result<(), ParseError> {
    match kind {
        'i' => set_once(&mut media.title, value.to_owned(), line, kind)?,
        'c' => set_once(
            &mut media.connection,
            parse_connection(value, line)?,
            line,
            kind,
        )?,
        'b' => media.bandwidths.push(parse_bandwidth(value, line)?),
        'k' => set_once(&mut media.encryption_key, value.to_owned(), line, kind)?,
        'a' => media.attributes.push(parse_attribute(value)),
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
            return Err(ParseError::MisplacedLine { line, kind })
        }
        _ => media.unknown.push(UnknownLine {
            kind,
            value: value.to_owned(),
        }),
    }
    Ok(())
}

/// The whitespace-separated fields of `value` when there are exactly `N`.
fn fields<const N: usize>(value: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = words(value);
    for slot in &mut out {
        *slot = it.next()?;
    }
    it.next().is_none().then_some(out)
}

fn parse_origin(value: &str, line: usize) -> Result<Origin, ParseError> {
    let err = || ParseError::InvalidOrigin { line };
    let [username, session_id, version, net_type, addr_type, address] =
        fields::<6>(value).ok_or_else(err)?;
    if !session_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let session_version = version.parse::<u64>().map_err(|_| err())?;
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version,
        net_type: net_type.to_owned(),
        addr_type: AddrType::parse(addr_type),
        address: address.to_owned(),
    })
}

fn parse_connection(value: &str, line: usize) -> Result<Connection, ParseError> {
    let [net_type, addr_type, address] =
        fields::<3>(value).ok_or(ParseError::InvalidConnection { line })?;
    Ok(Connection {
        net_type: net_type.to_owned(),
        addr_type: AddrType::parse(addr_type),
        address: address.to_owned(),
    })
}

fn parse_bandwidth(value: &str, line: usize) -> Result<Bandwidth, ParseError> {
    let err = || ParseError::InvalidBandwidth { line };
    let (bwtype, number) = split_once_byte(value, b':').ok_or_else(err)?;
    let bwtype = bwtype.trim();
    if bwtype.is_empty() {
        return Err(err());
    }
    Ok(Bandwidth {
        bwtype: bwtype.to_owned(),
        value: number.trim().parse().map_err(|_| err())?,
    })
}

fn parse_timing(value: &str, line: usize) -> Result<Timing, ParseError> {
    let err = || ParseError::InvalidTiming { line };
    let [start, stop] = fields::<2>(value).ok_or_else(err)?;
    Ok(Timing {
        start: start.parse().map_err(|_| err())?,
        stop: stop.parse().map_err(|_| err())?,
        repeats: Vec::new(),
    })
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, ParseError> {
    let invalid = |reason| ParseError::InvalidMedia { line, reason };
    let mut fields = words(value);
    let media = fields.next().ok_or_else(|| invalid("missing media type"))?;
    let port_field = fields.next().ok_or_else(|| invalid("missing port"))?;
    let proto = fields.next().ok_or_else(|| invalid("missing protocol"))?;
    let (port, port_count) = match split_once_byte(port_field, b'/') {
        Some((port, count)) => (port, Some(count)),
        None => (port_field, None),
    };
    let port = port.parse::<u16>().map_err(|_| invalid("bad port"))?;
    let port_count = port_count
        .map(|c| c.parse::<u16>().map_err(|_| invalid("bad port count")))
        .transpose()?;
    let mut description = MediaDescription::new(
        MediaType::parse(media),
        port,
        proto,
        fields.map(str::to_owned).collect(),
    );
    description.port_count = port_count;
    Ok(description)
}

/// Parses the value of an `a=` line; anything not understood is kept
/// verbatim as [`Attribute::Other`].
pub(crate) fn parse_attribute(value: &str) -> Attribute {
    let (name, arg) = match split_once_byte(value, b':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    typed_attribute(name, arg).unwrap_or_else(|| Attribute::Other {
        name: name.to_owned(),
        value: arg.map(str::to_owned),
    })
}

fn typed_attribute(name: &str, arg: Option<&str>) -> Option<Attribute> {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    match arg {
        Some(arg) if is("rtpmap") => parse_rtpmap(arg).map(Attribute::RtpMap),
        Some(arg) if is("fmtp") => {
            let (pt, params) = split_once_byte(arg, b' ')?;
            let params = params.trim();
            if params.is_empty() {
                return None;
            }
            Some(Attribute::Fmtp(Fmtp {
                payload_type: parse_payload_type(pt)?,
                params: params.to_owned(),
            }))
        }
        Some(arg) if is("ptime") => arg.trim().parse().ok().map(Attribute::Ptime),
        Some(arg) if is("maxptime") => arg.trim().parse().ok().map(Attribute::MaxPtime),
        Some(arg) if is("rtcp") => parse_rtcp(arg).map(Attribute::Rtcp),
        None if is("rtcp-mux") => Some(Attribute::RtcpMux),
        None => Direction::from_attribute_name(name).map(Attribute::Direction),
        Some(_) => None,
    }
}

fn parse_payload_type(s: &str) -> Option<u8> {
    s.trim().parse::<u8>().ok().filter(|pt| *pt <= 127)
}

fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, encoding) = split_once_byte(arg.trim(), b' ')?;
    // `name/clock[/channels]`, nothing more.
    let (name, rates) = split_once_byte(encoding.trim(), b'/')?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let (clock_rate, channels) = match split_once_byte(rates, b'/') {
        Some((clock, channels)) if !channels.contains('/') => {
            (clock, Some(channels.parse::<u16>().ok()?))
        }
        Some(_) => return None,
        None => (rates, None),
    };
    let clock_rate = clock_rate.parse::<u32>().ok()?;
    Some(RtpMap {
        payload_type: parse_payload_type(pt)?,
        encoding: name.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_rtcp(arg: &str) -> Option<Rtcp> {
    let (port, connection) = match (fields::<1>(arg), fields::<4>(arg)) {
        (Some([port]), _) => (port, None),
        (_, Some([port, net_type, addr_type, address])) => (
            port,
            Some(Connection {
                net_type: net_type.to_owned(),
                addr_type: AddrType::parse(addr_type),
                address: address.to_owned(),
            }),
        ),
        _ => return None,
    };
    Some(Rtcp {
        port: port.parse().ok()?,
        connection,
    })
}

#[cfg(test)]
mod tests {
    use super::{lines, parse_rtpmap, split_once_byte, words};

    #[test]
    fn words_split_like_split_whitespace() {
        for text in [
            "",
            " ",
            "a",
            " IN  IP4\t127.0.0.1 ",
            "a\x0bb\x0cc\rd\ne",
            "x\u{a0}y z",
            "é  ü",
            "\x1cq",
        ] {
            let ours: Vec<&str> = words(text).collect();
            let std: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn split_once_byte_is_split_once() {
        for text in ["", ":", "a:", ":b", "rtpmap:0 PCMU/8000", "é:ü:x", "none"] {
            assert_eq!(
                split_once_byte(text, b':'),
                text.split_once(':'),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rtpmaps_parse_as_before() {
        for (arg, want) in [
            ("0 PCMU/8000", Some((0, "PCMU", 8000, None))),
            (" 96 opus/48000/2 ", Some((96, "opus", 48000, Some(2)))),
            ("0 PCMU", None),
            ("0 PCMU/8000/1/2", None),
            ("0 PCMU/8000/", None),
            ("0 /8000", None),
            ("0 PC MU/8000", None),
            ("128 PCMU/8000", None),
            ("0 PCMU/x", None),
        ] {
            let got =
                parse_rtpmap(arg).map(|m| (m.payload_type, m.encoding, m.clock_rate, m.channels));
            assert_eq!(
                got,
                want.map(|(p, e, c, ch)| (p, e.to_owned(), c, ch)),
                "{arg:?}"
            );
        }
    }

    #[test]
    fn lines_split_like_str_split() {
        for text in ["", "\n", "a", "a\n", "a\r\nb", "\n\nx\n", "é\nü"] {
            let ours: Vec<&str> = lines(text).collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }
}
