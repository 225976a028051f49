//! The queue engine: the one owner of queue, caller, offer and agent state.
//!
//! Owns every waiting caller, every live offer (an agent's phone ringing
//! for a caller), every agent's activity and pause, and the timers of all
//! of them. It does not own channels, SIP legs or media (the switch does:
//! it carries out [`Action`]s and reports what happened through the
//! `handle_*` inputs), nor wall time (a [`QueueLogEntry`] carries the
//! `Instant` it was made at), nor the database (it emits
//! [`Action::Persist`] and [`Action::Log`]).
//!
//! Agent activity (per agent, across all its queues):
//!
//! ```text
//!            offer                answered
//!   Idle ───────────► Ringing ───────────────► InCall
//!    ▲  ◄──────────────  │  no answer, declined,   │ caller/agent hangs up,
//!    │   withdrawn       │  busy, caller left      │ transfer
//!    │                                             ▼
//!    └──────────────── wrap-up expiry ───────── WrapUp
//! ```
//!
//! Caller: `Waiting` (in its queue's ordered list, with its live offers,
//! the members tried this round and an optional retry pause) → either
//! `Connected` (bridged to exactly one agent) or gone (every exit logs one
//! record: ABANDON, EXITWITHTIMEOUT, EXITWITHKEY, EXITEMPTY; a connected
//! caller ends with COMPLETECALLER, COMPLETEAGENT or TRANSFER).
//!
//! The guarantees the property test checks after every step: an agent has
//! at most one live offer and is never ringing and in a call at once; a
//! caller is bridged at most once, and the moment one offer is answered
//! every other offer of that caller is withdrawn, so a later answer to
//! any of them gets [`Action::RejectLateAnswer`] (the switch ACKs and BYEs
//! that leg); no offer, wrap-up, retry or caller timeout outlives its
//! deadline once `handle_timeout` ran at or after it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::{EmptyRule, QueueConfig, QueuesConfig, Strategy};
use crate::log::{QueueEvent, QueueLogEntry};

/// The switch's handle of a waiting caller (one per `Queue` application
/// run; the switch maps it to the caller's channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerId(pub u64);

/// One offer of one caller to one agent: the switch maps it to the
/// outbound leg it creates for [`Action::Offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfferId(pub u64);

/// How `Queue` returns to the dialplan (`QUEUESTATUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    Timeout,
    Full,
    JoinEmpty,
    LeaveEmpty,
    JoinUnavail,
    LeaveUnavail,
    /// The caller was bridged and the agent hung up: the dialplan goes on.
    Continue,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Timeout => "TIMEOUT",
            QueueStatus::Full => "FULL",
            QueueStatus::JoinEmpty => "JOINEMPTY",
            QueueStatus::LeaveEmpty => "LEAVEEMPTY",
            QueueStatus::JoinUnavail => "JOINUNAVAIL",
            QueueStatus::LeaveUnavail => "LEAVEUNAVAIL",
            QueueStatus::Continue => "CONTINUE",
        }
    }
}

/// What an agent is doing, as shown to supervisors (each state visible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStatus {
    /// A member of no queue and in no queue call.
    LoggedOut,
    Available,
    Ringing {
        caller: CallerId,
        since: Instant,
    },
    InCall {
        caller: CallerId,
        since: Instant,
    },
    WrapUp {
        until: Instant,
    },
    Paused {
        reason: String,
        since: Instant,
    },
    /// Not registered.
    Unavailable,
    /// In a call the switch reports outside the queues.
    Busy,
}

/// Why an offer ended without an answer (reported by the switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFailure {
    /// The agent rejected it (486, 603).
    Declined,
    /// Busy elsewhere (486 from a phone in another call).
    Busy,
    /// Not reachable (408, 480, 503, transport error).
    Unreachable,
}

/// An announcement for a waiting caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// "You are caller number N; the estimated hold time is …".
    Position {
        position: usize,
        estimated_hold: Option<Duration>,
    },
    /// One of the queue's periodic prompts.
    Periodic { prompt: String },
}

/// A member row to persist (dynamic members, and any member's pause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedMember {
    pub queue: String,
    pub interface: String,
    pub name: Option<String>,
    pub penalty: u32,
    pub skills: BTreeMap<String, u32>,
    /// Logged in at run time (false: from `queues.toml`, kept for its
    /// pause state only).
    pub dynamic: bool,
    /// Pause reason when paused.
    pub paused: Option<String>,
}

/// A change for the members table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Upsert(PersistedMember),
    Remove { queue: String, interface: String },
}

/// What the switch must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The caller joined: music on hold (the queue's class) until bridged.
    Hold {
        caller: CallerId,
        moh_class: Option<String>,
    },
    /// Ring the agent for the caller (a new outbound leg).
    Offer {
        offer: OfferId,
        caller: CallerId,
        queue: String,
        interface: String,
    },
    /// Stop ringing (CANCEL that leg); its agent is free again.
    Withdraw {
        offer: OfferId,
        caller: CallerId,
        interface: String,
    },
    /// The offer was answered: bridge the caller with that leg.
    Bridge {
        offer: OfferId,
        caller: CallerId,
        interface: String,
    },
    /// An answer to an offer that was already withdrawn: ACK and BYE it.
    RejectLateAnswer {
        offer: OfferId,
    },
    Announce {
        caller: CallerId,
        announcement: Announcement,
    },
    /// The caller leaves the queue; `Queue` returns with this status.
    Exit {
        caller: CallerId,
        status: QueueStatus,
    },
    /// The caller pressed an exit digit: continue at this extension.
    ExitTo {
        caller: CallerId,
        context: String,
        extension: String,
    },
    /// An agent's visible state changed.
    AgentChanged {
        interface: String,
        status: AgentStatus,
    },
    Log(QueueLogEntry),
    Persist(MemberChange),
}

/// What a caller brings to `Queue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Join {
    pub id: Option<CallerId>,
    /// The caller's channel unique id (queue log `callid`).
    pub uniqueid: String,
    /// The caller's number (ENTERQUEUE's callerid).
    pub caller_id: String,
    /// Higher waits ahead of lower.
    pub priority: i32,
    /// 1-based place to join at (among callers of its priority or lower).
    pub position: Option<usize>,
    /// Skills needed beyond the queue's `require`.
    pub skills: BTreeMap<String, u32>,
    pub min_penalty: Option<u32>,
    pub max_penalty: Option<u32>,
    /// Overrides the queue's `caller_timeout`.
    pub timeout: Option<Duration>,
}

/// Errors of a call the switch made wrongly (never of caller behaviour).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("no queue named '{0}'")]
    UnknownQueue(String),
    #[error("caller {0:?} is already in a queue")]
    DuplicateCaller(CallerId),
    #[error("caller {0:?} is not in a queue")]
    UnknownCaller(CallerId),
    #[error("offer {0:?} was never made")]
    UnknownOffer(OfferId),
    #[error("caller {0:?} is not in a call with a queue member")]
    NotConnected(CallerId),
    #[error("{interface} is already a member of queue '{queue}'")]
    AlreadyMember { queue: String, interface: String },
    #[error("{interface} is not a member of queue '{queue}'")]
    NotMember { queue: String, interface: String },
    #[error("{interface} is a static member of queue '{queue}' (queues.toml); it cannot log out")]
    StaticMember { queue: String, interface: String },
    #[error("no agent {0}")]
    UnknownAgent(String),
    #[error("caller id must be given")]
    NoCallerId,
}

