//! The SIP endpoint demux (RFC 3261 §17.2.3, §18.2, RFC 3581): matches
//! incoming requests to server transactions so retransmissions are absorbed
//! and answered with the same response, keeps a deadline heap for the
//! transactions' timers, and works out where a response goes (`received`
//! and `rport` on UDP, the same connection on streams). It does not decide
//! what to answer; the [`crate::Switch`] does.

use std::collections::hash_map::Entry::Occupied;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use carillon_sip::{Message, Method};
use carillon_transaction::{ServerTransaction, TimerConfig, TransactionKind};

use crate::deadlines::Deadlines;
use crate::header_text::{push_ip, push_u64};

/// Transport a message arrived on or leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
}

/// The other end of a message: transport, address and, for streams, the
/// connection id the edge assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<u64>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.as_str(), self.addr)
    }
}

impl Peer {
    /// Parses the `transport:ip:port` form used in bindings.
    pub fn parse(s: &str) -> Option<Peer> {
        let (t, addr) = s.split_once(':')?;
        let transport = match t {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return None,
        };
        Some(Peer {
            transport,
            addr: addr.parse().ok()?,
            conn: None,
        })
    }
}

/// Key of a server transaction (RFC 3261 §17.2.3; RFC 2543 fallback when
/// the branch lacks the magic cookie).
pub fn server_key(msg: &Message) -> Option<String> {
    server_key_with(msg, &msg.top_via()?)
}

/// [`server_key`] with the top Via already parsed (`msg.top_via()`).
pub fn server_key_with(msg: &Message, via: &carillon_sip::Via<'_>) -> Option<String> {
    let method = msg.method()?;
    let m = if *method == Method::Ack {
        "INVITE"
    } else {
        method.as_str()
    };
    let (host, port) = via.sent_by();
    match via.branch() {
        Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => {
            // Built by hand: this runs for every request.
            let mut k = String::with_capacity(b.len() + host.len() + m.len() + 8);
            k.push_str(b);
            k.push('|');
            k.push_str(host);
            k.push(':');
            push_u64(&mut k, u64::from(port));
            k.push('|');
            k.push_str(m);
            Some(k)
        }
        _ => {
            let cseq = msg.cseq()?.seq;
            Some(format!(
                "2543|{}|{}|{}|{}|{}|{m}",
                msg.call_id()?,
                cseq,
                msg.tag(carillon_sip::HeaderName::From).unwrap_or_default(),
                msg.request_uri_str().unwrap_or(""),
                msg.top_via_str()?
            ))
        }
    }
}

/// Appends a socket address as `Display` writes it (`ip:port`,
/// `[ipv6]:port`).
pub(crate) fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(_) => {
            push_ip(out, addr.ip());
            out.push(':');
            push_u64(out, u64::from(addr.port()));
        }
        SocketAddr::V6(v6) => {
            out.push('[');
            push_ip(out, addr.ip());
            if v6.scope_id() != 0 {
                out.push('%');
                push_u64(out, u64::from(v6.scope_id()));
            }
            out.push_str("]:");
            push_u64(out, u64::from(addr.port()));
        }
    }
}

impl Peer {
    /// The `transport:ip:port` text of [`Peer`]'s `Display`, built without
    /// the formatter (a binding's source, once per registration).
    pub fn to_source(&self) -> String {
        let mut s = String::with_capacity(32);
        s.push_str(self.transport.as_str());
        s.push(':');
        push_socket_addr(&mut s, self.addr);
        s
    }
}

/// `Call-ID|CSeq number` of a request, for matching ACKs to INVITEs.
pub fn dialog_key(msg: &Message) -> Option<String> {
    let call_id = msg.call_id()?;
    let seq = msg.cseq()?.seq;
    Some(dialog_key_of(&call_id, seq))
}

/// [`dialog_key`] from a Call-ID and CSeq number already parsed.
pub fn dialog_key_of(call_id: &str, seq: u32) -> String {
    let mut k = String::with_capacity(call_id.len() + 11);
    k.push_str(call_id);
    k.push('|');
    push_u64(&mut k, u64::from(seq));
    k
}

/// Where a response to `req` received from `peer` goes, and the top Via
/// rewritten with `received`/`rport` (RFC 3261 §18.2.1, RFC 3581 §4).
pub fn response_route(req: &Message, peer: Peer) -> (Peer, Option<String>) {
    response_route_with(req.top_via().as_ref(), peer)
}

