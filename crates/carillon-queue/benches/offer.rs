//! Queue engine cost per offer decision (criterion), per strategy, at
//! call-centre size: 1,000 agents and 5,000 waiting callers.
//!
//! `busy_queue/<strategy>`: every agent is in a call and 5,000 callers
//! wait. One iteration is one agent freeing up and taking the next
//! caller: the bridged caller hangs up (COMPLETECALLER; the engine picks
//! the next caller and offers it to the free agent), the agent answers
//! (CONNECT, bridge), and a new caller joins at the back (ENTERQUEUE),
//! so the queue stays at 5,000. Three engine inputs with every action
//! drained.
//!
//! `free_agents/<strategy>`: 1,000 free agents, no backlog. One
//! iteration: a caller joins (the strategy picks among all 1,000; ringall
//! rings all of them), then hangs up (the offers are withdrawn).
//!
//! `cargo bench -p carillon-queue --bench offer`; figures in
//! benches/README.md §9.

use std::time::{Duration, Instant};

use carillon_queue::{
    Action, CallerId, Engine, Join, OfferId, QueueConfig, QueuesConfig, StaticMember, Strategy,
};
use criterion::{criterion_group, criterion_main, Criterion};

const AGENTS: usize = 1_000;
const WAITING: usize = 5_000;

fn engine(strategy: Strategy) -> Engine {
    let mut q = QueueConfig::new("q", strategy);
    q.timeout = Duration::from_secs(3600);
    q.members = (0..AGENTS)
        .map(|i| StaticMember {
            interface: format!("PJSIP/{}", 1000 + i),
            name: None,
            penalty: u32::from(i % 4 == 0),
            skills: Default::default(),
        })
        .collect();
    let mut e = Engine::new(&QueuesConfig { queues: vec![q] }, 1);
    let now = Instant::now();
    for i in 0..AGENTS {
        e.handle_registration(now, &format!("PJSIP/{}", 1000 + i), true);
    }
    e
}

struct Clock(Instant);

impl Clock {
    fn tick(&mut self) -> Instant {
        self.0 += Duration::from_millis(1);
        self.0
    }
}

fn drain_offers(e: &mut Engine, into: &mut Vec<OfferId>) {
    while let Some(a) = e.poll_action() {
        if let Action::Offer { offer, .. } = a {
            into.push(offer);
        }
    }
}

fn join(e: &mut Engine, now: Instant, id: u64) {
    e.handle_join(
        now,
        "q",
        Join {
            id: Some(CallerId(id)),
            uniqueid: format!("c{id}"),
            ..Join::default()
        },
    )
    .unwrap();
}

fn busy_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("busy_queue");
    for strategy in Strategy::NAMES {
        let strategy = Strategy::parse(strategy).unwrap();
        let mut e = engine(strategy);
        let mut clock = Clock(Instant::now());
        let mut next = 1u64;
        let mut offers = Vec::new();
        // Fill every agent with a call, then the backlog.
        let mut bridged = std::collections::VecDeque::new();
        while bridged.len() < AGENTS {
            let now = clock.tick();
            join(&mut e, now, next);
            let caller = CallerId(next);
            next += 1;
            drain_offers(&mut e, &mut offers);
            // Ringall rings every free agent: answer one, the rest go.
            if let Some(o) = offers.drain(..).next() {
                e.handle_answered(now, o, "leg").unwrap();
                while e.poll_action().is_some() {}
                bridged.push_back(caller);
            }
        }
        for _ in 0..WAITING {
            join(&mut e, clock.tick(), next);
            next += 1;
            while e.poll_action().is_some() {}
        }
        group.bench_function(strategy.name(), |b| {
            b.iter(|| {
                let now = clock.tick();
                let done = bridged.pop_front().unwrap();
                e.handle_caller_hangup(now, done).unwrap();
                drain_offers(&mut e, &mut offers);
                let offer = offers.pop().unwrap();
                offers.clear();
                e.handle_answered(now, offer, "leg").unwrap();
                let mut taken = None;
                while let Some(a) = e.poll_action() {
                    if let Action::Bridge { caller, .. } = a {
                        taken = Some(caller);
                    }
                }
                bridged.push_back(taken.unwrap());
                join(&mut e, now, next);
                next += 1;
                while e.poll_action().is_some() {}
            });
        });
        assert_eq!(e.waiting("q").unwrap().len(), WAITING);
    }
    group.finish();
}

fn free_agents(c: &mut Criterion) {
    let mut group = c.benchmark_group("free_agents");
    for strategy in Strategy::NAMES {
        let strategy = Strategy::parse(strategy).unwrap();
        let mut e = engine(strategy);
        let mut clock = Clock(Instant::now());
        let mut next = 1u64;
        let mut offers = Vec::new();
        group.bench_function(strategy.name(), |b| {
            b.iter(|| {
                let now = clock.tick();
                join(&mut e, now, next);
                drain_offers(&mut e, &mut offers);
                assert!(!offers.is_empty());
                offers.clear();
                e.handle_caller_hangup(now, CallerId(next)).unwrap();
                while e.poll_action().is_some() {}
                next += 1;
            });
        });
    }
    group.finish();
}

criterion_group!(benches, busy_queue, free_agents);
criterion_main!(benches);
