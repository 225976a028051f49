//! Property test: random sequences of what a switch under load reports
//! (callers join and hang up, agents answer — also late —, decline, time
//! out, pause, log in and out, unregister, go busy, transfer, digits,
//! time passing) and, after every step, the guarantees app_queue and
//! mod_callcenter are known to break:
//! - an agent never has two live offers, never rings while in a call,
//!   and is never bridged to two callers;
//! - a caller is bridged at most once; when it is, every other offer of
//!   it is withdrawn in the same step, before the bridge; an answer to an
//!   offer that is no longer live is rejected (ACK + BYE), never bridged;
//! - offers go only to registered, unpaused agents free of queue calls;
//! - nothing time-bound (offer, wrap-up, retry, caller timeout) is still
//!   live at or past its deadline;
//! - no caller is lost: each one that entered is waiting, bridged, or
//!   ended with exactly one final queue log record; and once time runs
//!   on and the bridged calls end, every one has ended and every agent
//!   is free.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use carillon_queue::{
    Action, AgentStatus, CallerId, Engine, Join, OfferFailure, OfferId, QueueEvent, QueuesConfig,
};
use proptest::prelude::*;

const CONFIG: &str = r#"
[queue.one]
strategy = "ringall"
timeout = 4
retry = 2
wrapuptime = 3
autopause = 3
caller_timeout = 40
announce_frequency = 7
exit = [{ digit = "1", context = "callback", extension = "s" }]
[[queue.one.member]]
extension = "201"
[[queue.one.member]]
extension = "202"
penalty = 1
[[queue.one.rule]]
after = 0
max_penalty = 0
[[queue.one.rule]]
after = 6
max_penalty = "+1"

[queue.two]
strategy = "linear"
timeout = 3
retry = 1
wrapuptime = 2
maxlen = 4
caller_timeout = 25
leaveempty = "strict"
[[queue.two.member]]
extension = "202"
[[queue.two.member]]
extension = "203"

[queue.three]
strategy = "rrmemory"
timeout = 5
retry = 0
caller_timeout = 30
ringinuse = true
"#;

const AGENTS: [&str; 4] = ["PJSIP/201", "PJSIP/202", "PJSIP/203", "PJSIP/204"];
const QUEUES: [&str; 3] = ["one", "two", "three"];

#[derive(Debug, Clone)]
enum Op {
    Join { queue: usize, priority: i32 },
    CallerHangup(usize),
    Answer(usize),
    Fail(usize, u8),
    AgentHangup(usize),
    Transfer(usize),
    Digit(usize),
    Pause(usize),
    Unpause(usize),
    Login(usize, usize),
    Logout(usize, usize),
    Register(usize, bool),
    Busy(usize, bool),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..3i32).prop_map(|(queue, priority)| Op::Join { queue, priority }),
        2 => any::<usize>().prop_map(Op::CallerHangup),
        4 => any::<usize>().prop_map(Op::Answer),
        2 => (any::<usize>(), 0..3u8).prop_map(|(i, k)| Op::Fail(i, k)),
        2 => any::<usize>().prop_map(Op::AgentHangup),
        1 => any::<usize>().prop_map(Op::Transfer),
        1 => any::<usize>().prop_map(Op::Digit),
        1 => (0..4usize).prop_map(Op::Pause),
        1 => (0..4usize).prop_map(Op::Unpause),
        1 => (0..4usize, 0..3usize).prop_map(|(a, q)| Op::Login(a, q)),
        1 => (0..4usize, 0..3usize).prop_map(|(a, q)| Op::Logout(a, q)),
        1 => (0..4usize, any::<bool>()).prop_map(|(a, r)| Op::Register(a, r)),
        1 => (0..4usize, any::<bool>()).prop_map(|(a, b)| Op::Busy(a, b)),
        4 => (0..6000u64).prop_map(Op::Advance),
    ]
}

/// What the switch knows from the actions, checked against the engine.
struct Model {
    engine: Engine,
    now: Instant,
    live: HashMap<OfferId, (CallerId, String)>,
    all_offers: Vec<OfferId>,
    bridged: HashMap<CallerId, String>,
    /// Callers that entered (got Hold), by uniqueid.
    entered: Vec<CallerId>,
    finals: HashMap<String, u32>,
    paused: HashSet<String>,
    registered: HashSet<String>,
    next_id: u64,
}

impl Model {
    fn new() -> Model {
        let config = QueuesConfig::load("queues.toml", CONFIG).unwrap();
        Model {
            engine: Engine::new(&config, 42),
            now: Instant::now(),
            live: HashMap::new(),
            all_offers: Vec::new(),
            bridged: HashMap::new(),
            entered: Vec::new(),
            finals: HashMap::new(),
            paused: HashSet::new(),
            registered: HashSet::new(),
            next_id: 1,
        }
    }