/// [`response_route`] with the top Via already parsed (`None` when the
/// request has none that parses: the response goes back to `peer`).
pub fn response_route_with(
    via: Option<&carillon_sip::Via<'_>>,
    peer: Peer,
) -> (Peer, Option<String>) {
    let Some(via) = via else {
        return (peer, None);
    };
    let ip = peer.addr.ip();
    let has_rport = via.rport().is_some();
    let host_is_source = via
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|h| h == ip);
    if !has_rport && host_is_source {
        let mut to = peer;
        if !peer.transport.is_reliable() {
            to.addr.set_port(via.sent_by().1);
        }
        return (to, None);
    }
    // One buffer, no intermediate strings: this runs for every request.
    let mut rewritten = String::with_capacity(
        via.host.len() + via.params.as_str().len() + via.transport.len() + 64,
    );
    rewritten.push_str("SIP/2.0/");
    rewritten.push_str(via.transport);
    rewritten.push(' ');
    rewritten.push_str(via.host);
    if let Some(p) = via.port {
        rewritten.push(':');
        push_u64(&mut rewritten, u64::from(p));
    }
    for (n, v) in via.params.iter() {
        if n.eq_ignore_ascii_case("received") || n.eq_ignore_ascii_case("rport") {
            continue;
        }
        rewritten.push(';');
        rewritten.push_str(n);
        if let Some(v) = v {
            rewritten.push('=');
            rewritten.push_str(v);
        }
    }
    rewritten.push_str(";received=");
    push_ip(&mut rewritten, ip);
    if has_rport {
        rewritten.push_str(";rport=");
        push_u64(&mut rewritten, u64::from(peer.addr.port()));
    }
    let mut to = peer;
    if !peer.transport.is_reliable() && !has_rport {
        to.addr.set_port(via.sent_by().1);
    }
    (to, Some(rewritten))
}

/// What every response of a transaction copies from its request, worked
/// out once when the transaction is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeads {
    /// The top Via responses carry (received/rport added), from
    /// [`response_route`].
    pub via: Option<String>,
    /// Whether the request's To has a tag, when validation parsed To (see
    /// `ResponseBuilder::request_to_tagged`).
    pub to_tagged: Option<bool>,
}

struct Entry {
    /// The map key, shared with the deadline heap (no copy per timer).
    key: Arc<str>,
    txn: ServerTransaction,
    peer: Peer,
    heads: ResponseHeads,
    /// `Call-ID|CSeq` of an INVITE, to match ACKs whose branch differs.
    dialog: Option<String>,
}

/// A non-INVITE server transaction that sent its final response over UDP
/// (Completed, RFC 3261 §17.2.2): all it does until Timer J is re-send
/// that response to retransmissions of its request, so that is all the
/// table keeps of it for those 32 s (~100 bytes and the response, instead
/// of the ~550-byte boxed machine).
struct Done {
    response: Bytes,
    peer: Peer,
    /// Timer J.
    until: Instant,
}

/// A table slot: a live transaction machine, or what is left of a
/// completed non-INVITE one.
enum Slot {
    Open(Box<Entry>),
    Done(Done),
}

/// Server transactions by key, with a lazily-cleaned deadline heap.
///
/// Keys come from the network (the Via branch), so the maps keep the
/// standard library's randomly keyed SipHash. A key is stored once as an
/// `Arc<str>` shared by the map and every heap entry for it.
pub struct ServerTable {
    cfg: TimerConfig,
    /// Live entries are boxed: a transaction is several hundred bytes, and
    /// a table of them inline wasted about half of that per slot after
    /// each doubling and moved every entry on each growth (13.8 MB for
    /// 8,000 REGISTER transactions, dhat; page faults and copies were ~15 %
    /// of the switch's CPU under REGISTER load). Completed non-INVITE ones,
    /// the bulk of the table under REGISTER load, are [`Done`] inline.
    txns: HashMap<Arc<str>, Slot>,
    deadlines: Deadlines<Arc<str>>,
    invites: HashMap<String, Arc<str>>,
}

/// Bytes to send and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Bytes,
}

