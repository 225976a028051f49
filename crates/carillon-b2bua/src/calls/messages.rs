//! Messages: the requests and responses the switch writes on its channels.
//!
//! Owns building an outbound channel's INVITE, its CANCEL (same branch and
//! CSeq, RFC 3261 §9.1) and the ACK of its 2xx or failure (§13.2.2.4,
//! §17.1.1.3), in-dialog requests (BYE, INFO, re-INVITE/UPDATE refreshes:
//! route set, remote target, CSeq) with their client transactions, and
//! the caller's responses (provisional, reliable provisional, 2xx with
//! its retransmitter, failures) through its server transaction. It decides
//! nothing about the call: callers say what to send.

use std::time::Instant;

use bytes::Bytes;
use carillon_mediactl::LegId;
use carillon_sip::{HeaderName, Message, MessageWriter, Method};
use carillon_transaction::{ClientTransaction, TransactionKind, Uas2xxRetransmitter};

use super::model::Channel;
use super::{contact_on, session_timer, via_host, ClientEntry, Timer};
use crate::endpoint::{Peer, Transmit, Transport};
use crate::header_text::{concat, strip_tag};
use crate::switch::{build_response, Switch};

/// The parts of our Via towards `leg` (`SIP/2.0/<transport> <host>;branch=…;rport`).
pub(super) fn via_parts<'a>(leg: &'a Channel, host: &'a str, branch: &'a str) -> [&'a str; 7] {
    [
        "SIP/2.0/",
        leg.peer.transport.via_token(),
        " ",
        host,
        ";branch=",
        branch,
        ";rport",
    ]
}

/// The Via, Max-Forwards, From, To, Call-ID and CSeq an outbound leg's
/// INVITE and its CANCEL share (same branch and CSeq number, RFC 3261
/// §9.1).
pub(super) fn invite_transaction_heads<'w>(
    w: &'w mut MessageWriter,
    leg: &Channel,
    host: &str,
    method: &str,
) -> &'w mut MessageWriter {
    w.header("Via", &via_parts(leg, host, &leg.uac.invite_branch))
        .header("Max-Forwards", &["70"])
        .header("From", &[&leg.local_uri, ";tag=", &leg.local_tag])
        .header("To", &[&leg.remote_uri])
        .header("Call-ID", &[&leg.call_id])
        .cseq(leg.uac.invite_cseq, method)
}

/// `"name" <uri>` with any `"` left out of the name, or `<uri>` for an
/// empty name; `uri` is the concatenation of `uri_parts`. One allocation.
pub(super) fn quoted_name_addr(name: &str, uri_parts: &[&str]) -> String {
    let uri_len: usize = uri_parts.iter().map(|p| p.len()).sum();
    let mut out = String::with_capacity(name.len() + uri_len + 5);
    if !name.is_empty() {
        out.push('"');
        out.extend(name.chars().filter(|c| *c != '"'));
        out.push_str("\" ");
    }
    out.push('<');
    for p in uri_parts {
        out.push_str(p);
    }
    out.push('>');
    out
}

/// An ACK built from the response it acknowledges (RFC 3261 §17.1.1.3):
/// From, Call-ID and To come from the response, the CSeq number too.
pub(super) fn ack_from_response(
    sip_host: &str,
    request_uri: &str,
    branch: &str,
    resp: &Message,
    routes: &[&str],
) -> Bytes {
    let transport = resp
        .with_top_via(|v| v.transport.to_owned())
        .unwrap_or_else(|| "UDP".into());
    let seq = resp.cseq().map_or(1, |c| c.seq);
    let from = resp.header(HeaderName::From).unwrap_or_default();
    let to = resp.header(HeaderName::To).unwrap_or_default();
    let call_id = resp.call_id().unwrap_or_default();
    let mut w = MessageWriter::request(
        &Method::Ack,
        request_uri,
        256 + request_uri.len() + from.len() + to.len() + call_id.len(),
    );
    w.header(
        "Via",
        &[
            "SIP/2.0/", &transport, " ", sip_host, ";branch=", branch, ";rport",
        ],
    )
    .header("Max-Forwards", &["70"])
    .header("From", &[&from])
    .header("To", &[&to])
    .header("Call-ID", &[&call_id])
    .cseq(seq, "ACK");
    for r in routes {
        w.header("Route", &[r]);
    }
    w.finish(None)
}

/// The Route header fields an outbound leg's INVITE was sent with (a
/// callee's registered Path), which its CANCEL and non-2xx ACK repeat.
pub(super) fn preloaded_routes(leg: &Channel) -> impl Iterator<Item = &str> {
    leg.uac
        .extra_headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Route"))
        .map(|(_, v)| v.as_str())
}

