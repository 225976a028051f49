//! Simulation tests: a client transaction and a server transaction (plus the
//! UAS core's 2xx retransmitter) driven against each other over a virtual
//! link with a virtual clock. The clock is a base `Instant` plus offsets and
//! jumps straight to the next deadline or delivery, so a 64*T1 timeout takes
//! microseconds. Loss is either scripted (drop the n-th message of one
//! direction) or drawn from a seeded ChaCha RNG, so every run is exact and
//! repeatable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_transaction::{
    ClientEvent, ClientStateKind, ClientTransaction, ServerEvent, ServerStateKind,
    ServerTransaction, TimerConfig, TransactionKind, Uas2xxEvent, Uas2xxRetransmitter,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One-way delay of the virtual link.
const DELAY: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mss(list: &[u64]) -> Vec<Duration> {
    list.iter().copied().map(ms).collect()
}

/// Which end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// The few messages the simulation exchanges. The transactions never see
/// these, only the bytes; the simulated glue decodes them to route them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    Request,
    /// The ACK for a non-2xx final response (part of the transaction).
    Ack,
    /// The ACK for a 2xx (sent by the UAC core).
    Ack2xx,
    Response(u16),
}

impl Msg {
    fn encode(self, kind: TransactionKind) -> Bytes {
        let text = match self {
            Msg::Request if kind == TransactionKind::Invite => "INVITE".to_owned(),
            Msg::Request => "OPTIONS".to_owned(),
            Msg::Ack => "ACK".to_owned(),
            Msg::Ack2xx => "ACK 2xx".to_owned(),
            Msg::Response(code) => format!("SIP/2.0 {code}"),
        };
        Bytes::from(text)
    }

    fn decode(bytes: &[u8]) -> Msg {
        match bytes {
            b"INVITE" | b"OPTIONS" => Msg::Request,
            b"ACK" => Msg::Ack,
            b"ACK 2xx" => Msg::Ack2xx,
            other => {
                let text = std::str::from_utf8(other).unwrap();
                let code = text.strip_prefix("SIP/2.0 ").unwrap().parse().unwrap();
                Msg::Response(code)
            }
        }
    }
}

/// What one direction of the link does to the messages sent on it.
#[derive(Debug, Clone)]
enum Loss {
    None,
    All,
    /// Drop the messages with these 0-based indices (in sending order).
    Indices(Vec<usize>),
    /// Deliver the first `n` messages, drop the rest.
    AllAfter(usize),
    /// Drop each message with this probability, drawn from the seeded RNG.
    Seeded(f64),
}

#[derive(Debug)]
struct Direction {
    loss: Loss,
    sent: usize,
}

/// A seeded, deterministic lossy link.
struct Link {
    rng: ChaCha8Rng,
    to_server: Direction,
    to_client: Direction,
}

impl Link {
    fn delivers(&mut self, to: Side) -> bool {
        let dir = match to {
            Side::Server => &mut self.to_server,
            Side::Client => &mut self.to_client,
        };
        let index = dir.sent;
        dir.sent += 1;
        match &dir.loss {
            Loss::None => true,
            Loss::All => false,
            Loss::Indices(drop) => !drop.contains(&index),
            Loss::AllAfter(n) => index < *n,
            Loss::Seeded(p) => self.rng.gen::<f64>() >= *p,
        }
    }
}

/// A virtual clock: a base `Instant` plus an offset that only moves forward.
struct VirtualClock {
    base: Instant,
    now: Instant,
}

impl VirtualClock {
    fn new() -> Self {
        let base = Instant::now();
        Self { base, now: base }
    }

    fn advance_to(&mut self, at: Instant) {
        assert!(at >= self.now, "virtual time must not go backwards");
        self.now = at;
    }

    fn offset(&self) -> Duration {
        self.now - self.base
    }
}

