//! The AMI listener (`[ami]`): the tokio edge of `carillon-ami`.
//!
//! Owns the TCP listener, one task per connection (at most
//! `max_connections` at once; more are refused with a log line) and one
//! translator task. The translator is the only subscriber of the switch's
//! [`EventHub`] for AMI: it keeps the live channel table
//! ([`carillon_ami::Translator`]) and re-broadcasts each record as
//! Asterisk's events to the connections, each of which subscribes to that
//! broadcast when it opens. The table answers CoreShowChannels, Status and
//! `core show channels`. A Hangup action goes to the switch through the
//! driver's control channel ([`Control::Hangup`]) and the session is
//! answered with the result. Publishing never waits: a connection whose
//! receiver lags (it reads too slowly) or whose writes stall for
//! [`WRITE_TIMEOUT`] is cut off with a log line, and the switch never
//! notices. Secrets are never logged; user names and addresses are.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carillon_ami::{AmiEvent, Session, SessionConfig, SessionEvent, SwitchRequest, Translator};
use carillon_net::{Control, DriverHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::{debug, info, warn};

use crate::config::AmiConfig;
use crate::events::{EventHub, HUB_CAPACITY};

/// How long a write to a client may stall before it is cut off.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Failed logins a connection may make before it is closed.
const MAX_LOGIN_FAILURES: u32 = 3;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the connection tasks share.
struct Shared {
    session: Arc<SessionConfig>,
    table: Arc<Mutex<Translator>>,
    events: broadcast::Sender<Arc<AmiEvent>>,
    /// The switch, once its driver runs (set after the listener starts).
    driver: Arc<OnceLock<DriverHandle>>,
}

impl Shared {
    /// Connections may lag `capacity` AMI events before they are cut off.
    fn new(cfg: &AmiConfig, capacity: usize, driver: Arc<OnceLock<DriverHandle>>) -> Shared {
        let (events, _) = broadcast::channel(capacity.max(1));
        Shared {
            session: Arc::new(SessionConfig {
                users: cfg.users.clone(),
                max_login_failures: MAX_LOGIN_FAILURES,
                booted_ms: unix_ms(),
            }),
            table: Arc::new(Mutex::new(Translator::new())),
            events,
            driver,
        }
    }

    /// Carries out a session's switch request; false when the switch
    /// found nothing to act on (or is not running).
    async fn execute(&self, request: SwitchRequest) -> bool {
        let Some(driver) = self.driver.get() else {
            return false;
        };
        match request {
            SwitchRequest::Hangup { channel, cause } => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                driver
                    .send(Control::Hangup {
                        channel,
                        cause,
                        reply,
                    })
                    .await;
                matches!(rx.await, Ok(Ok(())))
            }
        }
    }
}

/// Binds the listener, subscribes to `hub` and starts serving; returns
/// the bound address. Call before the switch runs, so no event is missed;
/// `driver` is set once the switch runs (actions that act on it fail as
/// "No such channel" before).
pub async fn start(
    cfg: &AmiConfig,
    hub: &EventHub,
    driver: Arc<OnceLock<DriverHandle>>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(cfg.addr).await?;
    let bound = listener.local_addr()?;
    let shared = Arc::new(Shared::new(cfg, HUB_CAPACITY, driver));
    tokio::spawn(translate(hub.subscribe(), Arc::clone(&shared)));
    let limit = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little.
                    warn!(error = %e, "AMI accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match Arc::clone(&limit).try_acquire_owned() {
                Ok(permit) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        serve(stream, peer, &shared).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    warn!(peer = %peer, "AMI connection refused: max_connections reached");
                }
            }
        }
    });
    Ok(bound)
}