/// Whether a message's Allow lists UPDATE (RFC 3311).
pub(super) fn allows_update(msg: &Message) -> bool {
    // Method tokens hold no quotes or commas, so a plain split of every
    // Allow line finds the same items as `header_list` without building it.
    msg.header_all_str(HeaderName::Allow).any(|value| {
        value
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
    })
}

/// What the requests the switch writes on an outbound channel need of the
/// switch: our host and Contact per transport, and our User-Agent. Built
/// by [`Switch::wire`], borrowed for one message.
pub(super) struct Wire<'a> {
    sip_host: &'a str,
    tcp_host: Option<&'a str>,
    contact: &'a str,
    tcp_contact: Option<&'a str>,
    user_agent: &'a str,
}

impl Wire<'_> {
    /// The host (`ip:port`) our Via names on `transport`.
    fn host(&self, transport: Transport) -> &str {
        via_host(self.sip_host, self.tcp_host, transport)
    }

    /// Our Contact for a dialog over `transport`.
    fn contact(&self, transport: Transport) -> &str {
        contact_on(self.contact, self.tcp_contact, transport)
    }

    /// The INVITE of an outbound channel, with credentials when answering
    /// a challenge (new branch and CSeq are set on the leg by the caller).
    pub(super) fn invite(&self, leg: &Channel, auth: Option<(&str, &str)>) -> Bytes {
        let host = self.host(leg.peer.transport);
        let body = leg
            .local_sdp
            .as_ref()
            .map(|s| s.to_bytes())
            .unwrap_or_default();
        let extra: usize = leg
            .uac
            .extra_headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + auth.map_or(0, |(n, v)| n.len() + v.len() + 4);
        let mut w = MessageWriter::request(
            &Method::Invite,
            &leg.uac.request_uri,
            400 + 2 * leg.uac.request_uri.len()
                + leg.local_uri.len()
                + leg.remote_uri.len()
                + leg.call_id.len()
                + extra
                + body.len(),
        );
        invite_transaction_heads(&mut w, leg, host, "INVITE")
            .header("Contact", &[self.contact(leg.peer.transport)])
            .header(
                "Allow",
                &["INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK"],
            )
            .header("Supported", &["100rel, timer"])
            .header("User-Agent", &[self.user_agent]);
        for (n, v) in &leg.uac.extra_headers {
            w.header(n, &[v]);
        }
        if let Some((n, v)) = auth {
            w.header(n, &[v]);
        }
        w.finish(Some(("application/sdp", &body)))
    }

    /// The CANCEL of an outbound channel's INVITE: its branch and CSeq
    /// number, Request-URI and Route header fields (RFC 3261 §9.1).
    pub(super) fn cancel(&self, leg: &Channel) -> Bytes {
        let host = self.host(leg.peer.transport);
        // The INVITE's Request-URI (an early dialog may have changed the
        // remote target, RFC 3261 §9.1).
        let ruri = if leg.uac.request_uri.is_empty() {
            &leg.remote_target
        } else {
            &leg.uac.request_uri
        };
        let mut w = MessageWriter::request(
            &Method::Cancel,
            ruri,
            256 + ruri.len() + leg.local_uri.len() + leg.remote_uri.len() + leg.call_id.len(),
        );
        invite_transaction_heads(&mut w, leg, host, "CANCEL");
        // The INVITE's Route header fields (RFC 3261 §9.1).
        for v in preloaded_routes(leg) {
            w.header("Route", &[v]);
        }
        w.finish(None)
    }
}

impl Switch {
    /// The context the outbound channels' requests are written with.
    pub(super) fn wire(&self) -> Wire<'_> {
        Wire {
            sip_host: &self.calls.sip_host,
            tcp_host: self.calls.tcp_host.as_deref(),
            contact: &self.calls.contact,
            tcp_contact: self.calls.tcp_contact.as_deref(),
            user_agent: &self.user_agent,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_client(
        &mut self,
        _now: Instant,
        branch: String,
        txn: ClientTransaction,
        to: Peer,
        call: u64,
        leg: LegId,
        method: Method,
    ) {
        self.add_client_with_uri(branch, txn, to, call, leg, method, String::new());
    }

    /// [`Switch::add_client`] for a request whose Request-URI an ACK will
    /// reuse (an INVITE).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_client_with_uri(
        &mut self,
        branch: String,
        mut txn: ClientTransaction,
        to: Peer,
        call: u64,
        leg: LegId,
        method: Method,
        request_uri: String,
    ) {
        while let Some(b) = txn.poll_transmit() {
            self.scratch.push(Transmit { to, bytes: b });
        }
        if let Some(at) = txn.poll_timeout() {
            self.calls.schedule(at, Timer::Client(branch.clone()));
        }
        self.calls.clients.insert(
            branch,
            ClientEntry {
                txn,
                to,
                call,
                leg,
                method,
                request_uri,
                refresh: false,
            },
        );
    }

