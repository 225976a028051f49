//! SIP transports: UDP sockets (read directly by the signalling task, see
//! [`crate::driver`], in batches: no hop through a channel per datagram),
//! TCP listeners with a task per connection that frames messages and writes
//! what the core sends back. Stream traffic reaches the core as an
//! [`Inbound`] over one channel; connection writers are looked up by
//! connection id, else by the peer's address. A TCP message for an address
//! with no open connection opens one (RFC 3261 §18.1.1; a phone whose
//! registration connection is gone is reached at its Contact): the
//! message waits in the connection's queue while it connects, a failed
//! connect is reported as [`Inbound::Closed`], and what the peer sends on
//! the new connection reaches the core like any stream traffic. Datagrams
//! answered within one UDP read batch leave
//! together through a [`UdpOutbox`]: one `sendmmsg` per socket instead of a
//! `sendto` each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes, BytesMut};
use carillon_b2bua::{Peer, Transport};
use carillon_sip::message::stream_frame_len;
use std::io::IoSlice;
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
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
    Message {
        peer: Peer,
        bytes: Bytes,
    },
    /// A stream connection with `addr` closed (or could not be opened).
    Closed {
        conn: u64,
        addr: SocketAddr,
    },
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

/// Open stream connections: their writers by id, and ids by remote
/// address (the latest connection with that address).
#[derive(Default)]
struct Conns {
    by_id: HashMap<u64, mpsc::UnboundedSender<Bytes>>,
    by_addr: HashMap<SocketAddr, u64>,
}

impl Conns {
    fn insert(&mut self, id: u64, addr: SocketAddr, writer: mpsc::UnboundedSender<Bytes>) {
        self.by_id.insert(id, writer);
        self.by_addr.insert(addr, id);
    }

    fn remove(&mut self, id: u64, addr: SocketAddr) {
        self.by_id.remove(&id);
        if self.by_addr.get(&addr) == Some(&id) {
            self.by_addr.remove(&addr);
        }
    }

    /// The writer for `to`: its own connection while open, else the open
    /// connection with its address.
    fn writer(&self, to: &Peer) -> Option<&mpsc::UnboundedSender<Bytes>> {
        to.conn
            .and_then(|c| self.by_id.get(&c))
            .or_else(|| self.by_addr.get(&to.addr).and_then(|c| self.by_id.get(c)))
    }
}

type ConnMap = Arc<Mutex<Conns>>;

/// The connection map; a lock poisoned by a panic elsewhere is used as it is.
fn lock(conns: &ConnMap) -> MutexGuard<'_, Conns> {
    conns.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long opening an outgoing TCP connection may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The bound sockets and the writers of open connections.