/// Feeds the switch's records to the channel table and broadcasts the AMI
/// events they make.
async fn translate(
    mut records: broadcast::Receiver<Arc<carillon_events::EventRecord>>,
    shared: Arc<Shared>,
) {
    loop {
        match records.recv().await {
            Ok(record) => {
                let events = match shared.table.lock() {
                    Ok(mut t) => t.handle_record(&record),
                    Err(_) => return,
                };
                for e in events {
                    // No connection: nobody to tell.
                    let _ = shared.events.send(Arc::new(e));
                }
            }
            Err(RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "AMI event translator fell behind the switch: events lost, the channel table may be stale"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// One connection, until the client leaves, logs off, fails to log in
/// too often, or is too slow.
async fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    debug!(peer = %peer, "AMI connection");
    let _ = stream.set_nodelay(true);
    let mut events = shared.events.subscribe();
    let mut session = Session::new(Arc::clone(&shared.session), rand::random());
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(request) = session.poll_request() {
            info!(peer = %peer, user = session.user().unwrap_or(""), ?request, "AMI action on the switch");
            let done = shared.execute(request).await;
            session.hangup_done(done);
            let table = &shared.table;
            session.handle_input(unix_ms(), &[], &mut || {
                table.lock().map(|t| t.channels()).unwrap_or_default()
            });
        }
        while let Some(e) = session.poll_event() {
            match e {
                SessionEvent::LoggedIn { user } => info!(peer = %peer, user, "AMI login"),
                SessionEvent::LoginFailed { user } => {
                    warn!(peer = %peer, user, "AMI login failed")
                }
                SessionEvent::BadPacket(e) => {
                    debug!(peer = %peer, error = %e, "AMI packet refused")
                }
            }
        }
        if let Some(out) = session.poll_transmit() {
            match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(out.as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    warn!(peer = %peer, user = session.user().unwrap_or(""), "AMI client not reading: disconnected");
                    break;
                }
            }
        }
        if session.is_closing() {
            break;
        }
        tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let table = &shared.table;
                    session.handle_input(unix_ms(), &buf[..n], &mut || {
                        table.lock().map(|t| t.channels()).unwrap_or_default()
                    });
                }
            },
            event = events.recv() => match event {
                Ok(e) => session.handle_event(&e),
                Err(RecvError::Lagged(missed)) => {
                    warn!(peer = %peer, user = session.user().unwrap_or(""), missed, "AMI client too slow for the event stream: disconnected");
                    break;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = wr.shutdown().await;
    debug!(peer = %peer, "AMI connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_ami::{AmiUser, ClassMask, Packet};
    use tokio::io::AsyncBufReadExt;

    fn config(max_connections: usize) -> AmiConfig {
        AmiConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            max_connections,
            users: vec![AmiUser {
                name: "dialer".into(),
                secret: "s".into(),
                read: ClassMask::ALL,
                write: ClassMask::ALL,
            }],
        }
    }

    /// Reads until the peer closes (bounded); everything it sent.
    async fn read_to_close(stream: TcpStream) -> String {
        let mut r = tokio::io::BufReader::new(stream);
        let mut all = String::new();
        let read = async {
            let mut line = String::new();
            while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                all.push_str(&line);
                line.clear();
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server closed the connection");
        all
    }

    #[tokio::test]
    async fn a_client_that_lags_behind_the_event_stream_is_cut_off_and_publishing_never_waits() {
        let shared = Arc::new(Shared::new(&config(4), 4, Arc::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let server = Arc::clone(&shared);
        let task = tokio::spawn(async move { serve(stream, peer, &server).await });
        client
            .write_all(b"Action: Login\r\nUsername: dialer\r\nSecret: s\r\n\r\n")
            .await
            .unwrap();
        // Wait (bounded) for the login's answer, so the session reads events.
        let mut r = tokio::io::BufReader::new(client);
        let mut line = String::new();
        let answered = async {
            loop {
                line.clear();
                r.read_line(&mut line).await.unwrap();
                if line.starts_with("Message: Authentication accepted") {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .expect("login answered");
        // A burst far beyond the capacity, published without yielding:
        // send() never waits for the connection.
        let event = Arc::new(AmiEvent {
            class: ClassMask::CALL,
            packet: Packet::new().with("Event", "Newchannel"),
            name: "Newchannel",
        });
        for _ in 0..100 {
            let _ = shared.events.send(Arc::clone(&event));
        }
        // The connection task saw it lagged and closed the connection.
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the lagging connection was cut off")
            .unwrap();
        let rest = read_to_close(r.into_inner()).await;
        assert!(rest.matches("Event: Newchannel").count() < 100, "{rest}");
    }

    #[tokio::test]
    async fn connections_beyond_max_connections_are_refused() {
        let hub = EventHub::new(16);
        let addr = start(&config(1), &hub, Arc::default()).await.unwrap();
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut banner = [0u8; 29];
        tokio::time::timeout(Duration::from_secs(10), first.read_exact(&mut banner))
            .await
            .expect("banner in time")
            .unwrap();
        assert_eq!(&banner, b"Asterisk Call Manager/5.0.0\r\n");
        // The second is closed without a banner while the first is open.
        let second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_to_close(second).await, "");
        drop(first);
    }
}
