//! `carillon-queue`: the ACD queue engine (issue 15), sans-IO.
//!
//! Owns the queues of `queues.toml` ([`QueuesConfig`]), their members
//! (static from the file, dynamic by login), every waiting caller, every
//! offer of a caller to an agent, agent states (logged out, available,
//! ringing, in call, wrap-up, paused with reason and since, unavailable,
//! busy), the strategies, penalties, skills and penalty-widening rules,
//! announcements, `QUEUESTATUS`, statistics, and app_queue's queue log
//! records. It does not know SIP, channels, media or the database: it
//! takes `(now, input)` and returns [`Action`]s, never reads the clock,
//! sleeps or seeds an RNG from the OS (the seed is an argument).
//!
//! # Wiring it into the switch (not done yet)
//!
//! The switch owns one [`Engine`] beside its calls and, after every input
//! it gives the engine, drains [`Engine::poll_action`] and re-arms one
//! timer at [`Engine::poll_timeout`] (calling [`Engine::handle_timeout`]
//! when it fires; an early call does nothing harmful).
//!
//! | switch sees | engine input |
//! |---|---|
//! | the dialplan runs `Queue(q)` on a channel | [`Engine::handle_join`] (a [`CallerId`] per run; the channel's uniqueid and number, priority, skills, timeout from the application) |
//! | the caller hangs up (BYE/CANCEL) | [`Engine::handle_caller_hangup`] |
//! | DTMF from a waiting caller | [`Engine::handle_digit`] |
//! | 200 OK on an offer's leg | [`Engine::handle_answered`] (the leg's uniqueid for CONNECT) |
//! | 486/603, 408/480/5xx, or a transport error on an offer's leg | [`Engine::handle_offer_failed`] |
//! | BYE from the agent of a bridged queue call | [`Engine::handle_agent_hangup`] |
//! | the bridged call is transferred (REFER) | [`Engine::handle_transferred`] |
//! | `AddQueueMember` / `RemoveQueueMember` / login feature codes | [`Engine::handle_add_member`] / [`Engine::handle_remove_member`] |
//! | `PauseQueueMember` / `UnpauseQueueMember` | [`Engine::handle_pause`] / [`Engine::handle_unpause`] |
//! | an agent's first binding registered / its last one gone | [`Engine::handle_registration`] |
//! | an agent's phone in / out of a non-queue call | [`Engine::handle_device_busy`] |
//! | start-up: rows of the members table | [`Engine::restore_member`] |
//!
//! | action | the switch does |
//! |---|---|
//! | [`Action::Hold`] | music on hold (class) on the caller's channel |
//! | [`Action::Offer`] | a new outbound leg to the interface's bindings, remembered as that [`OfferId`] |
//! | [`Action::Withdraw`] | CANCEL that leg (the engine has freed the agent already) |
//! | [`Action::Bridge`] | stop the hold music, bridge the caller with that leg |
//! | [`Action::RejectLateAnswer`] | ACK and BYE that leg: its caller went to someone else |
//! | [`Action::Announce`] | play the position / hold time or periodic prompt over the hold music |
//! | [`Action::Exit`] | the `Queue` application ends with `QUEUESTATUS` |
//! | [`Action::ExitTo`] | the caller's dialplan continues at that context/extension |
//! | [`Action::AgentChanged`] | a switch event (API, AMI, wallboard) |
//! | [`Action::Log`] | a `queue_log` row (stamped with wall time) |
//! | [`Action::Persist`] | an upsert/delete in `queue_members` |
//!
//! The engine is the one owner of the state that goes wrong under load
//! in other switches: it alone decides who rings and who is bridged, the
//! switch only reports what happened. An answer to an offer that is no
//! longer live (another agent won, the caller left, the offer timed out)
//! never bridges: it gets [`Action::RejectLateAnswer`].
//!
//! # Semantics, and where they differ from app_queue
//!
//! - Offer order: app_queue's metrics (penalty tier first, except
//!   `wrandom`). A caller tries members it has not tried this round; the
//!   round ends when no untried member can be rung now, then the caller
//!   waits `retry` (app_queue's ring_one / retry loop). Several callers
//!   ring at once when several members are free (app_queue's autofill),
//!   but a member is reserved by one offer at a time, even with ringall;
//!   a caller no free member suits (skills, penalty) does not hold up the
//!   callers behind it.
//! - Queues sharing a member are served in file order when it frees.
//! - Pause is per agent, across all its queues (one PAUSE record per
//!   queue), like mod_callcenter; app_queue can pause per queue.
//! - `rrmemory` and `rrordered` rank the same here: members are kept in
//!   file order (then login order), while app_queue's rrmemory walks its
//!   hash container's order.
//! - `ringinuse` only concerns calls the switch reports outside the
//!   engine ([`Engine::handle_device_busy`]): a member ringing or in a
//!   queue call is never offered, whatever the setting.
//! - A withdrawn offer frees its agent at once; the switch CANCELs the
//!   leg, and a 200 that crosses the CANCEL gets
//!   [`Action::RejectLateAnswer`].
//! - Skills: a caller needs every skill of the queue's `require` and of
//!   its join at the given minimum level; rules lower those levels
//!   (app_queue has no skills; this is mod_callcenter's tiers' role).
//! - `QUEUESTATUS=CONTINUE` is returned when the agent hangs up a bridged
//!   call (the dialplan decides what follows); a caller who hangs up has
//!   no dialplan to return to, a transferred one continues where the
//!   transfer took it.
//!
//! Modules: [`config`] (`queues.toml`), [`engine`] (the state owner),
//! [`log`] (queue log records).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod engine;
pub mod log;

pub use config::{
    Adjust, EmptyRule, ExitDigit, PenaltyRule, QueueConfig, QueuesConfig, StaticMember, Strategy,
};
pub use engine::{
    Action, AgentStats, AgentStatus, Announcement, CallerId, Engine, Join, MemberChange,
    MemberView, OfferFailure, OfferId, PersistedMember, QueueError, QueueStats, QueueStatus,
};
pub use log::{QueueEvent, QueueLogEntry};
