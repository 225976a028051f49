//! One AMI connection's state machine, sans-IO: bytes in → bytes out
//! (responses and events) and [`SessionEvent`]s for the edge's log.
//!
//! Owns the login (plain `Secret`, or the MD5 challenge: `Action:
//! Challenge`/`AuthType: MD5`, then `Key` = md5(challenge + secret) in
//! hex), the bounded count of failed logins, the user's read/write classes
//! and event mask (`Events:` of Login, the `Events` action), `ActionID`
//! echoing, and the answers of the actions that exist today: Login,
//! Challenge, Logoff, Ping, Events, ListCommands, CoreShowChannels, Status,
//! Command (`core show channels` only) and Hangup. Hangup acts on the
//! switch: the session turns it into a [`SwitchRequest`] the edge
//! executes, reading no further packet until the edge reports the result
//! ([`Session::hangup_done`]), so answers keep the order of the actions. Anything else gets Asterisk's
//! `Invalid/unknown command` error, never a fake success. Does not own the
//! socket, the clock (time is an argument), randomness (the challenge is
//! given at creation) nor the channel table (read through a closure).
//!
//! ```text
//!            Login ok                         Logoff
//! LoggedOut ─────────► LoggedIn ─────────────────────► Closing
//!    │ Login failed max_login_failures times  ▲
//!    └─────────────────────────────────────────┘ (also Logoff when logged out)
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use md5::{Digest, Md5};

use crate::class::ClassMask;
use crate::codec::{Decoder, FrameError, Packet};
use crate::translate::{AmiEvent, ChannelFacts};

/// The banner's protocol version: Asterisk 13+'s single-digit major form,
/// which panoramisk, asterisk-manager and starpy read as a modern server.
pub const AMI_VERSION: &str = "5.0.0";

/// The actions offered after login, beside Login, Challenge and Logoff:
/// name, the write classes one of which the user needs (none: anyone),
/// synopsis (ListCommands).
const ACTIONS: &[(&str, ClassMask, &str)] = &[
    ("Ping", ClassMask::NONE, "Keepalive command."),
    ("Events", ClassMask::NONE, "Control Event Flow."),
    (
        "ListCommands",
        ClassMask::NONE,
        "List available manager commands.",
    ),
    (
        "CoreShowChannels",
        ClassMask::SYSTEM.union(ClassMask::REPORTING),
        "List currently active channels.",
    ),
    (
        "Status",
        ClassMask::SYSTEM
            .union(ClassMask::CALL)
            .union(ClassMask::REPORTING),
        "List channel status.",
    ),
    (
        "Hangup",
        ClassMask::SYSTEM.union(ClassMask::CALL),
        "Hangup channel.",
    ),
    (
        "Command",
        ClassMask::COMMAND,
        "Execute Asterisk CLI Command (core show channels only).",
    ),
];

/// A manager user (`[[ami.user]]`).
#[derive(Clone, PartialEq, Eq)]
pub struct AmiUser {
    pub name: String,
    pub secret: String,
    pub read: ClassMask,
    pub write: ClassMask,
}

/// Never prints the secret.
impl fmt::Debug for AmiUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiUser")
            .field("name", &self.name)
            .field("secret", &"***")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

/// What every session of a server shares.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub users: Vec<AmiUser>,
    /// Failed logins a connection may make before it is closed.
    pub max_login_failures: u32,
    /// When the switch started (Unix ms), for FullyBooted's `Uptime`.
    pub booted_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            users: Vec::new(),
            max_login_failures: 3,
            booted_ms: 0,
        }
    }
}

/// What happened on a session, for the edge to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    LoggedIn {
        user: String,
    },
    LoginFailed {
        user: String,
    },
    /// The packet was refused by the framing limits.
    BadPacket(FrameError),
}

/// An action the edge must carry out on the switch, then report with
/// the matching `*_done` method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchRequest {
    /// Hang the channel up (the switch's name, `SIP/100-0000002a`) with
    /// the Q.850 `cause`.
    Hangup { channel: String, cause: u8 },
}

#[derive(Debug)]
enum State {
    LoggedOut { failures: u32 },
    LoggedIn { user: usize, events: ClassMask },
    Closing,
}

