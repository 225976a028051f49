//! Test doubles shared by the integration tests: a stateless SIP "echo
//! proxy" between carillon-load's UAC and UAS, free-port picking, and a
//! bounded runner for the binary.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use carillon_digest::{Algorithm, Challenge, Credentials, QopAuth};
use carillon_sip::{HeaderName, Message, Method, ResponseBuilder};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// Digest credentials the proxy demands when `auth` is set.
pub struct ProxyAuth {
    pub user: String,
    pub password: String,
    pub realm: String,
}

/// What the proxy saw.
#[derive(Default)]
pub struct ProxyCounts {
    pub requests_forwarded: AtomicU64,
    pub responses_forwarded: AtomicU64,
    pub challenges_sent: AtomicU64,
    pub bad_credentials: AtomicU64,
}

/// A stateless forwarder: every request goes to `uas`, every datagram
/// from `uas` goes back to the last request's source. Nothing is
/// rewritten, so SDP travels end to end and RTP flows directly.
pub struct EchoProxy {
    pub addr: SocketAddr,
    pub counts: Arc<ProxyCounts>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EchoProxy {
    pub fn start(uas: SocketAddr, auth: Option<ProxyAuth>) -> EchoProxy {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(ProxyCounts::default());
        let (stop2, counts2) = (stop.clone(), counts.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            let mut last_uac: Option<SocketAddr> = None;
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, src)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let data = &buf[..n];
                if src == uas {
                    if let Some(uac) = last_uac {
                        counts2.responses_forwarded.fetch_add(1, Ordering::Relaxed);
                        let _ = sock.send_to(data, uac);
                    }
                    continue;
                }
                last_uac = Some(src);
                if let Some(a) = &auth {
                    if let Some(reply) = challenge_if_needed(data, a, &counts2) {
                        let _ = sock.send_to(&reply, src);
                        continue;
                    }
                }
                counts2.requests_forwarded.fetch_add(1, Ordering::Relaxed);
                let _ = sock.send_to(data, uas);
            }
        });
        EchoProxy {
            addr,
            counts,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for EchoProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// For an INVITE without valid Proxy-Authorization: the 407 to send back.
fn challenge_if_needed(data: &[u8], a: &ProxyAuth, counts: &ProxyCounts) -> Option<Bytes> {
    let msg = Message::parse(Bytes::copy_from_slice(data)).ok()?;
    if msg.method() != Some(&Method::Invite) {
        return None;
    }
    let nonce = "4f2a9c-fixed-test-nonce";
    if let Some(value) = msg.header(HeaderName::ProxyAuthorization) {
        let creds = Credentials::parse(&value).ok()?;
        let ha1 = carillon_digest::ha1(creds.algorithm, &a.user, &a.realm, &a.password);
        let qop = match (&creds.cnonce, creds.nc) {
            (Some(c), Some(nc)) => Some(QopAuth { cnonce: c, nc }),
            _ => None,
        };
        let uri = msg.request_uri_str().unwrap_or_default();
        let ok = creds.username == a.user
            && creds.nonce == nonce
            && creds.uri == uri
            && carillon_digest::verify_response(
                creds.algorithm,
                &ha1,
                nonce,
                qop,
                "INVITE",
                &creds.uri,
                &creds.response,
            );
        if ok {
            return None;
        }
        counts.bad_credentials.fetch_add(1, Ordering::Relaxed);
        return Some(ResponseBuilder::new(&msg, 403).to_tag("px").build());
    }
    counts.challenges_sent.fetch_add(1, Ordering::Relaxed);
    let ch = Challenge {
        realm: a.realm.clone(),
        nonce: nonce.into(),
        algorithm: Algorithm::Md5,
        opaque: None,
        stale: false,
        qop_auth: true,
    };
    Some(
        ResponseBuilder::new(&msg, 407)
            .to_tag("px")
            .header("Proxy-Authenticate", ch.to_header_value())
            .build(),
    )
}

/// Runs carillon-load with `args`, returning (exit code, stdout).
pub fn run_load(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_carillon-load"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("stdout: {stdout}");
    }
    (out.status.code().unwrap_or(-1), stdout)
}