impl ServerTable {
    pub fn new(cfg: TimerConfig) -> Self {
        ServerTable {
            cfg,
            txns: HashMap::new(),
            deadlines: Deadlines::default(),
            invites: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// A request matched an existing transaction: re-send its response.
    pub fn retransmission(&mut self, key: &str, now: Instant, out: &mut Vec<Transmit>) -> bool {
        let e = match self.txns.get_mut(key) {
            None => return false,
            Some(Slot::Done(d)) => {
                out.push(Transmit {
                    to: d.peer,
                    bytes: d.response.clone(),
                });
                return true;
            }
            Some(Slot::Open(e)) => e,
        };
        e.txn.handle_request_retransmission(now);
        while let Some(b) = e.txn.poll_transmit() {
            out.push(Transmit {
                to: e.peer,
                bytes: b,
            });
        }
        true
    }

    /// An ACK for a non-2xx final response. Matched by branch, or by
    /// Call-ID and CSeq (`dialog`, worked out only when the branch matches
    /// nothing) for clients that give the ACK a new branch.
    pub fn ack(
        &mut self,
        key: &str,
        dialog: impl FnOnce() -> Option<String>,
        now: Instant,
    ) -> bool {
        let e = match self.txns.get_mut(key) {
            Some(Slot::Open(e)) => e,
            // An ACK never matches a non-INVITE transaction's key.
            Some(Slot::Done(_)) => return false,
            None => {
                let Some(k) = dialog().and_then(|d| self.invites.get(&d).cloned()) else {
                    return false;
                };
                match self.txns.get_mut(&k) {
                    Some(Slot::Open(e)) => e,
                    _ => return false,
                }
            }
        };
        e.txn.handle_ack(now);
        if let Some(at) = e.txn.poll_timeout() {
            self.deadlines.push(at, e.key.clone());
        }
        true
    }

    /// Starts a transaction for a new request.
    pub fn create(
        &mut self,
        key: String,
        kind: TransactionKind,
        peer: Peer,
        dialog: Option<String>,
        now: Instant,
    ) {
        self.create_with_heads(&key, kind, peer, ResponseHeads::default(), dialog, now);
    }

    /// [`ServerTable::create`] with what its responses copy from the
    /// request (rewritten top Via, To tag), in one map insertion.
    pub fn create_with_heads(
        &mut self,
        key: &str,
        kind: TransactionKind,
        peer: Peer,
        heads: ResponseHeads,
        dialog: Option<String>,
        now: Instant,
    ) {
        let txn = ServerTransaction::new(kind, peer.transport.is_reliable(), now, self.cfg);
        let key: Arc<str> = Arc::from(key);
        if let Some(d) = &dialog {
            self.invites.insert(d.clone(), key.clone());
        }
        self.txns.insert(
            key.clone(),
            Slot::Open(Box::new(Entry {
                key,
                txn,
                peer,
                heads,
                dialog,
            })),
        );
    }

    /// Where the transaction's responses go and what they copy from its
    /// request (as [`response_route`] and validation gave them when the
    /// transaction was created), borrowed.
    /// (`None` as well for a completed non-INVITE transaction: it sends
    /// no more responses.)
    pub fn response_heads(&self, key: &str) -> Option<(Peer, &ResponseHeads)> {
        match self.txns.get(key)? {
            Slot::Open(e) => Some((e.peer, &e.heads)),
            Slot::Done(_) => None,
        }
    }

    /// Whether the transaction has sent a response (`None`: no such
    /// transaction).
    pub fn has_responded(&self, key: &str) -> Option<bool> {
        self.txns.get(key).map(|s| match s {
            Slot::Open(e) => e.txn.has_responded(),
            Slot::Done(_) => true,
        })
    }

    /// Where the transaction's responses go (without copying its Via).
    pub fn route_of(&self, key: &str) -> Option<Peer> {
        self.txns.get(key).map(|s| match s {
            Slot::Open(e) => e.peer,
            Slot::Done(d) => d.peer,
        })
    }

    fn remove(&mut self, key: &str) {
        if let Some(Slot::Open(e)) = self.txns.remove(key) {
            if let Some(d) = e.dialog {
                self.invites.remove(&d);
            }
        }
    }

    /// Sends a response through a transaction (or statelessly if none).
    pub fn respond(
        &mut self,
        key: &str,
        status: u16,
        bytes: Bytes,
        now: Instant,
        fallback: Peer,
        out: &mut Vec<Transmit>,
    ) {
        self.respond_with(key, status, now, out, move |_| (fallback, bytes));
    }

    /// [`ServerTable::respond`] with the response built by `build` from
    /// the transaction's route and [`ResponseHeads`] (`None` when there is
    /// no such transaction: `build` then gives the address too), in one
    /// lookup of the key.
    pub fn respond_with(
        &mut self,
        key: &str,
        status: u16,
        now: Instant,
        out: &mut Vec<Transmit>,
        build: impl FnOnce(Option<(Peer, &ResponseHeads)>) -> (Peer, Bytes),
    ) {
        match self.txns.get_mut(key) {
            Some(slot) => {
                let Slot::Open(e) = slot else {
                    return; // already final: nothing more is sent, as the machine refuses
                };
                let (_, bytes) = build(Some((e.peer, &e.heads)));
                if e.txn.send_response(now, status, bytes).is_err() {
                    return;
                }
                while let Some(b) = e.txn.poll_transmit() {
                    out.push(Transmit {
                        to: e.peer,
                        bytes: b,
                    });
                }
                if e.txn.is_terminated() {
                    self.remove(key);
                    return;
                }
                let Some(at) = e.txn.poll_timeout() else {
                    return;
                };
                self.deadlines.push(at, e.key.clone());
                if let Some(response) = e.txn.non_invite_completed() {
                    // Only Timer J and retransmissions are left: keep just
                    // the response (a non-INVITE transaction has no
                    // dialog entry to clean up).
                    *slot = Slot::Done(Done {
                        response: response.clone(),
                        peer: e.peer,
                        until: at,
                    });
                }
            }
            None => {
                let (to, bytes) = build(None);
                out.push(Transmit { to, bytes });
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next_at()
    }

    /// Fires due timers; transactions that end are dropped.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        while let Some(key) = self.deadlines.pop_due(now) {
            // One hash of the key for the lookup and, if the transaction
            // ends, its removal.
            let Occupied(mut slot) = self.txns.entry(key) else {
                continue;
            };
            let e = match slot.get_mut() {
                Slot::Done(d) => {
                    if d.until <= now {
                        slot.remove(); // Timer J: Terminated
                    }
                    continue;
                }
                Slot::Open(e) => e,
            };
            if e.txn.poll_timeout().is_some_and(|t| t > now) {
                continue; // stale heap entry; a newer one exists
            }
            e.txn.handle_timeout(now);
            while let Some(b) = e.txn.poll_transmit() {
                out.push(Transmit {
                    to: e.peer,
                    bytes: b,
                });
            }
            while e.txn.poll_event().is_some() {}
            if e.txn.is_terminated() {
                if let Slot::Open(e) = slot.remove() {
                    if let Some(d) = e.dialog {
                        self.invites.remove(&d);
                    }
                }
            } else if let Some(at) = e.txn.poll_timeout() {
                self.deadlines.push(at, e.key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_source_is_written_as_display_writes_a_peer() {
        for addr in ["203.0.113.5:41000", "0.0.0.0:0", "[2001:db8::1]:5060"] {
            let p = Peer {
                transport: Transport::Tls,
                addr: addr.parse().unwrap(),
                conn: None,
            };
            assert_eq!(p.to_source(), p.to_string());
            assert_eq!(Peer::parse(&p.to_source()).map(|q| q.addr), Some(p.addr));
        }
    }

    #[test]
    fn the_response_via_gets_received_and_rport() {
        let m = Message::parse(bytes::Bytes::from_static(
            b"REGISTER sip:r SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;rport;received=1.1.1.1\r\nCall-ID: x\r\n\r\n",
        ))
        .unwrap();
        let peer = Peer {
            transport: Transport::Udp,
            addr: "198.51.100.7:40123".parse().unwrap(),
            conn: None,
        };
        let (to, via) = response_route(&m, peer);
        assert_eq!(to, peer);
        assert_eq!(
            via.as_deref(),
            Some("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;received=198.51.100.7;rport=40123")
        );
        assert_eq!(
            server_key(&m).as_deref(),
            Some("z9hG4bK1|10.0.0.1:5070|REGISTER")
        );
    }
}
