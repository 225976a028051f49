//! SIP transports: UDP sockets (read directly by the signalling task, see
//! [`crate::driver`], in batches: no hop through a channel per datagram),
//! TCP listeners with a task per connection that frames messages and writes
//! what the core sends back. Stream traffic reaches the core as an
//! [`Inbound`] over one channel; connection writers are looked up by
//! connection id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use carillon_b2bua::{Peer, Transport};
use carillon_sip::message::stream_frame_len;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// One configured listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Something received.
#[derive(Debug)]
pub enum Inbound {
    Message { peer: Peer, bytes: Bytes },
    Closed { conn: u64 },
}

/// Errors binding listeners.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind {transport} listener on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("transport {0} is not available yet")]
    Unsupported(&'static str),
    #[error("cannot start the signalling thread: {0}")]
    Runtime(std::io::Error),
}

type ConnMap = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>>;

/// The bound sockets and the writers of open connections.
#[derive(Clone)]
pub struct Listeners {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    conns: ConnMap,
    /// Local addresses actually bound (port 0 resolved).
    pub bound: Vec<ListenSpec>,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl Listeners {
    /// Binds every listener and starts the TCP acceptor tasks; UDP sockets
    /// are read by whoever owns the [`Listeners`] (see [`Listeners::udp_sockets`]).
    pub async fn bind(
        specs: &[ListenSpec],
        tx: mpsc::Sender<Inbound>,
    ) -> Result<Listeners, TransportError> {
        let mut udp = Vec::new();
        let mut bound = Vec::new();
        let conns: ConnMap = Arc::new(Mutex::new(HashMap::new()));
        for spec in specs {
            match spec.transport {
                Transport::Udp => {
                    let sock = UdpSocket::bind(spec.addr).await.map_err(|source| {
                        TransportError::Bind {
                            transport: "udp",
                            addr: spec.addr,
                            source,
                        }
                    })?;
                    let local = sock.local_addr().map_err(|source| TransportError::Bind {
                        transport: "udp",
                        addr: spec.addr,
                        source,
                    })?;
                    let sock = Arc::new(sock);
                    info!(transport = "udp", address = %local, "listening");
                    udp.push((local, sock));
                    bound.push(ListenSpec {
                        transport: Transport::Udp,
                        addr: local,
                    });
                }
                Transport::Tcp => {
                    let l = TcpListener::bind(spec.addr).await.map_err(|source| {
                        TransportError::Bind {
                            transport: "tcp",
                            addr: spec.addr,
                            source,
                        }
                    })?;
                    let local = l.local_addr().map_err(|source| TransportError::Bind {
                        transport: "tcp",
                        addr: spec.addr,
                        source,
                    })?;
                    info!(transport = "tcp", address = %local, "listening");
                    tokio::spawn(tcp_acceptor(l, tx.clone(), conns.clone()));
                    bound.push(ListenSpec {
                        transport: Transport::Tcp,
                        addr: local,
                    });
                }
                Transport::Tls => return Err(TransportError::Unsupported("tls")),
                Transport::Ws => return Err(TransportError::Unsupported("ws")),
                Transport::Wss => return Err(TransportError::Unsupported("wss")),
            }
        }
        Ok(Listeners { udp, conns, bound })
    }

    /// The bound UDP sockets, for the signalling task to read.
    pub fn udp_sockets(&self) -> impl Iterator<Item = &Arc<UdpSocket>> {
        self.udp.iter().map(|(_, s)| s)
    }

    /// Sends bytes to a peer: UDP from the socket of the peer's address
    /// family, streams on their connection.
    pub fn send(&self, to: Peer, bytes: Bytes) {
        match to.transport {
            Transport::Udp => {
                let sock = self
                    .udp
                    .iter()
                    .find(|(local, _)| local.is_ipv4() == to.addr.is_ipv4())
                    .or(self.udp.first());
                let Some((_, sock)) = sock else {
                    warn!(to = %to, "no UDP socket to send from");
                    return;
                };
                match sock.try_send_to(&bytes, to.addr) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let sock = sock.clone();
                        tokio::spawn(async move {
                            if let Err(e) = sock.send_to(&bytes, to.addr).await {
                                debug!(to = %to.addr, error = %e, "udp send failed");
                            }
                        });
                    }
                    Err(e) => debug!(to = %to.addr, error = %e, "udp send failed"),
                }
            }
            _ => {
                let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
                match to.conn.and_then(|c| conns.get(&c)) {
                    Some(w) => {
                        let _ = w.send(bytes);
                    }
                    None => debug!(to = %to, "no open connection for stream peer"),
                }
            }
        }
    }
}

async fn tcp_acceptor(l: TcpListener, tx: mpsc::Sender<Inbound>, conns: ConnMap) {
    loop {
        match l.accept().await {
            Ok((stream, from)) => {
                let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
                let (wtx, wrx) = mpsc::unbounded_channel();
                conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, wtx.clone());
                debug!(conn = id, from = %from, "tcp connection");
                tokio::spawn(tcp_connection(
                    stream,
                    from,
                    id,
                    tx.clone(),
                    wtx,
                    wrx,
                    conns.clone(),
                ));
            }
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_connection(
    stream: TcpStream,
    from: SocketAddr,
    id: u64,
    tx: mpsc::Sender<Inbound>,
    wtx: mpsc::UnboundedSender<Bytes>,
    mut wrx: mpsc::UnboundedReceiver<Bytes>,
    conns: ConnMap,
) {
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        transport: Transport::Tcp,
        addr: from,
        conn: Some(id),
    };
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            // RFC 5626 §4.4.1: a double CRLF ping gets a single CRLF pong.
            if buf.starts_with(b"\r\n\r\n") {
                buf.advance(4);
                let _ = wtx.send(Bytes::from_static(b"\r\n"));
                continue;
            }
            if buf.starts_with(b"\r\n")
                && buf.len() >= 2
                && !buf[2..].starts_with(b"\r\n")
                && buf.len() > 2
            {
                buf.advance(2);
                continue;
            }
            if buf.len() <= 2 && buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                break;
            }
            match stream_frame_len(&buf) {
                Ok(Some(n)) => {
                    let frame = buf.split_to(n).freeze();
                    if tx
                        .send(Inbound::Message { peer, bytes: frame })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Framing is lost (bad or conflicting Content-Length,
                    // oversized): RFC 3261 §18.3 says close the connection.
                    info!(conn = id, from = %from, error = %e, "closing stream: unframeable message");
                    break 'read;
                }
            }
        }
    }
    conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    drop(wtx);
    writer.abort();
    let _ = tx.send(Inbound::Closed { conn: id }).await;
}
