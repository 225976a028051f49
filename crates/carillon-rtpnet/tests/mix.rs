//! The mixer through the real media runtime on 127.0.0.1: plain UDP
//! sockets act as phones, each sending its own tone in real time (one in
//! A-law, one with 30 ms packets), and each phone's received audio is
//! checked with a Goertzel filter for whose tones it holds. Energy only;
//! no timing assertion (a late packet is silence, and the median over
//! 100 ms blocks ignores it).

use carillon_codec::{Codec, Goertzel, ToneGenerator};
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, MediaEvent, MixId, MixRole, SessionId,
};
use carillon_rtp::{RtpPacket, RtpPacketBuilder, Ssrc};
use carillon_rtpnet::{MediaHandle, MediaRuntime, RuntimeConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Guards against a hang only; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(20);
/// Tone peak amplitude each phone sends.
const LEVEL: i16 = 6000;
/// Samples analysed per phone (1.2 s), after the first 300 ms.
const SKIP: usize = 2400;
const ANALYSED: usize = 9600;
/// Goertzel block: 100 ms, a whole number of cycles of every tone below.
const BLOCK: usize = 800;

/// An even port whose pair is free now (see tests/relay.rs), from another
/// range than relay.rs and play.rs.
fn free_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        12_000 + (std::process::id() % 2_000) as u16 * 4,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(2, Ordering::SeqCst);
        assert!(port < 23_900, "no free port pair");
        let rtp = std::net::UdpSocket::bind((LOOPBACK, port));
        let rtcp = std::net::UdpSocket::bind((LOOPBACK, port + 1));
        if rtp.is_ok() && rtcp.is_ok() {
            return port;
        }
    }
}

/// One phone: its socket, codec, packet time and tone.
struct Phone {
    leg: LegId,
    session: SessionId,
    socket: Arc<UdpSocket>,
    codec: AudioCodec,
    ptime_ms: u64,
    tone_hz: f64,
    port: u16,
    /// Packets sent so far: a phone's sequence numbers and timestamps go on
    /// from one round of speaking to the next (same SSRC).
    sent: Arc<std::sync::atomic::AtomicU32>,
}

impl Phone {
    async fn new(leg: u64, codec: AudioCodec, ptime_ms: u64, tone_hz: f64) -> Phone {
        Phone {
            leg: LegId(leg),
            // Each phone is its own call: members come from any session of
            // the mix's worker.
            session: SessionId(100 + leg),
            socket: Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.unwrap()),
            codec,
            ptime_ms,
            tone_hz,
            port: free_pair(),
            sent: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    fn g711(&self) -> Codec {
        match self.codec {
            AudioCodec::Pcmu => Codec::Pcmu,
            AudioCodec::Pcma => Codec::Pcma,
        }
    }

    fn params(&self) -> LegParams {
        LegParams {
            codec: self.codec,
            payload_type: match self.codec {
                AudioCodec::Pcmu => 0,
                AudioCodec::Pcma => 8,
            },
            telephone_event_pt: Some(101),
            ptime: Duration::from_millis(self.ptime_ms),
            remote: Some(self.socket.local_addr().unwrap()),
            latch: true,
            send: true,
            recv: true,
        }
    }

    /// Sends its tone in real time until `stop`.
    fn speak(&self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let socket = self.socket.clone();
        let codec = self.g711();
        let samples = (self.ptime_ms * 8) as usize;
        let pt = self.params().payload_type;
        let mut tone = ToneGenerator::new(self.tone_hz, LEVEL);
        let to = SocketAddr::from((LOOPBACK, self.port));
        let ptime = Duration::from_millis(self.ptime_ms);
        let ssrc = Ssrc(0x1000 + self.leg.0 as u32);
        let sent = self.sent.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(ptime);
            let mut payload = vec![0u8; samples];
            // Bounded: at most 30 s of audio even if never stopped.
            for _ in 0..(30_000 / ptime.as_millis() as u32) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                interval.tick().await;
                let i = sent.fetch_add(1, Ordering::Relaxed);
                tone.fill_encoded(codec, &mut payload);
                let builder =
                    RtpPacketBuilder::new(pt, i as u16, i * samples as u32, ssrc, &payload);
                let mut buf = vec![0u8; builder.encoded_len()];
                builder.write_into(&mut buf).unwrap();
                let _ = socket.send_to(&buf, to).await;
            }
        })
    }

    /// Receives until `SKIP + ANALYSED` samples came (decoded, in order),
    /// checking every packet comes from the leg's port.
    async fn listen(&self) -> Vec<i16> {
        let mut samples = Vec::new();
        let mut buf = [0u8; 1500];
        let mut last_seq: Option<(Ssrc, u16)> = None;
        while samples.len() < SKIP + ANALYSED {
            let (n, from) = tokio::time::timeout(PATIENCE, self.socket.recv_from(&mut buf))
                .await
                .expect("mixed audio in time")
                .unwrap();
            assert_eq!(from, SocketAddr::from((LOOPBACK, self.port)));
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            // One stream: one SSRC, sequence numbers moving on (a relayed
            // stream keeps the gap of a packet lost on the way).
            if let Some((ssrc, last)) = last_seq {
                assert_eq!(p.ssrc(), ssrc, "one SSRC");
                let step = p.sequence_number().wrapping_sub(last);
                assert!(
                    (1..=10).contains(&step),
                    "leg {:?}: sequence {last} then {} (marker {}, {} samples in)",
                    self.leg,
                    p.sequence_number(),
                    p.marker(),
                    samples.len()
                );
            }
            last_seq = Some((p.ssrc(), p.sequence_number()));
            assert_eq!(
                p.payload().len(),
                (self.ptime_ms * 8) as usize,
                "packets of the phone's own ptime"
            );
            let codec = self.g711();
            samples.extend(p.payload().iter().map(|&b| codec.decode_sample(b)));
        }
        samples
    }
}

