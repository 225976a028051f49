//! Where a channel's requests go: stream connections and contacts.
//!
//! Owns the switch's view of open TCP connections (learnt from what
//! arrives on them, forgotten when the edge reports them closed), our TCP
//! listener's host for Via and Contact, failing the requests waiting on a
//! connection that closed or could not be opened (503, RFC 3261
//! §8.1.3.1), and the peer a registrar binding is reached at (over the
//! connection its REGISTER came on while that is open, RFC 5626 §5,
//! RFC 5923; else at its Contact, NAT mode permitting).

use std::net::SocketAddr;
use std::time::Instant;

use carillon_sip::Method;
use carillon_transaction::ClientEvent;
use tracing::{debug, info};

use super::resolve_uri;
use crate::endpoint::Peer;
use crate::switch::Switch;
use crate::users::NatMode;

impl Switch {
    /// Our TCP listener's address, once bound: Via and Contact of legs
    /// over TCP name it.
    pub fn set_tcp_addr(&mut self, addr: SocketAddr) {
        self.calls.set_tcp_addr(addr);
    }

    /// Something arrived over a stream connection: it is open, and a
    /// request to its remote address may use it.
    pub(crate) fn note_stream(&mut self, peer: Peer) {
        if let Some(conn) = peer.conn {
            if self.calls.streams.get(&peer.addr) != Some(&conn) {
                self.calls.streams.insert(peer.addr, conn);
            }
        }
    }

    /// The edge closed stream connection `conn` with `addr` (the peer
    /// closed it, or it could not be opened): requests to that address no
    /// longer go over it, and our requests still waiting for an answer on
    /// it have lost their transport (RFC 3261 §17.1.4): an outbound
    /// INVITE fails at once as a 503 (§8.1.3.1) instead of waiting for
    /// Timer B, and the caller's Dial goes on.
    pub fn handle_stream_closed(&mut self, now: Instant, now_ms: u64, conn: u64, addr: SocketAddr) {
        self.now_ms = now_ms;
        self.last_now = Some(now);
        self.calls.streams.retain(|_, c| *c != conn);
        let lost: Vec<String> = self
            .calls
            .clients
            .iter()
            .filter(|(_, e)| {
                e.to.transport.is_reliable()
                    && match e.to.conn {
                        Some(c) => c == conn,
                        // Sent by address: the edge opened (or failed to
                        // open) the connection for it.
                        None => e.to.addr == addr,
                    }
            })
            .map(|(branch, _)| branch.clone())
            .collect();
        for branch in lost {
            self.client_transport_failed(now, now_ms, &branch);
        }
        self.flush_scratch();
    }

    /// A client transaction's connection is gone.
    pub(super) fn client_transport_failed(&mut self, now: Instant, now_ms: u64, branch: &str) {
        let Some(entry) = self.calls.clients.get_mut(branch) else {
            return;
        };
        entry.txn.handle_transport_error(now);
        let mut failed = false;
        while let Some(ev) = entry.txn.poll_event() {
            failed |= matches!(ev, ClientEvent::TransportFailed | ClientEvent::TimedOut);
        }
        let (call, leg, method, refresh) =
            (entry.call, entry.leg, entry.method.clone(), entry.refresh);
        if entry.txn.is_terminated() {
            self.calls.clients.remove(branch);
        }
        if !failed {
            return;
        }
        info!(call, method = %method, "connection lost before the answer");
        if refresh {
            self.refresh_answered(now, now_ms, call, leg, 503, None);
        } else if method == Method::Invite {
            self.fork_failed(now, now_ms, call, leg, 503);
        }
    }

    /// Where a request to a registered contact goes. With `nat = true`
    /// (the default) the address its REGISTER came from, so a phone behind
    /// NAT is reached through the mapping it opened (Asterisk's
    /// `force_rport` and `rewrite_contact`); with `nat = false` the first
    /// Path hop, or else the Contact as registered, for phones and
    /// registration tools that register from another socket than the one
    /// they listen on. Over a stream: the connection the REGISTER came on
    /// while it is open (RFC 5626 §5), else (with `nat = true`) a new
    /// connection to the Contact's own address (with the Contact's
    /// `transport`, the REGISTER's when it has none).
    pub(super) fn binding_peer(
        &self,
        b: &carillon_registrar::Binding,
        nat: NatMode,
    ) -> Option<Peer> {
        let (mut peer, contact) = match nat {
            // As registered: the Contact, or the first Path hop before it.
            NatMode::AsRegistered => {
                let next = b.path.first().map_or(&*b.contact, String::as_str);
                let uri = next
                    .trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default();
                (resolve_uri(uri, &self.calls.config.hosts)?, uri)
            }
            NatMode::SourceAddress => (Peer::parse(&b.source)?, &*b.contact),
        };
        if !peer.transport.is_reliable() {
            return Some(peer);
        }
        if let Some(&conn) = self.calls.streams.get(&peer.addr) {
            peer.conn = Some(conn);
            return Some(peer);
        }
        if nat == NatMode::AsRegistered {
            return Some(peer);
        }
        let src = peer;
        let mut peer = resolve_uri(contact, &self.calls.config.hosts)?;
        let explicit = carillon_sip::Uri::parse(contact)
            .ok()
            .is_some_and(|u| u.param("transport").flatten().is_some());
        if !explicit {
            peer.transport = src.transport;
        }
        debug!(contact = %contact, source = %b.source, "registration's connection is gone: new connection to the Contact");
        Some(peer)
    }
}