#[derive(Clone)]
pub struct Listeners {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    conns: ConnMap,
    /// Where messages of connections we open go.
    inbound: mpsc::Sender<Inbound>,
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
        let conns: ConnMap = Arc::new(Mutex::new(Conns::default()));
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
        Ok(Listeners {
            udp,
            conns,
            inbound: tx,
            bound,
        })
    }

    /// Index of the UDP socket that sends to `to`: the first of its
    /// address family, else the first.
    fn udp_socket_for(&self, to: SocketAddr) -> Option<usize> {
        self.udp
            .iter()
            .position(|(local, _)| local.is_ipv4() == to.is_ipv4())
            .or((!self.udp.is_empty()).then_some(0))
    }

    /// One datagram from socket `i`; when the socket buffer is full it is
    /// sent by a task that waits for room.
    fn send_udp(&self, i: usize, to: SocketAddr, bytes: Bytes) {
        let Some((_, sock)) = self.udp.get(i) else {
            return;
        };
        match sock.try_send_to(&bytes, to) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let sock = sock.clone();
                tokio::spawn(async move {
                    if let Err(e) = sock.send_to(&bytes, to).await {
                        debug!(to = %to, error = %e, "udp send failed");
                    }
                });
            }
            Err(e) => debug!(to = %to, error = %e, "udp send failed"),
        }
    }

    /// Queues `bytes` for `to` in `outbox` if it is a UDP peer, else sends
    /// it now.
    pub fn send_or_queue(&self, outbox: &mut UdpOutbox, to: Peer, bytes: Bytes) {
        match (to.transport, self.udp_socket_for(to.addr)) {
            (Transport::Udp, Some(i)) => {
                outbox.queued.push((i, to.addr, bytes));
                if outbox.queued.len() >= outbox.capacity {
                    self.flush(outbox);
                }
            }
            _ => self.send(to, bytes),
        }
    }

    /// Sends what `outbox` holds: one `sendmmsg` per socket (and per
    /// `capacity` datagrams). Whatever a call did not take (socket buffer
    /// full, an error on one datagram) goes out one by one as
    /// [`Listeners::send`] would send it.
    pub fn flush(&self, outbox: &mut UdpOutbox) {
        let UdpOutbox {
            queued, headers, ..
        } = outbox;
        let mut start = 0;
        while start < queued.len() {
            // A run of datagrams from the same socket (usually all of them).
            let sock_index = queued[start].0;
            let run = queued[start..]
                .iter()
                .take(headers.capacity)
                .take_while(|(i, _, _)| *i == sock_index)
                .count();
            let chunk = &queued[start..start + run];
            let sent = match self.udp.get(sock_index) {
                Some((_, sock)) if run > 1 => send_many(sock, headers, chunk),
                _ => 0,
            };
            for (i, to, bytes) in chunk.iter().skip(sent) {
                self.send_udp(*i, *to, bytes.clone());
            }
            start += run;
        }
        queued.clear();
    }

    /// The bound UDP sockets, for the signalling task to read.
    pub fn udp_sockets(&self) -> impl Iterator<Item = &Arc<UdpSocket>> {
        self.udp.iter().map(|(_, s)| s)
    }

    /// Sends bytes to a peer: UDP from the socket of the peer's address
    /// family, streams on their connection.
    pub fn send(&self, to: Peer, bytes: Bytes) {
        match to.transport {
            Transport::Udp => match self.udp_socket_for(to.addr) {
                Some(i) => self.send_udp(i, to.addr, bytes),
                None => warn!(to = %to, "no UDP socket to send from"),
            },
            Transport::Tcp => {
                let mut conns = lock(&self.conns);
                if let Some(w) = conns.writer(&to) {
                    let _ = w.send(bytes);
                    return;
                }
                // No open connection to that address: open one; the
                // message waits in its queue until it is connected.
                let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
                let (wtx, wrx) = mpsc::unbounded_channel();
                let _ = wtx.send(bytes);
                conns.insert(id, to.addr, wtx.clone());
                drop(conns);
                debug!(conn = id, to = %to.addr, "opening tcp connection");
                tokio::spawn(tcp_connect(
                    to.addr,
                    id,
                    self.inbound.clone(),
                    wtx,
                    wrx,
                    self.conns.clone(),
                ));
            }
            _ => {
                let conns = lock(&self.conns);
                match conns.writer(&to) {
                    Some(w) => {
                        let _ = w.send(bytes);
                    }
                    None => debug!(to = %to, "no open connection for stream peer"),
                }
            }
        }
    }
}

/// Opens a connection to `to` for the writer queue already registered as
/// `id`, then serves it like an accepted one; a failed connect removes it
/// and reports it closed.
async fn tcp_connect(
    to: SocketAddr,
    id: u64,
    tx: mpsc::Sender<Inbound>,
    wtx: mpsc::UnboundedSender<Bytes>,
    wrx: mpsc::UnboundedReceiver<Bytes>,
    conns: ConnMap,
) {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(stream)) => {
            debug!(conn = id, to = %to, "tcp connection opened");
            tcp_connection(stream, to, id, tx, wtx, wrx, conns).await;
        }
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            info!(conn = id, to = %to, error = %reason, "cannot open tcp connection");
            lock(&conns).remove(id, to);
            let _ = tx.send(Inbound::Closed { conn: id, addr: to }).await;
        }
    }
}

