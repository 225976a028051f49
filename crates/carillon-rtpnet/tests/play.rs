//! Players through the real media runtime on 127.0.0.1: a prompt file and
//! music on hold played to plain UDP sockets acting as phones, paced by
//! the worker's tick. Counts and contents only; no timing assertion.

use carillon_codec::Codec;
use carillon_media::{MohClass, Sound, Sounds};
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, MediaEvent, PlayItem, PlaybackEnd, PlaybackId,
    SessionId,
};
use carillon_rtp::RtpPacket;
use carillon_rtpnet::{MediaHandle, MediaRuntime, RuntimeConfig};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Guards against a hang only; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(20);

/// An even port whose pair is free now (see tests/relay.rs), from another
/// range than relay.rs.
fn free_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        24_000 + (std::process::id() % 3_000) as u16 * 4,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(2, Ordering::SeqCst);
        assert!(port < 39_000, "no free port pair");
        let rtp = std::net::UdpSocket::bind((LOOPBACK, port));
        let rtcp = std::net::UdpSocket::bind((LOOPBACK, port + 1));
        if rtp.is_ok() && rtcp.is_ok() {
            return port;
        }
    }
}

fn params(remote: SocketAddr) -> LegParams {
    LegParams {
        codec: AudioCodec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        ptime: Duration::from_millis(20),
        remote: Some(remote),
        latch: true,
        send: true,
        recv: true,
    }
}

fn ramp(n: usize) -> Vec<i16> {
    (0..n).map(|i| ((i * 37) % 20000) as i16 - 10000).collect()
}

fn wav(name: &str, samples: &[i16]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("carillon-rtpnet-play-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    path
}

fn start(sounds: Sounds) -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    let config = RuntimeConfig {
        workers: 2,
        rng_seed: Some(7),
        ..RuntimeConfig::new(LOOPBACK)
    };
    MediaRuntime::start_with_sounds(config, Arc::new(sounds)).expect("runtime starts")
}

async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("media event in time")
        .expect("runtime alive")
}

/// Opens a leg towards `phone` and waits for it.
async fn open(
    handle: &MediaHandle,
    events: &mut mpsc::Receiver<MediaEvent>,
    session: SessionId,
    leg: LegId,
    phone: &UdpSocket,
) {
    let port = free_pair();
    handle
        .send(MediaCommand::OpenLeg {
            session,
            leg,
            local_port: port,
            params: params(phone.local_addr().unwrap()),
        })
        .unwrap();
    match next_event(events).await {
        MediaEvent::LegOpened { leg: l, .. } if l == leg => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// Receives RTP until `count` packets came or nothing came for a second.
async fn receive(phone: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    while got.len() < count {
        match tokio::time::timeout(Duration::from_secs(1), phone.recv(&mut buf)).await {
            Ok(Ok(n)) => got.push(buf[..n].to_vec()),
            _ => break,
        }
    }
    got
}

#[tokio::test]
async fn a_prompt_file_reaches_the_phone_whole_then_playback_done() {
    let samples = ramp(8000 + 100); // 1 s and a bit: 51 frames
    let path = wav("prompt.wav", &samples);
    let (handle, mut events) = start(Sounds::default());
    let phone = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let session = SessionId(3);
    let leg = LegId(1);
    open(&handle, &mut events, session, leg, &phone).await;
    handle
        .send(MediaCommand::Play {
            session,
            leg,
            playback: PlaybackId(1),
            items: vec![PlayItem::File(path)],
        })
        .unwrap();
    let got = receive(&phone, 51).await;
    assert_eq!(got.len(), 51);
    let mut payload = Vec::new();
    for (i, p) in got.iter().enumerate() {
        let p = RtpPacket::parse(p).unwrap();
        assert_eq!(p.marker(), i == 0);
        payload.extend_from_slice(p.payload());
    }
    let mut expected: Vec<u8> = samples
        .iter()
        .map(|&s| Codec::Pcmu.encode_sample(s))
        .collect();
    expected.resize(51 * 160, 0xFF);
    assert_eq!(payload, expected);
    match next_event(&mut events).await {
        MediaEvent::PlaybackDone {
            playback,
            end,
            missing,
            ..
        } => {
            assert_eq!(playback, PlaybackId(1));
            assert_eq!(end, PlaybackEnd::Finished);
            assert!(missing.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    handle.send(MediaCommand::CloseSession { session }).unwrap();
}

#[tokio::test]
async fn two_phones_on_hold_hear_the_same_music_until_it_is_stopped() {
    let class = MohClass::from_sound(Sound::from_samples(ramp(16000)), Instant::now());
    let mut classes = HashMap::new();
    classes.insert("default".to_string(), Arc::new(class));
    let (handle, mut events) = start(Sounds::new(classes));
    let session = SessionId(4);
    let phones = [
        UdpSocket::bind((LOOPBACK, 0)).await.unwrap(),
        UdpSocket::bind((LOOPBACK, 0)).await.unwrap(),
    ];
    for (i, phone) in phones.iter().enumerate() {
        let leg = LegId(i as u64 + 1);
        open(&handle, &mut events, session, leg, phone).await;
        handle
            .send(MediaCommand::Play {
                session,
                leg,
                playback: PlaybackId(i as u64),
                items: vec![PlayItem::Moh {
                    class: "default".into(),
                }],
            })
            .unwrap();
    }
    let a = receive(&phones[0], 25).await;
    let b = receive(&phones[1], 25).await;
    assert_eq!((a.len(), b.len()), (25, 25));
    // One class position: frames are cut on the class clock's frame grid,
    // so the two phones get byte-identical frames.
    let payloads = |v: &Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        v.iter()
            .map(|p| RtpPacket::parse(p).unwrap().payload().to_vec())
            .collect()
    };
    let (pa, pb) = (payloads(&a), payloads(&b));
    assert!(pb.iter().any(|f| pa.contains(f)), "no common frame");
    for leg in [LegId(1), LegId(2)] {
        handle
            .send(MediaCommand::StopPlay { session, leg })
            .unwrap();
        match next_event(&mut events).await {
            MediaEvent::PlaybackDone { end, .. } => assert_eq!(end, PlaybackEnd::Stopped),
            other => panic!("unexpected {other:?}"),
        }
    }
    handle.send(MediaCommand::CloseSession { session }).unwrap();
}
