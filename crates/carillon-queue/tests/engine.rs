//! The queue engine driven through its inputs with a hand-moved clock:
//! each strategy's order, each QUEUESTATUS, wrap-up, retry, autopause,
//! late answers, announcements, penalty/skill widening, persistence.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use carillon_queue::{
    Action, AgentStatus, Announcement, CallerId, Join, MemberChange, OfferFailure, PersistedMember,
    QueueEvent, QueueStatus,
};
use support::*;

/// A queue `q` with the given settings and members 201.. (penalties).
fn queue(settings: &str, penalties: &[u32]) -> String {
    let mut t = format!("[queue.q]\n{settings}\n");
    for (i, p) in penalties.iter().enumerate() {
        t.push_str(&format!(
            "[[queue.q.member]]\nextension = \"{}\"\npenalty = {p}\n",
            201 + i
        ));
    }
    t
}

const A: &str = "PJSIP/201";
const B: &str = "PJSIP/202";
const C: &str = "PJSIP/203";

fn driver(settings: &str, penalties: &[u32]) -> Driver {
    let mut d = Driver::new(&queue(settings, penalties));
    let all: Vec<String> = (0..penalties.len())
        .map(|i| format!("PJSIP/{}", 201 + i))
        .collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    d.register(&refs);
    d
}

/// Caller `id` is answered by whoever its (single) offer went to, and
/// the call ends at once (caller hangs up).
fn serve(d: &mut Driver, actions: &[Action]) -> String {
    let (offer, caller, interface) = offers(actions)[0].clone();
    d.answer(offer);
    d.engine.handle_caller_hangup(d.now, caller).unwrap();
    d.drain();
    interface
}

// ----- strategies -----

#[test]
fn ringall_rings_every_free_member_of_the_best_penalty_tier_at_once() {
    let mut d = driver("strategy = \"ringall\"", &[1, 0, 0]);
    let got = d.join("q", 1);
    assert_eq!(offered(&got), [B, C]);
}

#[test]
fn linear_offers_in_file_order_and_moves_on_after_no_answer() {
    let mut d = driver("strategy = \"linear\"\ntimeout = 5\nretry = 1", &[0, 0, 0]);
    assert_eq!(offered(&d.join("q", 1)), [A]);
    // A second caller gets the next free one in order.
    assert_eq!(offered(&d.join("q", 2)), [B]);
    // Both offers time out together: each caller goes on in file order
    // with the first member it has not tried (1 → B, 2 → A); C, later in
    // the order, waits.
    let got = d.at(5.0);
    assert_eq!(log_names(&got), ["RINGNOANSWER", "RINGNOANSWER"]);
    let o: Vec<_> = offers(&got).into_iter().map(|(_, c, i)| (c.0, i)).collect();
    assert_eq!(o, [(1, B.to_owned()), (2, A.to_owned())]);
}

#[test]
fn rrmemory_and_rrordered_start_after_the_member_offered_last() {
    for strategy in ["rrmemory", "rrordered"] {
        let mut d = driver(&format!("strategy = \"{strategy}\""), &[0, 0, 0]);
        let mut order = Vec::new();
        for id in 1..=4 {
            let got = d.join("q", id);
            order.push(serve(&mut d, &got));
        }
        assert_eq!(order, [A, B, C, A], "{strategy}");
    }
}

#[test]
fn linear_starts_every_caller_at_the_first_member() {
    let mut d = driver("strategy = \"linear\"", &[0, 0, 0]);
    let mut order = Vec::new();
    for id in 1..=3 {
        let got = d.join("q", id);
        order.push(serve(&mut d, &got));
    }
    assert_eq!(order, [A, A, A]);
}

#[test]
fn leastrecent_offers_the_never_called_then_the_longest_idle() {
    let mut d = driver("strategy = \"leastrecent\"", &[0, 0, 0]);
    // A then B take calls (A first, so A's last call is older).
    let got = d.join("q", 1);
    assert_eq!(serve(&mut d, &got), A);
    d.at(1.0);
    let got = d.join("q", 2);
    assert_eq!(serve(&mut d, &got), B);
    d.at(2.0);
    let got = d.join("q", 3);
    assert_eq!(serve(&mut d, &got), C, "never called goes first");
    d.at(3.0);
    let got = d.join("q", 4);
    assert_eq!(serve(&mut d, &got), A, "then the oldest last call");
}

