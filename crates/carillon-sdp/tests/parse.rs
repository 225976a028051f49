//! Parsing and serialization of realistic SDP bodies.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use carillon_sdp::{
    AddrType, Attribute, CodecName, Connection, Direction, MediaType, ParseError, Rtcp,
    SessionDescription,
};
use support::*;

fn parse(s: &str) -> SessionDescription {
    s.parse().unwrap_or_else(|e| panic!("{e}\n{s}"))
}

#[test]
fn every_sample_parses_and_survives_a_serialize_parse_round_trip() {
    for (name, text) in ALL {
        let sd = parse(text);
        let again = SessionDescription::parse(&sd.to_bytes()).unwrap();
        assert_eq!(again, sd, "{name}");
    }
}

#[test]
fn serialization_uses_crlf_only() {
    let out = parse(BARESIP).to_string();
    assert!(out.ends_with("\r\n"));
    assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
}

#[test]
fn a_crlf_sample_serializes_back_to_the_same_bytes() {
    for text in [ZOIPER, TWILIO, DINSTAR, LINPHONE, WEBRTC_IPV6, IPV6_PLAIN] {
        assert_eq!(parse(text).to_string(), text);
    }
}

#[test]
fn lf_only_input_serializes_to_the_same_lines_with_crlf() {
    assert_eq!(parse(BARESIP).to_string(), BARESIP.replace('\n', "\r\n"));
}

#[test]
fn zoiper_offer_has_its_fields_typed() {
    let sd = parse(ZOIPER);
    assert_eq!(sd.origin.username, "Z");
    assert_eq!(sd.origin.session_id, "1700000000123");
    assert_eq!(sd.origin.session_version, 1);
    assert_eq!(sd.session_name, "Z");
    assert_eq!(
        sd.connection.as_ref().and_then(Connection::ip),
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 34)))
    );
    assert_eq!(sd.media.len(), 1);
    let audio = &sd.media[0];
    assert_eq!(audio.media, MediaType::Audio);
    assert_eq!(audio.port, 52018);
    assert_eq!(audio.proto, "RTP/AVP");
    assert_eq!(audio.formats, ["106", "9", "98", "101", "0", "8", "3"]);
    assert_eq!(audio.rtpmap(106).map(|m| m.codec()), Some(CodecName::Opus));
    assert_eq!(audio.rtpmap(106).and_then(|m| m.channels), Some(2));
    assert_eq!(audio.fmtp(101), Some("0-16"));
    assert_eq!(audio.direction(), Some(Direction::SendRecv));
    assert!(audio.rtcp_mux());
}

#[test]
fn static_payload_types_without_rtpmap_resolve_from_rfc_3551() {
    let sd = parse(LINPHONE);
    let audio = &sd.media[0];
    assert!(audio.rtpmap(18).is_none());
    let g729 = audio.resolve_payload_type(18).unwrap();
    assert_eq!(g729.codec(), CodecName::G729);
    assert_eq!(g729.clock_rate, 8000);
    assert_eq!(audio.fmtp(18), Some("annexb=yes"));
    // The borrowing form: a written rtpmap is borrowed, a static one built.
    assert!(matches!(
        audio.resolve_payload_type_ref(96),
        Some(std::borrow::Cow::Borrowed(_))
    ));
    for pt in [96, 97, 101, 18, 0, 8, 3, 9, 127] {
        assert_eq!(
            audio
                .resolve_payload_type_ref(pt)
                .map(std::borrow::Cow::into_owned),
            audio.resolve_payload_type(pt),
            "{pt}"
        );
    }
}

#[test]
fn linphone_offer_keeps_session_attributes_and_both_media_sections() {
    let sd = parse(LINPHONE);
    assert_eq!(sd.attributes.len(), 2);
    assert_eq!(
        sd.attributes[1],
        Attribute::Other {
            name: "record".into(),
            value: Some("off".into())
        }
    );
    assert_eq!(sd.media.len(), 2);
    assert_eq!(sd.media[1].media, MediaType::Video);
    assert_eq!(sd.media[1].port, 9078);
    assert_eq!(
        sd.media[0].rtcp(),
        Some(&Rtcp {
            port: 7079,
            connection: None
        })
    );
    assert_eq!(
        sd.media[0].other_attribute("rtcp-fb"),
        Some(Some("* trr-int 1000"))
    );
}