    fn pick<T: Copy>(list: &[T], i: usize) -> Option<T> {
        (!list.is_empty()).then(|| list[i % list.len()])
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now;
        let e = &mut self.engine;
        let mut expect_late = None;
        let mut answered_live = None;
        match *op {
            Op::Join { queue, priority } => {
                let id = CallerId(self.next_id);
                self.next_id += 1;
                e.handle_join(
                    now,
                    QUEUES[queue],
                    Join {
                        id: Some(id),
                        uniqueid: format!("c{}", id.0),
                        priority,
                        ..Join::default()
                    },
                )
                .map_err(|x| TestCaseError::fail(x.to_string()))?;
            }
            Op::CallerHangup(i) => {
                if let Some(c) = Self::pick(&self.entered, i) {
                    if e.handle_caller_hangup(now, c).is_ok() {
                        self.bridged.remove(&c);
                    }
                }
            }
            Op::Answer(i) => {
                if let Some(o) = Self::pick(&self.all_offers, i) {
                    if self.live.contains_key(&o) {
                        answered_live = Some(o);
                    } else {
                        expect_late = Some(o);
                    }
                    e.handle_answered(now, o, "leg")
                        .map_err(|x| TestCaseError::fail(x.to_string()))?;
                }
            }
            Op::Fail(i, k) => {
                if let Some(o) = Self::pick(&self.all_offers, i) {
                    let why = [
                        OfferFailure::Declined,
                        OfferFailure::Busy,
                        OfferFailure::Unreachable,
                    ][usize::from(k) % 3];
                    e.handle_offer_failed(now, o, why)
                        .map_err(|x| TestCaseError::fail(x.to_string()))?;
                    self.live.remove(&o);
                }
            }
            Op::AgentHangup(i) => {
                if let Some(c) = Self::pick(&self.entered, i) {
                    if e.handle_agent_hangup(now, c).is_ok() {
                        prop_assert!(self.bridged.remove(&c).is_some());
                    }
                }
            }
            Op::Transfer(i) => {
                if let Some(c) = Self::pick(&self.entered, i) {
                    if e.handle_transferred(now, c, "300", "internal").is_ok() {
                        prop_assert!(self.bridged.remove(&c).is_some());
                    }
                }
            }
            Op::Digit(i) => {
                if let Some(c) = Self::pick(&self.entered, i) {
                    let _ = e.handle_digit(now, c, '1');
                }
            }
            Op::Pause(a) => {
                if e.handle_pause(now, AGENTS[a], "break").is_ok() {
                    self.paused.insert(AGENTS[a].to_owned());
                }
            }
            Op::Unpause(a) => {
                if e.handle_unpause(now, AGENTS[a], "back").is_ok() {
                    self.paused.remove(AGENTS[a]);
                }
            }
            Op::Login(a, q) => {
                let _ = e.handle_add_member(now, QUEUES[q], AGENTS[a], 0, BTreeMap::new());
            }
            Op::Logout(a, q) => {
                let _ = e.handle_remove_member(now, QUEUES[q], AGENTS[a]);
            }
            Op::Register(a, r) => {
                e.handle_registration(now, AGENTS[a], r);
                if r {
                    self.registered.insert(AGENTS[a].to_owned());
                } else {
                    self.registered.remove(AGENTS[a]);
                }
            }
            Op::Busy(a, b) => e.handle_device_busy(now, AGENTS[a], b),
            Op::Advance(ms) => self.advance(Duration::from_millis(ms))?,
        }
        self.absorb(expect_late, answered_live)
    }