#[test]
fn fewestcalls_offers_the_member_with_fewest_completed_calls() {
    let mut d = driver("strategy = \"fewestcalls\"", &[0, 0, 0]);
    let mut order = Vec::new();
    for id in 1..=6 {
        let got = d.join("q", id);
        order.push(serve(&mut d, &got));
    }
    // Ties go to file order: A, B, C, then again A, B, C.
    assert_eq!(order, [A, B, C, A, B, C]);
}

#[test]
fn random_reaches_every_member_of_the_best_tier_only_and_repeats_with_the_seed() {
    let run = |seed| {
        let mut d = Driver::seeded(&queue("strategy = \"random\"", &[0, 0, 0, 1]), seed);
        d.register(&[A, B, C, "PJSIP/204"]);
        (1..=60)
            .map(|id| {
                let got = d.join("q", id);
                serve(&mut d, &got)
            })
            .collect::<Vec<_>>()
    };
    let first = run(11);
    assert_eq!(first, run(11), "same seed, same choices");
    for m in [A, B, C] {
        assert!(first.iter().any(|x| x == m), "{m} never chosen: {first:?}");
    }
    assert!(
        !first.iter().any(|x| x == "PJSIP/204"),
        "penalty 1 is a lower tier"
    );
    assert_ne!(first, run(12));
}

#[test]
fn wrandom_weights_by_penalty_instead_of_tiers() {
    let mut d = Driver::seeded(&queue("strategy = \"wrandom\"", &[0, 9]), 3);
    d.register(&[A, B]);
    let mut counts = [0, 0];
    for id in 1..=400 {
        let got = d.join("q", id);
        let who = serve(&mut d, &got);
        counts[usize::from(who == B)] += 1;
    }
    // P(A) = 1 - 1000/20000 = 95 %: B still gets calls, far fewer.
    assert!(counts[1] > 0, "{counts:?}");
    assert!(counts[0] > 5 * counts[1], "{counts:?}");
}

// ----- QUEUESTATUS -----

#[test]
fn queuestatus_timeout_after_the_caller_timeout_with_exitwithtimeout() {
    let mut d = driver("caller_timeout = 10\ntimeout = 4\nretry = 1", &[0]);
    let got = d.join("q", 1);
    assert_eq!(offered(&got), [A]);
    let got = d.at(10.0);
    assert_eq!(exits(&got), [(CallerId(1), QueueStatus::Timeout)]);
    assert_eq!(log_names(&got).last(), Some(&"EXITWITHTIMEOUT"));
    assert!(d.engine.live_offers().is_empty());
    assert!(!d.engine.has_caller(CallerId(1)));
}

#[test]
fn queuestatus_full_when_maxlen_callers_wait() {
    let mut d = driver("maxlen = 1", &[0]);
    d.engine.handle_registration(d.now, A, false);
    d.join("q", 1);
    let got = d.join("q", 2);
    assert_eq!(exits(&got), [(CallerId(2), QueueStatus::Full)]);
    assert!(log_names(&got).is_empty(), "a refused caller never entered");
}

#[test]
fn queuestatus_joinempty_without_members_and_joinunavail_with_none_reachable() {
    let mut d = Driver::new("[queue.q]\njoinempty = \"yes\"\n");
    assert_eq!(
        exits(&d.join("q", 1)),
        [(CallerId(1), QueueStatus::JoinEmpty)]
    );
    let mut d = driver("joinempty = \"strict\"", &[0]);
    d.engine.handle_registration(d.now, A, false);
    assert_eq!(
        exits(&d.join("q", 1)),
        [(CallerId(1), QueueStatus::JoinUnavail)]
    );
    // joinempty = "no" (the default) joins anyway.
    let mut d = Driver::new("[queue.q]\n");
    assert!(exits(&d.join("q", 1)).is_empty());
}

#[test]
fn queuestatus_leaveempty_when_the_last_member_logs_out() {
    let mut d = Driver::new("[queue.q]\nleaveempty = \"yes\"\n");
    d.register(&[A]);
    d.engine
        .handle_add_member(d.now, "q", A, 0, BTreeMap::new())
        .unwrap();
    d.drain();
    let got = d.join("q", 1);
    assert!(exits(&got).is_empty(), "{got:?}");
    assert_eq!(offered(&got), [A]);
    d.engine.handle_remove_member(d.now, "q", A).unwrap();
    let got = d.drain();
    assert_eq!(exits(&got), [(CallerId(1), QueueStatus::LeaveEmpty)]);
    assert_eq!(log_names(&got), ["REMOVEMEMBER", "EXITEMPTY"]);
    assert!(got.iter().any(|a| matches!(a, Action::Withdraw { .. })));
}