#[test]
fn dinstar_rtcp_attribute_with_address_is_typed() {
    let sd = parse(DINSTAR);
    let rtcp = sd.media[0].rtcp().unwrap();
    assert_eq!(rtcp.port, 10001);
    assert_eq!(
        rtcp.connection.as_ref().and_then(Connection::ip),
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 11, 2)))
    );
    assert_eq!(sd.media[0].fmtp(18), Some("annexb=no"));
}

#[test]
fn twilio_ptime_and_maxptime_are_typed() {
    let sd = parse(TWILIO);
    assert_eq!(sd.session_name, "Twilio Media Gateway");
    assert_eq!(sd.media[0].ptime(), Some(20));
    assert_eq!(sd.media[0].maxptime(), Some(150));
}

#[test]
fn baresip_bandwidth_and_unknown_attributes_are_kept() {
    let sd = parse(BARESIP);
    let audio = &sd.media[0];
    assert_eq!(audio.bandwidths[0].bwtype, "AS");
    assert_eq!(audio.bandwidths[0].value, 64);
    assert_eq!(audio.other_attribute("rtcp-rsize"), Some(None));
    assert!(audio.other_attribute("ssrc").is_some());
}

#[test]
fn ipv6_connections_are_typed_at_media_level() {
    let sd = parse(WEBRTC_IPV6);
    assert_eq!(sd.origin.addr_type, AddrType::Ip6);
    assert!(sd.connection.is_none());
    let c = sd.media_connection(&sd.media[0]).unwrap();
    assert_eq!(c.addr_type, AddrType::Ip6);
    assert_eq!(c.ip(), Some("2001:db8::1".parse().unwrap()));
    assert_eq!(sd.media[0].proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(
        sd.attributes[1],
        Attribute::Other {
            name: "msid-semantic".into(),
            value: Some(" WMS".into())
        }
    );
}

#[test]
fn unknown_type_letters_are_kept_and_written_back() {
    let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nx=vendor thing\r\nm=audio 4000 RTP/AVP 0\r\ny=media thing\r\na=sendrecv\r\n";
    let sd = parse(text);
    assert_eq!(sd.unknown[0].kind, 'x');
    assert_eq!(sd.media[0].unknown[0].value, "media thing");
    assert_eq!(sd.to_string(), text);
}

#[test]
fn session_level_lines_are_written_in_canonical_order() {
    let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\na=tool:x\r\nt=0 0\r\nc=IN IP4 10.0.0.1\r\nb=CT:128\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:20\r\nc=IN IP4 10.0.0.2\r\n";
    let out = parse(text).to_string();
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nb=CT:128\r\nt=0 0\r\na=tool:x\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\na=ptime:20\r\n"
    );
}

#[test]
fn missing_time_and_empty_session_name_are_tolerated_and_written_validly() {
    let sd = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=\nm=audio 4000 RTP/AVP 0\n");
    assert_eq!(sd.session_name, "");
    assert!(sd.times.is_empty());
    assert_eq!(
        sd.to_string(),
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns= \r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    );
}

#[test]
fn unparsable_known_attributes_are_kept_verbatim() {
    let sd = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\na=ptime:twenty\na=rtpmap:300 X/1\n");
    assert_eq!(sd.media[0].ptime(), None);
    assert_eq!(
        sd.media[0].attributes[0],
        Attribute::Other {
            name: "ptime".into(),
            value: Some("twenty".into())
        }
    );
    assert!(sd.to_string().contains("a=rtpmap:300 X/1\r\n"));
}

#[test]
fn port_count_is_parsed_and_written() {
    let sd = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=video 49170/2 RTP/AVP 31\n");
    assert_eq!(sd.media[0].port, 49170);
    assert_eq!(sd.media[0].port_count, Some(2));
    assert!(sd.to_string().contains("m=video 49170/2 RTP/AVP 31\r\n"));
}