    /// Sends an in-dialog request (BYE) on a leg.
    pub(super) fn send_in_dialog(
        &mut self,
        now: Instant,
        key: u64,
        leg: &mut Channel,
        method: Method,
    ) {
        self.send_in_dialog_with(now, key, leg, method, Vec::new(), None);
    }

    /// Sends an in-dialog request with extra headers and an SDP body
    /// (PRACK, session refreshes). A re-INVITE or UPDATE is a refresh.
    pub(super) fn send_in_dialog_with(
        &mut self,
        now: Instant,
        key: u64,
        leg: &mut Channel,
        method: Method,
        headers: Vec<(String, String)>,
        body: Option<Bytes>,
    ) {
        let body = body.map(|b| ("application/sdp", b));
        self.send_in_dialog_typed(now, key, leg, method, headers, body);
    }

    /// [`Switch::send_in_dialog_with`] with a body of any type (the
    /// `application/dtmf-relay` of a DTMF INFO).
    pub(super) fn send_in_dialog_typed(
        &mut self,
        now: Instant,
        key: u64,
        leg: &mut Channel,
        method: Method,
        headers: Vec<(String, String)>,
        body: Option<(&str, Bytes)>,
    ) {
        let branch = self.new_branch();
        leg.local_cseq += 1;
        let host = self.calls.host_for(leg.peer.transport);
        let target = if leg.remote_target.is_empty() {
            &leg.remote_uri
        } else {
            &leg.remote_target
        };
        let target = target
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned();
        let extra: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut w = MessageWriter::request(
            &method,
            &target,
            320 + target.len()
                + leg.local_uri.len()
                + leg.remote_uri.len()
                + leg.call_id.len()
                + leg.route_set.iter().map(|r| r.len() + 9).sum::<usize>()
                + extra
                + body.as_ref().map_or(0, |(_, b)| b.len() + 40),
        );
        w.header("Via", &via_parts(leg, host, &branch))
            .header("Max-Forwards", &["70"])
            .header(
                "From",
                &[strip_tag(&leg.local_uri), ";tag=", &leg.local_tag],
            );
        match &leg.remote_tag {
            Some(t) => w.header("To", &[strip_tag(&leg.remote_uri), ";tag=", t]),
            None => w.header("To", &[strip_tag(&leg.remote_uri)]),
        };
        w.header("Call-ID", &[&leg.call_id])
            .cseq(leg.local_cseq, method.as_str());
        for r in &leg.route_set {
            w.header("Route", &[r]);
        }
        w.header("User-Agent", &[&self.user_agent]);
        let refresh = matches!(method, Method::Invite | Method::Update);
        if method == Method::Invite {
            w.header("Contact", &[self.calls.contact_for(leg.peer.transport)]);
        }
        for (n, v) in &headers {
            w.header(n, &[v]);
        }
        let bytes = w.finish(body.as_ref().map(|(t, b)| (*t, &b[..])));
        let kind = if method == Method::Invite {
            TransactionKind::Invite
        } else {
            TransactionKind::NonInvite
        };
        let txn = ClientTransaction::new(
            kind,
            leg.peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        self.add_client(now, branch.clone(), txn, leg.peer, key, leg.id, method);
        if let Some(e) = self.calls.clients.get_mut(&branch) {
            e.refresh = refresh;
            e.request_uri = target;
        }
    }

    pub(super) fn send_cancel(&mut self, now: Instant, key: u64, leg: &Channel) {
        let bytes = self.wire().cancel(leg);
        let txn = ClientTransaction::new(
            TransactionKind::NonInvite,
            leg.peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        if let Some(e) = self.calls.clients.get_mut(&leg.uac.invite_branch) {
            e.txn.handle_cancel_sent(now);
            if let Some(at) = e.txn.poll_timeout() {
                self.calls
                    .schedule(at, Timer::Client(leg.uac.invite_branch.clone()));
            }
        }
        // The CANCEL has the INVITE's branch; key it apart.
        self.add_client(
            now,
            concat(&[&leg.uac.invite_branch, "|CANCEL"]),
            txn,
            leg.peer,
            key,
            leg.id,
            Method::Cancel,
        );
    }

    pub(super) fn build_ack(
        sip_host: &str,
        leg: &Channel,
        branch: &str,
        seq: u32,
        to_tag: Option<&str>,
    ) -> Bytes {
        let target = if leg.remote_target.is_empty() {
            &leg.remote_uri
        } else {
            &leg.remote_target
        };
        let uri = target.trim_start_matches('<').trim_end_matches('>');
        let mut w = MessageWriter::request(
            &Method::Ack,
            uri,
            256 + uri.len()
                + leg.local_uri.len()
                + leg.remote_uri.len()
                + leg.call_id.len()
                + leg.route_set.iter().map(|r| r.len() + 9).sum::<usize>(),
        );
        w.header(
            "Via",
            &[
                "SIP/2.0/",
                leg.peer.transport.via_token(),
                " ",
                sip_host,
                ";branch=",
                branch,
                ";rport",
            ],
        )
        .header("Max-Forwards", &["70"])
        .header(
            "From",
            &[strip_tag(&leg.local_uri), ";tag=", &leg.local_tag],
        );
        match to_tag {
            Some(t) => w.header("To", &[strip_tag(&leg.remote_uri), ";tag=", t]),
            None => w.header("To", &[strip_tag(&leg.remote_uri)]),
        };
        w.header("Call-ID", &[&leg.call_id]).cseq(seq, "ACK");
        for r in &leg.route_set {
            w.header("Route", &[r]);
        }
        w.finish(None)
    }

    /// Sends a response to A's INVITE (provisional or final).
    pub(super) fn respond_a(&mut self, now: Instant, key: u64, status: u16, with_sdp: bool) {
        self.respond_a_with(now, key, status, with_sdp, &[]);
    }

    /// Sends a response to A's INVITE with extra headers; returns its bytes.
    pub(super) fn respond_a_with(
        &mut self,
        now: Instant,
        key: u64,
        status: u16,
        with_sdp: bool,
        extra: &[(String, String)],
    ) -> Option<Bytes> {
        let call = self.calls.calls.get_mut(&key)?;
        if status >= 200 {
            call.inbound.rel.finish();
        }
        // Built from the call in place (fields of `self` borrowed apart),
        // so neither the INVITE nor its key is copied.
        let call = self.calls.calls.get(&key)?;
        let a_session = call.inbound.session;
        let invite = &call.inbound.invite;
        let a_key = &call.inbound.key;
        let peer = call.inbound.peer;
        let sdp = if with_sdp {
            call.a.local_sdp.as_ref().map(|s| Bytes::from(s.to_bytes()))
        } else {
            None
        };
        let local_tag = call.a.local_tag.as_str();
        let user_agent = self.user_agent.as_str();
        let contact = self.calls.contact_for(peer.transport);
        let mut built = Bytes::new();
        // The route and Via the transaction kept (computed once when the
        // INVITE arrived, borrowed), else computed afresh.
        self.table
            .respond_with(a_key, status, now, &mut self.scratch, |heads| {
                let (to, bytes) = build_response(
                    heads,
                    user_agent,
                    local_tag,
                    invite,
                    peer,
                    status,
                    |mut b| {
                        if status > 100 && status < 300 {
                            b = b.header("Contact", contact);
                            if let Ok(rr) = invite.header_list(HeaderName::RecordRoute) {
                                for r in rr {
                                    b = b.header("Record-Route", r);
                                }
                            }
                        }
                        if (200..300).contains(&status) {
                            b = b
                                .header(
                                    "Allow",
                                    "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK",
                                )
                                .header("Supported", "100rel, timer");
                            if let session_timer::UasNegotiation::Accepted {
                                se,
                                require_timer,
                                ..
                            } = a_session
                            {
                                // RFC 4028 §9: the negotiated interval and refresher.
                                b = b.header("Session-Expires", se.header_value());
                                if require_timer {
                                    b = b.header("Require", "timer");
                                }
                            }
                        }
                        for (n, v) in extra {
                            b = b.header(n.as_str(), v.as_str());
                        }
                        if let Some(body) = sdp {
                            b = b.body("application/sdp", body);
                        }
                        b
                    },
                );
                built = bytes.clone();
                (to, bytes)
            });
        let bytes = built;
        if (200..300).contains(&status) {
            let mut r = Uas2xxRetransmitter::new(now, bytes.clone(), self.calls.config.timers);
            if let Some(at) = r.poll_timeout() {
                self.calls.schedule(at, Timer::Call(key));
            }
            while r.poll_transmit().is_some() {}
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.inbound.ok_2xx = Some(r);
            }
            if let session_timer::UasNegotiation::Accepted { se, we_refresh, .. } = a_session {
                self.arm_session_timer(
                    now,
                    key,
                    session_timer::Side::A,
                    Some((se.interval, we_refresh)),
                );
            }
        }
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_from_is_written_as_the_concatenation_was() {
        let old = |name: &str, uri: &str| {
            let display = if name.is_empty() {
                String::new()
            } else {
                concat(&["\"", &name.replace('"', ""), "\" "])
            };
            concat(&[&display, "<", uri, ">"])
        };
        for name in ["", "Agent", "A \"quoted\" name", "\"", "Zoë"] {
            let uri = "sip:100@example.com";
            assert_eq!(
                quoted_name_addr(name, &["sip:", "100", "@", "example.com"]),
                old(name, uri)
            );
            assert_eq!(quoted_name_addr(name, &[uri]), old(name, uri));
        }
    }
}