/// Per-queue figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub waiting: usize,
    pub longest_wait: Duration,
    pub answered: u64,
    pub abandoned: u64,
    /// Callers who left by timeout, exit digit or empty queue.
    pub exited: u64,
    pub answered_within_service_level: u64,
    /// app_queue's running hold time average (3/4 old + 1/4 new).
    pub average_hold: Duration,
}

impl QueueStats {
    /// Answered within the service level, of answered and abandoned
    /// (app_queue's `servicelevelperf`); `None` before any call ended.
    pub fn service_level_percent(&self) -> Option<f64> {
        let total = self.answered + self.abandoned;
        #[allow(clippy::cast_precision_loss)]
        (total > 0).then(|| 100.0 * self.answered_within_service_level as f64 / total as f64)
    }
}

/// Per-agent figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub calls_taken: u64,
    pub last_call: Option<Instant>,
}

/// One member of one queue, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub interface: String,
    pub name: Option<String>,
    pub penalty: u32,
    pub dynamic: bool,
    pub calls: u64,
    pub last_call: Option<Instant>,
    pub status: AgentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Activity {
    Idle,
    Ringing { offer: OfferId, since: Instant },
    InCall { caller: CallerId, since: Instant },
    WrapUp { until: Instant },
}

#[derive(Debug)]
struct Agent {
    interface: String,
    registered: bool,
    busy_elsewhere: bool,
    pause: Option<(String, Instant)>,
    activity: Activity,
    memberships: u32,
    unanswered_in_row: u32,
    stats: AgentStats,
}

impl Agent {
    /// Could take an offer now (membership checked by the caller).
    fn is_free(&self, ringinuse: bool) -> bool {
        self.activity == Activity::Idle
            && self.pause.is_none()
            && self.registered
            && (ringinuse || !self.busy_elsewhere)
    }
}

#[derive(Debug)]
struct Member {
    agent: usize,
    name: Option<String>,
    penalty: u32,
    skills: BTreeMap<String, u32>,
    dynamic: bool,
    calls: u64,
    last_call: Option<Instant>,
}

#[derive(Debug)]
struct Queue {
    cfg: QueueConfig,
    members: Vec<Member>,
    /// Waiting callers in order (priority, then arrival or position).
    waiting: Vec<CallerId>,
    rr_next: usize,
    stats: QueueStats,
}

#[derive(Debug)]
struct Waiting {
    offers: Vec<OfferId>,
    /// Agents offered this round without an answer.
    tried: Vec<usize>,
    retry_until: Option<Instant>,
}

#[derive(Debug)]
enum CallerState {
    Waiting(Waiting),
    Connected {
        agent: usize,
        answered: Instant,
        hold: Duration,
    },
}

#[derive(Debug)]
struct Caller {
    queue: usize,
    uniqueid: String,
    priority: i32,
    joined: Instant,
    orig_position: usize,
    min_penalty: u32,
    max_penalty: Option<u32>,
    /// Required skills as joined, and as widened by the rules so far.
    base_needs: Vec<(String, u32)>,
    needs: Vec<(String, u32)>,
    rules_applied: usize,
    deadline: Option<Instant>,
    next_announce: Option<Instant>,
    next_periodic: Option<Instant>,
    periodic_index: usize,
    state: CallerState,
}

impl Caller {
    fn accepts(&self, m: &Member) -> bool {
        m.penalty >= self.min_penalty
            && self.max_penalty.is_none_or(|max| m.penalty <= max)
            && self
                .needs
                .iter()
                .all(|(skill, level)| m.skills.get(skill).is_some_and(|l| l >= level))
    }
}

#[derive(Debug)]
struct Offer {
    caller: CallerId,
    agent: usize,
    queue: usize,
    started: Instant,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Offer(OfferId),
    WrapUp(usize),
    CallerTimeout(CallerId),
    Retry(CallerId),
    Announce(CallerId),
    Periodic(CallerId),
    Rule(CallerId),
}

/// The queue engine (see the module doc).
#[derive(Debug)]
pub struct Engine {
    queues: Vec<Queue>,
    queue_index: HashMap<String, usize>,
    agents: Vec<Agent>,
    agent_index: HashMap<String, usize>,
    callers: HashMap<CallerId, Caller>,
    offers: HashMap<OfferId, Offer>,
    next_offer: u64,
    next_caller: u64,
    rng: u64,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    actions: VecDeque<Action>,
    /// Agents touched by the current input, with their status before it.
    dirty: Vec<(usize, AgentStatus)>,
}

/// Status for "is there anyone who could answer" (joinempty/leaveempty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberStatus {
    Normal,
    NoMembers,
    NoReachable,
}

impl Engine {
    /// An engine for the configured queues with their static members
    /// (all unregistered until [`Engine::handle_registration`]). `rng_seed`
    /// drives the random strategies.
    pub fn new(config: &QueuesConfig, rng_seed: u64) -> Engine {
        let mut e = Engine {
            queues: Vec::new(),
            queue_index: HashMap::new(),
            agents: Vec::new(),
            agent_index: HashMap::new(),
            callers: HashMap::new(),
            offers: HashMap::new(),
            next_offer: 1,
            next_caller: 1,
            rng: rng_seed ^ 0x9E37_79B9_7F4A_7C15,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            actions: VecDeque::new(),
            dirty: Vec::new(),
        };
        for cfg in &config.queues {
            let qi = e.queues.len();
            e.queue_index.insert(cfg.name.clone(), qi);
            let mut members = Vec::with_capacity(cfg.members.len());
            for m in &cfg.members {
                let agent = e.agent(&m.interface);
                e.agents[agent].memberships += 1;
                members.push(Member {
                    agent,
                    name: m.name.clone(),
                    penalty: m.penalty,
                    skills: m.skills.clone(),
                    dynamic: false,
                    calls: 0,
                    last_call: None,
                });
            }
            e.queues.push(Queue {
                cfg: cfg.clone(),
                members,
                waiting: Vec::new(),
                rr_next: 0,
                stats: QueueStats::default(),
            });
        }
        e
    }

    // ----- outputs -----

    /// The next action for the switch.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next run (it may find nothing
    /// due: a deadline that was cancelled is dropped only then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    // ----- inputs: callers -----