/// One scenario: who answers what, when, over which link.
#[derive(Debug, Clone)]
struct Scenario {
    kind: TransactionKind,
    reliable: bool,
    /// The server TU's responses, as delays after the first request arrives.
    responses: Vec<(Duration, u16)>,
    to_server: Loss,
    to_client: Loss,
    seed: u64,
    /// When the client TU cancels the INVITE if it is still unanswered (the
    /// CANCEL transaction itself is not simulated).
    cancel_after: Option<Duration>,
}

impl Scenario {
    fn new(kind: TransactionKind) -> Self {
        Self {
            kind,
            reliable: false,
            responses: Vec::new(),
            to_server: Loss::None,
            to_client: Loss::None,
            seed: 0,
            cancel_after: None,
        }
    }

    fn respond(mut self, after: Duration, status: u16) -> Self {
        self.responses.push((after, status));
        self
    }

    fn reliable(mut self) -> Self {
        self.reliable = true;
        self
    }

    fn drop_to_server(mut self, loss: Loss) -> Self {
        self.to_server = loss;
        self
    }

    fn drop_to_client(mut self, loss: Loss) -> Self {
        self.to_client = loss;
        self
    }

    fn cancel_after(mut self, after: Duration) -> Self {
        self.cancel_after = Some(after);
        self
    }

    fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// A transmission as recorded by the simulation (before loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    at: Duration,
    from: Side,
    msg: Msg,
}

struct Sim {
    kind: TransactionKind,
    reliable: bool,
    cfg: TimerConfig,
    clock: VirtualClock,
    link: Link,
    /// In-flight messages keyed by (arrival time, sequence number).
    in_flight: BTreeMap<(Instant, u64), (Side, Bytes)>,
    seq: u64,
    client: ClientTransaction,
    server: Option<ServerTransaction>,
    uas: Option<Uas2xxRetransmitter>,
    script: Vec<(Duration, u16)>,
    pending_responses: BTreeMap<(Instant, u64), u16>,
    cancel_at: Option<Instant>,
    cancelled: bool,
    sent: Vec<Sent>,
    client_events: Vec<(Duration, ClientEvent)>,
    server_events: Vec<(Duration, ServerEvent)>,
    uas_events: Vec<(Duration, Uas2xxEvent)>,
    request_arrivals: usize,
    /// Requests that reached the server after its transaction terminated.
    strays: usize,
}

impl Sim {
    fn run(scenario: Scenario) -> Sim {
        let cfg = TimerConfig::default();
        let clock = VirtualClock::new();
        let client = ClientTransaction::new(
            scenario.kind,
            scenario.reliable,
            Msg::Request.encode(scenario.kind),
            clock.now,
            cfg,
        );
        let mut sim = Sim {
            kind: scenario.kind,
            reliable: scenario.reliable,
            cfg,
            clock,
            link: Link {
                rng: ChaCha8Rng::seed_from_u64(scenario.seed),
                to_server: Direction {
                    loss: scenario.to_server,
                    sent: 0,
                },
                to_client: Direction {
                    loss: scenario.to_client,
                    sent: 0,
                },
            },
            in_flight: BTreeMap::new(),
            seq: 0,
            client,
            server: None,
            uas: None,
            script: scenario.responses,
            pending_responses: BTreeMap::new(),
            cancel_at: None,
            cancelled: false,
            sent: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            uas_events: Vec::new(),
            request_arrivals: 0,
            strays: 0,
        };
        sim.cancel_at = scenario.cancel_after.map(|after| sim.clock.now + after);
        sim.drain();
        for _ in 0..100_000 {
            let Some(next) = sim.next_instant() else {
                return sim;
            };
            sim.clock.advance_to(next);
            sim.step();
        }
        panic!("simulation did not settle");
    }

