//! OPTIONS qualify (RFC 3261 §11): one [`Qualifier`] per contact pings it
//! every `qualify_secs` and keeps its [`ContactState`], which failover reads.
//!
//! Each ping is a fresh OPTIONS (new Call-ID, branch and tag) run by a
//! non-INVITE [`ClientTransaction`] from carillon-transaction, so over UDP
//! it is retransmitted on Timer E (T1, 2T1, … capped at T2) until answered.
//! The contact is Down when no final response arrives within
//! `qualify_timeout_secs` (or Timer F fires first); a final response makes
//! it Up — any status, since even 404 or 501 proves the peer is alive —
//! except 408 and 503, which say it cannot take requests now.
//!
//! ```text
//!            ┌──────────── interval after the ping was sent ───────────┐
//!            ▼                                                         │
//!   Idle{next_at} ──now ≥ next_at: send OPTIONS──► Waiting{deadline} ──┤
//!                                                   │ final (not 408/503) → Up
//!                                                   │ 408/503, deadline, Timer F → Down
//! ```
//!
//! A change of state is reported once as
//! [`TrunkEvent::ContactStateChanged`]. Does not own sockets, name
//! resolution, or matching a response to the ping beyond its Via branch.

use std::collections::VecDeque;
use std::time::Instant;

use carillon_transaction::{ClientEvent, ClientTransaction, TransactionKind};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::event::{ContactState, Transmit, TrunkEvent};
use crate::model::{QualifyConfig, TrunkName};
use crate::request::{self, LocalConfig, Options};

#[derive(Debug)]
struct Ping {
    branch: String,
    tx: ClientTransaction,
    sent_at: Instant,
    deadline: Instant,
}

#[derive(Debug)]
enum Probe {
    Idle { next_at: Instant },
    Waiting(Box<Ping>),
}

/// Qualifies one contact of one trunk.
#[derive(Debug)]
pub struct Qualifier {
    trunk: TrunkName,
    contact: String,
    from_domain: String,
    cfg: QualifyConfig,
    local: LocalConfig,
    rng: ChaCha8Rng,
    cseq: u32,
    state: ContactState,
    probe: Probe,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TrunkEvent>,
}

