//! Intake: a new INVITE becomes a call, and the caller's channel is
//! answered.
//!
//! Owns the path from an out-of-dialog INVITE (already past the request
//! policies and digest auth) to a [`Call`]: caller limits (`max_calls`,
//! `max_cps`), the session-timer and SDP negotiation of leg A, its
//! [`Channel`] and [`model::Inbound`] side, its media leg, the dialplan
//! execution that starts on it; then the delayed 100 Trying and the
//! answer of the caller's channel (the dialplan's `Answer`, or a callee's
//! 2xx), which stamps the CDR's answer time. Outbound channels are
//! [`dial`]'s; the messages themselves are built in [`messages`].

use std::time::{Duration, Instant};

use carillon_dialplan::{CallInfo, Dialplan, Execution};
use carillon_events::ChannelState;
use carillon_mediactl::{MediaCommand, SessionId};
use carillon_sdp::{AnswerPolicy, SessionDescription};
use carillon_sip::{HeaderName, Message, RequestParts};
use tracing::{debug, info, warn};

use super::dial::codec_list;
use super::messages::allows_update;
use super::model::{Call, CallState, ChanState, Inbound};
use super::{
    execution, hold, leg_params, prack, recording, session_timer, Caller, LegRef, Timer,
    TRYING_AFTER,
};
use crate::endpoint::{response_route, Peer};
use crate::header_text;
use crate::switch::Switch;

/// The calling number of a call from `trunk`: the From user, normalised
/// with the trunk's `numbering` rule set (`[numbering.NAME]` of the
/// dialplan, e.g. `03001234567` → `+923001234567`), so that the dialplan's
/// `${CALLERID(num)}`, the From/P-Asserted-Identity of the outbound leg and
/// the CDR's `src` all see the normalised number.
pub(super) fn trunk_caller_number(
    plan: &Dialplan,
    trunk: &str,
    config: Option<&carillon_trunk::TrunkConfig>,
    from_user: &str,
) -> String {
    let Some(name) = config.and_then(|c| c.numbering.as_deref()) else {
        return from_user.to_owned();
    };
    match plan.numbering(name) {
        Some(rules) => rules.normalise(from_user),
        None => {
            warn!(trunk = %trunk, numbering = %name, "the trunk's numbering names no [numbering.NAME] rule set in the dialplan: caller number left as sent");
            from_user.to_owned()
        }
    }
}