    fn next_instant(&self) -> Option<Instant> {
        [
            self.client.poll_timeout(),
            self.server.as_ref().and_then(|s| s.poll_timeout()),
            self.uas.as_ref().and_then(|u| u.poll_timeout()),
            self.in_flight.keys().next().map(|&(at, _)| at),
            self.pending_responses.keys().next().map(|&(at, _)| at),
            self.cancel_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Everything due at the current virtual instant: timers, then
    /// deliveries, then the server TU's scripted responses.
    fn step(&mut self) {
        let now = self.clock.now;
        if self.client.poll_timeout().is_some_and(|at| at <= now) {
            self.client.handle_timeout(now);
            self.drain();
        }
        if let Some(server) = self.server.as_mut() {
            if server.poll_timeout().is_some_and(|at| at <= now) {
                server.handle_timeout(now);
                self.drain();
            }
        }
        if let Some(uas) = self.uas.as_mut() {
            if uas.poll_timeout().is_some_and(|at| at <= now) {
                uas.handle_timeout(now);
                self.drain();
            }
        }
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, bytes) = entry.remove();
            self.deliver(to, &bytes);
            self.drain();
        }
        while let Some(entry) = self.pending_responses.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let status = entry.remove();
            self.server_tu_responds(status);
            self.drain();
        }
        if self.cancel_at.is_some_and(|at| at <= now) {
            self.cancel_at = None;
            if matches!(
                self.client.state(),
                ClientStateKind::Calling | ClientStateKind::Proceeding
            ) {
                self.cancelled = true;
                self.client.handle_cancel_sent(now);
                self.drain();
            }
        }
    }

    fn send(&mut self, from: Side, bytes: Bytes) {
        let msg = Msg::decode(&bytes);
        self.sent.push(Sent {
            at: self.clock.offset(),
            from,
            msg,
        });
        let to = match from {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        };
        if self.link.delivers(to) {
            let seq = self.next_seq();
            self.in_flight
                .insert((self.clock.now + DELAY, seq), (to, bytes));
        }
    }

    fn deliver(&mut self, to: Side, bytes: &[u8]) {
        let now = self.clock.now;
        match (to, Msg::decode(bytes)) {
            (Side::Server, Msg::Request) => {
                self.request_arrivals += 1;
                match self.server.as_mut() {
                    None => {
                        self.server = Some(ServerTransaction::new(
                            self.kind,
                            self.reliable,
                            now,
                            self.cfg,
                        ));
                        for (after, status) in self.script.clone() {
                            let seq = self.next_seq();
                            self.pending_responses.insert((now + after, seq), status);
                        }
                    }
                    Some(server) if server.is_terminated() => self.strays += 1,
                    Some(server) => server.handle_request_retransmission(now),
                }
            }
            (Side::Server, Msg::Ack) => {
                if let Some(server) = self.server.as_mut() {
                    server.handle_ack(now);
                }
            }
            (Side::Server, Msg::Ack2xx) => {
                if let Some(uas) = self.uas.as_mut() {
                    uas.handle_ack(now);
                }
            }
            (Side::Client, Msg::Response(status)) => {
                let ack = (self.kind == TransactionKind::Invite && status >= 300)
                    .then(|| Msg::Ack.encode(self.kind));
                self.client.handle_response(now, status, ack).unwrap();
            }
            (to, msg) => panic!("{msg:?} should never reach the {to:?}"),
        }
    }

    fn server_tu_responds(&mut self, status: u16) {
        let now = self.clock.now;
        let bytes = Msg::Response(status).encode(self.kind);
        let server = self.server.as_mut().unwrap();
        if server.is_terminated() {
            return;
        }
        server.send_response(now, status, bytes.clone()).unwrap();
        if self.kind == TransactionKind::Invite && (200..300).contains(&status) {
            self.uas = Some(Uas2xxRetransmitter::new(now, bytes, self.cfg));
        }
    }

    /// Drains every machine's outputs, as the glue must after each input.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(bytes) = self.client.poll_transmit() {
                progressed = true;
                self.send(Side::Client, bytes);
            }
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                self.client_events.push((self.clock.offset(), event));
                let acks_2xx = match event {
                    ClientEvent::Final(status) => {
                        self.kind == TransactionKind::Invite && (200..300).contains(&status)
                    }
                    ClientEvent::Retransmitted2xx => true,
                    _ => false,
                };
                if acks_2xx {
                    self.send(Side::Client, Msg::Ack2xx.encode(self.kind));
                }
            }
            if let Some(uas) = self.uas.as_mut() {
                let copies: Vec<Bytes> = std::iter::from_fn(|| uas.poll_transmit()).collect();
                let events: Vec<Uas2xxEvent> = std::iter::from_fn(|| uas.poll_event()).collect();
                for copy in copies {
                    progressed = true;
                    // Through the server transaction while it is Accepted.
                    match self.server.as_mut() {
                        Some(server) if server.state() == ServerStateKind::Accepted => {
                            server.send_response(self.clock.now, 200, copy).unwrap();
                        }
                        _ => self.send(Side::Server, copy),
                    }
                }
                for event in events {
                    progressed = true;
                    self.uas_events.push((self.clock.offset(), event));
                }
            }
            if let Some(server) = self.server.as_mut() {
                let out: Vec<Bytes> = std::iter::from_fn(|| server.poll_transmit()).collect();
                let events: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
                for bytes in out {
                    progressed = true;
                    self.send(Side::Server, bytes);
                }
                for event in events {
                    progressed = true;
                    self.server_events.push((self.clock.offset(), event));
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Offsets at which `from` transmitted a message matching `msg`.
    fn times(&self, from: Side, msg: Msg) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|s| s.from == from && s.msg == msg)
            .map(|s| s.at)
            .collect()
    }

    fn count(&self, from: Side, msg: Msg) -> usize {
        self.times(from, msg).len()
    }

    fn client_saw(&self, event: ClientEvent) -> bool {
        self.client_events.iter().any(|&(_, e)| e == event)
    }

    fn server_saw(&self, event: ServerEvent) -> bool {
        self.server_events.iter().any(|&(_, e)| e == event)
    }

    /// Every machine that was created reached Terminated and has no timer.
    fn assert_all_terminated(&self) {
        assert!(self.client.is_terminated(), "client not terminated");
        assert_eq!(self.client.poll_timeout(), None);
        assert_eq!(
            self.client_events.last().map(|&(_, e)| e),
            Some(ClientEvent::Terminated)
        );
        if let Some(server) = &self.server {
            assert!(server.is_terminated(), "server in {:?}", server.state());
            assert_eq!(server.poll_timeout(), None);
            assert_eq!(
                self.server_events.last().map(|&(_, e)| e),
                Some(ServerEvent::Terminated)
            );
        }
        if let Some(uas) = &self.uas {
            assert!(uas.is_terminated(), "2xx retransmitter still running");
            assert_eq!(uas.poll_timeout(), None);
        }
        assert!(self.in_flight.is_empty());
    }
}

