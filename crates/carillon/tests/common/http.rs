//! A small blocking HTTP/1.1 client for the end-to-end tests of the
//! management API (shared by the `common` and `callsupport` harnesses
//! through `#[path]`): one request per connection (`Connection: close`,
//! so no idle keep-alive connection stays open in the switch between
//! requests), a Prometheus text parser, and the idle check every call
//! test ends with: `/metrics` polled until calls, RTP ports and client
//! transactions are back to zero and the API runtime's alive tasks back
//! to what they were before the test's calls. Every wait is bounded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The example configuration's admin token.
pub const API_TOKEN: &str = "changeme-api-token";

/// A TCP port free on 127.0.0.1 now, other than the ones in `avoid`.
pub fn free_tcp_port(avoid: &[u16]) -> u16 {
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind(("127.0.0.1", 0)) else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        if !avoid.contains(&addr.port()) {
            return addr.port();
        }
    }
    panic!("no free TCP port found");
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request to `addr` (bounded: 10 s to connect, send and read).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let timeout = Duration::from_secs(10);
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || method == "DELETE" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("short chunk")?);
        data = data.get(size + 2..).ok_or("short chunk")?;
    }
}

/// Samples of a Prometheus/OpenMetrics text, by name (labels kept in
/// the name as written).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `/metrics` of the switch's API now.
pub fn metrics(api: SocketAddr) -> Result<HashMap<String, f64>, String> {
    let r = http(api, "GET", "/metrics", Some(API_TOKEN), &[])?;
    if r.status != 200 {
        return Err(format!("/metrics answered {}: {}", r.status, r.text()));
    }
    Ok(parse_metrics(&r.text()))
}

/// Polls `/metrics` until calls, channels, bridges and RTP ports in use
/// are 0 and, when `tasks_before` is given, the alive tasks are no more
/// than that, within `timeout`; the last figures otherwise. Client
/// transactions are shown but not awaited: an INVITE answered 2xx rightly
/// stays in RFC 6026's Accepted state for Timer M (32 s) after its call.
pub fn wait_idle(
    api: SocketAddr,
    tasks_before: Option<f64>,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let shown = match metrics(api) {
            Ok(m) => {
                let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
                let (calls, channels, bridges, ports, tx, tasks) = (
                    get("carillon_calls"),
                    get("carillon_channels"),
                    get("carillon_bridges"),
                    get("carillon_rtp_ports_in_use"),
                    get("carillon_client_transactions"),
                    get("carillon_tokio_alive_tasks"),
                );
                let tasks_ok = match tasks_before {
                    Some(before) => tasks <= before,
                    None => true,
                };
                if calls == 0.0 && channels == 0.0 && bridges == 0.0 && ports == 0.0 && tasks_ok {
                    return Ok(());
                }
                format!(
                    "calls {calls}, channels {channels}, bridges {bridges}, rtp ports {ports}, client transactions {tx}, tokio tasks {tasks} (before the calls: {tasks_before:?})"
                )
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the switch is not idle after {:?}: {shown}",
                start.elapsed()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