    /// A caller runs `Queue(queue)`. Refused joins end at once with
    /// [`Action::Exit`] (FULL, JOINEMPTY, JOINUNAVAIL). Returns the
    /// caller's id (the given one, or a new one).
    pub fn handle_join(
        &mut self,
        now: Instant,
        queue: &str,
        join: Join,
    ) -> Result<CallerId, QueueError> {
        let qi = self.queue_idx(queue)?;
        let id = match join.id {
            Some(id) if self.callers.contains_key(&id) => {
                return Err(QueueError::DuplicateCaller(id))
            }
            Some(id) => id,
            None => {
                while self.callers.contains_key(&CallerId(self.next_caller)) {
                    self.next_caller += 1;
                }
                CallerId(self.next_caller)
            }
        };
        self.next_caller = self.next_caller.max(id.0.saturating_add(1));
        let q = &self.queues[qi];
        let mut needs: BTreeMap<String, u32> = q.cfg.require.clone();
        for (k, v) in &join.skills {
            let e = needs.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
        let needs: Vec<(String, u32)> = needs.into_iter().collect();
        let mut caller = Caller {
            queue: qi,
            uniqueid: join.uniqueid,
            priority: join.priority,
            joined: now,
            orig_position: 0,
            min_penalty: join.min_penalty.unwrap_or(0),
            max_penalty: join.max_penalty,
            base_needs: needs.clone(),
            needs,
            rules_applied: 0,
            deadline: join.timeout.or(q.cfg.caller_timeout).map(|t| now + t),
            next_announce: None,
            next_periodic: None,
            periodic_index: 0,
            state: CallerState::Waiting(Waiting {
                offers: Vec::new(),
                tried: Vec::new(),
                retry_until: None,
            }),
        };
        if q.cfg.maxlen > 0 && q.waiting.len() >= q.cfg.maxlen {
            self.actions.push_back(Action::Exit {
                caller: id,
                status: QueueStatus::Full,
            });
            return Ok(id);
        }
        // Rules due at once (after = 0) set the starting range.
        self.apply_rules(qi, &mut caller, now);
        let rule = self.queues[qi].cfg.joinempty;
        match self.member_status(qi, Some(&caller), rule) {
            MemberStatus::Normal => {}
            s => {
                let status = if s == MemberStatus::NoMembers {
                    QueueStatus::JoinEmpty
                } else {
                    QueueStatus::JoinUnavail
                };
                self.actions.push_back(Action::Exit { caller: id, status });
                return Ok(id);
            }
        }
        let q = &mut self.queues[qi];
        // After the last caller of this priority or higher (the list is
        // ordered by priority, so scanning from the back is short).
        let by_priority = q
            .waiting
            .iter()
            .rposition(|w| {
                self.callers
                    .get(w)
                    .is_some_and(|c| c.priority >= join.priority)
            })
            .map_or(0, |i| i + 1);
        let index = match join.position {
            Some(p) if p >= 1 => q
                .waiting
                .iter()
                .enumerate()
                .position(|(i, w)| {
                    i + 1 >= p
                        && self
                            .callers
                            .get(w)
                            .is_some_and(|c| c.priority <= join.priority)
                })
                .map_or(by_priority, |i| i.min(by_priority)),
            _ => by_priority,
        };
        q.waiting.insert(index, id);
        caller.orig_position = index + 1;
        let cfg = &q.cfg;
        self.actions.push_back(Action::Hold {
            caller: id,
            moh_class: cfg.moh_class.clone(),
        });
        self.actions.push_back(Action::Log(QueueLogEntry {
            at: now,
            callid: caller.uniqueid.clone(),
            queue: cfg.name.clone(),
            agent: "NONE".into(),
            event: QueueEvent::EnterQueue {
                url: String::new(),
                caller_id: join.caller_id,
            },
        }));
        let mut timers = Vec::new();
        if let Some(d) = caller.deadline {
            timers.push((d, Timer::CallerTimeout(id)));
        }
        // Position / hold time: first on entry, then every frequency.
        let announce = cfg.announce_frequency.is_some();
        if announce {
            caller.next_announce = Some(now);
        }
        if let Some(f) = cfg.periodic_announce_frequency {
            caller.next_periodic = Some(now + f);
            timers.push((now + f, Timer::Periodic(id)));
        }
        if let Some(r) = cfg.rules.get(caller.rules_applied) {
            timers.push((now + r.after, Timer::Rule(id)));
        }
        self.callers.insert(id, caller);
        for (at, t) in timers {
            self.arm(at, t);
        }
        if announce {
            self.announce_position(now, id);
        }
        self.settle(now);
        Ok(id)
    }

    /// The waiting or bridged caller hung up.
    pub fn handle_caller_hangup(
        &mut self,
        now: Instant,
        caller: CallerId,
    ) -> Result<(), QueueError> {
        let c = self
            .callers
            .get(&caller)
            .ok_or(QueueError::UnknownCaller(caller))?;
        match c.state {
            CallerState::Waiting(_) => {
                let qi = c.queue;
                self.queues[qi].stats.abandoned += 1;
                self.leave(now, caller, |position, orig_position, wait_time| {
                    QueueEvent::Abandon {
                        position,
                        orig_position,
                        wait_time,
                    }
                });
            }
            CallerState::Connected { .. } => {
                self.end_call(now, caller, |hold_time, call_time, orig_position| {
                    QueueEvent::CompleteCaller {
                        hold_time,
                        call_time,
                        orig_position,
                    }
                });
            }
        }
        self.settle(now);
        Ok(())
    }

    /// The agent hung up a bridged call: `Queue` returns CONTINUE.
    pub fn handle_agent_hangup(
        &mut self,
        now: Instant,
        caller: CallerId,
    ) -> Result<(), QueueError> {
        self.connected(caller)?;
        self.end_call(now, caller, |hold_time, call_time, orig_position| {
            QueueEvent::CompleteAgent {
                hold_time,
                call_time,
                orig_position,
            }
        });
        self.actions.push_back(Action::Exit {
            caller,
            status: QueueStatus::Continue,
        });
        self.settle(now);
        Ok(())
    }

    /// The bridged call was transferred away (blind or attended): the
    /// agent is released into wrap-up like after any other call.
    pub fn handle_transferred(
        &mut self,
        now: Instant,
        caller: CallerId,
        extension: &str,
        context: &str,
    ) -> Result<(), QueueError> {
        self.connected(caller)?;
        let (extension, context) = (extension.to_owned(), context.to_owned());
        self.end_call(now, caller, move |hold_time, call_time, orig_position| {
            QueueEvent::Transfer {
                extension,
                context,
                hold_time,
                call_time,
                orig_position,
            }
        });
        self.settle(now);
        Ok(())
    }

    /// A digit from a waiting caller; true when it was an exit digit (the
    /// caller leaves with [`Action::ExitTo`]).
    pub fn handle_digit(
        &mut self,
        now: Instant,
        caller: CallerId,
        digit: char,
    ) -> Result<bool, QueueError> {
        let c = self
            .callers
            .get(&caller)
            .ok_or(QueueError::UnknownCaller(caller))?;
        if !matches!(c.state, CallerState::Waiting(_)) {
            return Ok(false);
        }
        let Some(exit) = self.queues[c.queue]
            .cfg
            .exits
            .iter()
            .find(|e| e.digit == digit)
            .cloned()
        else {
            return Ok(false);
        };
        self.queues[c.queue].stats.exited += 1;
        self.leave(now, caller, |position, orig_position, wait_time| {
            QueueEvent::ExitWithKey {
                key: digit,
                position,
                orig_position,
                wait_time,
            }
        });
        self.actions.push_back(Action::ExitTo {
            caller,
            context: exit.context,
            extension: exit.extension,
        });
        self.settle(now);
        Ok(true)
    }

    // ----- inputs: offers -----

    /// The agent answered the offer. The first answer wins: the caller is
    /// bridged and every other offer of it withdrawn; an answer to an
    /// offer no longer live gets [`Action::RejectLateAnswer`].
    /// `member_uniqueid` is the agent leg's unique id (CONNECT's field).
    pub fn handle_answered(
        &mut self,
        now: Instant,
        offer: OfferId,
        member_uniqueid: &str,
    ) -> Result<(), QueueError> {
        let Some(o) = self.offers.remove(&offer) else {
            if offer.0 == 0 || offer.0 >= self.next_offer {
                return Err(QueueError::UnknownOffer(offer));
            }
            self.actions.push_back(Action::RejectLateAnswer { offer });
            return Ok(());
        };
        let id = o.caller;
        // Withdraw every other offer of this caller first.
        let others = match self.callers.get_mut(&id).map(|c| &mut c.state) {
            Some(CallerState::Waiting(w)) => std::mem::take(&mut w.offers),
            _ => Vec::new(),
        };
        for other in others.into_iter().filter(|x| *x != offer) {
            self.withdraw(other);
        }
        let qi = o.queue;
        let Some(c) = self.callers.get_mut(&id) else {
            return Err(QueueError::UnknownCaller(id));
        };
        let hold = now.saturating_duration_since(c.joined);
        c.state = CallerState::Connected {
            agent: o.agent,
            answered: now,
            hold,
        };
        let callid = c.uniqueid.clone();
        let q = &mut self.queues[qi];
        if let Some(i) = q.waiting.iter().position(|w| *w == id) {
            q.waiting.remove(i);
        }
        q.stats.answered += 1;
        if hold <= q.cfg.service_level {
            q.stats.answered_within_service_level += 1;
        }
        q.stats.average_hold = if q.stats.answered == 1 {
            hold
        } else {
            (q.stats.average_hold * 3 + hold) / 4
        };
        let queue = q.cfg.name.clone();
        self.touch(o.agent);
        let a = &mut self.agents[o.agent];
        a.activity = Activity::InCall {
            caller: id,
            since: now,
        };
        a.unanswered_in_row = 0;
        let interface = a.interface.clone();
        self.actions.push_back(Action::Log(QueueLogEntry {
            at: now,
            callid,
            queue,
            agent: interface.clone(),
            event: QueueEvent::Connect {
                hold_time: hold,
                member_uniqueid: member_uniqueid.to_owned(),
                ring_time: now.saturating_duration_since(o.started),
            },
        }));
        self.actions.push_back(Action::Bridge {
            offer,
            caller: id,
            interface,
        });
        self.settle(now);
        Ok(())
    }

    /// The offer ended without an answer (a withdrawn offer's report is
    /// ignored). RINGNOANSWER; the caller tries the next member, or waits
    /// `retry` once every member was tried.
    pub fn handle_offer_failed(
        &mut self,
        now: Instant,
        offer: OfferId,
        why: OfferFailure,
    ) -> Result<(), QueueError> {
        if offer.0 == 0 || offer.0 >= self.next_offer {
            return Err(QueueError::UnknownOffer(offer));
        }
        // Busy counts as unanswered like the others; whether the phone is
        // in another call is the switch's to report (handle_device_busy),
        // so a busy answer never leaves the agent marked busy for good.
        let _ = why;
        if self.offers.contains_key(&offer) {
            self.unanswered(now, offer, false);
            self.settle(now);
        }
        Ok(())
    }

    // ----- inputs: agents -----

    /// Dynamic login (`AddQueueMember`).
    pub fn handle_add_member(
        &mut self,
        now: Instant,
        queue: &str,
        interface: &str,
        penalty: u32,
        skills: BTreeMap<String, u32>,
    ) -> Result<(), QueueError> {
        let qi = self.queue_idx(queue)?;
        let agent = self.agent(interface);
        if self.queues[qi].members.iter().any(|m| m.agent == agent) {
            return Err(QueueError::AlreadyMember {
                queue: queue.to_owned(),
                interface: interface.to_owned(),
            });
        }
        self.touch(agent);
        self.agents[agent].memberships += 1;
        self.queues[qi].members.push(Member {
            agent,
            name: None,
            penalty,
            skills,
            dynamic: true,
            calls: 0,
            last_call: None,
        });
        self.log_member(now, qi, agent, QueueEvent::AddMember);
        self.persist_member(qi, agent);
        self.settle(now);
        Ok(())
    }

    /// Dynamic logout (`RemoveQueueMember`); a ringing offer from this
    /// queue is withdrawn, a call in progress goes on (with its wrap-up).
    pub fn handle_remove_member(
        &mut self,
        now: Instant,
        queue: &str,
        interface: &str,
    ) -> Result<(), QueueError> {
        let qi = self.queue_idx(queue)?;
        let not_member = || QueueError::NotMember {
            queue: queue.to_owned(),
            interface: interface.to_owned(),
        };
        let agent = *self.agent_index.get(interface).ok_or_else(not_member)?;
        let pos = self.queues[qi]
            .members
            .iter()
            .position(|m| m.agent == agent)
            .ok_or_else(not_member)?;
        if !self.queues[qi].members[pos].dynamic {
            return Err(QueueError::StaticMember {
                queue: queue.to_owned(),
                interface: interface.to_owned(),
            });
        }
        self.touch(agent);
        if let Activity::Ringing { offer, .. } = self.agents[agent].activity {
            if self.offers.get(&offer).is_some_and(|o| o.queue == qi) {
                self.withdraw(offer);
            }
        }
        self.queues[qi].members.remove(pos);
        let q = &mut self.queues[qi];
        if q.rr_next > pos {
            q.rr_next -= 1;
        }
        self.agents[agent].memberships -= 1;
        self.log_member(now, qi, agent, QueueEvent::RemoveMember);
        self.actions
            .push_back(Action::Persist(MemberChange::Remove {
                queue: queue.to_owned(),
                interface: interface.to_owned(),
            }));
        self.settle(now);
        Ok(())
    }

    /// Pauses the agent in all its queues (a ringing offer rings on).
    pub fn handle_pause(
        &mut self,
        now: Instant,
        interface: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        let agent = self.known_agent(interface)?;
        self.pause(now, agent, reason);
        self.settle(now);
        Ok(())
    }

    pub fn handle_unpause(
        &mut self,
        now: Instant,
        interface: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        let agent = self.known_agent(interface)?;
        if self.agents[agent].pause.is_none() {
            return Ok(());
        }
        self.touch(agent);
        self.agents[agent].pause = None;
        self.agents[agent].unanswered_in_row = 0;
        for qi in self.queues_of(agent) {
            self.log_member(
                now,
                qi,
                agent,
                QueueEvent::Unpause {
                    reason: reason.to_owned(),
                },
            );
            self.persist_member(qi, agent);
        }
        self.settle(now);
        Ok(())
    }

    /// The agent's phone registered (`true`) or its last binding went.
    pub fn handle_registration(&mut self, now: Instant, interface: &str, registered: bool) {
        let agent = self.agent(interface);
        self.touch(agent);
        self.agents[agent].registered = registered;
        self.settle(now);
    }

    /// The switch saw the agent's phone start or end a call that is not a
    /// queue call (only `ringinuse = true` queues offer to it meanwhile).
    pub fn handle_device_busy(&mut self, now: Instant, interface: &str, busy: bool) {
        let agent = self.agent(interface);
        self.touch(agent);
        self.agents[agent].busy_elsewhere = busy;
        self.settle(now);
    }

    /// Restores a persisted member at start (no log, no persist): a
    /// dynamic member is added back, a static one gets its pause back.
    /// Unknown queues are skipped (the file changed); returns whether
    /// it was applied.
    pub fn restore_member(&mut self, now: Instant, row: &PersistedMember) -> bool {
        let Some(&qi) = self.queue_index.get(&row.queue) else {
            return false;
        };
        let agent = self.agent(&row.interface);
        let present = self.queues[qi].members.iter().any(|m| m.agent == agent);
        if row.dynamic && !present {
            self.agents[agent].memberships += 1;
            self.queues[qi].members.push(Member {
                agent,
                name: row.name.clone(),
                penalty: row.penalty,
                skills: row.skills.clone(),
                dynamic: true,
                calls: 0,
                last_call: None,
            });
        } else if !present {
            // A static member no longer in the file.
            return false;
        }
        if let Some(reason) = &row.paused {
            self.agents[agent].pause = Some((reason.clone(), now));
        }
        true
    }

    // ----- time -----

    /// Runs every timer due at `now`: offer timeouts, wrap-up ends,
    /// retries, caller timeouts, announcements and penalty rules.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire(now, timer);
        }
        self.settle(now);
    }

    // ----- queries -----

    pub fn agent_status(&self, interface: &str) -> Option<AgentStatus> {
        self.agent_index.get(interface).map(|&a| self.status_of(a))
    }

    pub fn agent_stats(&self, interface: &str) -> Option<AgentStats> {
        self.agent_index
            .get(interface)
            .map(|&a| self.agents[a].stats.clone())
    }

    pub fn queue_stats(&self, queue: &str, now: Instant) -> Option<QueueStats> {
        let q = &self.queues[*self.queue_index.get(queue)?];
        let mut s = q.stats.clone();
        s.waiting = q.waiting.len();
        s.longest_wait = q
            .waiting
            .iter()
            .filter_map(|id| self.callers.get(id))
            .map(|c| now.saturating_duration_since(c.joined))
            .max()
            .unwrap_or_default();
        Some(s)
    }

    pub fn members(&self, queue: &str) -> Option<Vec<MemberView>> {
        let q = &self.queues[*self.queue_index.get(queue)?];
        Some(
            q.members
                .iter()
                .map(|m| MemberView {
                    interface: self.agents[m.agent].interface.clone(),
                    name: m.name.clone(),
                    penalty: m.penalty,
                    dynamic: m.dynamic,
                    calls: m.calls,
                    last_call: m.last_call,
                    status: self.status_of(m.agent),
                })
                .collect(),
        )
    }

    /// The waiting callers of a queue, in order.
    pub fn waiting(&self, queue: &str) -> Option<&[CallerId]> {
        Some(&self.queues[*self.queue_index.get(queue)?].waiting)
    }

    /// 1-based position of a waiting caller.
    pub fn position(&self, caller: CallerId) -> Option<usize> {
        let c = self.callers.get(&caller)?;
        self.queues[c.queue]
            .waiting
            .iter()
            .position(|w| *w == caller)
            .map(|i| i + 1)
    }

    /// The live offers (ringing agents), for checks and the API.
    pub fn live_offers(&self) -> Vec<(OfferId, CallerId, String)> {
        let mut v: Vec<_> = self
            .offers
            .iter()
            .map(|(id, o)| (*id, o.caller, self.agents[o.agent].interface.clone()))
            .collect();
        v.sort();
        v
    }

    /// Whether the caller is still known (waiting or bridged).
    pub fn has_caller(&self, caller: CallerId) -> bool {
        self.callers.contains_key(&caller)
    }

    /// The agent a caller is bridged to.
    pub fn bridged_agent(&self, caller: CallerId) -> Option<&str> {
        match self.callers.get(&caller)?.state {
            CallerState::Connected { agent, .. } => Some(&self.agents[agent].interface),
            CallerState::Waiting(_) => None,
        }
    }

    /// Every deadline of what is still live and time-bound: `(what,
    /// deadline)` of offers, wrap-ups, retries and caller timeouts, for
    /// invariant checks.
    pub fn deadlines(&self) -> Vec<(String, Instant)> {
        let mut v = Vec::new();
        for (id, o) in &self.offers {
            v.push((format!("offer {}", id.0), o.deadline));
        }
        for a in &self.agents {
            if let Activity::WrapUp { until } = a.activity {
                v.push((format!("wrap-up {}", a.interface), until));
            }
        }
        for (id, c) in &self.callers {
            if let CallerState::Waiting(w) = &c.state {
                if let Some(d) = c.deadline {
                    v.push((format!("caller timeout {}", id.0), d));
                }
                if let Some(r) = w.retry_until {
                    v.push((format!("retry {}", id.0), r));
                }
            }
        }
        v
    }

    // ----- internals -----

    fn queue_idx(&self, queue: &str) -> Result<usize, QueueError> {
        self.queue_index
            .get(queue)
            .copied()
            .ok_or_else(|| QueueError::UnknownQueue(queue.to_owned()))
    }

    fn known_agent(&self, interface: &str) -> Result<usize, QueueError> {
        self.agent_index
            .get(interface)
            .copied()
            .ok_or_else(|| QueueError::UnknownAgent(interface.to_owned()))
    }

    fn agent(&mut self, interface: &str) -> usize {
        if let Some(&a) = self.agent_index.get(interface) {
            return a;
        }
        let a = self.agents.len();
        self.agents.push(Agent {
            interface: interface.to_owned(),
            registered: false,
            busy_elsewhere: false,
            pause: None,
            activity: Activity::Idle,
            memberships: 0,
            unanswered_in_row: 0,
            stats: AgentStats::default(),
        });
        self.agent_index.insert(interface.to_owned(), a);
        a
    }

    fn connected(&self, caller: CallerId) -> Result<(), QueueError> {
        match self.callers.get(&caller).map(|c| &c.state) {
            Some(CallerState::Connected { .. }) => Ok(()),
            Some(_) => Err(QueueError::NotConnected(caller)),
            None => Err(QueueError::UnknownCaller(caller)),
        }
    }

    fn status_of(&self, agent: usize) -> AgentStatus {
        let a = &self.agents[agent];
        match a.activity {
            Activity::Ringing { offer, since } => AgentStatus::Ringing {
                caller: self.offers.get(&offer).map_or(CallerId(0), |o| o.caller),
                since,
            },
            Activity::InCall { caller, since } => AgentStatus::InCall { caller, since },
            Activity::WrapUp { until } => AgentStatus::WrapUp { until },
            Activity::Idle if a.memberships == 0 => AgentStatus::LoggedOut,
            Activity::Idle => match &a.pause {
                Some((reason, since)) => AgentStatus::Paused {
                    reason: reason.clone(),
                    since: *since,
                },
                None if !a.registered => AgentStatus::Unavailable,
                None if a.busy_elsewhere => AgentStatus::Busy,
                None => AgentStatus::Available,
            },
        }
    }

    fn queues_of(&self, agent: usize) -> Vec<usize> {
        (0..self.queues.len())
            .filter(|&qi| self.queues[qi].members.iter().any(|m| m.agent == agent))
            .collect()
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, timer)));
    }

    fn touch(&mut self, agent: usize) {
        if !self.dirty.iter().any(|(a, _)| *a == agent) {
            let before = self.status_of(agent);
            self.dirty.push((agent, before));
        }
    }

    fn log_member(&mut self, now: Instant, qi: usize, agent: usize, event: QueueEvent) {
        self.actions.push_back(Action::Log(QueueLogEntry {
            at: now,
            callid: "NONE".into(),
            queue: self.queues[qi].cfg.name.clone(),
            agent: self.agents[agent].interface.clone(),
            event,
        }));
    }

    fn persist_member(&mut self, qi: usize, agent: usize) {
        let q = &self.queues[qi];
        let Some(m) = q.members.iter().find(|m| m.agent == agent) else {
            return;
        };
        let a = &self.agents[agent];
        self.actions
            .push_back(Action::Persist(MemberChange::Upsert(PersistedMember {
                queue: q.cfg.name.clone(),
                interface: a.interface.clone(),
                name: m.name.clone(),
                penalty: m.penalty,
                skills: m.skills.clone(),
                dynamic: m.dynamic,
                paused: a.pause.as_ref().map(|(r, _)| r.clone()),
            })));
    }

    fn pause(&mut self, now: Instant, agent: usize, reason: &str) {
        if self.agents[agent].pause.is_some() {
            return;
        }
        self.touch(agent);
        self.agents[agent].pause = Some((reason.to_owned(), now));
        for qi in self.queues_of(agent) {
            self.log_member(
                now,
                qi,
                agent,
                QueueEvent::Pause {
                    reason: reason.to_owned(),
                },
            );
            self.persist_member(qi, agent);
        }
    }

    /// Withdraws a live offer: the agent is free, the caller keeps
    /// waiting (the caller's offer list is the caller's business).
    fn withdraw(&mut self, offer: OfferId) {
        let Some(o) = self.offers.remove(&offer) else {
            return;
        };
        if let Some(CallerState::Waiting(w)) = self.callers.get_mut(&o.caller).map(|c| &mut c.state)
        {
            w.offers.retain(|x| *x != offer);
        }
        self.touch(o.agent);
        self.agents[o.agent].activity = Activity::Idle;
        self.actions.push_back(Action::Withdraw {
            offer,
            caller: o.caller,
            interface: self.agents[o.agent].interface.clone(),
        });
    }

    /// An offer ended unanswered (failed, or timed out: then withdrawn).
    fn unanswered(&mut self, now: Instant, offer: OfferId, timed_out: bool) {
        let Some(o) = self.offers.get(&offer) else {
            return;
        };
        let (id, agent, qi, started) = (o.caller, o.agent, o.queue, o.started);
        if timed_out {
            self.withdraw(offer);
        } else {
            self.offers.remove(&offer);
            self.touch(agent);
            self.agents[agent].activity = Activity::Idle;
        }
        let callid = self
            .callers
            .get(&id)
            .map(|c| c.uniqueid.clone())
            .unwrap_or_default();
        self.actions.push_back(Action::Log(QueueLogEntry {
            at: now,
            callid,
            queue: self.queues[qi].cfg.name.clone(),
            agent: self.agents[agent].interface.clone(),
            event: QueueEvent::RingNoAnswer {
                ring_time: now.saturating_duration_since(started),
            },
        }));
        self.agents[agent].unanswered_in_row += 1;
        let autopause = self.queues[qi].cfg.autopause;
        if autopause > 0 && self.agents[agent].unanswered_in_row >= autopause {
            self.pause(now, agent, "autopause");
        }
        let mut retry = None;
        if let Some(c) = self.callers.get(&id) {
            if let CallerState::Waiting(w) = &c.state {
                let still_ringing = w.offers.iter().any(|x| *x != offer);
                let q = &self.queues[qi];
                // app_queue's round: it ends when nobody untried can be
                // rung now (busy members do not hold it open).
                let untried = q.members.iter().any(|m| {
                    !w.tried.contains(&m.agent)
                        && m.agent != agent
                        && c.accepts(m)
                        && self.agents[m.agent].is_free(q.cfg.ringinuse)
                });
                if !still_ringing && !untried {
                    retry = Some(now + q.cfg.retry);
                }
            }
        }
        if let Some(CallerState::Waiting(w)) = self.callers.get_mut(&id).map(|c| &mut c.state) {
            w.offers.retain(|x| *x != offer);
            if !w.tried.contains(&agent) {
                w.tried.push(agent);
            }
            if let Some(at) = retry {
                w.tried.clear();
                if at > now {
                    w.retry_until = Some(at);
                    self.arm(at, Timer::Retry(id));
                }
            }
        }
    }

    /// Removes a waiting caller with its exit record (offers withdrawn).
    fn leave(
        &mut self,
        now: Instant,
        id: CallerId,
        event: impl FnOnce(usize, usize, Duration) -> QueueEvent,
    ) {
        let position = self.position(id).unwrap_or(0);
        let Some(c) = self.callers.remove(&id) else {
            return;
        };
        if let CallerState::Waiting(w) = &c.state {
            for o in w.offers.clone() {
                self.withdraw(o);
            }
        }
        let q = &mut self.queues[c.queue];
        q.waiting.retain(|w| *w != id);
        let entry = QueueLogEntry {
            at: now,
            callid: c.uniqueid.clone(),
            queue: q.cfg.name.clone(),
            agent: "NONE".into(),
            event: event(
                position,
                c.orig_position,
                now.saturating_duration_since(c.joined),
            ),
        };
        self.actions.push_back(Action::Log(entry));
    }

    /// Ends a bridged call with its record; the agent goes to wrap-up.
    fn end_call(
        &mut self,
        now: Instant,
        id: CallerId,
        event: impl FnOnce(Duration, Duration, usize) -> QueueEvent,
    ) {
        let Some(c) = self.callers.remove(&id) else {
            return;
        };
        let CallerState::Connected {
            agent,
            answered,
            hold,
        } = c.state
        else {
            return;
        };
        let qi = c.queue;
        let q = &mut self.queues[qi];
        if let Some(m) = q.members.iter_mut().find(|m| m.agent == agent) {
            m.calls += 1;
            m.last_call = Some(now);
        }
        let wrap = q.cfg.wrapuptime;
        let queue = q.cfg.name.clone();
        self.touch(agent);
        let a = &mut self.agents[agent];
        a.stats.calls_taken += 1;
        a.stats.last_call = Some(now);
        let interface = a.interface.clone();
        if wrap.is_zero() {
            a.activity = Activity::Idle;
        } else {
            a.activity = Activity::WrapUp { until: now + wrap };
            self.arm(now + wrap, Timer::WrapUp(agent));
        }
        self.actions.push_back(Action::Log(QueueLogEntry {
            at: now,
            callid: c.uniqueid,
            queue,
            agent: interface,
            event: event(
                hold,
                now.saturating_duration_since(answered),
                c.orig_position,
            ),
        }));
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::Offer(offer) => {
                if self.offers.get(&offer).is_some_and(|o| o.deadline <= now) {
                    self.unanswered(now, offer, true);
                }
            }
            Timer::WrapUp(agent) => {
                if matches!(self.agents[agent].activity, Activity::WrapUp { until } if until <= now)
                {
                    self.touch(agent);
                    self.agents[agent].activity = Activity::Idle;
                }
            }
            Timer::CallerTimeout(id) => {
                let due = self.callers.get(&id).is_some_and(|c| {
                    matches!(c.state, CallerState::Waiting(_))
                        && c.deadline.is_some_and(|d| d <= now)
                });
                if due {
                    let qi = self.callers[&id].queue;
                    self.queues[qi].stats.exited += 1;
                    self.leave(now, id, |position, orig_position, wait_time| {
                        QueueEvent::ExitWithTimeout {
                            position,
                            orig_position,
                            wait_time,
                        }
                    });
                    self.actions.push_back(Action::Exit {
                        caller: id,
                        status: QueueStatus::Timeout,
                    });
                }
            }
            Timer::Retry(id) => {
                if let Some(CallerState::Waiting(w)) =
                    self.callers.get_mut(&id).map(|c| &mut c.state)
                {
                    if w.retry_until.is_some_and(|r| r <= now) {
                        w.retry_until = None;
                        w.tried.clear();
                    }
                }
            }
            Timer::Announce(id) => self.announce_position(now, id),
            Timer::Periodic(id) => self.announce_periodic(now, id),
            Timer::Rule(id) => {
                let Some(mut c) = self.callers.remove(&id) else {
                    return;
                };
                let qi = c.queue;
                if matches!(c.state, CallerState::Waiting(_)) {
                    self.apply_rules(qi, &mut c, now);
                    if let Some(r) = self.queues[qi].cfg.rules.get(c.rules_applied) {
                        let at = c.joined + r.after;
                        self.arm(at.max(now), Timer::Rule(id));
                    }
                }
                self.callers.insert(id, c);
            }
        }
    }

    fn apply_rules(&self, qi: usize, c: &mut Caller, now: Instant) {
        let rules = &self.queues[qi].cfg.rules;
        while let Some(r) = rules.get(c.rules_applied) {
            if c.joined + r.after > now {
                break;
            }
            c.rules_applied += 1;
            if let Some(adj) = r.max_penalty {
                c.max_penalty = c.max_penalty.map(|m| adj.apply(m)).or(match adj {
                    crate::config::Adjust::Set(v) => Some(v),
                    crate::config::Adjust::By(_) => None,
                });
            }
            if let Some(adj) = r.min_penalty {
                c.min_penalty = adj.apply(c.min_penalty);
            }
            if let Some(adj) = r.skill_level {
                for ((_, level), (_, base)) in c.needs.iter_mut().zip(&c.base_needs) {
                    *level = match adj {
                        crate::config::Adjust::Set(v) => v.min(*base),
                        crate::config::Adjust::By(_) => adj.apply(*level),
                    };
                }
            }
        }
    }

    fn announce_position(&mut self, now: Instant, id: CallerId) {
        let Some(c) = self.callers.get(&id) else {
            return;
        };
        let CallerState::Waiting(w) = &c.state else {
            return;
        };
        if c.next_announce.is_none_or(|n| n > now) {
            return;
        }
        let q = &self.queues[c.queue];
        let Some(freq) = q.cfg.announce_frequency else {
            return;
        };
        let ringing = !w.offers.is_empty();
        let position = self.position(id).unwrap_or(0);
        let estimated_hold = (q.cfg.announce_holdtime && !q.stats.average_hold.is_zero())
            .then_some(q.stats.average_hold);
        let show_position = q.cfg.announce_position;
        if let Some(c) = self.callers.get_mut(&id) {
            c.next_announce = Some(now + freq);
        }
        self.arm(now + freq, Timer::Announce(id));
        if ringing || (!show_position && estimated_hold.is_none()) {
            return;
        }
        self.actions.push_back(Action::Announce {
            caller: id,
            announcement: Announcement::Position {
                position,
                estimated_hold,
            },
        });
    }

    fn announce_periodic(&mut self, now: Instant, id: CallerId) {
        let Some(c) = self.callers.get_mut(&id) else {
            return;
        };
        let CallerState::Waiting(w) = &c.state else {
            return;
        };
        if c.next_periodic.is_none_or(|n| n > now) {
            return;
        }
        let cfg = &self.queues[c.queue].cfg;
        let Some(freq) = cfg.periodic_announce_frequency else {
            return;
        };
        let ringing = !w.offers.is_empty();
        c.next_periodic = Some(now + freq);
        let prompt = cfg
            .periodic_announce
            .get(c.periodic_index % cfg.periodic_announce.len().max(1))
            .cloned();
        if !ringing {
            c.periodic_index += 1;
        }
        self.arm(now + freq, Timer::Periodic(id));
        if let (false, Some(prompt)) = (ringing, prompt) {
            self.actions.push_back(Action::Announce {
                caller: id,
                announcement: Announcement::Periodic { prompt },
            });
        }
    }

    /// app_queue's get_member_status for joinempty/leaveempty.
    fn member_status(&self, qi: usize, caller: Option<&Caller>, rule: EmptyRule) -> MemberStatus {
        if !rule.is_active() {
            return MemberStatus::Normal;
        }
        let q = &self.queues[qi];
        if q.members.is_empty() {
            return MemberStatus::NoMembers;
        }
        for m in &q.members {
            let a = &self.agents[m.agent];
            if rule.penalty && caller.is_some_and(|c| !c.accepts(m)) {
                continue;
            }
            if rule.paused && a.pause.is_some() {
                continue;
            }
            if (rule.unavailable || rule.invalid) && !a.registered {
                continue;
            }
            if rule.inuse && (matches!(a.activity, Activity::InCall { .. }) || a.busy_elsewhere) {
                continue;
            }
            if rule.ringing && matches!(a.activity, Activity::Ringing { .. }) {
                continue;
            }
            if rule.wrapup && matches!(a.activity, Activity::WrapUp { .. }) {
                continue;
            }
            return MemberStatus::Normal;
        }
        MemberStatus::NoReachable
    }

    /// After every input: offers for free agents, leaveempty, and the
    /// agents' visible changes.
    fn settle(&mut self, now: Instant) {
        self.dispatch(now);
        self.leave_empty(now);
        for (agent, before) in std::mem::take(&mut self.dirty) {
            let after = self.status_of(agent);
            if after != before {
                self.actions.push_back(Action::AgentChanged {
                    interface: self.agents[agent].interface.clone(),
                    status: after,
                });
            }
        }
    }

    fn leave_empty(&mut self, now: Instant) {
        for qi in 0..self.queues.len() {
            let rule = self.queues[qi].cfg.leaveempty;
            if !rule.is_active() || self.queues[qi].waiting.is_empty() {
                continue;
            }
            let mut leaving = Vec::new();
            for id in &self.queues[qi].waiting {
                let Some(c) = self.callers.get(id) else {
                    continue;
                };
                if matches!(&c.state, CallerState::Waiting(w) if !w.offers.is_empty()) {
                    continue;
                }
                match self.member_status(qi, Some(c), rule) {
                    MemberStatus::Normal => {}
                    MemberStatus::NoMembers => leaving.push((*id, QueueStatus::LeaveEmpty)),
                    MemberStatus::NoReachable => leaving.push((*id, QueueStatus::LeaveUnavail)),
                }
            }
            for (id, status) in leaving {
                self.queues[qi].stats.exited += 1;
                self.leave(now, id, |position, orig_position, wait_time| {
                    QueueEvent::ExitEmpty {
                        position,
                        orig_position,
                        wait_time,
                    }
                });
                self.actions.push_back(Action::Exit { caller: id, status });
            }
        }
    }

    /// Offers free members to waiting callers, queue by queue, callers in
    /// order; a caller that no free member suits does not hold up the
    /// ones behind it.
    fn dispatch(&mut self, now: Instant) {
        for qi in 0..self.queues.len() {
            if self.queues[qi].waiting.is_empty() {
                continue;
            }
            let ringinuse = self.queues[qi].cfg.ringinuse;
            let mut free = self.queues[qi]
                .members
                .iter()
                .filter(|m| self.agents[m.agent].is_free(ringinuse))
                .count();
            let mut i = 0;
            while free > 0 && i < self.queues[qi].waiting.len() {
                let id = self.queues[qi].waiting[i];
                i += 1;
                let Some(c) = self.callers.get(&id) else {
                    continue;
                };
                let CallerState::Waiting(w) = &c.state else {
                    continue;
                };
                if !w.offers.is_empty() || w.retry_until.is_some() {
                    continue;
                }
                let picks = self.select(qi, id);
                for (pos, agent) in picks {
                    if matches!(
                        self.queues[qi].cfg.strategy,
                        Strategy::RrMemory | Strategy::RrOrdered
                    ) {
                        let n = self.queues[qi].members.len().max(1);
                        self.queues[qi].rr_next = (pos + 1) % n;
                    }
                    self.offer(now, qi, id, agent);
                    free = free.saturating_sub(1);
                }
            }
        }
    }

    /// The member(s) to offer the caller to now: `(member position,
    /// agent)`; several only for ringall.
    pub(crate) fn select(&mut self, qi: usize, id: CallerId) -> Vec<(usize, usize)> {
        let strategy = self.queues[qi].cfg.strategy;
        let ringinuse = self.queues[qi].cfg.ringinuse;
        let rr_next = self.queues[qi].rr_next;
        let mut rng = self.rng;
        let mut best: Option<(SelectKey, usize)> = None;
        let mut all: Vec<(u64, usize, usize)> = Vec::new();
        {
            let Some(c) = self.callers.get(&id) else {
                return Vec::new();
            };
            let CallerState::Waiting(w) = &c.state else {
                return Vec::new();
            };
            let q = &self.queues[qi];
            for (pos, m) in q.members.iter().enumerate() {
                let a = &self.agents[m.agent];
                if !a.is_free(ringinuse) || w.tried.contains(&m.agent) || !c.accepts(m) {
                    continue;
                }
                let tier = u64::from(m.penalty);
                let key = match strategy {
                    Strategy::RingAll => {
                        all.push((tier, pos, m.agent));
                        continue;
                    }
                    Strategy::Linear => (tier, pos as u64, None),
                    Strategy::RrMemory | Strategy::RrOrdered => {
                        // Positions from the remembered one first, then
                        // the ones before it (app_queue's 1000 + pos).
                        let p = pos as u64;
                        let second = if pos < rr_next { 1 << 32 | p } else { p };
                        (tier, second, None)
                    }
                    // Never called (None) first, then the oldest last call.
                    Strategy::LeastRecent => (tier, 0, m.last_call),
                    Strategy::FewestCalls => (tier, m.calls, None),
                    Strategy::Random => (tier, next_random(&mut rng) % 1000, None),
                    Strategy::WeightedRandom => {
                        (0, next_random(&mut rng) % ((tier + 1) * 1000), None)
                    }
                };
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, pos));
                }
            }
        }
        self.rng = rng;
        if strategy == Strategy::RingAll {
            let Some(min) = all.iter().map(|(t, _, _)| *t).min() else {
                return Vec::new();
            };
            return all
                .into_iter()
                .filter(|(t, _, _)| *t == min)
                .map(|(_, p, a)| (p, a))
                .collect();
        }
        best.map(|(_, pos)| vec![(pos, self.queues[qi].members[pos].agent)])
            .unwrap_or_default()
    }

    fn offer(&mut self, now: Instant, qi: usize, id: CallerId, agent: usize) {
        let offer = OfferId(self.next_offer);
        self.next_offer += 1;
        let deadline = now + self.queues[qi].cfg.timeout;
        self.offers.insert(
            offer,
            Offer {
                caller: id,
                agent,
                queue: qi,
                started: now,
                deadline,
            },
        );
        if let Some(CallerState::Waiting(w)) = self.callers.get_mut(&id).map(|c| &mut c.state) {
            w.offers.push(offer);
        }
        self.touch(agent);
        self.agents[agent].activity = Activity::Ringing { offer, since: now };
        self.arm(deadline, Timer::Offer(offer));
        self.actions.push_back(Action::Offer {
            offer,
            caller: id,
            queue: self.queues[qi].cfg.name.clone(),
            interface: self.agents[agent].interface.clone(),
        });
    }
}

/// A member's place in a strategy's order: penalty tier, then the
/// strategy's own key (position, calls, random draw), then the last call
/// (leastrecent: never called first). Lowest wins.
type SelectKey = (u64, u64, Option<Instant>);

fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