impl Qualifier {
    /// A qualifier whose first ping is due at `now` (call
    /// [`Qualifier::handle_timeout`] to send it). `from_domain` goes in the
    /// From header (the trunk's `from_domain`, or our host).
    pub fn new(
        trunk: TrunkName,
        contact: String,
        from_domain: String,
        cfg: QualifyConfig,
        local: LocalConfig,
        seed: u64,
        now: Instant,
    ) -> Qualifier {
        Qualifier {
            trunk,
            contact,
            from_domain,
            cfg,
            local,
            rng: ChaCha8Rng::seed_from_u64(seed),
            cseq: 0,
            state: ContactState::Unknown,
            probe: Probe::Idle { next_at: now },
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn contact(&self) -> &str {
        &self.contact
    }

    pub fn state(&self) -> ContactState {
        self.state
    }

    /// The branch of the ping in flight, if any.
    pub fn pending_branch(&self) -> Option<&str> {
        match &self.probe {
            Probe::Waiting(ping) => Some(&ping.branch),
            Probe::Idle { .. } => None,
        }
    }

    fn set_state(&mut self, to: ContactState) {
        if to != self.state {
            self.events.push_back(TrunkEvent::ContactStateChanged {
                trunk: self.trunk.clone(),
                contact: self.contact.clone(),
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn drain_tx(&mut self) -> bool {
        let mut timed_out = false;
        if let Probe::Waiting(ping) = &mut self.probe {
            while let Some(bytes) = ping.tx.poll_transmit() {
                self.transmits.push_back(Transmit {
                    trunk: self.trunk.clone(),
                    destination: self.contact.clone(),
                    bytes,
                });
            }
            while let Some(event) = ping.tx.poll_event() {
                if matches!(event, ClientEvent::TimedOut | ClientEvent::TransportFailed) {
                    timed_out = true;
                }
            }
        }
        timed_out
    }

    fn send_ping(&mut self, now: Instant) {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let branch = request::branch(&mut self.rng);
        let call_id = format!("{}@{}", request::token(&mut self.rng), self.local.host);
        let from_tag = request::token(&mut self.rng);
        let bytes = request::options(
            &self.local,
            &Options {
                contact: &self.contact,
                from_domain: &self.from_domain,
                branch: &branch,
                call_id: &call_id,
                from_tag: &from_tag,
                cseq: self.cseq,
            },
        );
        let tx = ClientTransaction::new(
            TransactionKind::NonInvite,
            self.local.transport.is_reliable(),
            bytes,
            now,
            self.local.timers,
        );
        self.probe = Probe::Waiting(Box::new(Ping {
            branch,
            tx,
            sent_at: now,
            deadline: now + self.cfg.timeout,
        }));
        self.drain_tx();
    }

    fn finish_ping(&mut self, sent_at: Instant, now: Instant, to: ContactState) {
        let next = sent_at + self.cfg.interval;
        self.probe = Probe::Idle {
            next_at: next.max(now),
        };
        self.set_state(to);
    }

    /// Advances timers: retransmits, declares a silent contact Down, and
    /// sends the next ping when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Probe::Waiting(ping) = &mut self.probe {
            ping.tx.handle_timeout(now);
            let (sent_at, deadline) = (ping.sent_at, ping.deadline);
            let timed_out = self.drain_tx();
            if timed_out || now >= deadline {
                self.finish_ping(sent_at, now, ContactState::Down);
            }
        }
        if let Probe::Idle { next_at } = self.probe {
            if now >= next_at {
                self.send_ping(now);
            }
        }
    }

    /// A response whose top Via branch is `branch`. Returns whether it
    /// belonged to this qualifier's ping in flight.
    pub fn handle_response(&mut self, now: Instant, branch: &str, status: u16) -> bool {
        let Probe::Waiting(ping) = &mut self.probe else {
            return false;
        };
        if ping.branch != branch {
            return false;
        }
        if (100..200).contains(&status) {
            // Keeps the transaction in Proceeding; the qualify deadline
            // still applies.
            let _ = ping.tx.handle_response(now, status, None);
            self.drain_tx();
            return true;
        }
        let sent_at = ping.sent_at;
        let to = if status == 408 || status == 503 {
            ContactState::Down
        } else {
            ContactState::Up
        };
        self.finish_ping(sent_at, now, to);
        true
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TrunkEvent> {
        self.events.pop_front()
    }

    /// When [`Qualifier::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.probe {
            Probe::Idle { next_at } => Some(*next_at),
            Probe::Waiting(ping) => Some(match ping.tx.poll_timeout() {
                Some(t) => t.min(ping.deadline),
                None => ping.deadline,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Transport;
    use carillon_sip::{HeaderName, Message, Method};
    use carillon_transaction::TimerConfig;
    use std::time::Duration;

    fn local() -> LocalConfig {
        LocalConfig {
            host: "203.0.113.10".into(),
            port: 5060,
            transport: Transport::Udp,
            user_agent: Some("Carillon".into()),
            rng_seed: [7; 32],
            timers: TimerConfig::default(),
        }
    }

    fn qualifier(now: Instant) -> Qualifier {
        Qualifier::new(
            TrunkName::new("twilio"),
            "sip:198.51.100.1:5060".into(),
            "pbx.example".into(),
            QualifyConfig {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(2),
            },
            local(),
            1,
            now,
        )
    }

    fn sent(q: &mut Qualifier) -> Vec<Message> {
        std::iter::from_fn(|| q.poll_transmit())
            .map(|t| Message::parse(t.bytes).unwrap())
            .collect()
    }

    fn branch_of(m: &Message) -> String {
        m.with_top_via(|v| v.branch().unwrap().to_owned()).unwrap()
    }

    #[test]
    fn the_first_ping_is_a_well_formed_options_to_the_contact() {
        let t0 = Instant::now();
        let mut q = qualifier(t0);
        q.handle_timeout(t0);
        let msgs = sent(&mut q);
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!(m.method(), Some(&Method::Options));
        assert_eq!(m.request_uri_str(), Some("sip:198.51.100.1:5060"));
        assert!(branch_of(m).starts_with("z9hG4bK"));
        assert!(m
            .top_via_str()
            .unwrap()
            .starts_with("SIP/2.0/UDP 203.0.113.10:5060"));
        assert_eq!(m.header(HeaderName::MaxForwards).as_deref(), Some("70"));
        assert_eq!(m.cseq().unwrap().method, Method::Options);
        assert!(m.tag(HeaderName::From).is_some());
        assert!(m.call_id().is_some());
        assert_eq!(q.pending_branch(), Some(branch_of(m).as_str()));
    }

    #[test]
    fn an_answer_makes_the_contact_up_and_the_next_ping_waits_an_interval() {
        let t0 = Instant::now();
        let mut q = qualifier(t0);
        q.handle_timeout(t0);
        let b = branch_of(&sent(&mut q)[0]);
        assert!(q.handle_response(t0 + Duration::from_millis(40), &b, 200));
        assert_eq!(q.state(), ContactState::Up);
        assert_eq!(
            q.poll_event(),
            Some(TrunkEvent::ContactStateChanged {
                trunk: TrunkName::new("twilio"),
                contact: "sip:198.51.100.1:5060".into(),
                from: ContactState::Unknown,
                to: ContactState::Up,
            })
        );
        assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        assert!(
            !q.handle_response(t0, &b, 200),
            "a retransmitted answer is not ours any more"
        );
    }

    #[test]
    fn silence_past_the_timeout_makes_the_contact_down_after_udp_retransmissions() {
        let t0 = Instant::now();
        let mut q = qualifier(t0);
        q.handle_timeout(t0);
        assert_eq!(sent(&mut q).len(), 1);
        let mut retransmitted = 0;
        while let Some(t) = q.poll_timeout() {
            if q.state() == ContactState::Down {
                break;
            }
            q.handle_timeout(t);
            retransmitted += sent(&mut q).len();
        }
        // Timer E at 0.5 s and 1.5 s before the 2 s deadline.
        assert_eq!(retransmitted, 2);
        assert_eq!(q.state(), ContactState::Down);
    }

    #[test]
    fn a_503_answer_counts_as_down_but_a_404_as_up() {
        let t0 = Instant::now();
        let mut q = qualifier(t0);
        q.handle_timeout(t0);
        let b = branch_of(&sent(&mut q)[0]);
        q.handle_response(t0, &b, 503);
        assert_eq!(q.state(), ContactState::Down);
        let t1 = t0 + Duration::from_secs(30);
        q.handle_timeout(t1);
        let b = branch_of(&sent(&mut q)[0]);
        q.handle_response(t1, &b, 404);
        assert_eq!(q.state(), ContactState::Up);
    }

    #[test]
    fn a_contact_that_stays_down_is_reported_once_not_once_per_interval() {
        let t0 = Instant::now();
        let mut q = qualifier(t0);
        let mut events = Vec::new();
        let mut pings = std::collections::HashSet::new();
        // Five silent intervals (30 s each): five pings, one change.
        while let Some(t) = q.poll_timeout() {
            if t >= t0 + Duration::from_secs(150) {
                break;
            }
            q.handle_timeout(t);
            pings.extend(sent(&mut q).iter().map(branch_of));
            events.extend(std::iter::from_fn(|| q.poll_event()));
        }
        assert_eq!(pings.len(), 5, "retransmissions share their ping's branch");
        assert_eq!(
            events,
            vec![TrunkEvent::ContactStateChanged {
                trunk: TrunkName::new("twilio"),
                contact: "sip:198.51.100.1:5060".into(),
                from: ContactState::Unknown,
                to: ContactState::Down,
            }]
        );
        // It answers: one change to Up; silent again: one change to Down.
        let t1 = t0 + Duration::from_secs(150);
        q.handle_timeout(t1);
        let b = branch_of(&sent(&mut q)[0]);
        q.handle_response(t1, &b, 200);
        let mut later = Vec::new();
        while let Some(t) = q.poll_timeout() {
            if t >= t1 + Duration::from_secs(150) {
                break;
            }
            q.handle_timeout(t);
            let _ = sent(&mut q);
            later.extend(std::iter::from_fn(|| q.poll_event()));
        }
        let tos: Vec<ContactState> = later
            .iter()
            .map(|e| match e {
                TrunkEvent::ContactStateChanged { to, .. } => *to,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tos, vec![ContactState::Up, ContactState::Down]);
    }

    #[test]
    fn a_response_with_another_branch_is_not_taken() {
        let t0 = Instant::now();
        let mut q = qualifier(t0);
        q.handle_timeout(t0);
        let _ = sent(&mut q);
        assert!(!q.handle_response(t0, "z9hG4bKother", 200));
        assert_eq!(q.state(), ContactState::Unknown);
    }
}
