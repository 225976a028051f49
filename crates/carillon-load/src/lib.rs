//! `carillon-load`: a SIP/RTP load generator for going-live checks.
//!
//! Places calls through any SIP switch (Asterisk, Kamailio, Carillon) at a
//! given rate and concurrency, answers the calls the switch routes back to
//! its UAS address, sends and checks G.711 RTP both ways, and reports call,
//! setup-time and RTP statistics as text or JSON. This is an I/O crate:
//! [`run`] owns the tokio loop and the SIP sockets, [`media`] the RTP
//! worker threads, [`payload`] the RTP payload and its check (exact across
//! µ-law ↔ A-law transcoding); the call logic in [`engine`] takes `(now, input)` and
//! returns datagrams to send. See the crate README for target setup.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod engine;
pub mod media;
pub mod payload;
pub mod report;

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;

use crate::config::Config;
use crate::engine::{Engine, Side};
use crate::media::{Media, MediaParams};
use crate::report::Report;

/// Largest SIP datagram accepted.
const MAX_DATAGRAM: usize = 65_535;

async fn recv_opt(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Runs the whole load test and returns its report. Bounded by
/// `cfg.max_time`.
pub async fn run(cfg: Config) -> anyhow::Result<Report> {
    let uac_sock = if cfg.role.places_calls() {
        Some(UdpSocket::bind(cfg.uac_listen).await?)
    } else {
        None
    };
    let uas_sock = if cfg.role.answers_calls() {
        Some(UdpSocket::bind(cfg.uas_listen).await?)
    } else {
        None
    };
    let uac_local = match &uac_sock {
        Some(s) => s.local_addr()?,
        None => cfg.uac_listen,
    };
    let media = if cfg.rtp {
        Some(Media::start(
            cfg.media_threads,
            MediaParams {
                uac_codec: cfg.codec,
                uas_codec: cfg.uas_codec,
                ptime: Duration::from_millis(u64::from(cfg.ptime)),
                clock_rate: 8000,
            },
        )?)
    } else {
        None
    };
    let start = Instant::now();
    let deadline = start + cfg.max_time;
    let mut engine = Engine::new(cfg.clone(), uac_local, media, start);
    let mut uac_buf = vec![0u8; MAX_DATAGRAM];
    let mut uas_buf = vec![0u8; MAX_DATAGRAM];
    let mut hit_max_time = false;
    loop {
        let now = Instant::now();
        engine.handle_timeout(now);
        let pending: Vec<_> = engine.drain_transmits().collect();
        for t in pending {
            let sock = match t.side {
                Side::Uac => uac_sock.as_ref(),
                Side::Uas => uas_sock.as_ref(),
            };
            if let Some(s) = sock {
                match s.try_send_to(&t.data, t.to) {
                    // Not yet known writable (fresh socket) or buffer full:
                    // wait for room, bounded by the deadline.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        let _ = tokio::time::timeout(left, s.send_to(&t.data, t.to)).await;
                    }
                    // Other errors (ICMP unreachable…): SIP retransmits.
                    _ => {}
                }
            }
        }
        if engine.is_done(now) {
            break;
        }
        if now >= deadline {
            hit_max_time = true;
            break;
        }
        let wake = engine.poll_timeout().unwrap_or(deadline).min(deadline);
        tokio::select! {
            r = recv_opt(uac_sock.as_ref(), &mut uac_buf) => {
                if let Ok((n, src)) = r {
                    let data = Bytes::copy_from_slice(uac_buf.get(..n).unwrap_or_default());
                    engine.handle_datagram(Instant::now(), Side::Uac, src, data);
                }
            }
            r = recv_opt(uas_sock.as_ref(), &mut uas_buf) => {
                if let Ok((n, src)) = r {
                    let data = Bytes::copy_from_slice(uas_buf.get(..n).unwrap_or_default());
                    engine.handle_datagram(Instant::now(), Side::Uas, src, data);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    if hit_max_time {
        engine.abandon_unfinished();
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let (uac, uas, media) = engine.into_parts();
    let rtp = media.map(Media::finish);
    let mut report = Report {
        role: cfg.role,
        target: match cfg.role {
            config::Role::Uas => format!("(answering on {})", cfg.uas_listen),
            _ => cfg.target.to_string(),
        },
        elapsed_s,
        hit_max_time,
        uac_codec: cfg.role.places_calls().then_some(cfg.codec),
        uas_codec: cfg.role.answers_calls().then_some(cfg.uas_codec),
        uac,
        uas,
        rtp,
        failure_pct: 0.0,
        max_failure_pct: cfg.max_failure_pct,
        passed: false,
    };
    report.judge();
    Ok(report)
}