/// A connection's session (see the module doc).
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    state: State,
    challenge: String,
    challenged: bool,
    decoder: Decoder,
    out: String,
    events: VecDeque<SessionEvent>,
    /// The action waiting for the switch, and the request the edge has
    /// not taken yet.
    pending: Option<Packet>,
    request: Option<SwitchRequest>,
}

impl Session {
    /// A new connection; the banner is queued. `challenge` is the random
    /// number an MD5 login will be challenged with.
    pub fn new(config: Arc<SessionConfig>, challenge: u64) -> Session {
        Session {
            config,
            state: State::LoggedOut { failures: 0 },
            challenge: (challenge % 1_000_000_000).to_string(),
            challenged: false,
            decoder: Decoder::default(),
            out: format!("Asterisk Call Manager/{AMI_VERSION}\r\n"),
            events: VecDeque::new(),
            pending: None,
            request: None,
        }
    }

    /// The switch action the edge is to carry out, if any (taken once).
    pub fn poll_request(&mut self) -> Option<SwitchRequest> {
        self.request.take()
    }

    /// The switch carried out the [`SwitchRequest::Hangup`]: `found` is
    /// false when there was no such channel. Packets received meanwhile
    /// are handled on the next [`Session::handle_input`] (which may be
    /// given no bytes).
    pub fn hangup_done(&mut self, found: bool) {
        let Some(m) = self.pending.take() else {
            return;
        };
        if found {
            self.respond(
                &m,
                Packet::new()
                    .with("Response", "Success")
                    .with("Message", "Channel Hungup"),
            );
        } else {
            self.error(&m, "No such channel");
        }
    }

    /// Bytes received at `now_ms` (Unix ms). `channels` lists the live
    /// channels when an action needs them.
    pub fn handle_input(
        &mut self,
        now_ms: u64,
        bytes: &[u8],
        channels: &mut dyn FnMut() -> Vec<ChannelFacts>,
    ) {
        self.decoder.push(bytes);
        while !self.is_closing() && self.pending.is_none() {
            let Some(packet) = self.decoder.next_packet() else {
                break;
            };
            match packet {
                Ok(p) => self.handle_action(now_ms, &p, channels),
                Err(e) => {
                    self.respond(
                        &Packet::new(),
                        Packet::new()
                            .with("Response", "Error")
                            .with("Message", e.to_string()),
                    );
                    self.events.push_back(SessionEvent::BadPacket(e));
                }
            }
        }
    }