const SCHEDULE_A: [u64; 7] = [0, 500, 1_500, 3_500, 7_500, 15_500, 31_500];
/// Timer E and G (and the UAS 2xx) schedule: doubling from T1, capped at T2.
const SCHEDULE_CAPPED: [u64; 11] = [
    0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
];

fn shifted(list: &[u64], by: u64) -> Vec<Duration> {
    list.iter().map(|&t| ms(t + by)).collect()
}

#[test]
fn invite_client_retransmits_on_timer_a_doubling_without_cap_until_timer_b_at_64_t1() {
    let sim = Sim::run(Scenario::new(TransactionKind::Invite).drop_to_server(Loss::All));
    assert_eq!(sim.times(Side::Client, Msg::Request), mss(&SCHEDULE_A));
    assert_eq!(
        sim.client_events,
        vec![
            (ms(32_000), ClientEvent::TimedOut),
            (ms(32_000), ClientEvent::Terminated)
        ]
    );
    assert!(sim.server.is_none());
    sim.assert_all_terminated();
}

#[test]
fn non_invite_client_retransmits_on_timer_e_capped_at_t2_until_timer_f_at_64_t1() {
    let sim = Sim::run(Scenario::new(TransactionKind::NonInvite).drop_to_server(Loss::All));
    assert_eq!(sim.times(Side::Client, Msg::Request), mss(&SCHEDULE_CAPPED));
    assert_eq!(
        sim.client_events,
        vec![
            (ms(32_000), ClientEvent::TimedOut),
            (ms(32_000), ClientEvent::Terminated)
        ]
    );
    sim.assert_all_terminated();
}

