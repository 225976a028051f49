//! ConfBridge through the real switch and three real phones (issue 14):
//! baresip 100, 101 and 102, each sending its own tone and recording what
//! it receives, dial room 800 of a `conferences.toml`; each must hear the
//! other two tones (and not its own) from the media plane's mixer, the
//! events must show three `conf_join` and three `conf_leave`, and nothing
//! is left at the end.

mod callsupport;

use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::ivr::*;
use callsupport::*;
use carillon_codec::Goertzel;
use carillon_events::SwitchEvent;

const USERS: &str = r#"
[defaults]
context = "internal"
codecs = ["ulaw", "alaw"]
max_contacts = 3

[[user]]
extension = "100"
password = "changeme100"

[[user]]
extension = "101"
password = "changeme101"

[[user]]
extension = "102"
password = "changeme102"
"#;

const PLAN: &str = r#"
[context.internal]

[[context.internal.extension]]
match = "800"
steps = [
  { app = "ConfBridge", room = "800" },
  { app = "Hangup" },
]
"#;

const TONES: [f64; 3] = [600.0, 1000.0, 1400.0];

/// Blocks of `wav` where both `a_hz` and `b_hz` carry at least a fifth of
/// the power, and blocks where `own_hz` does.
fn mixed_blocks(wav: &Wav, a_hz: f64, b_hz: f64, own_hz: f64) -> (usize, usize) {
    let block = usize::try_from(wav.rate / 10).unwrap_or(800).max(1);
    let (ga, gb, go) = (
        Goertzel::new(a_hz, wav.rate),
        Goertzel::new(b_hz, wav.rate),
        Goertzel::new(own_hz, wav.rate),
    );
    let (mut both, mut own) = (0, 0);
    for chunk in wav.samples.chunks_exact(block) {
        let e: f64 = chunk.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if (e / chunk.len() as f64).sqrt() < 300.0 {
            continue;
        }
        if ga.relative_power(chunk) > 0.2 && gb.relative_power(chunk) > 0.2 {
            both += 1;
        }
        if go.relative_power(chunk) > 0.2 {
            own += 1;
        }
    }
    (both, own)
}

#[test]
fn three_phones_in_room_800_each_hear_the_other_two() {
    require_baresip();
    let mut env = CallEnv::new(&Options {
        users_toml: Some(USERS.to_owned()),
        security: md5_only(),
        ..Options::default()
    });
    std::fs::write(env.config_dir().join("dialplan.toml"), PLAN).expect("write dialplan.toml");
    std::fs::write(env.config_dir().join("trunks.toml"), "# no trunks\n")
        .expect("write trunks.toml");
    std::fs::write(
        env.config_dir().join("conferences.toml"),
        "[room.800]\nmax_members = 5\n",
    )
    .expect("write conferences.toml");
    let mut sw = env.start();
    let users = [
        ("100", "changeme100"),
        ("101", "changeme101"),
        ("102", "changeme102"),
    ];
    let mut phones: Vec<Baresip> = users
        .iter()
        .zip(TONES)
        .map(|((u, pw), hz)| {
            Baresip::start(
                &env,
                &BaresipSpec {
                    record: true,
                    ..BaresipSpec::new(u, pw, hz)
                },
            )
        })
        .collect();
    for p in phones.iter_mut() {
        dial(&env, &sw, p, "800");
    }
    let joins = sw.wait_events(3, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::ConfJoin { .. })
    });
    assert_eq!(joins.len(), 3, "{}", sw.log());
    // All three talk for a while.
    std::thread::sleep(Duration::from_secs(3));
    for p in phones.iter_mut() {
        p.command("hangup", "");
        wait_closed(&sw, p, Duration::from_secs(10));
    }
    let leaves = sw.wait_events(3, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::ConfLeave { .. })
    });
    let members: Vec<(bool, String, u32)> = sw
        .events()
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::ConfJoin { room, members, .. } => Some((true, room, members)),
            SwitchEvent::ConfLeave { room, members, .. } => Some((false, room, members)),
            _ => None,
        })
        .collect();
    assert_eq!(leaves.len(), 3, "{members:?}");
    assert_eq!(
        members,
        [
            (true, "800".into(), 1),
            (true, "800".into(), 2),
            (true, "800".into(), 3),
            (false, "800".into(), 2),
            (false, "800".into(), 1),
            (false, "800".into(), 0),
        ]
    );
    for (i, p) in phones.iter_mut().enumerate() {
        let log = p.stop();
        let heard = p.received().unwrap_or_else(|e| panic!("{e}\n{log}"));
        let others: Vec<f64> = (0..3).filter(|&j| j != i).map(|j| TONES[j]).collect();
        let (both, own) = mixed_blocks(&heard, others[0], others[1], TONES[i]);
        eprintln!(
            "{} heard both others in {both} blocks, its own tone in {own}",
            users[i].0
        );
        assert!(
            both >= 5,
            "{} did not hear both other members ({both} blocks)\n{}",
            users[i].0,
            sw.log()
        );
        assert!(
            own <= 2,
            "{} heard its own voice in {own} blocks",
            users[i].0
        );
    }
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}
