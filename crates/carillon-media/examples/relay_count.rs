//! Instruction count of the relay path's common case (no player, no tap),
//! for callgrind (machine-independent; benches/README.md, "Session 10"):
//!
//! ```sh
//! cargo build --release -p carillon-media --example relay_count
//! valgrind --tool=callgrind --toggle-collect='*MediaEngine::handle_packet*' \
//!     --toggle-collect='*MediaEngine::handle_timeout*' \
//!     target/release/examples/relay_count 100 220000   # and 20000
//! ```
//!
//! Opens PAIRS bridged PCMU pairs (default 100) in one `MediaEngine` and
//! sends PACKETS packets round robin over every leg, 20 ms of media time
//! per round; (count at 220000 − count at 20000) / 200000 is the cost of
//! one relayed packet. The same file builds against the engine before the
//! media graph (c8199eb), which has no `Play`/`Record`: only the commands
//! both know are used.
use carillon_media::{MediaConfig, MediaEngine, SocketRequest};
use carillon_mediactl::{AudioCodec, LegId, LegParams, MediaCommand, SessionId};
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const S: SessionId = SessionId(1);

fn phone(leg: LegId) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, leg.0 as u8], 5000))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let packets: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let t0 = Instant::now();
    let mut e = MediaEngine::new(MediaConfig::default(), [127, 0, 0, 1].into());
    for p in 0..pairs {
        let a = LegId(2 * p + 1);
        let b = LegId(2 * p + 2);
        for (leg, port) in [(a, 20000 + 4 * p as u16), (b, 20002 + 4 * p as u16)] {
            let params = LegParams {
                codec: AudioCodec::Pcmu,
                payload_type: 0,
                telephone_event_pt: Some(101),
                ptime: Duration::from_millis(20),
                remote: Some(phone(leg)),
                latch: true,
                send: true,
                recv: true,
            };
            let open = MediaCommand::OpenLeg {
                session: SessionId(S.0 + p),
                leg,
                local_port: port,
                params,
            };
            e.handle_command(t0, open).expect("open");
            while let Some(SocketRequest::Bind { leg, rtp_port }) = e.poll_socket_request() {
                let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
                e.handle_bound(t0, leg, Ok(local)).expect("bound");
            }
        }
        e.handle_command(
            t0,
            MediaCommand::Bridge {
                session: SessionId(S.0 + p),
                a,
                b,
            },
        )
        .expect("bridge");
    }
    let mut template = [0u8; 172];
    RtpPacketBuilder::new(0, 1, 160, Ssrc(0xAAAA), &[0x5A; 160])
        .write_into(&mut template)
        .expect("packet");
    let mut sent = 0u64;
    for n in 0..packets {
        // Round robin over every leg of every pair, 20 ms per round.
        let legs = 2 * pairs;
        let round = n / legs;
        let i = n % legs;
        let now = t0 + Duration::from_millis(20 * round) + Duration::from_micros(i);
        let leg = LegId(i + 1);
        let port = 20000 + 2 * i as u16;
        let seq = round as u16;
        let mut buf = template;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        buf[8..12].copy_from_slice(&(0xAAAA_0000u32 + i as u32).to_be_bytes());
        if std::hint::black_box(e.handle_packet(now, port, phone(leg), &mut buf)).is_some() {
            sent += 1;
        }
        if e.poll_timeout().is_some_and(|d| d <= now) {
            e.handle_timeout(now);
        }
    }
    println!("relayed {sent} of {packets}");
}
