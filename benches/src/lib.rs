//! Shared fixtures for Carillon's benchmarks: realistic SIP messages as a
//! softphone (Zoiper) or a carrier (Twilio) sends them, and the header reads
//! a switch does on every request. Owns no protocol logic; the criterion
//! bench (`benches/sip_parse.rs`) and the callgrind driver
//! (`examples/parse_count.rs`) both use these so their figures compare.

use bytes::Bytes;
use carillon_sip::{HeaderName, Message};

/// An INVITE with an SDP offer, shaped like a Zoiper 5 call through a
/// carrier edge (about 900 bytes).
pub const INVITE: &[u8] =
    b"INVITE sip:+15551230001@sip.carillon.example:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.34:52174;branch=z9hG4bK-524287-1---5c8f3a2b9d1e7f40;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:8013@203.0.113.45:52174;transport=UDP>\r\n\
To: <sip:+15551230001@sip.carillon.example>\r\n\
From: \"Agent 8013\"<sip:8013@sip.carillon.example>;tag=7a1c9e42\r\n\
Call-ID: YjM4ZDk2NzE0ZTlkNGE2ZTBkNjQ3N2RkYTlhZTQ1NDI\r\n\
CSeq: 2 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Z 5.6.4 v2.10.19.9\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 267\r\n\
\r\n\
v=0\r\n\
o=Z 1700000000000 1 IN IP4 203.0.113.45\r\n\
s=Z\r\n\
c=IN IP4 203.0.113.45\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 0 8 101 9\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n";

/// A REGISTER carrying credentials (the second of the two a phone sends).
pub const REGISTER: &[u8] = b"REGISTER sip:sip.carillon.example;transport=UDP SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.34:52174;branch=z9hG4bK-524287-1---0d4e5c6b7a8f9012;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:8013@203.0.113.45:52174;rinstance=1f2e3d4c5b6a7980;transport=UDP>;expires=3600\r\n\
To: <sip:8013@sip.carillon.example;transport=UDP>\r\n\
From: <sip:8013@sip.carillon.example;transport=UDP>;tag=3b9f1a7c\r\n\
Call-ID: MTk2ZDE0ZjU2YTc4NDBkMmI1ZmU3OGE2OTk0ZTZjOTE\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Z 5.6.4 v2.10.19.9\r\n\
Authorization: Digest username=\"8013\",realm=\"carillon\",nonce=\"5f2b9c1d7e3a4b6c\",uri=\"sip:sip.carillon.example;transport=UDP\",response=\"9c7b5a3f1e2d4c6b8a0f9e8d7c6b5a43\",cnonce=\"6f1e2d3c4b5a6978\",nc=00000001,qop=auth,algorithm=MD5\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\
\r\n";

/// What a switch reads from every request before acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchKeys {
    pub branch: String,
    pub from_tag: String,
    pub call_id: String,
    pub cseq: u32,
}

/// Parses with Carillon's parser and reads the transaction and dialog keys.
pub fn carillon_parse_keys(buf: Bytes) -> Option<SwitchKeys> {
    let m = Message::parse(buf).ok()?;
    let branch = m.with_top_via(|v| v.branch().map(str::to_owned))??;
    let from_tag = m.tag(HeaderName::From)?;
    let call_id = m.call_id()?.into_owned();
    let cseq = m.cseq()?.seq;
    Some(SwitchKeys {
        branch,
        from_tag,
        call_id,
        cseq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invite_fixture_parses_with_its_whole_sdp_body() {
        let m = Message::parse(Bytes::from_static(INVITE)).unwrap();
        assert_eq!(m.body().len(), 267);
        let k = carillon_parse_keys(Bytes::from_static(INVITE)).unwrap();
        assert_eq!(k.branch, "z9hG4bK-524287-1---5c8f3a2b9d1e7f40");
        assert_eq!(k.from_tag, "7a1c9e42");
        assert_eq!(k.cseq, 2);
    }

    #[test]
    fn the_register_fixture_yields_the_switch_keys() {
        let k = carillon_parse_keys(Bytes::from_static(REGISTER)).unwrap();
        assert_eq!(k.call_id, "MTk2ZDE0ZjU2YTc4NDBkMmI1ZmU3OGE2OTk0ZTZjOTE");
        assert_eq!(k.from_tag, "3b9f1a7c");
        assert_eq!(k.cseq, 2);
    }
}
