//! RFC 3264 offer/answer against realistic offers.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use carillon_sdp::{
    answer, apply_answer, offer, AnswerPolicy, CodecName, Connection, Direction, MediaPlan,
    MediaType, NegotiationError, OfferPolicy, SessionDescription,
};
use support::*;

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const RELAY_PORT: u16 = 30_000;

fn parse(s: &str) -> SessionDescription {
    s.parse().unwrap()
}

fn policy(allowed: &[CodecName]) -> AnswerPolicy {
    AnswerPolicy {
        allowed: allowed.to_vec(),
        prefer_offerer_order: false,
        local_address: RELAY,
        local_port: RELAY_PORT,
        telephone_event: true,
        ptime: Some(20),
        session_id: 42,
        session_version: 7,
        username: "carillon".into(),
    }
}

fn ulaw_alaw() -> AnswerPolicy {
    policy(&[CodecName::Pcmu, CodecName::Pcma])
}

fn answer_ok(offer_text: &str, policy: &AnswerPolicy) -> (SessionDescription, MediaPlan) {
    let (sd, plan) = answer(&parse(offer_text), policy).unwrap();
    // Every answer we write must parse back to itself.
    assert_eq!(SessionDescription::parse(&sd.to_bytes()).unwrap(), sd);
    (sd, plan)
}