#[test]
fn non_invite_client_in_proceeding_retransmits_every_t2_until_timer_f() {
    // 100 Trying at once, the final only after the client gave up.
    let sim = Sim::run(
        Scenario::new(TransactionKind::NonInvite)
            .respond(ms(0), 100)
            .respond(ms(40_000), 408),
    );
    assert_eq!(
        sim.times(Side::Client, Msg::Request),
        mss(&[0, 500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500])
    );
    // The server re-sent its 100 for each retransmission it received.
    assert_eq!(
        sim.times(Side::Server, Msg::Response(100)),
        shifted(
            &[0, 500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500],
            10
        )
    );
    assert!(sim.client_saw(ClientEvent::Provisional(100)));
    assert!(!sim.client_saw(ClientEvent::Final(408)));
    assert_eq!(
        sim.client_events.iter().rev().take(2).collect::<Vec<_>>(),
        vec![
            &(ms(32_000), ClientEvent::Terminated),
            &(ms(32_000), ClientEvent::TimedOut)
        ]
    );
    sim.assert_all_terminated();
}

#[test]
fn invite_server_retransmits_a_failure_on_timer_g_capped_at_t2_until_timer_h_at_64_t1() {
    // The server hears only the first INVITE and the client hears nothing.
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(0), 486)
            .drop_to_server(Loss::AllAfter(1))
            .drop_to_client(Loss::All),
    );
    assert_eq!(
        sim.times(Side::Server, Msg::Response(486)),
        shifted(&SCHEDULE_CAPPED, 10)
    );
    assert_eq!(
        sim.server_events,
        vec![
            (ms(32_010), ServerEvent::TimedOut),
            (ms(32_010), ServerEvent::Terminated)
        ]
    );
    assert!(sim.client_saw(ClientEvent::TimedOut));
    sim.assert_all_terminated();
}

#[test]
fn invite_server_absorbs_retransmitted_invites_while_the_tu_has_not_responded() {
    let sim = Sim::run(Scenario::new(TransactionKind::Invite).respond(ms(5_000), 486));
    // INVITEs at 0, 0.5, 1.5 and 3.5 s all reached the one server transaction.
    assert_eq!(sim.request_arrivals, 4);
    assert_eq!(
        sim.sent
            .iter()
            .filter(|s| s.from == Side::Server)
            .map(|s| (s.at, s.msg))
            .collect::<Vec<_>>(),
        vec![(ms(5_010), Msg::Response(486))]
    );
    assert_eq!(sim.strays, 0);
    sim.assert_all_terminated();
}

#[test]
fn invite_server_resends_its_last_provisional_when_the_invite_is_retransmitted() {
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(0), 180)
            .respond(ms(2_000), 200)
            .drop_to_client(Loss::Indices(vec![0])),
    );
    assert_eq!(sim.times(Side::Server, Msg::Response(180)), mss(&[10, 510]));
    // Once the 180 arrived the client stopped retransmitting.
    assert_eq!(sim.times(Side::Client, Msg::Request), mss(&[0, 500]));
    assert_eq!(
        sim.client_events,
        vec![
            (ms(520), ClientEvent::Provisional(180)),
            (ms(2_020), ClientEvent::Final(200)),
            (ms(34_020), ClientEvent::Terminated)
        ]
    );
    sim.assert_all_terminated();
}