async fn tcp_acceptor(l: TcpListener, tx: mpsc::Sender<Inbound>, conns: ConnMap) {
    loop {
        match l.accept().await {
            Ok((stream, from)) => {
                let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
                let (wtx, wrx) = mpsc::unbounded_channel();
                lock(&conns).insert(id, from, wtx.clone());
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
    lock(&conns).remove(id, from);
    drop(wtx);
    writer.abort();
    let _ = tx
        .send(Inbound::Closed {
            conn: id,
            addr: from,
        })
        .await;
}

/// UDP datagrams waiting to be sent together by [`Listeners::flush`], and
/// the `sendmmsg` headers, allocated once and reused.
pub struct UdpOutbox {
    queued: Vec<(usize, SocketAddr, Bytes)>,
    capacity: usize,
    headers: MmsgHeaders,
}

/// The message headers of one `sendmmsg` call.
struct MmsgHeaders {
    headers: MultiHeaders<SockaddrStorage>,
    capacity: usize,
}

impl UdpOutbox {
    /// An outbox that sends at most `capacity` datagrams per system call
    /// (and flushes itself when that many are queued).
    pub fn new(capacity: usize) -> UdpOutbox {
        let capacity = capacity.max(1);
        UdpOutbox {
            queued: Vec::with_capacity(capacity),
            capacity,
            headers: MmsgHeaders {
                headers: MultiHeaders::preallocate(capacity, None),
                capacity,
            },
        }
    }

    /// Datagrams queued and not yet flushed.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

/// One `sendmmsg` of `chunk` (all from `sock`, at most the headers'
/// capacity); how many datagrams the kernel took (0 on an error, e.g. the
/// socket buffer is full).
fn send_many(
    sock: &UdpSocket,
    headers: &mut MmsgHeaders,
    chunk: &[(usize, SocketAddr, Bytes)],
) -> usize {
    let slices: Vec<[IoSlice<'_>; 1]> = chunk
        .iter()
        .map(|(_, _, bytes)| [IoSlice::new(bytes)])
        .collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(_, to, _)| Some(SockaddrStorage::from(*to)))
        .collect();
    let fd = sock.as_raw_fd();
    let result = sock.try_io(Interest::WRITABLE, || {
        sendmmsg(
            fd,
            &mut headers.headers,
            &slices,
            &addrs,
            [] as [ControlMessage<'_>; 0],
            MsgFlags::empty(),
        )
        .map(Iterator::count)
        .map_err(std::io::Error::from)
    });
    match result {
        Ok(n) => n,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                debug!(error = %e, datagrams = chunk.len(), "udp sendmmsg failed; sending one by one");
            }
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tcp_message_to_an_address_without_a_connection_opens_one_and_its_answer_comes_back()
    {
        let spec = ListenSpec {
            transport: Transport::Tcp,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let (tx, mut rx) = mpsc::channel(8);
        let listeners = Listeners::bind(&[spec], tx).await.unwrap();
        let phone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = Peer {
            transport: Transport::Tcp,
            addr: phone.local_addr().unwrap(),
            conn: None,
        };
        // Two messages before the connection is up: both wait in its queue
        // and go out over the one connection, in order.
        listeners.send(to, Bytes::from_static(b"first "));
        listeners.send(to, Bytes::from_static(b"second"));
        let wait = std::time::Duration::from_secs(5);
        let (mut stream, _) = tokio::time::timeout(wait, phone.accept())
            .await
            .unwrap()
            .unwrap();
        let mut got = vec![0u8; 12];
        tokio::time::timeout(wait, stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"first second");
        // What the phone sends on it reaches the core as from that peer.
        let options = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        stream.write_all(options).await.unwrap();
        let Some(Inbound::Message { peer, bytes }) =
            tokio::time::timeout(wait, rx.recv()).await.unwrap()
        else {
            panic!("no message from the new connection");
        };
        assert_eq!(&bytes[..], &options[..]);
        assert_eq!(peer.addr, to.addr);
        assert_eq!(peer.transport, Transport::Tcp);
        let conn = peer.conn.expect("a connection id");
        // A later message to the address (no id given) reuses it.
        listeners.send(to, Bytes::from_static(b"third"));
        let mut got = vec![0u8; 5];
        tokio::time::timeout(wait, stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"third");
        // The phone closes it: the core hears of it.
        drop(stream);
        let Some(Inbound::Closed { conn: closed, .. }) =
            tokio::time::timeout(wait, rx.recv()).await.unwrap()
        else {
            panic!("no Closed for the connection");
        };
        assert_eq!(closed, conn);
    }

    #[tokio::test]
    async fn a_tcp_connection_that_cannot_be_opened_is_reported_closed() {
        let (tx, mut rx) = mpsc::channel(8);
        let listeners = Listeners::bind(&[], tx).await.unwrap();
        // A port nobody listens on (bound, then released).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let to = Peer {
            transport: Transport::Tcp,
            addr,
            conn: None,
        };
        listeners.send(to, Bytes::from_static(b"INVITE"));
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert!(matches!(got, Some(Inbound::Closed { .. })), "{got:?}");
        assert!(!listeners.conns.lock().unwrap().by_addr.contains_key(&addr));
    }

    #[tokio::test]
    async fn an_outbox_sends_every_queued_datagram_in_order_with_one_flush() {
        let spec = ListenSpec {
            transport: Transport::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let (tx, _rx) = mpsc::channel(1);
        let listeners = Listeners::bind(&[spec], tx).await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = Peer {
            transport: Transport::Udp,
            addr: receiver.local_addr().unwrap(),
            conn: None,
        };
        // As in the drive loop, the runtime has seen the socket writable.
        for (_, sock) in &listeners.udp {
            sock.writable().await.unwrap();
        }
        let mut outbox = UdpOutbox::new(4);
        // Six datagrams: one full sendmmsg of four (flushed on its own when
        // the outbox fills), then two more on the explicit flush.
        for i in 0..6u8 {
            listeners.send_or_queue(&mut outbox, to, Bytes::from(vec![b'a' + i; 10]));
        }
        assert_eq!(outbox.len(), 2);
        listeners.flush(&mut outbox);
        assert!(outbox.is_empty());
        let mut buf = [0u8; 64];
        for i in 0..6u8 {
            let (n, from) = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                receiver.recv_from(&mut buf),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(&buf[..n], &[b'a' + i; 10]);
            assert_eq!(from, listeners.bound[0].addr);
        }
    }
}
