//! The media runtime on 127.0.0.1 with two plain UDP sockets acting as
//! phones: one speaks PCMU, the other PCMA, so every packet is transcoded.

use carillon_codec::g711::{ALAW_TO_ULAW, ULAW_TO_ALAW};
use carillon_mediactl::{AudioCodec, LegId, LegParams, MediaCommand, MediaEvent, SessionId};
use carillon_rtp::{RtpPacket, RtpPacketBuilder, Ssrc};
use carillon_rtpnet::{MediaHandle, MediaRuntime, RuntimeConfig};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Guards against a hang only; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(20);

/// An even port whose pair (p, p + 1) is free right now, searching a high
/// range from a per-process offset (so parallel test runs rarely collide)
/// and never handing the same pair to two tests of this process.
fn free_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        40_000 + (std::process::id() % 4_000) as u16 * 4,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(2, Ordering::SeqCst);
        assert!(port < 65_000, "no free port pair");
        let rtp = std::net::UdpSocket::bind((LOOPBACK, port));
        let rtcp = std::net::UdpSocket::bind((LOOPBACK, port + 1));
        if rtp.is_ok() && rtcp.is_ok() {
            return port;
        }
    }
}

fn params(codec: AudioCodec, remote: SocketAddr) -> LegParams {
    LegParams {
        codec,
        payload_type: match codec {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        },
        telephone_event_pt: Some(101),
        ptime: Duration::from_millis(20),
        remote: Some(remote),
        latch: true,
        send: true,
        recv: true,
    }
}

async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("media event in time")
        .expect("runtime alive")
}

fn start() -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    start_with(|_| {})
}

fn start_with(tune: impl FnOnce(&mut RuntimeConfig)) -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    let mut config = RuntimeConfig {
        workers: 2,
        rng_seed: Some(7),
        ..RuntimeConfig::new(LOOPBACK)
    };
    tune(&mut config);
    MediaRuntime::start(config).expect("runtime starts")
}

fn all_bind(ports: &[u16]) -> bool {
    let held: Vec<_> = ports
        .iter()
        .map(|&p| std::net::UdpSocket::bind((LOOPBACK, p)))
        .collect();
    held.iter().all(Result::is_ok)
}