    /// A switch event: queued if the user may read it and asked for it.
    pub fn handle_event(&mut self, event: &AmiEvent) {
        if let State::LoggedIn { events, .. } = self.state {
            if events.overlaps(event.class) {
                self.out.push_str(&event.to_wire());
            }
        }
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<String> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The connection is to be closed once its output is sent (Logoff,
    /// too many failed logins).
    pub fn is_closing(&self) -> bool {
        matches!(self.state, State::Closing)
    }

    /// The logged-in user's name.
    pub fn user(&self) -> Option<&str> {
        match self.state {
            State::LoggedIn { user, .. } => self.config.users.get(user).map(|u| u.name.as_str()),
            _ => None,
        }
    }

    /// Appends `body` with the request's ActionID after the first header.
    fn respond(&mut self, request: &Packet, body: Packet) {
        self.out.push_str(&with_action_id(request, body).to_wire());
    }

    fn error(&mut self, request: &Packet, message: &str) {
        self.respond(
            request,
            Packet::new()
                .with("Response", "Error")
                .with("Message", message),
        );
    }

    fn handle_action(
        &mut self,
        now_ms: u64,
        m: &Packet,
        channels: &mut dyn FnMut() -> Vec<ChannelFacts>,
    ) {
        let action = m.get("Action").unwrap_or("").to_owned();
        if action.is_empty() {
            return self.error(m, "Missing action in request");
        }
        let lower = action.to_ascii_lowercase();
        let logged_in = matches!(self.state, State::LoggedIn { .. });
        match lower.as_str() {
            "login" => return self.login(now_ms, m),
            "challenge" => return self.challenge(m),
            "logoff" => {
                self.respond(
                    m,
                    Packet::new()
                        .with("Response", "Goodbye")
                        .with("Message", "Thanks for all the fish."),
                );
                self.state = State::Closing;
                return;
            }
            _ if !logged_in => return self.error(m, "Permission denied"),
            _ => {}
        }
        let State::LoggedIn { user, .. } = self.state else {
            return;
        };
        let write = self
            .config
            .users
            .get(user)
            .map_or(ClassMask::NONE, |u| u.write);
        let Some(&(_, needs, _)) = ACTIONS
            .iter()
            .find(|(name, _, _)| name.eq_ignore_ascii_case(&lower))
        else {
            return self.error(
                m,
                &format!(
                    "Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
                ),
            );
        };
        if !needs.is_empty() && !write.overlaps(needs) {
            return self.error(m, "Permission denied");
        }
        match lower.as_str() {
            "ping" => {
                let ts = format!("{}.{:06}", now_ms / 1000, (now_ms % 1000) * 1000);
                self.respond(
                    m,
                    Packet::new()
                        .with("Response", "Success")
                        .with("Ping", "Pong")
                        .with("Timestamp", ts),
                );
            }
            "events" => self.events_action(m),
            "listcommands" => {
                let mut p = Packet::new().with("Response", "Success");
                for (name, needs, synopsis) in ACTIONS {
                    let privilege = if needs.is_empty() {
                        "<none>".to_owned()
                    } else {
                        needs.to_string()
                    };
                    p.push(name, format!("{synopsis}  (Priv: {privilege})"));
                }
                self.respond(m, p);
            }
            "coreshowchannels" => self.core_show_channels(now_ms, m, &channels()),
            "command" => self.command(m, &channels()),
            "status" => self.status(now_ms, m, &channels()),
            "hangup" => self.hangup(m),
            _ => {}
        }
    }

    /// `Hangup`: `Channel` in Asterisk's form (`PJSIP/100-0000002a`),
    /// `Cause` optional (Q.850, default 16).
    fn hangup(&mut self, m: &Packet) {
        let Some(channel) = m.get("Channel").filter(|c| !c.is_empty()) else {
            return self.error(m, "No channel specified");
        };
        let cause = match m.get("Cause").map(str::trim).filter(|c| !c.is_empty()) {
            None => 16,
            Some(c) => match c.parse::<u8>() {
                Ok(n) if (1..=127).contains(&n) => n,
                _ => return self.error(m, "Invalid cause"),
            },
        };
        self.request = Some(SwitchRequest::Hangup {
            channel: crate::translate::switch_channel_name(channel),
            cause,
        });
        self.pending = Some(m.clone());
    }

    fn challenge(&mut self, m: &Packet) {
        if !m
            .get("AuthType")
            .is_some_and(|a| a.eq_ignore_ascii_case("md5"))
        {
            return self.error(m, "Must specify AuthType");
        }
        self.challenged = true;
        let challenge = self.challenge.clone();
        self.respond(
            m,
            Packet::new()
                .with("Response", "Success")
                .with("Challenge", challenge),
        );
    }

    fn login(&mut self, now_ms: u64, m: &Packet) {
        let failures = match self.state {
            State::LoggedIn { .. } => {
                return self.respond(
                    m,
                    Packet::new()
                        .with("Response", "Success")
                        .with("Message", "Already authenticated"),
                )
            }
            State::LoggedOut { failures } => failures,
            State::Closing => return,
        };
        let name = m.get("Username").unwrap_or("");
        let found = self
            .config
            .users
            .iter()
            .position(|u| u.name.eq_ignore_ascii_case(name));
        let ok = found
            .and_then(|i| self.config.users.get(i))
            .is_some_and(|u| {
                if m.get("AuthType")
                    .is_some_and(|a| a.eq_ignore_ascii_case("md5"))
                {
                    let key = m.get("Key").unwrap_or("");
                    self.challenged
                        && same(
                            &key.to_ascii_lowercase(),
                            &md5_key(&self.challenge, &u.secret),
                        )
                } else {
                    same(m.get("Secret").unwrap_or(""), &u.secret)
                }
            });
        let (Some(user), true) = (found, ok) else {
            self.events.push_back(SessionEvent::LoginFailed {
                user: name.to_owned(),
            });
            self.error(m, "Authentication failed");
            let failures = failures + 1;
            self.state = if failures >= self.config.max_login_failures {
                State::Closing
            } else {
                State::LoggedOut { failures }
            };
            return;
        };
        let read = self
            .config
            .users
            .get(user)
            .map_or(ClassMask::NONE, |u| u.read);
        let wanted = m
            .get("Events")
            .map_or(ClassMask::ALL, ClassMask::parse_event_mask);
        let events = read.intersect(wanted);
        self.state = State::LoggedIn { user, events };
        self.events.push_back(SessionEvent::LoggedIn {
            user: self
                .config
                .users
                .get(user)
                .map(|u| u.name.clone())
                .unwrap_or_default(),
        });
        self.respond(
            m,
            Packet::new()
                .with("Response", "Success")
                .with("Message", "Authentication accepted"),
        );
        if events.overlaps(ClassMask::SYSTEM) {
            let uptime = now_ms.saturating_sub(self.config.booted_ms) / 1000;
            self.out.push_str(
                &Packet::new()
                    .with("Event", "FullyBooted")
                    .with("Privilege", ClassMask::SYSTEM.to_string())
                    .with("Uptime", uptime.to_string())
                    .with("LastReload", uptime.to_string())
                    .with("Status", "Fully Booted")
                    .to_wire(),
            );
        }
    }

    fn events_action(&mut self, m: &Packet) {
        let State::LoggedIn { user, .. } = self.state else {
            return;
        };
        let read = self
            .config
            .users
            .get(user)
            .map_or(ClassMask::NONE, |u| u.read);
        let mask = ClassMask::parse_event_mask(m.get("EventMask").unwrap_or(""));
        let events = read.intersect(mask);
        self.state = State::LoggedIn { user, events };
        self.respond(
            m,
            Packet::new()
                .with("Response", "Success")
                .with("Events", if events.is_empty() { "Off" } else { "On" }),
        );
    }

    /// `Response: Success`/`EventList: start`, the items, then the
    /// `…Complete` event with `EventList: Complete` and `ListItems`.
    fn list(&mut self, m: &Packet, message: &str, items: Vec<Packet>, complete: &str) {
        self.respond(
            m,
            Packet::new()
                .with("Response", "Success")
                .with("EventList", "start")
                .with("Message", message),
        );
        let n = items.len();
        for item in items {
            self.respond(m, item);
        }
        self.respond(
            m,
            Packet::new()
                .with("Event", complete)
                .with("EventList", "Complete")
                .with("ListItems", n.to_string()),
        );
    }

    fn core_show_channels(&mut self, now_ms: u64, m: &Packet, channels: &[ChannelFacts]) {
        let items = channels
            .iter()
            .map(|c| {
                let mut p = Packet::new().with("Event", "CoreShowChannel");
                p.extend(&c.fields(""));
                p.push("BridgeId", c.bridge.clone().unwrap_or_default());
                p.push("Application", c.application.clone());
                p.push("ApplicationData", "");
                p.push("Duration", c.duration(now_ms));
                p
            })
            .collect();
        self.list(m, "Channels will follow", items, "CoreShowChannelsComplete");
    }

    fn status(&mut self, now_ms: u64, m: &Packet, channels: &[ChannelFacts]) {
        let wanted = m.get("Channel").filter(|c| !c.is_empty());
        let selected: Vec<&ChannelFacts> = channels
            .iter()
            .filter(|c| wanted.is_none_or(|w| c.channel.eq_ignore_ascii_case(w)))
            .collect();
        if wanted.is_some() && selected.is_empty() {
            return self.error(m, "No such channel");
        }
        let items = selected
            .into_iter()
            .map(|c| {
                let mut p = Packet::new().with("Event", "Status");
                p.extend(&c.fields(""));
                p.push("Type", "PJSIP");
                p.push("DNID", c.exten.clone());
                p.push("BridgeID", c.bridge.clone().unwrap_or_default());
                p.push("Application", c.application.clone());
                p.push("Data", "");
                p.push(
                    "Seconds",
                    (now_ms.saturating_sub(c.created_ms) / 1000).to_string(),
                );
                p
            })
            .collect();
        self.list(m, "Channel status will follow", items, "StatusComplete");
    }

    fn command(&mut self, m: &Packet, channels: &[ChannelFacts]) {
        let text = m.get("Command").unwrap_or("").trim().to_owned();
        let words: Vec<String> = text
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        if words != ["core", "show", "channels"] {
            let mut p = Packet::new()
                .with("Response", "Error")
                .with("Message", "Command output follows");
            p.push(
                "Output",
                format!(
                    "No such command '{text}' (type 'core show help {text}' for other possible commands)"
                ),
            );
            return self.respond(m, p);
        }
        let mut p = Packet::new()
            .with("Response", "Success")
            .with("Message", "Command output follows");
        p.push(
            "Output",
            format!(
                "{:<20} {:<20} {:<7} {}",
                "Channel", "Location", "State", "Application(Data)"
            ),
        );
        for c in channels {
            p.push(
                "Output",
                format!(
                    "{:<20} {:<20} {:<7} {}()",
                    c.channel,
                    format!("{}@{}:{}", c.exten, c.context, c.priority),
                    c.state.desc(),
                    c.application
                ),
            );
        }
        let calls = {
            let mut ids: Vec<&str> = channels.iter().map(|c| c.linkedid.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        let plural =
            |n: usize, word: &str| format!("{n} active {word}{}", if n == 1 { "" } else { "s" });
        p.push("Output", plural(channels.len(), "channel"));
        p.push("Output", plural(calls, "call"));
        self.respond(m, p);
    }
}

/// `md5(challenge + secret)` in lower-case hex.
pub fn md5_key(challenge: &str, secret: &str) -> String {
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Compares without stopping at the first difference (secrets, keys).
fn same(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `body` with the request's ActionID right after its first header.
fn with_action_id(request: &Packet, body: Packet) -> Packet {
    let Some(id) = request.get("ActionID") else {
        return body;
    };
    let mut out = Packet::new();
    for (i, (k, v)) in body.headers().iter().enumerate() {
        out.push(k, v.clone());
        if i == 0 {
            out.push("ActionID", id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::Translator;
    use carillon_events::{Direction, EventRecord, SwitchEvent};

    fn config() -> Arc<SessionConfig> {
        Arc::new(SessionConfig {
            users: vec![
                AmiUser {
                    name: "dialer".into(),
                    secret: "changeme-ami".into(),
                    read: ClassMask::ALL,
                    write: ClassMask::ALL,
                },
                AmiUser {
                    name: "watcher".into(),
                    secret: "w".into(),
                    read: ClassMask::CALL,
                    write: ClassMask::NONE,
                },
            ],
            max_login_failures: 2,
            booted_ms: 1_000,
        })
    }

    /// Sends `input`, returns the packets written (banner stripped).
    fn talk(s: &mut Session, input: &str, channels: Vec<ChannelFacts>) -> Vec<Packet> {
        s.handle_input(61_000, input.as_bytes(), &mut || channels.clone());
        let out = s.poll_transmit().unwrap_or_default();
        let out = out
            .strip_prefix(&format!("Asterisk Call Manager/{AMI_VERSION}\r\n"))
            .unwrap_or(&out)
            .to_owned();
        let mut d = Decoder::default();
        d.push(out.as_bytes());
        std::iter::from_fn(|| d.next_packet())
            .map(|p| p.unwrap())
            .collect()
    }

    fn login(s: &mut Session) {
        let p = talk(
            s,
            "Action: Login\r\nUsername: dialer\r\nSecret: changeme-ami\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Success"));
    }

    #[test]
    fn the_banner_comes_first_with_a_single_digit_major_version() {
        let mut s = Session::new(config(), 42);
        let out = s.poll_transmit().unwrap();
        assert_eq!(out, "Asterisk Call Manager/5.0.0\r\n");
    }

    #[test]
    fn plain_login_is_accepted_with_fully_booted_and_the_action_id_echoed() {
        let mut s = Session::new(config(), 42);
        let p = talk(
            &mut s,
            "Action: Login\nActionID: a1\nUsername: dialer\nSecret: changeme-ami\n\n",
            vec![],
        );
        assert_eq!(p[0].headers()[0], ("Response".into(), "Success".into()));
        assert_eq!(p[0].headers()[1], ("ActionID".into(), "a1".into()));
        assert_eq!(p[0].get("Message"), Some("Authentication accepted"));
        assert_eq!(p[1].get("Event"), Some("FullyBooted"));
        assert_eq!(p[1].get("Uptime"), Some("60"));
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::LoggedIn {
                user: "dialer".into()
            })
        );
        assert_eq!(s.user(), Some("dialer"));
    }

    #[test]
    fn md5_login_needs_the_challenge_and_the_right_key() {
        let mut s = Session::new(config(), 123_456_789);
        // A key without a challenge first is refused.
        let key = md5_key("123456789", "changeme-ami");
        let p = talk(
            &mut s,
            &format!("Action: Login\r\nAuthType: MD5\r\nUsername: dialer\r\nKey: {key}\r\n\r\n"),
            vec![],
        );
        assert_eq!(p[0].get("Message"), Some("Authentication failed"));
        let p = talk(
            &mut s,
            "Action: Challenge\r\nActionID: c\r\nAuthType: MD5\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Challenge"), Some("123456789"));
        assert_eq!(p[0].get("ActionID"), Some("c"));
        let p = talk(
            &mut s,
            &format!(
                "Action: Login\r\nAuthType: MD5\r\nUsername: dialer\r\nKey: {}\r\n\r\n",
                key.to_uppercase()
            ),
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Success"), "{p:?}");
        let p = talk(
            &mut s,
            "Action: Challenge\r\nAuthType: plain\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Message"), Some("Must specify AuthType"));
    }

    #[test]
    fn wrong_secrets_are_refused_and_the_connection_closes_after_the_limit() {
        let mut s = Session::new(config(), 1);
        let p = talk(
            &mut s,
            "Action: Login\r\nUsername: dialer\r\nSecret: nope\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Error"));
        assert_eq!(p[0].get("Message"), Some("Authentication failed"));
        assert!(!s.is_closing());
        let p = talk(
            &mut s,
            "Action: Login\r\nUsername: nobody\r\nSecret: changeme-ami\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Message"), Some("Authentication failed"));
        assert!(s.is_closing());
        // Nothing more is read once closing.
        let p = talk(
            &mut s,
            "Action: Login\r\nUsername: dialer\r\nSecret: changeme-ami\r\n\r\n",
            vec![],
        );
        assert!(p.is_empty());
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::LoginFailed {
                user: "dialer".into()
            })
        );
    }

    #[test]
    fn actions_before_login_are_denied_and_unknown_actions_are_errors_not_successes() {
        let mut s = Session::new(config(), 1);
        let p = talk(&mut s, "Action: Ping\r\nActionID: 9\r\n\r\n", vec![]);
        assert_eq!(p[0].get("Message"), Some("Permission denied"));
        assert_eq!(p[0].get("ActionID"), Some("9"));
        login(&mut s);
        let p = talk(
            &mut s,
            "Action: Originate\r\nActionID: o1\r\nChannel: PJSIP/100\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Error"));
        assert_eq!(p[0].get("ActionID"), Some("o1"));
        assert_eq!(
            p[0].get("Message"),
            Some("Invalid/unknown command: Originate. Use Action: ListCommands to show available commands.")
        );
        let p = talk(&mut s, "ActionID: x\r\n\r\n", vec![]);
        assert_eq!(p[0].get("Message"), Some("Missing action in request"));
    }