#[test]
fn queuestatus_leaveunavail_when_every_member_unregisters() {
    let mut d = driver("leaveempty = \"strict\"\ntimeout = 5", &[0, 0]);
    d.engine.handle_pause(d.now, B, "break").unwrap();
    let got = d.join("q", 1);
    let (offer, _, _) = offers(&got)[0].clone();
    d.engine
        .handle_offer_failed(d.now, offer, OfferFailure::Unreachable)
        .unwrap();
    d.engine.handle_registration(d.now, A, false);
    let got = d.drain();
    assert_eq!(exits(&got), [(CallerId(1), QueueStatus::LeaveUnavail)]);
}

#[test]
fn queuestatus_continue_when_the_agent_hangs_up_a_bridged_call() {
    let mut d = driver("", &[0]);
    let got = d.join("q", 1);
    let (offer, _, _) = offers(&got)[0].clone();
    d.answer(offer);
    d.engine.handle_agent_hangup(d.now, CallerId(1)).unwrap();
    let got = d.drain();
    assert_eq!(exits(&got), [(CallerId(1), QueueStatus::Continue)]);
    assert_eq!(log_names(&got), ["COMPLETEAGENT"]);
}

// ----- races, wrap-up, retry, autopause -----

#[test]
fn the_first_answer_wins_the_others_are_withdrawn_and_a_late_answer_is_rejected() {
    let mut d = driver("strategy = \"ringall\"", &[0, 0, 0]);
    let got = d.join("q", 1);
    let o = offers(&got);
    assert_eq!(o.len(), 3);
    let got = d.answer(o[1].0);
    let withdrawn: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            Action::Withdraw { offer, .. } => Some(*offer),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn, [o[0].0, o[2].0]);
    let bridge = got
        .iter()
        .position(|a| matches!(a, Action::Bridge { .. }))
        .unwrap();
    let last_withdraw = got
        .iter()
        .rposition(|a| matches!(a, Action::Withdraw { .. }))
        .unwrap();
    assert!(
        last_withdraw < bridge,
        "withdrawn before the bridge: {got:?}"
    );
    // A late 200 from A: ACK + BYE, no second bridge.
    let late = d.answer(o[0].0);
    assert_eq!(late, [Action::RejectLateAnswer { offer: o[0].0 }]);
    assert_eq!(status(&d, A), AgentStatus::Available);
    assert_eq!(d.engine.bridged_agent(CallerId(1)), Some(B));
}

#[test]
fn wrapup_holds_the_next_offer_for_its_time_also_after_a_transfer() {
    let mut d = driver("wrapuptime = 10", &[0]);
    let got = d.join("q", 1);
    d.answer(offers(&got)[0].0);
    d.at(5.0);
    d.engine
        .handle_transferred(d.now, CallerId(1), "300", "internal")
        .unwrap();
    let got = d.drain();
    assert_eq!(log_names(&got), ["TRANSFER"]);
    assert!(matches!(status(&d, A), AgentStatus::WrapUp { .. }));
    assert!(offered(&d.join("q", 2)).is_empty());
    assert!(offered(&d.at(14.9)).is_empty());
    assert_eq!(offered(&d.at(15.0)), [A]);
    assert_eq!(d.engine.agent_stats(A).unwrap().calls_taken, 1);
}

#[test]
fn after_every_member_was_tried_the_caller_waits_retry() {
    let mut d = driver("timeout = 5\nretry = 3", &[0]);
    assert_eq!(offered(&d.join("q", 1)), [A]);
    let got = d.at(5.0);
    assert_eq!(log_names(&got), ["RINGNOANSWER"]);
    assert!(got.iter().any(|a| matches!(a, Action::Withdraw { .. })));
    assert!(offered(&got).is_empty());
    assert!(offered(&d.at(7.9)).is_empty());
    assert_eq!(offered(&d.at(8.0)), [A]);
}

