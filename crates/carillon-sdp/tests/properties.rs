//! Property tests: the parser never panics, serialization is a fixed
//! point after one round, and negotiation never panics on what parses.

use std::net::{IpAddr, Ipv4Addr};

use carillon_sdp::{
    answer, apply_answer, offer, AnswerPolicy, CodecName, OfferPolicy, SessionDescription,
};
use proptest::prelude::*;

fn policy() -> AnswerPolicy {
    AnswerPolicy {
        allowed: vec![CodecName::Pcmu, CodecName::Pcma, CodecName::Opus],
        prefer_offerer_order: false,
        local_address: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        local_port: 30_000,
        telephone_event: true,
        ptime: Some(20),
        session_id: 1,
        session_version: 1,
        username: "carillon".into(),
    }
}

/// Lines that may appear in either section, some broken on purpose.
fn any_section_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("c=IN IP4 0.0.0.0".to_owned()),
        4 => "IN IP[46] [0-9a-f.:/]{1,20}".prop_map(|c| format!("c={c}")),
        4 => Just("a=rtcp-mux".to_owned()),
        4 => Just("a=sendonly".to_owned()),
        4 => Just("a=inactive".to_owned()),
        4 => Just("b=AS:64".to_owned()),
        6 => (0u16..200, "[A-Za-z0-9-]{0,10}", 0u32..100_000, proptest::option::of(0u16..4))
            .prop_map(|(pt, enc, rate, ch)| match ch {
                Some(ch) => format!("a=rtpmap:{pt} {enc}/{rate}/{ch}"),
                None => format!("a=rtpmap:{pt} {enc}/{rate}"),
            }),
        6 => prop_oneof![Just(0u8), Just(8), Just(18), Just(101), Just(96)]
            .prop_map(|pt| format!("a=rtpmap:{pt} {}", ["PCMU/8000", "PCMA/8000", "telephone-event/8000", "opus/48000/2"][usize::from(pt) % 4])),
        4 => (0u16..200, "[ -~]{0,12}").prop_map(|(pt, p)| format!("a=fmtp:{pt} {p}")),
        4 => "[0-9a-z. ]{0,6}".prop_map(|v| format!("a=ptime:{v}")),
        4 => "[0-9]{0,6}( IN IP[46] [0-9.:]{0,15})?".prop_map(|v| format!("a=rtcp:{v}")),
        4 => "[a-z-]{1,10}(:[ -~]{0,20})?".prop_map(|v| format!("a={v}")),
        2 => "[a-zA-Z]=[ -~]{0,20}",
        1 => "[ -~\t\r]{0,30}",
    ]
}

fn session_line() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just("t=0 0".to_owned()),
        1 => Just("r=7d 1h 0 25h".to_owned()),
        1 => Just("e=noc@example.com".to_owned()),
        1 => Just("x=vendor extension".to_owned()),
        8 => any_section_line(),
    ]
}

fn media_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u16..=65535u16).prop_map(|p| format!("m=audio {p} RTP/AVP 0 8 101")),
        2 => (0u16..=65535u16, "[0-9 ]{0,12}").prop_map(|(p, f)| format!("m=audio {p} RTP/AVP {f}")),
        1 => Just("m=video 9078 RTP/AVP 96".to_owned()),
        1 => "[a-z]{1,6} [0-9]{1,6}(/[0-9]{1,3})? [A-Z/]{1,12}( [0-9a-z]{1,4}){0,4}".prop_map(|m| format!("m={m}")),
    ]
}

fn sdp_text() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(session_line(), 0..8),
        proptest::collection::vec(
            (
                media_line(),
                proptest::collection::vec(any_section_line(), 0..8),
            ),
            0..4,
        ),
        prop_oneof![Just("\r\n"), Just("\n")],
    )
        .prop_map(|(session, media, eol)| {
            let mut text = format!("v=0{eol}o=- 1 1 IN IP4 10.0.0.1{eol}s=-{eol}");
            let lines = session.into_iter().chain(
                media
                    .into_iter()
                    .flat_map(|(m, rest)| std::iter::once(m).chain(rest)),
            );
            for line in lines {
                text.push_str(&line);
                text.push_str(eol);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SessionDescription::parse(&bytes);
    }

    #[test]
    fn parsing_arbitrary_text_with_a_valid_header_never_panics(tail in "[ -~\r\n\t]{0,400}") {
        let text = format!("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n{tail}");
        let _ = SessionDescription::parse(text.as_bytes());
    }

    #[test]
    fn serialization_is_a_fixed_point_after_one_round(text in sdp_text()) {
        if let Ok(sd) = SessionDescription::parse(text.as_bytes()) {
            let first = sd.to_string();
            let reparsed = SessionDescription::parse(first.as_bytes());
            prop_assert!(reparsed.is_ok(), "{:?} -> {:?}", first, reparsed);
            let reparsed = reparsed.unwrap();
            prop_assert_eq!(reparsed.to_string(), first);
        }
    }

    #[test]
    fn answering_whatever_parses_never_panics_and_answers_parse(text in sdp_text()) {
        if let Ok(sd) = SessionDescription::parse(text.as_bytes()) {
            let _ = sd.is_hold();
            if let Ok((reply, plan)) = answer(&sd, &policy()) {
                prop_assert_eq!(reply.media.len(), sd.media.len());
                prop_assert!(plan.payload_type <= 127);
                let reparsed = SessionDescription::parse(&reply.to_bytes());
                prop_assert_eq!(reparsed, Ok(reply.clone()));
                for m in &reply.media {
                    prop_assert!(m.port == 0 || m.port == 30_000);
                }
            }
            let ours = offer(&OfferPolicy::new(policy().local_address, 31_000, vec![CodecName::Pcmu]));
            let _ = apply_answer(&ours, &sd);
        }
    }
}

#[test]
fn the_generated_sdp_mostly_parses_so_the_properties_are_not_vacuous() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = sdp_text();
    let (mut parsed, mut answered) = (0, 0);
    for _ in 0..400 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(sd) = SessionDescription::parse(text.as_bytes()) {
            parsed += 1;
            answered += usize::from(answer(&sd, &policy()).is_ok());
        }
    }
    eprintln!("parsed {parsed}/400, answered {answered}");
    assert!(
        parsed >= 100,
        "only {parsed} of 400 generated bodies parsed"
    );
    assert!(
        answered >= 20,
        "only {answered} generated bodies were answered"
    );
}
