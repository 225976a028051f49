//! A small driver for engine tests: a fixed time base, a clock moved by
//! hand (running every timer on the way), and the actions collected.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use carillon_queue::{
    Action, AgentStatus, CallerId, Engine, Join, OfferId, QueueEvent, QueueStatus, QueuesConfig,
};

pub struct Driver {
    pub engine: Engine,
    pub start: Instant,
    pub now: Instant,
    pub actions: Vec<Action>,
}

impl Driver {
    pub fn new(toml: &str) -> Driver {
        Driver::seeded(toml, 7)
    }

    pub fn seeded(toml: &str, seed: u64) -> Driver {
        let config = QueuesConfig::load("queues.toml", toml).unwrap_or_else(|p| panic!("{p:?}"));
        let start = Instant::now();
        Driver {
            engine: Engine::new(&config, seed),
            start,
            now: start,
            actions: Vec::new(),
        }
    }

    pub fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.engine.poll_action() {
            out.push(a);
        }
        self.actions.extend(out.iter().cloned());
        out
    }

    /// Registers every interface.
    pub fn register(&mut self, interfaces: &[&str]) -> Vec<Action> {
        for i in interfaces {
            self.engine.handle_registration(self.now, i, true);
        }
        self.drain()
    }

    pub fn join(&mut self, queue: &str, id: u64) -> Vec<Action> {
        self.join_with(queue, id, Join::default())
    }

    pub fn join_with(&mut self, queue: &str, id: u64, mut join: Join) -> Vec<Action> {
        join.id = Some(CallerId(id));
        if join.uniqueid.is_empty() {
            join.uniqueid = format!("call-{id}");
        }
        self.engine.handle_join(self.now, queue, join).unwrap();
        self.drain()
    }

    /// Moves the clock to `secs` after the start, running every timer due
    /// on the way at its own instant.
    pub fn at(&mut self, secs: f64) -> Vec<Action> {
        let target = self.start + Duration::from_secs_f64(secs);
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match self.engine.poll_timeout() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    out.extend(self.drain());
                }
                _ => break,
            }
        }
        self.now = self.now.max(target);
        self.engine.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    pub fn answer(&mut self, offer: OfferId) -> Vec<Action> {
        self.engine
            .handle_answered(self.now, offer, &format!("leg-{}", offer.0))
            .unwrap();
        self.drain()
    }
}

/// `(offer, caller, interface)` of every Offer action.
pub fn offers(actions: &[Action]) -> Vec<(OfferId, CallerId, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Offer {
                offer,
                caller,
                interface,
                ..
            } => Some((*offer, *caller, interface.clone())),
            _ => None,
        })
        .collect()
}

/// The interfaces offered, in order.
pub fn offered(actions: &[Action]) -> Vec<String> {
    offers(actions).into_iter().map(|(_, _, i)| i).collect()
}

pub fn exits(actions: &[Action]) -> Vec<(CallerId, QueueStatus)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Exit { caller, status } => Some((*caller, *status)),
            _ => None,
        })
        .collect()
}

/// Names of the queue log events, in order.
pub fn log_names(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(e) => Some(e.event.name()),
            _ => None,
        })
        .collect()
}

pub fn log_events(actions: &[Action]) -> Vec<QueueEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(e) => Some(e.event.clone()),
            _ => None,
        })
        .collect()
}

pub fn status(d: &Driver, interface: &str) -> AgentStatus {
    d.engine.agent_status(interface).unwrap()
}