impl Switch {
    /// A new INVITE (no To tag) from an authenticated user or a trunk.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle_new_invite(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
        parts: &RequestParts<'_>,
        caller: Caller,
    ) -> u16 {
        let Some(plan) = self.calls.config.dialplan.clone() else {
            self.respond(now, key, msg, peer, 503, |b| b.reason("No Dialplan"));
            return 503;
        };
        // Caller identity and context.
        let from = msg
            .header(HeaderName::From)
            .unwrap_or_default()
            .into_owned();
        // Validation parsed From and the Request-URI already.
        let is_trunk = matches!(caller, Caller::Trunk(_));
        let from_user = if is_trunk {
            parts
                .from
                .uri
                .user_unescaped()
                .map(|u| u.into_owned())
                .unwrap_or_default()
        } else {
            // Only a trunk's caller is named by the From user.
            String::new()
        };
        let from_name = parts
            .from
            .display_unquoted()
            .map(|d| d.into_owned())
            .unwrap_or_default();
        let from_tag = parts.from.tag().map(str::to_owned);
        let (context, caller_num, caller_name, codecs, trunk) = match &caller {
            Caller::User(u) => {
                let user = self.users.get(u);
                let ctx = user.map_or_else(|| "internal".to_owned(), |x| x.context.clone());
                let codecs = user.map(|x| x.codecs.clone()).unwrap_or_default();
                (
                    ctx,
                    u.clone(),
                    if from_name.is_empty() {
                        u.clone()
                    } else {
                        from_name
                    },
                    codecs,
                    None,
                )
            }
            Caller::Trunk(t) => {
                let config = self.trunks.as_ref().and_then(|x| x.set().get(t));
                (
                    config
                        .and_then(|c| c.context.clone())
                        .unwrap_or_else(|| format!("from-{t}")),
                    trunk_caller_number(&plan, t, config, &from_user),
                    from_name,
                    Vec::new(),
                    Some(t.clone()),
                )
            }
        };
        let exten = parts
            .request_uri
            .user_unescaped()
            .map(|x| x.into_owned())
            .unwrap_or_default();

        // Session timer (RFC 4028 §6): too small an interval gets a 422.
        let a_session = session_timer::negotiate_uas(msg);
        if let session_timer::UasNegotiation::TooSmall { min_se } = a_session {
            info!(caller = ?caller, min_se, "Session-Expires below our minimum: 422");
            self.respond(now, key, msg, peer, 422, |b| {
                b.header("Min-SE", min_se.to_string())
            });
            return 422;
        }
        // Per-user limits (users.toml `max_calls`, `max_cps`).
        let caller_user = match &caller {
            Caller::User(u) => Some(u.clone()),
            Caller::Trunk(_) => None,
        };
        if let Some(u) = &caller_user {
            if let Err(exceeded) = self.check_caller_limits(now, u) {
                return self.refuse_over_limit(
                    now,
                    now_ms,
                    key,
                    peer,
                    msg,
                    (&caller_num, &caller_name),
                    &exten,
                    &context,
                    exceeded,
                );
            }
        }

        // SDP offer on A.
        let offer = match SessionDescription::parse(msg.body()) {
            Ok(o) if !msg.body().is_empty() => o,
            _ => {
                info!(caller = ?caller, "INVITE without an SDP offer refused");
                self.respond(now, key, msg, peer, 488, |b| b.reason("SDP offer required"));
                return 488;
            }
        };
        let call_key = self.calls.next_id();
        let session = SessionId(call_key);
        let Some(port) = self.calls.free_ports.take(session) else {
            warn!("RTP port range exhausted");
            self.respond(now, key, msg, peer, 503, |b| b.reason("No Media Ports"));
            return 503;
        };
        let allowed = codec_list(&codecs, &self.calls.config.default_codecs);
        let a_dtmf = self.dtmf_mode_of_caller(&caller);
        let policy = AnswerPolicy {
            allowed,
            prefer_offerer_order: false,
            local_address: self.calls.config.media_ip,
            local_port: port,
            telephone_event: a_dtmf.negotiates_telephone_event(),
            ptime: Some(20),
            session_id: self.rng_u64() >> 1,
            session_version: 1,
            username: "carillon".into(),
        };
        let (answer, a_plan) = match carillon_sdp::answer(&offer, &policy) {
            Ok(x) => x,
            Err(e) => {
                self.calls.free_ports.give(port);
                info!(error = %e, "no common codec with the caller");
                self.respond(now, key, msg, peer, 488, |b| b);
                return 488;
            }
        };
        // Unique across switches sharing one database: time, call number and
        // 32 random bits (an insert with an existing id would be skipped).
        let uniqueid = {
            let mut id = String::with_capacity(40);
            header_text::push_u64(&mut id, now_ms / 1000);
            id.push('.');
            header_text::push_u64(&mut id, call_key);
            id.push('-');
            header_text::push_hex08(&mut id, u64::from(self.rng_u64() as u32));
            id
        };
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        // The route the server transaction kept for this INVITE.
        let route = self
            .table
            .route_of(key)
            .unwrap_or_else(|| response_route(msg, peer).0);
        let mut a = self.new_leg(
            call_id.clone(),
            route,
            port,
            header_text::channel(&caller_num, call_key),
        );
        a.remote_tag = from_tag;
        a.remote_uri = from;
        a.local_uri = msg.header(HeaderName::To).unwrap_or_default().into_owned();
        // Validation parsed the Contact: when the first line is one element
        // that is the name-addr the line parses as.
        a.remote_target = match (msg.header_str(HeaderName::Contact), parts.contacts.first()) {
            (Some(line), Some(c)) if !line.contains(',') => c.uri.as_str().to_owned(),
            _ => msg
                .with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
                .unwrap_or_default(),
        };
        a.route_set = msg.header_list(HeaderName::RecordRoute).unwrap_or_default();
        a.local_cseq = 1;
        let a_params = leg_params(&a_plan);
        a.plan = Some(a_plan);
        a.local_sdp = Some(answer);
        a.state = ChanState::Early;
        a.peer_allows_update = allows_update(msg);
        a.dtmf_mode = a_dtmf;
        let a_rel = prack::ReliableSender::new(
            prack::Rel::of(msg),
            (self.rng_u64() as u32) >> 1,
            parts.cseq.seq,
            !peer.transport.is_reliable(),
            self.calls.config.timers.t1,
        );

        let info = CallInfo {
            caller_num: caller_num.clone(),
            caller_name: caller_name.clone(),
            uniqueid: uniqueid.clone(),
            variables: Vec::new(),
            language: None,
        };
        let wall = std::time::UNIX_EPOCH + Duration::from_millis(now_ms);
        let exec = match Execution::start(&plan, &context, &exten, info, now, wall) {
            Ok(e) => e,
            Err(e) => {
                self.calls.free_ports.give(port);
                info!(caller = %caller_num, exten = %exten, context = %context, error = %e, "no route");
                self.respond(now, key, msg, peer, 404, |b| b);
                return 404;
            }
        };
        if let Some(params) = a_params {
            self.media(MediaCommand::OpenLeg {
                session,
                leg: a.id,
                local_port: port,
                params,
            });
            self.media_dtmf_mode(session, a.id, a.dtmf_mode);
            a.media_open = true;
        }
        info!(call = call_key, caller = %caller_num, exten = %exten, context = %context, trunk = ?trunk, "call started");
        self.stats.calls_started += 1;
        self.calls.by_call_id.insert(
            call_id,
            LegRef {
                call: call_key,
                leg: a.id,
            },
        );
        self.calls.by_session.insert(session, call_key);
        let call = Call {
            session,
            uniqueid,
            a,
            inbound: Inbound::new(key.to_owned(), msg.clone(), peer, a_rel, a_session),
            forks: Vec::new(),
            bridge: None,
            exec: Some(exec),
            state: CallState::Routing,
            dial_deadline: None,
            wait_deadline: None,
            caller_num,
            caller_name,
            exten,
            context,
            trunk,
            start_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
            answer_ms: None,
            last_dial_status: None,
            cancelled: false,
            hangup_cause: 16,
            caller_user,
            early_leg: None,
            answered_channel: None,
            dial_open: false,
            hold: hold::Hold::Off,
            mixmonitor: recording::MixMonitor::Off,
            recording: None,
            record_app: None,
            exec_media: execution::ExecMedia::default(),
            transfer: None,
        };
        let a_id = call.a.id;
        self.calls.calls.insert(call_key, call);
        self.emit_channel_created(call_key, a_id);
        self.run_dialplan(now, now_ms, call_key);
        if self.table.has_responded(key) == Some(false) {
            self.calls
                .schedule(now + TRYING_AFTER, Timer::Trying(call_key));
        }
        100
    }

    /// 100 Trying to the caller if its INVITE still has no response.
    pub(super) fn send_trying(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        if self.table.has_responded(&call.inbound.key) != Some(false) {
            return;
        }
        let (a_key, invite, peer) = (
            call.inbound.key.clone(),
            call.inbound.invite.clone(),
            call.inbound.peer,
        );
        self.respond(now, &a_key, &invite, peer, 100, |b| b);
    }

    /// Answers A with 200 and our SDP (Answer application or bridge).
    pub(super) fn answer_a(&mut self, now: Instant, key: u64, now_ms: Option<u64>) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.inbound.answered {
            return;
        }
        call.inbound.answered = true;
        call.a.state = ChanState::Up;
        if let Some(ms) = now_ms {
            call.answer_ms = Some(i64::try_from(ms).unwrap_or(i64::MAX));
        }
        let a_id = call.a.id;
        self.emit_state(key, a_id, ChannelState::Up);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if prack::answer_must_wait(call) {
            // RFC 3262 §3: no 2xx while a reliable provisional (with our
            // SDP) is unacknowledged; the PRACK releases it.
            debug!(call = key, "answer waits for the caller's PRACK");
            return;
        }
        self.respond_a(now, key, 200, true);
    }
}