#[test]
fn twilio_pcmu_offer_is_answered_with_pcmu_and_telephone_event() {
    let (sd, plan) = answer_ok(TWILIO, &ulaw_alaw());
    let text = sd.to_string();
    assert_eq!(
        text,
        "v=0\r\n\
o=carillon 42 7 IN IP4 203.0.113.7\r\n\
s=-\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
    assert_eq!(
        plan,
        MediaPlan {
            remote: Some("54.172.60.1:16184".parse().unwrap()),
            codec: CodecName::Pcmu,
            payload_type: 0,
            clock_rate: 8000,
            ptime_ms: 20,
            telephone_event_pt: Some(101),
            direction: Direction::SendRecv,
            rtcp_mux: false,
            remote_rtcp: None,
        }
    );
}

#[test]
fn pcmu_only_offer_against_alaw_only_policy_is_no_common_codec() {
    let result = answer(&parse(TWILIO), &policy(&[CodecName::Pcma]));
    assert_eq!(result.clone().err(), Some(NegotiationError::NoCommonCodec));
    assert_eq!(result.err().map(|e| e.status_code()), Some(488));
}

#[test]
fn pcma_only_offer_against_ulaw_only_policy_is_no_common_codec() {
    let result = answer(&parse(IPV6_PLAIN), &policy(&[CodecName::Pcmu]));
    assert_eq!(result.err(), Some(NegotiationError::NoCommonCodec));
}

#[test]
fn telephone_event_alone_is_not_a_common_codec() {
    let offer = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n";
    let allowed = [CodecName::Pcmu, CodecName::TelephoneEvent];
    assert_eq!(
        answer(&parse(offer), &policy(&allowed)).err(),
        Some(NegotiationError::NoCommonCodec)
    );
}

#[test]
fn offer_of_pcma_and_pcmu_with_alaw_policy_picks_pcma_only() {
    let offer = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 8 0 101");
    let (sd, plan) = answer_ok(&offer, &policy(&[CodecName::Pcma]));
    assert_eq!(plan.codec, CodecName::Pcma);
    assert_eq!(plan.payload_type, 8);
    assert_eq!(sd.media[0].formats, ["8", "101"]);
    assert!(sd.media[0].rtpmap(0).is_none());
}

#[test]
fn policy_order_wins_unless_the_offerer_order_is_preferred() {
    // Dinstar offers PCMA before PCMU.
    let (sd, plan) = answer_ok(DINSTAR, &ulaw_alaw());
    assert_eq!(plan.codec, CodecName::Pcmu);
    assert_eq!(sd.media[0].formats, ["0", "8", "101"]);

    let mut offerer_first = ulaw_alaw();
    offerer_first.prefer_offerer_order = true;
    let (sd, plan) = answer_ok(DINSTAR, &offerer_first);
    assert_eq!(plan.codec, CodecName::Pcma);
    assert_eq!(sd.media[0].formats, ["8", "0", "101"]);
}

#[test]
fn codec_parameters_of_accepted_formats_are_echoed() {
    let (sd, plan) = answer_ok(DINSTAR, &policy(&[CodecName::G729]));
    assert_eq!(plan.codec, CodecName::G729);
    assert_eq!(plan.payload_type, 18);
    assert_eq!(sd.media[0].fmtp(18), Some("annexb=no"));
    assert_eq!(sd.media[0].fmtp(101), Some("0-15"));
}

#[test]
fn offerer_dynamic_payload_types_are_kept_in_the_answer() {
    let (sd, plan) = answer_ok(ZOIPER, &policy(&[CodecName::Opus, CodecName::Pcmu]));
    assert_eq!(plan.codec, CodecName::Opus);
    assert_eq!(plan.payload_type, 106);
    assert_eq!(plan.clock_rate, 48000);
    // telephone-event at the codec's clock rate is preferred.
    assert_eq!(plan.telephone_event_pt, Some(98));
    assert_eq!(sd.media[0].formats, ["106", "0", "98"]);
    assert_eq!(sd.media[0].rtpmap(106).and_then(|m| m.channels), Some(2));
}

#[test]
fn telephone_event_keeps_the_offered_payload_type_at_8000() {
    let (_, plan) = answer_ok(ZOIPER, &ulaw_alaw());
    assert_eq!(plan.codec, CodecName::Pcmu);
    assert_eq!(plan.telephone_event_pt, Some(101));
    let (_, plan) = answer_ok(LINPHONE, &ulaw_alaw());
    assert_eq!(plan.telephone_event_pt, Some(100));
}

#[test]
fn telephone_event_is_left_out_when_the_policy_disallows_it_or_it_is_not_offered() {
    let mut no_dtmf = ulaw_alaw();
    no_dtmf.telephone_event = false;
    let (sd, plan) = answer_ok(TWILIO, &no_dtmf);
    assert_eq!(plan.telephone_event_pt, None);
    assert_eq!(sd.media[0].formats, ["0"]);

    let bare =
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
    let (sd, plan) = answer_ok(bare, &ulaw_alaw());
    assert_eq!(plan.telephone_event_pt, None);
    assert_eq!(sd.media[0].formats, ["0"]);
}

#[test]
fn offered_direction_is_reversed_in_the_answer() {
    let cases = [
        ("sendrecv", Direction::SendRecv),
        ("sendonly", Direction::RecvOnly),
        ("recvonly", Direction::SendOnly),
        ("inactive", Direction::Inactive),
    ];
    for (offered, expected) in cases {
        let text = TWILIO.replace("a=sendrecv", &format!("a={offered}"));
        let (sd, plan) = answer_ok(&text, &ulaw_alaw());
        assert_eq!(sd.media[0].direction(), Some(expected), "{offered}");
        assert_eq!(plan.direction, expected, "{offered}");
    }
}

#[test]
fn zero_address_hold_is_answered_recvonly_without_a_remote_address() {
    let (sd, plan) = answer_ok(HOLD_2543, &ulaw_alaw());
    assert_eq!(plan.remote, None);
    assert_eq!(plan.direction, Direction::RecvOnly);
    assert_eq!(sd.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(sd.connection, Some(Connection::from_ip(RELAY)));
}

#[test]
fn video_and_extra_audio_are_rejected_with_port_zero_in_offer_order() {
    let two_audio = format!("{LINPHONE}m=audio 7090 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n");
    let (sd, plan) = answer_ok(&two_audio, &ulaw_alaw());
    assert_eq!(sd.media.len(), 3);
    assert_eq!(sd.media[0].media, MediaType::Audio);
    assert_eq!(sd.media[0].port, RELAY_PORT);
    assert_eq!(sd.media[1].media, MediaType::Video);
    assert_eq!(sd.media[1].port, 0);
    assert_eq!(sd.media[1].formats, ["96", "97"]);
    assert!(sd.media[1].attributes.is_empty());
    assert_eq!(sd.media[2].port, 0);
    assert_eq!(plan.remote, Some("192.168.0.20:7078".parse().unwrap()));
    assert_eq!(plan.remote_rtcp, Some("192.168.0.20:7079".parse().unwrap()));
}

#[test]
fn the_first_audio_stream_without_a_common_codec_is_rejected_and_the_next_accepted() {
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
m=audio 4000 RTP/AVP 18\n\
m=audio 4002 RTP/AVP 8\n";
    let (sd, plan) = answer_ok(text, &ulaw_alaw());
    assert_eq!(sd.media[0].port, 0);
    assert_eq!(sd.media[1].port, RELAY_PORT);
    assert_eq!(plan.remote, Some("10.0.0.1:4002".parse().unwrap()));
}

#[test]
fn answer_always_carries_the_relay_address_never_the_offerers() {
    for (name, text) in [
        ("zoiper", ZOIPER),
        ("baresip", BARESIP),
        ("twilio", TWILIO),
        ("dinstar", DINSTAR),
        ("linphone", LINPHONE),
        ("ipv6", IPV6_PLAIN),
        ("hold", HOLD_2543),
    ] {
        let (sd, _) = answer_ok(text, &ulaw_alaw());
        let relay = Connection::from_ip(RELAY);
        assert_eq!(sd.connection.as_ref(), Some(&relay), "{name}");
        assert_eq!(sd.origin.address, "203.0.113.7", "{name}");
        for m in &sd.media {
            assert!(m.connection.is_none(), "{name}");
            assert!(m.port == 0 || m.port == RELAY_PORT, "{name}");
        }
        let offered_ip = parse(text).origin.address;
        assert!(!sd.to_string().contains(&offered_ip), "{name}");
    }
}

#[test]
fn ipv6_offer_gives_an_ipv6_remote_and_the_relay_may_be_ipv6_too() {
    let mut v6 = ulaw_alaw();
    v6.local_address = "2001:db8::99".parse().unwrap();
    let (sd, plan) = answer_ok(IPV6_PLAIN, &v6);
    assert_eq!(
        plan.remote,
        Some(SocketAddr::new("2001:db8:0:1::10".parse().unwrap(), 20000))
    );
    assert!(sd.to_string().contains("c=IN IP6 2001:db8::99\r\n"));
    assert!(sd
        .to_string()
        .contains("o=carillon 42 7 IN IP6 2001:db8::99\r\n"));
}

#[test]
fn ptime_is_echoed_else_taken_from_policy_within_maxptime() {
    let (sd, plan) = answer_ok(&TWILIO.replace("a=ptime:20", "a=ptime:30"), &ulaw_alaw());
    assert_eq!(sd.media[0].ptime(), Some(30));
    assert_eq!(plan.ptime_ms, 30);

    let (sd, plan) = answer_ok(ZOIPER, &ulaw_alaw());
    assert_eq!(sd.media[0].ptime(), Some(20));
    assert_eq!(plan.ptime_ms, 20);

    let mut long = ulaw_alaw();
    long.ptime = Some(60);
    let capped = TWILIO
        .replace("a=ptime:20\r\n", "")
        .replace("maxptime:150", "maxptime:40");
    let (_, plan) = answer_ok(&capped, &long);
    assert_eq!(plan.ptime_ms, 40);

    long.ptime = None;
    let (sd, plan) = answer_ok(ZOIPER, &long);
    assert_eq!(sd.media[0].ptime(), None);
    assert_eq!(plan.ptime_ms, 20);
}

#[test]
fn rtcp_mux_is_accepted_when_offered_and_rtcp_address_follows_a_rtcp() {
    let (sd, plan) = answer_ok(ZOIPER, &ulaw_alaw());
    assert!(plan.rtcp_mux);
    assert!(sd.media[0].rtcp_mux());
    let (sd, plan) = answer_ok(DINSTAR, &ulaw_alaw());
    assert!(!plan.rtcp_mux);
    assert!(!sd.media[0].rtcp_mux());
    assert_eq!(
        plan.remote_rtcp,
        Some("192.168.11.2:10001".parse().unwrap())
    );
}

#[test]
fn srtp_only_offers_are_unsupported_and_offers_without_audio_have_no_audio() {
    assert_eq!(
        answer(&parse(WEBRTC_IPV6), &ulaw_alaw()).err(),
        Some(NegotiationError::UnsupportedProtocol {
            proto: "UDP/TLS/RTP/SAVPF".into()
        })
    );
    let video_only =
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=video 4000 RTP/AVP 96\n";
    assert_eq!(
        answer(&parse(video_only), &ulaw_alaw()).err(),
        Some(NegotiationError::NoAudioStream)
    );
    let disabled_audio = video_only.replace("m=video 4000", "m=audio 0");
    assert_eq!(
        answer(&parse(&disabled_audio), &ulaw_alaw()).err(),
        Some(NegotiationError::NoAudioStream)
    );
}

#[test]
fn an_unusable_offer_username_falls_back_to_a_dash() {
    let mut p = ulaw_alaw();
    p.username = "two words".into();
    let (sd, _) = answer_ok(TWILIO, &p);
    assert_eq!(sd.origin.username, "-");
}

fn offer_policy() -> OfferPolicy {
    let mut p = OfferPolicy::new(
        RELAY,
        31_000,
        vec![CodecName::Pcma, CodecName::Opus, CodecName::Pcmu],
    );
    p.session_id = 99;
    p.session_version = 1;
    p.username = "carillon".into();
    p
}

#[test]
fn offer_lists_codecs_in_configured_order_with_telephone_event_and_ptime() {
    let sd = offer(&offer_policy());
    assert_eq!(
        sd.to_string(),
        "v=0\r\n\
o=carillon 99 1 IN IP4 203.0.113.7\r\n\
s=-\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 31000 RTP/AVP 8 96 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
}

#[test]
fn offer_skips_duplicates_and_unknown_codecs_and_honours_direction() {
    let mut p = offer_policy();
    p.codecs = vec![
        CodecName::Pcmu,
        CodecName::Other("speex".into()),
        CodecName::Pcmu,
        CodecName::TelephoneEvent,
    ];
    p.direction = Direction::SendOnly;
    p.telephone_event = false;
    p.rtcp_mux = true;
    let sd = offer(&p);
    assert_eq!(sd.media[0].formats, ["0"]);
    assert_eq!(sd.media[0].direction(), Some(Direction::SendOnly));
    assert!(sd.media[0].rtcp_mux());
    assert!(sd.is_hold());
}

#[test]
fn our_offer_answered_by_our_own_answer_gives_matching_plans() {
    let our_offer = offer(&offer_policy());
    let mut callee = policy(&[CodecName::Pcmu, CodecName::Pcma]);
    callee.local_address = "198.51.100.20".parse().unwrap();
    callee.local_port = 40_000;
    let (their_answer, callee_plan) = answer(&our_offer, &callee).unwrap();
    let plan = apply_answer(&our_offer, &their_answer).unwrap();
    assert_eq!(plan.codec, CodecName::Pcmu);
    assert_eq!(plan.payload_type, callee_plan.payload_type);
    assert_eq!(plan.telephone_event_pt, Some(101));
    assert_eq!(plan.remote, Some("198.51.100.20:40000".parse().unwrap()));
    assert_eq!(
        callee_plan.remote,
        Some("203.0.113.7:31000".parse().unwrap())
    );
    assert_eq!(plan.direction, Direction::SendRecv);
}

#[test]
fn apply_answer_takes_the_first_answered_format_that_was_offered() {
    let our_offer = offer(&offer_policy());
    let reply = "v=0\no=gw 5 5 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\n\
m=audio 6000 RTP/AVP 101 3 0 8\na=rtpmap:101 telephone-event/8000\na=ptime:30\na=recvonly\n";
    let plan = apply_answer(&our_offer, &parse(reply)).unwrap();
    assert_eq!(plan.codec, CodecName::Pcmu);
    assert_eq!(plan.payload_type, 0);
    assert_eq!(plan.telephone_event_pt, Some(101));
    assert_eq!(plan.ptime_ms, 30);
    assert_eq!(plan.direction, Direction::SendOnly);
    assert_eq!(plan.remote, Some("192.0.2.9:6000".parse().unwrap()));
}

#[test]
fn apply_answer_reports_rejection_mismatch_and_foreign_codecs() {
    let our_offer = offer(&offer_policy());
    let rejected =
        "v=0\no=gw 5 5 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\nm=audio 0 RTP/AVP 0\n";
    assert_eq!(
        apply_answer(&our_offer, &parse(rejected)).err(),
        Some(NegotiationError::Rejected)
    );
    let foreign = rejected.replace("audio 0 RTP/AVP 0", "audio 6000 RTP/AVP 18");
    assert_eq!(
        apply_answer(&our_offer, &parse(&foreign)).err(),
        Some(NegotiationError::NoCommonCodec)
    );
    let two = format!("{rejected}m=audio 0 RTP/AVP 0\n");
    assert_eq!(
        apply_answer(&our_offer, &parse(&two)).err(),
        Some(NegotiationError::MediaCountMismatch {
            offered: 1,
            answered: 2
        })
    );
}

#[test]
fn apply_answer_sees_a_held_answerer_as_not_receiving() {
    let our_offer = offer(&offer_policy());
    let reply =
        "v=0\no=gw 5 5 IN IP4 192.0.2.9\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 6000 RTP/AVP 8\n";
    let plan = apply_answer(&our_offer, &parse(reply)).unwrap();
    assert_eq!(plan.codec, CodecName::Pcma);
    assert_eq!(plan.remote, None);
    assert_eq!(plan.direction, Direction::RecvOnly);
}

#[test]
fn a_hold_re_offer_from_us_bumps_the_version_and_reads_as_hold() {
    let first = offer(&offer_policy());
    let mut reoffer = first.with_bumped_version();
    reoffer.media[0].set_direction(Direction::SendOnly);
    assert_eq!(
        reoffer.origin.session_version,
        first.origin.session_version + 1
    );
    assert!(reoffer.is_hold());
    let (reply, callee_plan) = answer(&reoffer, &ulaw_alaw()).unwrap();
    assert_eq!(callee_plan.direction, Direction::RecvOnly);
    let plan = apply_answer(&reoffer, &reply).unwrap();
    assert_eq!(plan.direction, Direction::SendOnly);
}