/// The median Goertzel amplitude of `hz` over the analysed blocks.
fn amplitude(samples: &[i16], hz: f64) -> f64 {
    let g = Goertzel::new(hz, 8000);
    let mut a: Vec<f64> = samples[SKIP..SKIP + ANALYSED]
        .chunks(BLOCK)
        .map(|b| g.amplitude(b))
        .collect();
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    a[a.len() / 2]
}

fn start() -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    let config = RuntimeConfig {
        // One worker: the phones' sessions and the mix live together.
        workers: 1,
        rng_seed: Some(11),
        ..RuntimeConfig::new(LOOPBACK)
    };
    MediaRuntime::start(config).expect("runtime starts")
}

async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("media event in time")
        .expect("runtime alive")
}

const HOST: SessionId = SessionId(1);
const ROOM: MixId = MixId(1);

/// Opens every phone's leg and puts it in `ROOM` with its role.
async fn join(
    handle: &MediaHandle,
    events: &mut mpsc::Receiver<MediaEvent>,
    phones: &[(&Phone, MixRole)],
) {
    for (phone, _) in phones {
        handle
            .send(MediaCommand::OpenLeg {
                session: phone.session,
                leg: phone.leg,
                local_port: phone.port,
                params: phone.params(),
            })
            .unwrap();
        match next_event(events).await {
            MediaEvent::LegOpened { leg, .. } if leg == phone.leg => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    handle
        .send(MediaCommand::CreateMix {
            session: HOST,
            mix: ROOM,
        })
        .unwrap();
    for (phone, role) in phones {
        handle
            .send(MediaCommand::AddToMix {
                session: HOST,
                mix: ROOM,
                leg: phone.leg,
                role: role.clone(),
            })
            .unwrap();
    }
}

/// What each phone hears while all speak: their received samples, in order.
async fn hear_all(phones: &[&Phone]) -> Vec<Vec<i16>> {
    // What came before (silence, the previous roles) is not this round's.
    for p in phones {
        let mut buf = [0u8; 1500];
        while p.socket.try_recv(&mut buf).is_ok() {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    let speakers: Vec<_> = phones.iter().map(|p| p.speak(stop.clone())).collect();
    let heard = futures_join(phones).await;
    stop.store(true, Ordering::Relaxed);
    for s in speakers {
        s.await.unwrap();
    }
    heard
}

async fn futures_join(phones: &[&Phone]) -> Vec<Vec<i16>> {
    let mut tasks = Vec::new();
    for p in phones {
        tasks.push(p.listen());
    }
    let mut out = Vec::new();
    // The sockets buffer what arrives meanwhile, so listening in turn
    // loses nothing.
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// Asserts `heard` holds exactly the tones of `present` (at least half the
/// sent level) and not those of `absent` (under a twentieth of it).
fn assert_tones(who: &str, heard: &[i16], present: &[&Phone], absent: &[&Phone]) {
    for p in present {
        let a = amplitude(heard, p.tone_hz);
        assert!(
            a > f64::from(LEVEL) / 2.0,
            "{who} should hear {} Hz: amplitude {a:.0}",
            p.tone_hz
        );
    }
    for p in absent {
        let a = amplitude(heard, p.tone_hz);
        assert!(
            a < f64::from(LEVEL) / 20.0,
            "{who} should not hear {} Hz: amplitude {a:.0}",
            p.tone_hz
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phones_each_hear_the_two_other_tones_and_not_their_own() {
    let (handle, mut events) = start();
    let a = Phone::new(1, AudioCodec::Pcmu, 20, 500.0).await;
    let b = Phone::new(2, AudioCodec::Pcma, 20, 1100.0).await;
    let c = Phone::new(3, AudioCodec::Pcmu, 30, 1700.0).await;
    join(
        &handle,
        &mut events,
        &[
            (&a, MixRole::normal()),
            (&b, MixRole::normal()),
            (&c, MixRole::normal()),
        ],
    )
    .await;
    let heard = hear_all(&[&a, &b, &c]).await;
    assert_tones("A (µ-law)", &heard[0], &[&b, &c], &[&a]);
    assert_tones("B (A-law)", &heard[1], &[&a, &c], &[&b]);
    assert_tones("C (30 ms)", &heard[2], &[&a, &b], &[&c]);
    handle
        .send(MediaCommand::DestroyMix {
            session: HOST,
            mix: ROOM,
        })
        .unwrap();
    for p in [&a, &b, &c] {
        handle
            .send(MediaCommand::CloseSession { session: p.session })
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_supervisor_is_heard_by_nobody_and_a_whisper_only_by_the_agent() {
    let (handle, mut events) = start();
    let agent = Phone::new(11, AudioCodec::Pcmu, 20, 500.0).await;
    let caller = Phone::new(12, AudioCodec::Pcma, 20, 1100.0).await;
    let supervisor = Phone::new(13, AudioCodec::Pcmu, 20, 1700.0).await;
    join(
        &handle,
        &mut events,
        &[
            (&agent, MixRole::normal()),
            (&caller, MixRole::normal()),
            (&supervisor, MixRole::listen()),
        ],
    )
    .await;
    let phones = [&agent, &caller, &supervisor];
    let heard = hear_all(&phones).await;
    assert_tones(
        "agent (listen)",
        &heard[0],
        &[&caller],
        &[&agent, &supervisor],
    );
    assert_tones(
        "caller (listen)",
        &heard[1],
        &[&agent],
        &[&caller, &supervisor],
    );
    assert_tones(
        "supervisor (listen)",
        &heard[2],
        &[&agent, &caller],
        &[&supervisor],
    );

    handle
        .send(MediaCommand::SetMixRole {
            session: HOST,
            mix: ROOM,
            leg: supervisor.leg,
            role: MixRole::whisper(vec![agent.leg]),
        })
        .unwrap();
    let heard = hear_all(&phones).await;
    assert_tones(
        "agent (whisper)",
        &heard[0],
        &[&caller, &supervisor],
        &[&agent],
    );
    assert_tones(
        "caller (whisper)",
        &heard[1],
        &[&agent],
        &[&caller, &supervisor],
    );
    assert_tones(
        "supervisor (whisper)",
        &heard[2],
        &[&agent, &caller],
        &[&supervisor],
    );
    for p in phones {
        handle
            .send(MediaCommand::CloseSession { session: p.session })
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_barges_into_a_bridged_call_and_leaving_gives_the_bridge_back() {
    let (handle, mut events) = start();
    let mut agent = Phone::new(21, AudioCodec::Pcmu, 20, 500.0).await;
    let mut caller = Phone::new(22, AudioCodec::Pcma, 20, 1100.0).await;
    // The agent and the caller are one call (one session), bridged.
    let call = SessionId(120);
    agent.session = call;
    caller.session = call;
    let supervisor = Phone::new(23, AudioCodec::Pcmu, 20, 1700.0).await;
    for phone in [&agent, &caller, &supervisor] {
        handle
            .send(MediaCommand::OpenLeg {
                session: phone.session,
                leg: phone.leg,
                local_port: phone.port,
                params: phone.params(),
            })
            .unwrap();
        match next_event(&mut events).await {
            MediaEvent::LegOpened { leg, .. } if leg == phone.leg => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    handle
        .send(MediaCommand::Bridge {
            session: call,
            a: agent.leg,
            b: caller.leg,
        })
        .unwrap();
    let heard = hear_all(&[&agent, &caller]).await;
    assert_tones("agent (bridged)", &heard[0], &[&caller], &[&agent]);
    assert_tones("caller (bridged)", &heard[1], &[&agent], &[&caller]);

    // Barge: the bridge becomes a mix of three.
    handle
        .send(MediaCommand::CreateMix {
            session: call,
            mix: ROOM,
        })
        .unwrap();
    for phone in [&agent, &caller, &supervisor] {
        handle
            .send(MediaCommand::AddToMix {
                session: call,
                mix: ROOM,
                leg: phone.leg,
                role: MixRole::normal(),
            })
            .unwrap();
    }
    let heard = hear_all(&[&agent, &caller, &supervisor]).await;
    assert_tones(
        "agent (barge)",
        &heard[0],
        &[&caller, &supervisor],
        &[&agent],
    );
    assert_tones(
        "caller (barge)",
        &heard[1],
        &[&agent, &supervisor],
        &[&caller],
    );
    assert_tones(
        "supervisor (barge)",
        &heard[2],
        &[&agent, &caller],
        &[&supervisor],
    );

    // The supervisor leaves and the mix goes: the relay is back.
    handle
        .send(MediaCommand::RemoveFromMix {
            session: call,
            mix: ROOM,
            leg: supervisor.leg,
        })
        .unwrap();
    handle
        .send(MediaCommand::DestroyMix {
            session: call,
            mix: ROOM,
        })
        .unwrap();
    let heard = hear_all(&[&agent, &caller]).await;
    assert_tones(
        "agent (after)",
        &heard[0],
        &[&caller],
        &[&agent, &supervisor],
    );
    assert_tones(
        "caller (after)",
        &heard[1],
        &[&agent],
        &[&caller, &supervisor],
    );
    for session in [call, supervisor.session] {
        handle.send(MediaCommand::CloseSession { session }).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_rfc4733_digit_reaches_the_switch_and_not_the_other_members() {
    let (handle, mut events) = start();
    let a = Phone::new(31, AudioCodec::Pcmu, 20, 500.0).await;
    let b = Phone::new(32, AudioCodec::Pcma, 20, 1100.0).await;
    join(
        &handle,
        &mut events,
        &[(&a, MixRole::normal()), (&b, MixRole::normal())],
    )
    .await;
    let generator = carillon_rtp::DtmfGenerator::new('9', 800, 160).unwrap();
    for (i, generated) in generator.enumerate() {
        let body = generated.event.to_bytes();
        let mut buf = [0u8; 16];
        RtpPacketBuilder::new(101, i as u16, 16_000, Ssrc(1), &body)
            .with_marker(generated.marker)
            .write_into(&mut buf)
            .unwrap();
        a.socket.send_to(&buf, (LOOPBACK, a.port)).await.unwrap();
    }
    match next_event(&mut events).await {
        MediaEvent::Dtmf { leg, digit, .. } => assert_eq!((leg, digit), (a.leg, '9')),
        other => panic!("unexpected {other:?}"),
    }
    // B hears the mix (silence here), never the event packets.
    let mut buf = [0u8; 1500];
    let mut heard = 0;
    while heard < 20 {
        let n = tokio::time::timeout(PATIENCE, b.socket.recv(&mut buf))
            .await
            .expect("mixed audio in time")
            .unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.payload_type(), 8, "B's audio payload type only");
        heard += 1;
    }
    for p in [&a, &b] {
        handle
            .send(MediaCommand::CloseSession { session: p.session })
            .unwrap();
    }
}
