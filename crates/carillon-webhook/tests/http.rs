//! The webhook sender against a tiny HTTP/1.1 server on 127.0.0.1 (a tokio
//! TcpListener in the test): what arrives, retries, giving up, and a full
//! queue. Every wait is bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carillon_webhook::{WebhookConfig, WebhookRequest, WebhookSender, WebhookStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the test server answers its n-th request (from 0).
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// Read the request, never answer (the connection stays open).
    Hang,
}

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn server(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            let reply = Arc::clone(&reply);
            tokio::spawn(async move { serve(stream, log, reply).await });
        }
    });
    Server { url, seen }
}

async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<impl Fn(usize) -> Reply>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    let n = {
        let mut seen = log.lock().unwrap();
        seen.push(Seen { head, body });
        seen.len() - 1
    };
    match reply(n) {
        Reply::Status(code) => {
            let answer =
                format!("HTTP/1.1 {code} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        Reply::Hang => {
            // Hold the connection (bounded, well past every test).
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

fn quick() -> WebhookConfig {
    WebhookConfig {
        queue: 16,
        concurrency: 4,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

fn request(url: &str, retries: u32) -> WebhookRequest {
    WebhookRequest {
        url: url.to_owned(),
        body: r#"{"caller":"100","choice":"2"}"#.to_owned(),
        timeout: Duration::from_millis(500),
        retries,
    }
}

/// Polls the sender's stats until `done` holds; panics after 10 s.
async fn wait_for(sender: &WebhookSender, done: impl Fn(&WebhookStats) -> bool) -> WebhookStats {
    for _ in 0..200 {
        let stats = sender.stats();
        if done(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition never held: {:?}", sender.stats());
}

#[tokio::test]
async fn the_json_body_arrives_as_a_post_with_the_json_content_type() {
    let srv = server(|_| Reply::Status(204)).await;
    let sender = WebhookSender::spawn(quick()).unwrap();
    assert!(sender.send(request(&srv.url, 0)));
    let stats = wait_for(&sender, |s| s.delivered == 1).await;
    assert_eq!(stats.failed_attempts, 0);
    let seen = srv.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].head.starts_with("POST /hook HTTP/1.1\r\n"),
        "{}",
        seen[0].head
    );
    assert!(
        seen[0]
            .head
            .to_ascii_lowercase()
            .contains("\r\ncontent-type: application/json\r\n"),
        "{}",
        seen[0].head
    );
    assert_eq!(seen[0].body, r#"{"caller":"100","choice":"2"}"#);
}

#[tokio::test]
async fn a_server_that_fails_twice_then_succeeds_gets_three_attempts() {
    let srv = server(|n| Reply::Status(if n < 2 { 500 + n as u16 } else { 200 })).await;
    let sender = WebhookSender::spawn(quick()).unwrap();
    assert!(sender.send(request(&srv.url, 5)));
    let stats = wait_for(&sender, |s| s.delivered == 1).await;
    assert_eq!(stats.failed_attempts, 2);
    assert_eq!(stats.given_up, 0);
    assert_eq!(srv.seen().len(), 3);
    assert!(srv
        .seen()
        .iter()
        .all(|s| s.body == r#"{"caller":"100","choice":"2"}"#));
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_after_the_retries() {
    let srv = server(|_| Reply::Hang).await;
    let sender = WebhookSender::spawn(quick()).unwrap();
    let mut req = request(&srv.url, 2);
    req.timeout = Duration::from_millis(200);
    assert!(sender.send(req));
    // Three attempts of at most 200 ms each and two short backoffs: the
    // wait below is only a bound for a broken sender.
    let stats = wait_for(&sender, |s| s.given_up == 1).await;
    assert_eq!(stats.failed_attempts, 3);
    assert_eq!(stats.delivered, 0);
    assert_eq!(srv.seen().len(), 3);
}

#[tokio::test]
async fn a_refused_connection_counts_as_a_failure_and_is_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sender = WebhookSender::spawn(quick()).unwrap();
    assert!(sender.send(request(&format!("http://127.0.0.1:{port}/hook"), 1)));
    let stats = wait_for(&sender, |s| s.given_up == 1).await;
    assert_eq!(stats.failed_attempts, 2);
    assert_eq!(stats.delivered, 0);
}

#[tokio::test]
async fn a_malformed_url_is_given_up_without_retries() {
    let sender = WebhookSender::spawn(quick()).unwrap();
    assert!(sender.send(request("not a url", 3)));
    let stats = wait_for(&sender, |s| s.given_up == 1).await;
    assert_eq!(stats.failed_attempts, 1);
}

#[tokio::test]
async fn send_returns_at_once_and_a_full_queue_drops_with_a_count_while_the_server_hangs() {
    let srv = server(|_| Reply::Hang).await;
    let sender = WebhookSender::spawn(WebhookConfig {
        queue: 2,
        concurrency: 1,
        ..quick()
    })
    .unwrap();
    let mut req = request(&srv.url, 0);
    req.timeout = Duration::from_secs(30);
    assert!(sender.send(req.clone()));
    // The one slot is now held by a request the server never answers.
    for _ in 0..200 {
        if !srv.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(srv.seen().len(), 1);
    // send() is synchronous: it cannot wait for the hanging server.
    assert!(sender.send(req.clone()));
    assert!(sender.send(req.clone()));
    assert!(!sender.send(req.clone()));
    assert!(!sender.send(req));
    let stats = sender.stats();
    assert_eq!(stats.dropped, 2);
    assert_eq!(stats.delivered + stats.given_up, 0);
}