/// Opens one PCMU leg towards `remote` and waits for `LegOpened`.
async fn open_leg(
    handle: &MediaHandle,
    events: &mut mpsc::Receiver<MediaEvent>,
    session: SessionId,
    leg: LegId,
    port: u16,
    remote: SocketAddr,
) {
    handle
        .send(MediaCommand::OpenLeg {
            session,
            leg,
            local_port: port,
            params: params(AudioCodec::Pcmu, remote),
        })
        .unwrap();
    match next_event(events).await {
        MediaEvent::LegOpened { leg: opened, .. } if opened == leg => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// Every command for a session is handled in order by one worker, so once
/// the answer to a command sent after `Bridge` arrives, the bridge is in
/// place. A leg on port 0 is refused at once, without touching sockets.
async fn barrier(
    handle: &MediaHandle,
    events: &mut mpsc::Receiver<MediaEvent>,
    session: SessionId,
) {
    let probe = LegId(u64::MAX);
    handle
        .send(MediaCommand::OpenLeg {
            session,
            leg: probe,
            local_port: 0,
            params: params(AudioCodec::Pcmu, SocketAddr::from((LOOPBACK, 9))),
        })
        .unwrap();
    match next_event(events).await {
        MediaEvent::OpenFailed { leg, .. } if leg == probe => {}
        other => panic!("unexpected {other:?}"),
    }
}

fn payload_of(i: u16) -> Vec<u8> {
    (0..160u16).map(|j| (i * 7 + j) as u8).collect()
}

/// Sends 50 packets from `from` to `to_port` and returns what `receiver` got, by sequence number.
async fn talk(
    from: &UdpSocket,
    to_port: u16,
    pt: u8,
    ssrc: u32,
    receiver: &UdpSocket,
) -> BTreeMap<u16, (Vec<u8>, SocketAddr)> {
    for i in 0..50u16 {
        let payload = payload_of(i);
        let mut buf = [0u8; 172];
        RtpPacketBuilder::new(
            pt,
            1000 + i,
            8000 + u32::from(i) * 160,
            Ssrc(ssrc),
            &payload,
        )
        .write_into(&mut buf)
        .unwrap();
        from.send_to(&buf, (LOOPBACK, to_port)).await.unwrap();
    }
    let mut got = BTreeMap::new();
    let mut buf = [0u8; 2048];
    while got.len() < 50 {
        let (len, src) = tokio::time::timeout(PATIENCE, receiver.recv_from(&mut buf))
            .await
            .expect("relayed packet in time")
            .unwrap();
        let p = RtpPacket::parse(&buf[..len]).unwrap();
        got.insert(p.sequence_number(), (buf[..len].to_vec(), src));
    }
    got
}

#[tokio::test]
async fn a_pcmu_phone_and_a_pcma_phone_talk_through_the_runtime_and_close_releases_the_ports() {
    let (handle, mut events) = start_with(|c| c.idle_socket_ttl = Duration::from_millis(300));
    let phone_a = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let phone_b = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port_a = free_pair();
    let port_b = free_pair();
    let session = SessionId(4242);
    let (a, b) = (LegId(1), LegId(2));

    for (leg, port, p) in [
        (
            a,
            port_a,
            params(AudioCodec::Pcmu, phone_a.local_addr().unwrap()),
        ),
        (
            b,
            port_b,
            params(AudioCodec::Pcma, phone_b.local_addr().unwrap()),
        ),
    ] {
        handle
            .send(MediaCommand::OpenLeg {
                session,
                leg,
                local_port: port,
                params: p,
            })
            .unwrap();
    }
    let mut opened = Vec::new();
    for _ in 0..2 {
        match next_event(&mut events).await {
            MediaEvent::LegOpened { leg, local, .. } => opened.push((leg, local)),
            other => panic!("unexpected {other:?}"),
        }
    }
    opened.sort_by_key(|(leg, _)| *leg);
    assert_eq!(
        opened,
        vec![
            (a, SocketAddr::from((LOOPBACK, port_a))),
            (b, SocketAddr::from((LOOPBACK, port_b)))
        ]
    );
    handle.send(MediaCommand::Bridge { session, a, b }).unwrap();
    barrier(&handle, &mut events, session).await;

    // A → B: PCMU in, PCMA out, from B's local port.
    let got = talk(&phone_a, port_a, 0, 0xAAAA, &phone_b).await;
    let ssrcs: Vec<Ssrc> = got
        .values()
        .map(|(p, _)| RtpPacket::parse(p).unwrap().ssrc())
        .collect();
    assert!(ssrcs.iter().all(|s| *s == ssrcs[0]));
    for i in 0..50u16 {
        let (bytes, src) = &got[&(1000 + i)];
        assert_eq!(*src, SocketAddr::from((LOOPBACK, port_b)));
        let p = RtpPacket::parse(bytes).unwrap();
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.timestamp(), 8000 + u32::from(i) * 160);
        let expected: Vec<u8> = payload_of(i)
            .iter()
            .map(|&c| ULAW_TO_ALAW[usize::from(c)])
            .collect();
        assert_eq!(p.payload(), &expected[..]);
    }

    // B → A: PCMA in, PCMU out, from A's local port.
    let got = talk(&phone_b, port_b, 8, 0xBBBB, &phone_a).await;
    let ssrc_to_a = RtpPacket::parse(&got[&1000].0).unwrap().ssrc();
    assert_ne!(ssrc_to_a, ssrcs[0]);
    for i in 0..50u16 {
        let (bytes, src) = &got[&(1000 + i)];
        assert_eq!(*src, SocketAddr::from((LOOPBACK, port_a)));
        let p = RtpPacket::parse(bytes).unwrap();
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.ssrc(), ssrc_to_a);
        let expected: Vec<u8> = payload_of(i)
            .iter()
            .map(|&c| ALAW_TO_ULAW[usize::from(c)])
            .collect();
        assert_eq!(p.payload(), &expected[..]);
    }

    handle.send(MediaCommand::CloseSession { session }).unwrap();
    let mut closed = Vec::new();
    for _ in 0..2 {
        match next_event(&mut events).await {
            MediaEvent::LegClosed { leg, stats, .. } => closed.push((leg, stats)),
            other => panic!("unexpected {other:?}"),
        }
    }
    closed.sort_by_key(|(leg, _)| *leg);
    for (_, stats) in &closed {
        assert_eq!((stats.packets_in, stats.packets_out), (50, 50));
        assert_eq!((stats.bytes_in, stats.bytes_out), (50 * 172, 50 * 172));
        assert_eq!(stats.lost, 0);
    }
    // The released sockets are kept for reuse, then closed once idle for
    // the TTL: every port binds again.
    let ports = [port_a, port_a + 1, port_b, port_b + 1];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !all_bind(&ports) {
        assert!(tokio::time::Instant::now() < deadline, "ports still held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_released_pair_is_handed_back_to_the_next_leg_on_its_port_and_relays() {
    let (handle, mut events) = start();
    let phone = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let other = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port_a = free_pair();
    let port_b = free_pair();
    let session = SessionId(41);
    open_leg(
        &handle,
        &mut events,
        session,
        LegId(1),
        port_a,
        phone.local_addr().unwrap(),
    )
    .await;
    handle
        .send(MediaCommand::CloseLeg {
            session,
            leg: LegId(1),
        })
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        MediaEvent::LegClosed { .. }
    ));
    // Still open, held for reuse.
    assert!(std::net::UdpSocket::bind((LOOPBACK, port_a)).is_err());
    // The same worker (same session) binds the port again: it gets the
    // kept pair, and media flows through it.
    open_leg(
        &handle,
        &mut events,
        session,
        LegId(2),
        port_a,
        phone.local_addr().unwrap(),
    )
    .await;
    open_leg(
        &handle,
        &mut events,
        session,
        LegId(3),
        port_b,
        other.local_addr().unwrap(),
    )
    .await;
    handle
        .send(MediaCommand::Bridge {
            session,
            a: LegId(2),
            b: LegId(3),
        })
        .unwrap();
    barrier(&handle, &mut events, session).await;
    let got = talk(&phone, port_a, 0, 0x1234, &other).await;
    assert_eq!(got.len(), 50);
    assert!(got.values().all(|(_, src)| src.port() == port_b));
    handle.send(MediaCommand::CloseSession { session }).unwrap();
}