#[test]
fn errors_name_the_offending_line() {
    let cases: [(&str, ParseError); 10] = [
        ("", ParseError::Empty),
        ("\r\n\r\n", ParseError::Empty),
        (
            "o=- 1 1 IN IP4 1.2.3.4\n",
            ParseError::MissingVersion { line: 1 },
        ),
        (
            "v=1\n",
            ParseError::UnsupportedVersion {
                line: 1,
                version: "1".into(),
            },
        ),
        ("v=0\ns=-\n", ParseError::MissingOrigin),
        (
            "v=0\no=- x 1 IN IP4 1.2.3.4\n",
            ParseError::InvalidOrigin { line: 2 },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4\n",
            ParseError::InvalidConnection { line: 4 },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 70000 RTP/AVP 0\n",
            ParseError::InvalidMedia {
                line: 5,
                reason: "bad port",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\n\ns=-\ngarbage\n",
            ParseError::MalformedLine { line: 5 },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\nt=0 0\n",
            ParseError::MisplacedLine { line: 6, kind: 't' },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            SessionDescription::parse(text.as_bytes()),
            Err(expected),
            "{text:?}"
        );
    }
    let dup = SessionDescription::parse(b"v=0\no=- 1 1 IN IP4 1.2.3.4\no=- 1 1 IN IP4 1.2.3.4\n");
    assert_eq!(dup.clone().err().and_then(|e| e.line()), Some(3));
    assert_eq!(dup.err().map(|e| e.status_code()), Some(400));
    assert_eq!(
        SessionDescription::parse(b"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=\xff\n"),
        Err(ParseError::InvalidUtf8 { line: 3 })
    );
}

#[test]
fn hold_is_recognized_from_sendonly_inactive_and_zero_address() {
    assert!(parse(HOLD_SENDONLY).is_hold());
    assert!(parse(HOLD_SENDONLY).media[0].is_hold());
    assert!(parse(HOLD_2543).is_hold());
    assert!(!parse(HOLD_2543).media[0].is_hold(), "c= is session level");
    assert!(parse(&HOLD_SENDONLY.replace("sendonly", "inactive")).is_hold());
    assert!(!parse(&HOLD_SENDONLY.replace("sendonly", "recvonly")).is_hold());
    for text in [ZOIPER, BARESIP, TWILIO, DINSTAR, LINPHONE] {
        assert!(!parse(text).is_hold());
    }
    let mut media_level = parse(TWILIO);
    media_level.media[0].connection = Some(Connection::from_ip(Ipv4Addr::UNSPECIFIED.into()));
    assert!(media_level.media[0].is_hold());
    assert!(media_level.is_hold());
}

#[test]
fn session_level_direction_applies_to_media_without_their_own() {
    let sd = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\na=inactive\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\na=sendrecv\n");
    assert_eq!(sd.media_direction(&sd.media[0]), Direction::Inactive);
    assert_eq!(sd.media_direction(&sd.media[1]), Direction::SendRecv);
    assert!(!sd.is_hold());
}

#[test]
fn bump_version_increments_only_the_origin_version() {
    let sd = parse(DINSTAR);
    let next = sd.with_bumped_version();
    assert_eq!(next.origin.session_version, 1_700_000_002);
    assert_eq!(next.origin.session_id, sd.origin.session_id);
    assert_eq!(next.media, sd.media);
    assert!(next
        .to_string()
        .contains("o=DinstarSIP 1700000000 1700000002 IN IP4"));
}

#[test]
fn set_direction_replaces_the_existing_direction_attribute() {
    let mut sd = parse(ZOIPER);
    sd.media[0].set_direction(Direction::SendOnly);
    let directions = sd.media[0]
        .attributes
        .iter()
        .filter(|a| matches!(a, Attribute::Direction(_)))
        .count();
    assert_eq!(directions, 1);
    assert_eq!(sd.media[0].direction(), Some(Direction::SendOnly));
    assert!(sd.is_hold());
}