#[test]
fn autopause_after_n_unanswered_offers_in_a_row() {
    let mut d = driver("timeout = 2\nretry = 0\nautopause = 2", &[0]);
    d.join("q", 1);
    d.at(2.0);
    assert_eq!(
        status(&d, A),
        AgentStatus::Ringing {
            caller: CallerId(1),
            since: d.now
        }
    );
    let got = d.at(4.0);
    assert_eq!(
        log_events(&got).last(),
        Some(&QueueEvent::Pause {
            reason: "autopause".into()
        })
    );
    assert!(
        matches!(status(&d, A), AgentStatus::Paused { ref reason, .. } if reason == "autopause")
    );
    assert!(offered(&d.at(30.0)).is_empty());
    d.engine.handle_unpause(d.now, A, "back").unwrap();
    let got = d.drain();
    assert_eq!(offered(&got), [A]);
    assert!(log_names(&got).contains(&"UNPAUSE"));
}

#[test]
fn a_declined_offer_moves_on_and_a_busy_agent_is_skipped_unless_ringinuse() {
    let mut d = driver("strategy = \"linear\"", &[0, 0]);
    let got = d.join("q", 1);
    let (offer, _, _) = offers(&got)[0].clone();
    d.engine
        .handle_offer_failed(d.now, offer, OfferFailure::Declined)
        .unwrap();
    assert_eq!(offered(&d.drain()), [B]);
    d.engine.handle_device_busy(d.now, A, true);
    d.drain();
    assert_eq!(status(&d, A), AgentStatus::Busy);
    let mut r = driver("strategy = \"linear\"\nringinuse = true", &[0]);
    r.engine.handle_device_busy(r.now, A, true);
    assert_eq!(offered(&r.join("q", 1)), [A]);
}

#[test]
fn a_caller_hanging_up_while_ringing_abandons_and_frees_the_agent() {
    let mut d = driver("", &[0]);
    let got = d.join("q", 1);
    let (offer, _, _) = offers(&got)[0].clone();
    d.at(3.0);
    d.engine.handle_caller_hangup(d.now, CallerId(1)).unwrap();
    let got = d.drain();
    assert!(got.contains(&Action::Withdraw {
        offer,
        caller: CallerId(1),
        interface: A.into()
    }));
    assert_eq!(
        log_events(&got),
        [QueueEvent::Abandon {
            position: 1,
            orig_position: 1,
            wait_time: Duration::from_secs(3)
        }]
    );
    assert_eq!(status(&d, A), AgentStatus::Available);
    let stats = d.engine.queue_stats("q", d.now).unwrap();
    assert_eq!((stats.abandoned, stats.waiting), (1, 0));
}

// ----- order, announcements, rules, exits -----

#[test]
fn priority_and_position_order_the_waiting_callers() {
    let mut d = Driver::new("[queue.q]\n");
    d.join("q", 1);
    d.join("q", 2);
    d.join_with(
        "q",
        3,
        Join {
            priority: 5,
            ..Join::default()
        },
    );
    d.join_with(
        "q",
        4,
        Join {
            position: Some(2),
            ..Join::default()
        },
    );
    let ids: Vec<u64> = d.engine.waiting("q").unwrap().iter().map(|c| c.0).collect();
    assert_eq!(ids, [3, 4, 1, 2]);
}

#[test]
fn position_is_announced_on_entry_then_periodically_and_periodic_prompts_cycle() {
    let mut d = Driver::new(
        "[queue.q]\nannounce_frequency = 30\nperiodic_announce = [\"p1\", \"p2\"]\nperiodic_announce_frequency = 20\n",
    );
    d.join("q", 1);
    let got = d.join("q", 2);
    let first: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            Action::Announce {
                caller,
                announcement,
            } => Some((*caller, announcement.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        first,
        [(
            CallerId(2),
            Announcement::Position {
                position: 2,
                estimated_hold: None
            }
        )]
    );
    let got = d.at(60.0);
    let for_two: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            Action::Announce {
                caller: CallerId(2),
                announcement,
            } => Some(announcement.clone()),
            _ => None,
        })
        .collect();
    let p = |s: &str| Announcement::Periodic { prompt: s.into() };
    let pos = Announcement::Position {
        position: 2,
        estimated_hold: None,
    };
    // At 20 p1, 30 position, 40 p2, 60 position and p1 (in the order
    // their timers were set).
    assert_eq!(for_two, [p("p1"), pos.clone(), p("p2"), pos, p("p1")]);
}

