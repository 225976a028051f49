//! The kernel RTP program on the real loopback device: a flow's RTP is rewritten
//! and readdressed in the kernel, and what the program must not touch
//! reaches the local socket unchanged. Needs root (CAP_BPF, CAP_NET_ADMIN);
//! CI runs as root.

use carillon_kernelpath::{FlowKey, KernelRelay};
use carillon_media::{G711Map, OffloadFlow};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

fn socket() -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s
}

fn v4(s: &UdpSocket) -> SocketAddrV4 {
    match s.local_addr().expect("addr") {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn flows_are_forwarded_in_the_kernel_and_the_rest_passes() {
    if std::env::var_os("CARILLON_SKIP_KERNELPATH").is_some() {
        eprintln!("SKIPPED: CARILLON_SKIP_KERNELPATH is set (no BPF on this machine)");
        if let Some(path) = std::env::var_os("CARILLON_SKIP_REPORT") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
                let _ = writeln!(f, "kernel RTP path (carillon-kernelpath loopback): no BPF");
            }
        }
        return;
    }
    let relay = KernelRelay::attach(&["lo".to_string()])
        .expect("attaching the kernel RTP program to lo needs root (CAP_BPF and CAP_NET_ADMIN)");
    let mut table = relay.flow_table().expect("flow table");

    let phone_a = socket(); // the far end of leg A
    let leg_a = socket(); // the switch's RTP port of leg A
    let leg_b = socket(); // the switch's RTP port of leg B
    let phone_b = socket(); // the far end of leg B
    let key = FlowKey {
        remote: v4(&phone_a),
        local: v4(&leg_a),
    };
    let flow = OffloadFlow {
        remote: v4(&phone_a),
        local: v4(&leg_a),
        destination: v4(&phone_b),
        source_port: v4(&leg_b).port(),
        ssrc_in: 0x1111_1111,
        ssrc_out: 0xbbbb_bbbb,
        seq_delta: 1000,
        ts_delta: 0xffff_ff00,
        pt_in: 0,
        pt_out: 8,
        local_destination: true,
        transcode: G711Map::None,
    };
    table.insert(&flow, 0).expect("insert");

    // A matching packet (marker set) goes to phone B, rewritten, from leg B's port.
    let payload = [0x55u8; 160];
    phone_a
        .send_to(&rtp(0x80, 65000, 0x100, 0x1111_1111, &payload), v4(&leg_a))
        .expect("send");
    let mut buf = [0u8; 2048];
    let (n, from) = phone_b
        .recv_from(&mut buf)
        .expect("phone B gets the packet");
    assert_eq!(from, SocketAddr::V4(v4(&leg_b)));
    let expected = rtp(0x88, 65000u16.wrapping_add(1000), 0, 0xbbbb_bbbb, &payload);
    assert_eq!(&buf[..n], &expected[..]);

    // A telephone-event (other PT) and another SSRC pass to leg A's socket.
    let event = rtp(101, 1, 2, 0x1111_1111, &[1, 0x8a, 0, 160]);
    phone_a.send_to(&event, v4(&leg_a)).expect("send");
    let (n, from) = leg_a.recv_from(&mut buf).expect("event reaches userspace");
    assert_eq!(
        (&buf[..n], from),
        (&event[..], SocketAddr::V4(v4(&phone_a)))
    );
    let other = rtp(0, 1, 2, 0x2222_2222, &payload);
    phone_a.send_to(&other, v4(&leg_a)).expect("send");
    let (n, _) = leg_a
        .recv_from(&mut buf)
        .expect("new SSRC reaches userspace");
    assert_eq!(&buf[..n], &other[..]);

    // Another sender to the same port is not the flow.
    let stranger = socket();
    let same = rtp(0, 7, 8, 0x1111_1111, &payload);
    stranger.send_to(&same, v4(&leg_a)).expect("send");
    let (n, from) = leg_a
        .recv_from(&mut buf)
        .expect("stranger reaches userspace");
    assert_eq!(
        (&buf[..n], from),
        (&same[..], SocketAddr::V4(v4(&stranger)))
    );

    let counters = table.counters(&key).expect("read").expect("installed");
    assert_eq!(counters.packets, 1);
    assert_eq!(counters.bytes, 12 + 160);
    assert_eq!(counters.last_seq, 65000u16.wrapping_add(1000));
    assert_eq!(counters.last_timestamp, 0);

    // Removed: the next packet reaches leg A's socket.
    let removed = table.remove(&key).expect("remove").expect("was installed");
    assert_eq!(removed.packets, 1);
    let again = rtp(0, 65001, 0x1a0, 0x1111_1111, &payload);
    phone_a.send_to(&again, v4(&leg_a)).expect("send");
    let (n, _) = leg_a.recv_from(&mut buf).expect("after removal: userspace");
    assert_eq!(&buf[..n], &again[..]);
    assert!(table.counters(&key).expect("read").is_none());

    // A µ-law → A-law flow: the payload is mapped with the G.711 table.
    let transcoding = OffloadFlow {
        transcode: G711Map::UlawToAlaw,
        ..flow
    };
    table.insert(&transcoding, 0).expect("insert");
    let ulaw: Vec<u8> = (0..160u8).map(|i| i.wrapping_mul(37)).collect();
    phone_a
        .send_to(&rtp(0, 10, 1600, 0x1111_1111, &ulaw), v4(&leg_a))
        .expect("send");
    let (n, _) = phone_b.recv_from(&mut buf).expect("phone B gets A-law");
    let alaw: Vec<u8> = ulaw
        .iter()
        .map(|&b| carillon_codec::g711::ULAW_TO_ALAW[usize::from(b)])
        .collect();
    assert_eq!(
        &buf[..n],
        &rtp(
            8,
            1010,
            1600u32.wrapping_add(0xffff_ff00),
            0xbbbb_bbbb,
            &alaw
        )[..]
    );
    // With padding (P bit) it is left to userspace.
    let mut padded = rtp(0, 11, 1760, 0x1111_1111, &ulaw);
    padded[0] |= 0x20;
    phone_a.send_to(&padded, v4(&leg_a)).expect("send");
    let (n, _) = leg_a
        .recv_from(&mut buf)
        .expect("padded packet reaches userspace");
    assert_eq!(&buf[..n], &padded[..]);
    table.remove(&key).expect("remove");
    drop(relay);
}