#[test]
fn non_invite_server_absorbs_requests_in_trying_and_resends_its_final_in_completed() {
    let sim = Sim::run(
        Scenario::new(TransactionKind::NonInvite)
            .respond(ms(2_000), 200)
            .drop_to_client(Loss::Indices(vec![0])),
    );
    assert_eq!(
        sim.times(Side::Client, Msg::Request),
        mss(&[0, 500, 1_500, 3_500])
    );
    // Silent in Trying; the final is re-sent only for the request after it.
    assert_eq!(
        sim.times(Side::Server, Msg::Response(200)),
        mss(&[2_010, 3_510])
    );
    assert_eq!(
        sim.client_events,
        vec![
            (ms(3_520), ClientEvent::Final(200)),
            (ms(8_520), ClientEvent::Terminated)
        ]
    );
    // Timer J: 64*T1 after the final was sent.
    assert_eq!(
        sim.server_events,
        vec![(ms(34_010), ServerEvent::Terminated)]
    );
    sim.assert_all_terminated();
}

#[test]
fn invite_client_acks_a_failure_and_resends_the_ack_for_each_retransmitted_failure() {
    // Message 0 to the server is the INVITE, message 1 the first ACK.
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(0), 486)
            .drop_to_server(Loss::Indices(vec![1])),
    );
    assert_eq!(sim.times(Side::Client, Msg::Ack), mss(&[20, 520]));
    assert_eq!(sim.times(Side::Server, Msg::Response(486)), mss(&[10, 510]));
    assert_eq!(
        sim.client_events,
        vec![
            (ms(20), ClientEvent::Final(486)),
            (ms(32_020), ClientEvent::Terminated)
        ]
    );
    assert_eq!(
        sim.server_events,
        vec![
            (ms(530), ServerEvent::AckReceived),
            (ms(5_530), ServerEvent::Terminated)
        ]
    );
    assert_eq!(sim.count(Side::Client, Msg::Ack2xx), 0);
    sim.assert_all_terminated();
}

#[test]
fn accepted_client_passes_retransmitted_2xx_to_the_tu_until_timer_m() {
    // The UAC core's first ACK for the 2xx is lost, so the UAS re-sends it.
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(0), 200)
            .drop_to_server(Loss::Indices(vec![1])),
    );
    assert_eq!(sim.times(Side::Server, Msg::Response(200)), mss(&[10, 510]));
    assert_eq!(sim.times(Side::Client, Msg::Ack2xx), mss(&[20, 520]));
    assert_eq!(sim.count(Side::Client, Msg::Ack), 0);
    assert_eq!(
        sim.client_events,
        vec![
            (ms(20), ClientEvent::Final(200)),
            (ms(520), ClientEvent::Retransmitted2xx),
            (ms(32_020), ClientEvent::Terminated)
        ]
    );
    assert!(sim.uas.as_ref().unwrap().is_acknowledged());
    // The 2xx ACK is not part of the server transaction; Timer L ends it.
    assert_eq!(
        sim.server_events,
        vec![(ms(32_010), ServerEvent::Terminated)]
    );
    sim.assert_all_terminated();
}

#[test]
fn accepted_server_absorbs_retransmitted_invites_instead_of_treating_them_as_new() {
    // The TU answers after 100 ms; that first 200 is lost, so the client
    // retransmits the INVITE into the server's Accepted state.
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(100), 200)
            .drop_to_client(Loss::Indices(vec![0])),
    );
    assert_eq!(sim.times(Side::Client, Msg::Request), mss(&[0, 500]));
    assert_eq!(sim.request_arrivals, 2);
    assert_eq!(sim.strays, 0);
    // Only the TU's 2xx copies: nothing was sent for the INVITE at 510 ms.
    assert_eq!(
        sim.times(Side::Server, Msg::Response(200)),
        mss(&[110, 610])
    );
    assert_eq!(
        sim.client_events,
        vec![
            (ms(620), ClientEvent::Final(200)),
            (ms(32_620), ClientEvent::Terminated)
        ]
    );
    assert_eq!(
        sim.server_events,
        vec![(ms(32_110), ServerEvent::Terminated)]
    );
    sim.assert_all_terminated();
}