#[test]
fn penalty_rules_widen_the_range_while_the_caller_waits() {
    let mut d = Driver::new(
        "[queue.q]\n[[queue.q.member]]\nextension = \"201\"\npenalty = 1\n[[queue.q.rule]]\nafter = 0\nmax_penalty = 0\n[[queue.q.rule]]\nafter = 10\nmax_penalty = \"+1\"\n",
    );
    d.register(&[A]);
    assert!(offered(&d.join("q", 1)).is_empty());
    assert!(offered(&d.at(9.9)).is_empty());
    assert_eq!(offered(&d.at(10.0)), [A]);
}

#[test]
fn skill_requirements_are_lowered_by_the_rules() {
    let mut d = Driver::new(
        "[queue.q]\nrequire = { urdu = 3 }\n[[queue.q.member]]\nextension = \"201\"\nskills = { urdu = 2 }\n[[queue.q.member]]\nextension = \"202\"\nskills = { english = 9 }\n[[queue.q.rule]]\nafter = 5\nskill_level = \"-1\"\n",
    );
    d.register(&[A, B]);
    assert!(
        offered(&d.join("q", 1)).is_empty(),
        "urdu 2 < 3, 202 has none"
    );
    assert_eq!(offered(&d.at(5.0)), [A]);
}

#[test]
fn an_exit_digit_leaves_to_its_extension_with_exitwithkey() {
    let mut d = Driver::new(
        "[queue.q]\nexit = [{ digit = \"1\", context = \"callback\", extension = \"s\" }]\n",
    );
    d.join("q", 1);
    assert!(!d.engine.handle_digit(d.now, CallerId(1), '2').unwrap());
    assert!(d.engine.handle_digit(d.now, CallerId(1), '1').unwrap());
    let got = d.drain();
    assert!(got.contains(&Action::ExitTo {
        caller: CallerId(1),
        context: "callback".into(),
        extension: "s".into()
    }));
    assert_eq!(log_names(&got), ["EXITWITHKEY"]);
}

// ----- logging, stats, persistence -----

#[test]
fn a_served_call_logs_enterqueue_connect_completecaller_with_its_times() {
    let mut d = driver("service_level = 10", &[0]);
    d.engine.handle_registration(d.now, A, false);
    d.join_with(
        "q",
        1,
        Join {
            caller_id: "0300123".into(),
            ..Join::default()
        },
    );
    d.at(4.0);
    let got = d.register(&[A]);
    let offer = offers(&got)[0].0;
    d.at(6.0);
    d.answer(offer);
    d.at(66.0);
    d.engine.handle_caller_hangup(d.now, CallerId(1)).unwrap();
    d.drain();
    let events = log_events(&d.actions);
    assert_eq!(
        events,
        [
            QueueEvent::EnterQueue {
                url: String::new(),
                caller_id: "0300123".into()
            },
            QueueEvent::Connect {
                hold_time: Duration::from_secs(6),
                member_uniqueid: format!("leg-{}", offer.0),
                ring_time: Duration::from_secs(2)
            },
            QueueEvent::CompleteCaller {
                hold_time: Duration::from_secs(6),
                call_time: Duration::from_secs(60),
                orig_position: 1
            },
        ]
    );
    let s = d.engine.queue_stats("q", d.now).unwrap();
    assert_eq!((s.answered, s.answered_within_service_level), (1, 1));
    assert_eq!(s.service_level_percent(), Some(100.0));
    let a = d.engine.agent_stats(A).unwrap();
    assert_eq!((a.calls_taken, a.last_call), (1, Some(d.now)));
}