#[tokio::test]
async fn with_no_room_for_idle_sockets_a_release_closes_them_at_once() {
    let (handle, mut events) = start_with(|c| c.max_open_sockets = 0);
    let phone = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port = free_pair();
    let session = SessionId(43);
    open_leg(
        &handle,
        &mut events,
        session,
        LegId(1),
        port,
        phone.local_addr().unwrap(),
    )
    .await;
    handle.send(MediaCommand::CloseSession { session }).unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        MediaEvent::LegClosed { .. }
    ));
    assert!(all_bind(&[port, port + 1]), "ports still held after close");
}

#[tokio::test]
async fn a_port_that_cannot_be_bound_is_reported_as_open_failed() {
    let (handle, mut events) = start();
    let port = free_pair();
    let _squatter = std::net::UdpSocket::bind((LOOPBACK, port + 1)).unwrap();
    let session = SessionId(9);
    handle
        .send(MediaCommand::OpenLeg {
            session,
            leg: LegId(5),
            local_port: port,
            params: params(AudioCodec::Pcmu, SocketAddr::from((LOOPBACK, 5004))),
        })
        .unwrap();
    match next_event(&mut events).await {
        MediaEvent::OpenFailed { leg, reason, .. } => {
            assert_eq!(leg, LegId(5));
            assert!(reason.contains(&(port + 1).to_string()), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The RTP port bound before the failure was given back.
    std::net::UdpSocket::bind((LOOPBACK, port)).expect("RTP port released");
}

#[tokio::test]
async fn dtmf_sent_by_a_phone_is_reported_to_the_switch() {
    let (handle, mut events) = start();
    let phone = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port = free_pair();
    let session = SessionId(31);
    handle
        .send(MediaCommand::OpenLeg {
            session,
            leg: LegId(1),
            local_port: port,
            params: params(AudioCodec::Pcmu, phone.local_addr().unwrap()),
        })
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        MediaEvent::LegOpened { .. }
    ));
    let generator = carillon_rtp::DtmfGenerator::new('9', 800, 160).unwrap();
    for (i, generated) in generator.enumerate() {
        let body = generated.event.to_bytes();
        let mut buf = [0u8; 16];
        RtpPacketBuilder::new(101, i as u16, 16_000, Ssrc(1), &body)
            .with_marker(generated.marker)
            .write_into(&mut buf)
            .unwrap();
        phone.send_to(&buf, (LOOPBACK, port)).await.unwrap();
    }
    match next_event(&mut events).await {
        MediaEvent::Dtmf {
            leg,
            digit,
            duration,
            ..
        } => {
            assert_eq!((leg, digit), (LegId(1), '9'));
            assert_eq!(duration, Duration::from_millis(100));
        }
        other => panic!("unexpected {other:?}"),
    }
    handle.send(MediaCommand::CloseSession { session }).unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        MediaEvent::LegClosed { .. }
    ));
}

#[tokio::test]
async fn send_dtmf_reaches_the_phone_as_rfc4733_events_from_the_legs_port() {
    let (handle, mut events) = start();
    let phone = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port = free_pair();
    let session = SessionId(41);
    open_leg(
        &handle,
        &mut events,
        session,
        LegId(1),
        port,
        phone.local_addr().unwrap(),
    )
    .await;
    handle
        .send(MediaCommand::SendDtmf {
            session,
            leg: LegId(1),
            digit: '4',
            duration: Duration::from_millis(100),
        })
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 7 {
        let (len, src) = tokio::time::timeout(PATIENCE, phone.recv_from(&mut buf))
            .await
            .expect("generated packet in time")
            .unwrap();
        assert_eq!(
            src,
            SocketAddr::from((LOOPBACK, port)),
            "from the leg's port"
        );
        let p = RtpPacket::parse(&buf[..len]).unwrap();
        let ev = carillon_rtp::dtmf::TelephoneEvent::parse(p.payload()).unwrap();
        got.push((p.payload_type(), p.marker(), p.sequence_number(), ev));
    }
    assert!(got.iter().all(|g| g.0 == 101 && g.3.event == 4));
    assert!(got[0].1, "marker on the first packet");
    let durations: Vec<u16> = got.iter().map(|g| g.3.duration).collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    let ends = got.iter().filter(|g| g.3.end).count();
    assert_eq!(ends, 3);
    assert!(got.windows(2).all(|w| w[1].2 == w[0].2.wrapping_add(1)));
    handle.send(MediaCommand::CloseSession { session }).unwrap();
}