#[test]
fn uas_retransmits_2xx_capped_at_t2_and_reports_ack_timed_out_after_64_t1() {
    // Every ACK is lost.
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(0), 200)
            .drop_to_server(Loss::AllAfter(1)),
    );
    assert_eq!(
        sim.times(Side::Server, Msg::Response(200)),
        shifted(&SCHEDULE_CAPPED, 10)
    );
    assert_eq!(sim.uas_events, vec![(ms(32_010), Uas2xxEvent::AckTimedOut)]);
    assert_eq!(sim.count(Side::Client, Msg::Ack2xx), SCHEDULE_CAPPED.len());
    assert!(!sim.uas.as_ref().unwrap().is_acknowledged());
    sim.assert_all_terminated();
}

#[test]
fn transactions_complete_despite_thirty_percent_seeded_loss_in_most_seeds() {
    let flows: [(TransactionKind, &[(u64, u16)]); 3] = [
        (
            TransactionKind::Invite,
            &[(0, 100), (1_000, 180), (3_000, 200)],
        ),
        (TransactionKind::Invite, &[(0, 100), (2_000, 486)]),
        (TransactionKind::NonInvite, &[(50, 200)]),
    ];
    for (kind, script) in flows {
        let final_status = script.last().unwrap().1;
        let mut completed = 0;
        let mut retransmitted = 0;
        for seed in 0..100 {
            let mut scenario = Scenario::new(kind)
                .drop_to_server(Loss::Seeded(0.3))
                .drop_to_client(Loss::Seeded(0.3))
                .seed(seed);
            for &(after, status) in script {
                scenario = scenario.respond(ms(after), status);
            }
            let sim = Sim::run(scenario);
            sim.assert_all_terminated();
            assert_eq!(sim.strays, 0, "seed {seed}: a request outlived its server");
            let acked = match (kind, final_status) {
                (TransactionKind::Invite, 200..=299) => {
                    sim.uas.as_ref().is_some_and(|u| u.is_acknowledged())
                }
                (TransactionKind::Invite, _) => sim.server_saw(ServerEvent::AckReceived),
                (TransactionKind::NonInvite, _) => true,
            };
            if sim.client_saw(ClientEvent::Final(final_status)) && acked {
                completed += 1;
            }
            if sim.count(Side::Client, Msg::Request) > 1 {
                retransmitted += 1;
            }
        }
        // The loss was real: many runs needed retransmissions to finish.
        assert!(
            retransmitted >= 10,
            "{kind:?}: only {retransmitted} runs lost anything"
        );
        assert!(
            completed >= 95,
            "{kind:?} {final_status}: only {completed}/100 seeds completed"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_ladder() {
    let scenario = Scenario::new(TransactionKind::Invite)
        .respond(ms(0), 100)
        .respond(ms(700), 603)
        .drop_to_server(Loss::Seeded(0.3))
        .drop_to_client(Loss::Seeded(0.3))
        .seed(7);
    let a = Sim::run(scenario.clone());
    let b = Sim::run(scenario);
    assert_eq!(a.sent, b.sent);
    assert_eq!(a.client_events, b.client_events);
    assert_eq!(a.server_events, b.server_events);
}

#[test]
fn reliable_invite_failure_sends_each_message_once_and_ends_without_waiting() {
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .reliable()
            .respond(ms(10_000), 486),
    );
    assert_eq!(
        sim.sent
            .iter()
            .map(|s| (s.at, s.from, s.msg))
            .collect::<Vec<_>>(),
        vec![
            (ms(0), Side::Client, Msg::Request),
            (ms(10_010), Side::Server, Msg::Response(486)),
            (ms(10_020), Side::Client, Msg::Ack),
        ]
    );
    // Timer D and Timer I are zero on reliable transports.
    assert_eq!(
        sim.client_events,
        vec![
            (ms(10_020), ClientEvent::Final(486)),
            (ms(10_020), ClientEvent::Terminated)
        ]
    );
    assert_eq!(
        sim.server_events,
        vec![
            (ms(10_030), ServerEvent::AckReceived),
            (ms(10_030), ServerEvent::Terminated)
        ]
    );
    sim.assert_all_terminated();
}

#[test]
fn reliable_non_invite_sends_each_message_once_and_ends_without_waiting() {
    let sim = Sim::run(
        Scenario::new(TransactionKind::NonInvite)
            .reliable()
            .respond(ms(10_000), 200),
    );
    assert_eq!(sim.count(Side::Client, Msg::Request), 1);
    assert_eq!(sim.count(Side::Server, Msg::Response(200)), 1);
    // Timer K and Timer J are zero on reliable transports.
    assert_eq!(
        sim.client_events.last(),
        Some(&(ms(10_020), ClientEvent::Terminated))
    );
    assert_eq!(
        sim.server_events,
        vec![(ms(10_010), ServerEvent::Terminated)]
    );
    sim.assert_all_terminated();
}

#[test]
fn reliable_invite_to_a_dead_peer_is_sent_once_and_times_out_at_64_t1() {
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .reliable()
            .drop_to_server(Loss::All),
    );
    assert_eq!(sim.times(Side::Client, Msg::Request), mss(&[0]));
    assert_eq!(
        sim.client_events,
        vec![
            (ms(32_000), ClientEvent::TimedOut),
            (ms(32_000), ClientEvent::Terminated)
        ]
    );
    sim.assert_all_terminated();
}

#[test]
fn reliable_invite_answered_with_2xx_is_neither_retransmitted_nor_reanswered() {
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .reliable()
            .respond(ms(0), 100)
            .respond(ms(8_000), 200),
    );
    assert_eq!(sim.count(Side::Client, Msg::Request), 1);
    assert_eq!(sim.count(Side::Server, Msg::Response(100)), 1);
    assert_eq!(sim.count(Side::Server, Msg::Response(200)), 1);
    assert_eq!(sim.count(Side::Client, Msg::Ack2xx), 1);
    assert!(sim.uas.as_ref().unwrap().is_acknowledged());
    // Timers L and M still run on reliable transports (RFC 6026).
    assert_eq!(
        sim.client_events.last(),
        Some(&(ms(40_020), ClientEvent::Terminated))
    );
    assert_eq!(
        sim.server_events,
        vec![(ms(40_010), ServerEvent::Terminated)]
    );
    sim.assert_all_terminated();
}