    #[test]
    fn list_commands_names_exactly_the_actions_offered() {
        let mut s = Session::new(config(), 1);
        login(&mut s);
        let p = talk(
            &mut s,
            "Action: ListCommands\r\nActionID: lc\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Success"));
        assert_eq!(p[0].get("ActionID"), Some("lc"));
        assert_eq!(p[0].get("Ping"), Some("Keepalive command.  (Priv: <none>)"));
        assert_eq!(
            p[0].get("Command")
                .map(|c| c.ends_with("(Priv: command,all)")),
            Some(true)
        );
        assert_eq!(p[0].get("Originate"), None);
        // Every action listed is answered, none with the unknown error.
        for (name, _, _) in ACTIONS {
            let p = talk(&mut s, &format!("Action: {name}\r\n\r\n"), vec![]);
            let msg = p[0].get("Message").unwrap_or("");
            assert!(!msg.starts_with("Invalid/unknown"), "{name}: {msg}");
        }
    }

    #[test]
    fn ping_pongs_with_a_timestamp_and_logoff_says_goodbye_and_closes() {
        let mut s = Session::new(config(), 1);
        login(&mut s);
        let p = talk(&mut s, "Action: Ping\r\nActionID: p\r\n\r\n", vec![]);
        assert_eq!(p[0].get("Ping"), Some("Pong"));
        assert_eq!(p[0].get("Timestamp"), Some("61.000000"));
        assert_eq!(p[0].get("ActionID"), Some("p"));
        let p = talk(&mut s, "Action: Logoff\r\n\r\n", vec![]);
        assert_eq!(p[0].get("Response"), Some("Goodbye"));
        assert!(s.is_closing());
    }

    fn call_events() -> (Translator, Vec<AmiEvent>) {
        let mut t = Translator::new();
        let mut ev = t.handle_record(&EventRecord {
            time_ms: 1_000,
            event: SwitchEvent::ChannelCreated {
                channel: "SIP/100-00000001".into(),
                uniqueid: "U1".into(),
                linkedid: "U1".into(),
                direction: Direction::Inbound,
                caller: "100".into(),
                exten: "600".into(),
                context: "internal".into(),
            },
        });
        ev.extend(t.handle_record(&EventRecord {
            time_ms: 1_500,
            event: SwitchEvent::Dtmf {
                channel: "SIP/100-00000001".into(),
                uniqueid: "U1".into(),
                digit: '7',
                duration_ms: 100,
                source: carillon_events::DtmfSource::Rfc4733,
            },
        }));
        (t, ev)
    }

    #[test]
    fn events_follow_the_mask_of_login_and_of_the_events_action() {
        let (_, ev) = call_events();
        let names = |s: &mut Session| -> Vec<String> {
            for e in &ev {
                s.handle_event(e);
            }
            talk(s, "", vec![])
                .iter()
                .filter_map(|p| p.get("Event").map(str::to_owned))
                .collect()
        };
        // Not logged in: nothing.
        let mut s = Session::new(config(), 1);
        assert!(names(&mut s).is_empty());
        // Events: dtmf only.
        let mut s = Session::new(config(), 1);
        let p = talk(
            &mut s,
            "Action: Login\r\nUsername: dialer\r\nSecret: changeme-ami\r\nEvents: dtmf\r\n\r\n",
            vec![],
        );
        assert_eq!(p.len(), 1, "no FullyBooted without the system class: {p:?}");
        assert_eq!(names(&mut s), ["DTMFBegin", "DTMFEnd"]);
        // The Events action switches them off, then to call only.
        let p = talk(
            &mut s,
            "Action: Events\r\nActionID: e\r\nEventMask: off\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Events"), Some("Off"));
        assert!(names(&mut s).is_empty());
        talk(&mut s, "Action: Events\r\nEventMask: call\r\n\r\n", vec![]);
        assert_eq!(names(&mut s), ["Newchannel"]);
        // A user who may read only `call` never gets DTMF, whatever it asks.
        let mut s = Session::new(config(), 1);
        talk(
            &mut s,
            "Action: Login\r\nUsername: watcher\r\nSecret: w\r\nEvents: on\r\n\r\n",
            vec![],
        );
        assert_eq!(names(&mut s), ["Newchannel"]);
        // ...and may not run actions that need write classes.
        let p = talk(&mut s, "Action: CoreShowChannels\r\n\r\n", vec![]);
        assert_eq!(p[0].get("Message"), Some("Permission denied"));
    }

    #[test]
    fn core_show_channels_and_status_are_lists_with_the_action_id_on_every_packet() {
        let (t, _) = call_events();
        let mut s = Session::new(config(), 1);
        login(&mut s);
        let p = talk(
            &mut s,
            "Action: CoreShowChannels\r\nActionID: l1\r\n\r\n",
            t.channels(),
        );
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|x| x.get("ActionID") == Some("l1")));
        assert_eq!(p[0].get("EventList"), Some("start"));
        assert_eq!(p[1].get("Event"), Some("CoreShowChannel"));
        assert_eq!(p[1].get("Channel"), Some("PJSIP/100-00000001"));
        assert_eq!(p[1].get("Duration"), Some("00:01:00"));
        assert_eq!(p[2].get("Event"), Some("CoreShowChannelsComplete"));
        assert_eq!(p[2].get("EventList"), Some("Complete"));
        assert_eq!(p[2].get("ListItems"), Some("1"));
        let p = talk(
            &mut s,
            "Action: Status\r\nActionID: s\r\n\r\n",
            t.channels(),
        );
        assert_eq!(p[1].get("Event"), Some("Status"));
        assert_eq!(p[2].get("Event"), Some("StatusComplete"));
        let p = talk(
            &mut s,
            "Action: Status\r\nChannel: PJSIP/9-1\r\n\r\n",
            t.channels(),
        );
        assert_eq!(p[0].get("Message"), Some("No such channel"));
        let p = talk(&mut s, "Action: CoreShowChannels\r\n\r\n", vec![]);
        assert_eq!(p.last().unwrap().get("ListItems"), Some("0"));
    }

    #[test]
    fn command_answers_core_show_channels_and_refuses_other_commands() {
        let (t, _) = call_events();
        let mut s = Session::new(config(), 1);
        login(&mut s);
        let p = talk(
            &mut s,
            "Action: Command\r\nActionID: c\r\nCommand: core show channels\r\n\r\n",
            t.channels(),
        );
        assert_eq!(p[0].get("Response"), Some("Success"));
        let out: Vec<&str> = p[0]
            .headers()
            .iter()
            .filter(|(k, _)| k == "Output")
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(out[1].starts_with("PJSIP/100-00000001"), "{out:?}");
        assert_eq!(out[2], "1 active channel");
        assert_eq!(out[3], "1 active call");
        let p = talk(
            &mut s,
            "Action: Command\r\nCommand: module unload x\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Error"));
    }

    #[test]
    fn garbage_and_oversized_packets_get_an_error_and_the_session_goes_on() {
        let mut s = Session::new(config(), 1);
        let mut junk = vec![b'x'; 5_000];
        junk.extend_from_slice(b"\r\n\r\n");
        s.handle_input(0, &junk, &mut Vec::new);
        s.handle_input(0, &[0xff, 0x00, 0x13, b'\n', b'\n'], &mut Vec::new);
        let out = s.poll_transmit().unwrap();
        assert!(out.contains("Message: line too long"), "{out}");
        assert!(matches!(s.poll_event(), Some(SessionEvent::BadPacket(_))));
        login(&mut s);
    }

    #[test]
    fn a_user_prints_without_its_secret() {
        let text = format!("{:?}", config().users[0]);
        assert!(!text.contains("changeme-ami"), "{text}");
    }

    #[test]
    fn hangup_becomes_a_switch_request_and_is_answered_as_asterisk_does() {
        let mut s = Session::new(config(), 1);
        login(&mut s);
        // The request waits for the switch; the Ping behind it waits too.
        let p = talk(
            &mut s,
            "Action: Hangup\r\nActionID: h1\r\nChannel: PJSIP/101-00000002\r\nCause: 17\r\n\r\nAction: Ping\r\nActionID: p1\r\n\r\n",
            vec![],
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            s.poll_request(),
            Some(SwitchRequest::Hangup {
                channel: "SIP/101-00000002".into(),
                cause: 17
            })
        );
        assert_eq!(s.poll_request(), None);
        s.hangup_done(true);
        let p = talk(&mut s, "", vec![]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].get("Response"), Some("Success"));
        assert_eq!(p[0].get("Message"), Some("Channel Hungup"));
        assert_eq!(p[0].get("ActionID"), Some("h1"));
        assert_eq!(p[1].get("ActionID"), Some("p1"));
        // Unknown channel, default cause.
        talk(
            &mut s,
            "Action: Hangup\r\nActionID: h2\r\nChannel: PJSIP/999-00000009\r\n\r\n",
            vec![],
        );
        assert_eq!(
            s.poll_request(),
            Some(SwitchRequest::Hangup {
                channel: "SIP/999-00000009".into(),
                cause: 16
            })
        );
        s.hangup_done(false);
        let p = talk(&mut s, "", vec![]);
        assert_eq!(p[0].get("Response"), Some("Error"));
        assert_eq!(p[0].get("Message"), Some("No such channel"));
        assert_eq!(p[0].get("ActionID"), Some("h2"));
        // Bad input: no request.
        let p = talk(&mut s, "Action: Hangup\r\n\r\n", vec![]);
        assert_eq!(p[0].get("Message"), Some("No channel specified"));
        let p = talk(
            &mut s,
            "Action: Hangup\r\nChannel: PJSIP/1\r\nCause: x\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Message"), Some("Invalid cause"));
        assert_eq!(s.poll_request(), None);
        // The call write class is needed.
        let mut w = Session::new(config(), 1);
        let p = talk(
            &mut w,
            "Action: Login\r\nUsername: watcher\r\nSecret: w\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Response"), Some("Success"));
        let p = talk(
            &mut w,
            "Action: Hangup\r\nChannel: PJSIP/101-00000002\r\n\r\n",
            vec![],
        );
        assert_eq!(p[0].get("Message"), Some("Permission denied"));
        assert_eq!(w.poll_request(), None);
    }
}