#[test]
fn every_agent_state_is_observable_as_it_changes() {
    let mut d = Driver::new("[queue.q]\nwrapuptime = 5\n");
    let changes = |actions: &[Action]| -> Vec<AgentStatus> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::AgentChanged { status, .. } => Some(status.clone()),
                _ => None,
            })
            .collect()
    };
    // Known from its registration, a member of nothing: logged out.
    d.engine.handle_registration(d.now, A, true);
    assert!(changes(&d.drain()).is_empty());
    assert_eq!(status(&d, A), AgentStatus::LoggedOut);
    d.engine
        .handle_add_member(d.now, "q", A, 0, BTreeMap::new())
        .unwrap();
    assert_eq!(changes(&d.drain()), [AgentStatus::Available]);
    d.engine.handle_pause(d.now, A, "lunch").unwrap();
    assert_eq!(
        changes(&d.drain()),
        [AgentStatus::Paused {
            reason: "lunch".into(),
            since: d.now
        }]
    );
    d.engine.handle_unpause(d.now, A, "").unwrap();
    d.drain();
    d.engine.handle_registration(d.now, A, false);
    assert_eq!(changes(&d.drain()), [AgentStatus::Unavailable]);
    d.engine.handle_registration(d.now, A, true);
    d.drain();
    let got = d.join("q", 1);
    let since = d.now;
    assert_eq!(
        changes(&got),
        [AgentStatus::Ringing {
            caller: CallerId(1),
            since
        }]
    );
    let got = d.answer(offers(&got)[0].0);
    assert_eq!(
        changes(&got),
        [AgentStatus::InCall {
            caller: CallerId(1),
            since
        }]
    );
    d.engine.handle_caller_hangup(d.now, CallerId(1)).unwrap();
    let until = d.now + Duration::from_secs(5);
    assert_eq!(changes(&d.drain()), [AgentStatus::WrapUp { until }]);
    assert_eq!(changes(&d.at(5.0)), [AgentStatus::Available]);
    d.engine.handle_remove_member(d.now, "q", A).unwrap();
    assert_eq!(changes(&d.drain()), [AgentStatus::LoggedOut]);
}

#[test]
fn login_pause_and_logout_emit_persist_actions_and_restore_brings_them_back() {
    let mut d = Driver::new("[queue.q]\n[[queue.q.member]]\nextension = \"202\"\n");
    d.engine
        .handle_add_member(d.now, "q", A, 2, BTreeMap::from([("urdu".into(), 4)]))
        .unwrap();
    d.engine.handle_pause(d.now, A, "training").unwrap();
    d.engine.handle_pause(d.now, B, "lunch").unwrap();
    let got = d.drain();
    let persisted: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            Action::Persist(MemberChange::Upsert(m)) => Some(m.clone()),
            _ => None,
        })
        .collect();
    let dynamic = PersistedMember {
        queue: "q".into(),
        interface: A.into(),
        name: None,
        penalty: 2,
        skills: BTreeMap::from([("urdu".into(), 4)]),
        dynamic: true,
        paused: Some("training".into()),
    };
    assert_eq!(persisted[1], dynamic);
    assert_eq!(persisted[2].interface, B);
    assert!(!persisted[2].dynamic && persisted[2].paused.as_deref() == Some("lunch"));
    assert_eq!(log_names(&got), ["ADDMEMBER", "PAUSE", "PAUSE"]);
    // A restart: a fresh engine gets the rows back.
    let mut r = Driver::new("[queue.q]\n[[queue.q.member]]\nextension = \"202\"\n");
    assert!(r.engine.restore_member(r.now, &dynamic));
    assert!(r.engine.restore_member(r.now, &persisted[2]));
    assert!(!r.engine.restore_member(
        r.now,
        &PersistedMember {
            queue: "gone".into(),
            ..dynamic.clone()
        }
    ));
    let members = r.engine.members("q").unwrap();
    assert_eq!(members.len(), 2);
    assert!(matches!(&members[0].status, AgentStatus::Paused { reason, .. } if reason == "lunch"));
    assert!(
        matches!(&members[1].status, AgentStatus::Paused { reason, .. } if reason == "training")
    );
    assert!(members[1].dynamic && members[1].penalty == 2);
    // Static members cannot log out; the dynamic one can.
    assert!(r.engine.handle_remove_member(r.now, "q", B).is_err());
    r.engine.handle_remove_member(r.now, "q", A).unwrap();
    let got = r.drain();
    assert!(got.contains(&Action::Persist(MemberChange::Remove {
        queue: "q".into(),
        interface: A.into()
    })));
    assert_eq!(r.engine.agent_status(A), Some(AgentStatus::LoggedOut));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut d = driver("", &[0]);
    assert!(d
        .engine
        .handle_join(d.now, "nope", Join::default())
        .is_err());
    d.join("q", 1);
    assert!(d
        .engine
        .handle_join(
            d.now,
            "q",
            Join {
                id: Some(CallerId(1)),
                ..Join::default()
            }
        )
        .is_err());
    assert!(d.engine.handle_caller_hangup(d.now, CallerId(9)).is_err());
    assert!(d.engine.handle_agent_hangup(d.now, CallerId(1)).is_err());
    assert!(d
        .engine
        .handle_answered(d.now, carillon_queue::OfferId(999), "x")
        .is_err());
    assert!(d.engine.handle_pause(d.now, "PJSIP/999", "x").is_err());
}