#[test]
fn under_seventy_percent_loss_failed_transactions_still_terminate_without_leaked_timers() {
    let mut timed_out = 0;
    for kind in [TransactionKind::Invite, TransactionKind::NonInvite] {
        for seed in 0..100 {
            let sim = Sim::run(
                Scenario::new(kind)
                    .respond(ms(0), 100)
                    .respond(
                        ms(1_000),
                        if kind == TransactionKind::Invite {
                            480
                        } else {
                            200
                        },
                    )
                    .drop_to_server(Loss::Seeded(0.7))
                    .drop_to_client(Loss::Seeded(0.7))
                    .cancel_after(ms(40_000))
                    .seed(seed),
            );
            sim.assert_all_terminated();
            assert_eq!(sim.strays, 0, "seed {seed}: a request outlived its server");
            if sim.client_saw(ClientEvent::TimedOut) {
                timed_out += 1;
            }
        }
    }
    assert!(timed_out > 0, "70% loss should defeat some transactions");
}

#[test]
fn a_cancelled_invite_whose_final_response_is_lost_is_destroyed_64_t1_after_the_cancel() {
    // The 180 gets through; the 487 that the CANCEL provokes never does.
    let sim = Sim::run(
        Scenario::new(TransactionKind::Invite)
            .respond(ms(0), 180)
            .respond(ms(40_000), 487)
            .drop_to_client(Loss::AllAfter(1))
            .cancel_after(ms(30_000)),
    );
    assert!(sim.cancelled);
    assert_eq!(
        sim.client_events,
        vec![
            (ms(20), ClientEvent::Provisional(180)),
            (ms(62_000), ClientEvent::TimedOut),
            (ms(62_000), ClientEvent::Terminated)
        ]
    );
    assert_eq!(
        sim.server_events,
        vec![
            (ms(72_010), ServerEvent::TimedOut),
            (ms(72_010), ServerEvent::Terminated)
        ]
    );
    sim.assert_all_terminated();
}