    /// Moves time on, running every timer at its own instant.
    fn advance(&mut self, by: Duration) -> Result<(), TestCaseError> {
        let target = self.now + by;
        for _ in 0..100_000 {
            match self.engine.poll_timeout() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    // Checked after every timer batch too.
                    self.absorb(None, None)?;
                }
                _ => break,
            }
        }
        self.now = target;
        self.engine.handle_timeout(self.now);
        Ok(())
    }

    /// Drains the actions, checking each against the model.
    fn absorb(
        &mut self,
        expect_late: Option<OfferId>,
        answered_live: Option<OfferId>,
    ) -> Result<(), TestCaseError> {
        let mut saw_late = false;
        let mut saw_bridge = false;
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Hold { caller, .. } => self.entered.push(caller),
                Action::Offer {
                    offer,
                    caller,
                    interface,
                    ..
                } => {
                    prop_assert!(
                        !self.live.values().any(|(_, i)| *i == interface),
                        "{interface} offered while it rings"
                    );
                    prop_assert!(
                        !self.bridged.values().any(|i| *i == interface),
                        "{interface} offered while in a queue call"
                    );
                    prop_assert!(
                        !self.paused.contains(&interface),
                        "{interface} offered while paused"
                    );
                    prop_assert!(
                        self.registered.contains(&interface),
                        "{interface} offered unregistered"
                    );
                    prop_assert!(
                        !self.bridged.contains_key(&caller),
                        "bridged caller offered again"
                    );
                    self.live.insert(offer, (caller, interface));
                    self.all_offers.push(offer);
                }
                Action::Withdraw { offer, .. } => {
                    prop_assert!(self.live.remove(&offer).is_some(), "withdrew a dead offer");
                }
                Action::Bridge {
                    offer,
                    caller,
                    interface,
                } => {
                    prop_assert_eq!(Some(offer), answered_live, "bridge without its answer");
                    let live = self.live.remove(&offer);
                    prop_assert!(live.is_some(), "bridged a dead offer");
                    prop_assert!(!self.bridged.contains_key(&caller), "caller bridged twice");
                    prop_assert!(
                        !self.bridged.values().any(|i| *i == interface),
                        "{interface} bridged to two callers"
                    );
                    prop_assert!(
                        !self.live.values().any(|(c, _)| *c == caller),
                        "caller still offered elsewhere when bridged"
                    );
                    self.bridged.insert(caller, interface);
                    saw_bridge = true;
                }
                Action::RejectLateAnswer { offer } => {
                    prop_assert_eq!(Some(offer), expect_late);
                    saw_late = true;
                }
                Action::Log(entry) => {
                    if let QueueEvent::Pause { .. } = &entry.event {
                        // Autopause.
                        self.paused.insert(entry.agent.clone());
                    }
                    if entry.event.ends_caller() {
                        *self.finals.entry(entry.callid.clone()).or_default() += 1;
                    }
                }
                Action::Exit { .. }
                | Action::ExitTo { .. }
                | Action::Announce { .. }
                | Action::AgentChanged { .. }
                | Action::Persist(_) => {}
            }
        }
        if expect_late.is_some() {
            prop_assert!(saw_late, "a late answer was not rejected");
        }
        if answered_live.is_some() {
            prop_assert!(saw_bridge, "a live answer did not bridge");
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        // The engine's live offers are the model's.
        let mut model: Vec<_> = self
            .live
            .iter()
            .map(|(o, (c, i))| (*o, *c, i.clone()))
            .collect();
        model.sort();
        prop_assert_eq!(self.engine.live_offers(), model);
        for agent in AGENTS {
            let ringing = self.live.values().filter(|(_, i)| i == agent).count();
            prop_assert!(ringing <= 1, "{agent} has {ringing} offers");
            let calls = self.bridged.values().filter(|i| *i == agent).count();
            prop_assert!(calls <= 1);
            prop_assert!(ringing + calls <= 1, "{agent} rings while in a call");
            match self.engine.agent_status(agent) {
                Some(AgentStatus::Ringing { .. }) => prop_assert_eq!(ringing, 1),
                Some(AgentStatus::InCall { .. }) => prop_assert_eq!(calls, 1),
                Some(AgentStatus::WrapUp { until }) => prop_assert!(until > self.now),
                _ => prop_assert_eq!(ringing + calls, 0, "{} idle with work", agent),
            }
        }
        for (what, deadline) in self.engine.deadlines() {
            prop_assert!(deadline > self.now, "{what} past its deadline");
        }
        for c in &self.entered {
            let finals = self.finals.get(&format!("c{}", c.0)).copied().unwrap_or(0);
            prop_assert!(finals <= 1, "caller {} ended {finals} times", c.0);
            prop_assert_eq!(
                self.engine.has_caller(*c),
                finals == 0,
                "caller {} lost or ended yet kept",
                c.0
            );
            prop_assert_eq!(
                self.engine.bridged_agent(*c),
                self.bridged.get(c).map(String::as_str)
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_keeps_its_guarantees_under_random_load(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        let mut m = Model::new();
        for a in AGENTS {
            m.engine.handle_registration(m.now, a, true);
            m.registered.insert(a.to_owned());
        }
        m.absorb(None, None)?;
        for op in &ops {
            m.apply(op)?;
        }
        // Everything ends: bridged calls hang up, time runs past every
        // caller timeout and wrap-up.
        let bridged: Vec<CallerId> = m.bridged.keys().copied().collect();
        for c in bridged {
            m.apply(&Op::CallerHangup(m.entered.iter().position(|x| *x == c).unwrap()))?;
        }
        m.apply(&Op::Advance(1_000_000))?;
        for c in m.entered.clone() {
            prop_assert!(!m.engine.has_caller(c), "caller {} still queued", c.0);
        }
        prop_assert!(m.engine.live_offers().is_empty());
        for a in AGENTS {
            let s = m.engine.agent_status(a).unwrap();
            prop_assert!(
                !matches!(s, AgentStatus::Ringing { .. } | AgentStatus::InCall { .. } | AgentStatus::WrapUp { .. }),
                "{a} left {s:?}"
            );
        }
    }
}
