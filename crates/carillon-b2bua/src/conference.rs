//! Conference rooms (`ConfBridge`): the room configuration of
//! `conferences.toml` and the sans-IO room registry that drives the media
//! plane's mixer.
//!
//! Owns [`ConferenceConfig`] (rooms by number: `max_members`, `moh`;
//! unknown keys, including the not yet implemented `pin`, `announce`,
//! `admin_pin` and `record`, are refused at load with `file:line: key:
//! message`) and [`Rooms`], the live rooms: room → [`MixId`], the mix's
//! session and its members. The first member creates the mix
//! (`CreateMix`), each member's leg is added with the normal role
//! (`AddToMix`), a member leaving is removed (`RemoveFromMix`) and the last
//! one leaving destroys the mix (`DestroyMix`). A member alone hears the
//! room's music on hold ([`RoomAction::StartMoh`], the host picks the
//! playback id), stopped when a second joins.
//!
//! The worker constraint: a mix lives on one media worker and its members
//! must be legs of that worker. The room's mix is created on the first
//! member's session; a caller whose session belongs to another worker is
//! refused ([`JoinError::OtherWorker`], `CONFBRIDGE_RESULT=FAILED`). With one
//! media worker (`[rtp] workers = 1`, the example's setting) every caller
//! can join.

use std::collections::BTreeMap;

use carillon_mediactl::{LegId, MediaCommand, MixId, MixRole, SessionId};
use carillon_tomlconf::{ConfigProblem, Kind, Loader, Node};

/// One room of `conferences.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomConfig {
    /// At most this many members (`None`: no limit).
    pub max_members: Option<u32>,
    /// The music-on-hold class a member alone hears (`None`: silence).
    pub moh: Option<String>,
}

/// `conferences.toml`: `[room.NUMBER]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConferenceConfig {
    pub rooms: BTreeMap<String, RoomConfig>,
}

const ROOM_KEYS: &[&str] = &["max_members", "moh"];

impl ConferenceConfig {
    /// Parses `conferences.toml` (`file_name` for the problems).
    pub fn load(file_name: &str, text: &str) -> Result<ConferenceConfig, Vec<ConfigProblem>> {
        carillon_tomlconf::load(file_name, text, load_root)
    }
}

fn load_root(lo: &mut Loader<'_>, root: &Node) -> Option<ConferenceConfig> {
    let mut fields = lo.fields("", root)?;
    let rooms = fields.get("room");
    lo.finish(fields, &["room"], "the conferences file");
    let mut config = ConferenceConfig::default();
    let Some((path, node)) = rooms else {
        return Some(config);
    };
    let Kind::Table(entries) = &node.kind else {
        lo.expected(&path, node, "[room.NUMBER] tables");
        return None;
    };
    for entry in entries {
        let room_path = carillon_tomlconf::join(&path, &entry.key);
        if entry.key.is_empty() || !entry.key.bytes().all(|b| b.is_ascii_digit()) {
            lo.report(
                entry.value.line,
                &room_path,
                format!("bad room number '{}' (digits only)", entry.key),
            );
            continue;
        }
        let Some(mut f) = lo.fields(&room_path, &entry.value) else {
            continue;
        };
        let mut room = RoomConfig::default();
        if let Some((p, n)) = f.get("max_members") {
            room.max_members = lo
                .integer(&p, n, 1, 1000)
                .and_then(|m| u32::try_from(m).ok());
        }
        if let Some((p, n)) = f.get("moh") {
            room.moh = lo.nonempty(&p, n);
        }
        lo.finish(f, ROOM_KEYS, &format!("room {}", entry.key));
        config.rooms.insert(entry.key.clone(), room);
    }
    Some(config)
}

/// Who a member is: the host's call key and the caller's leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The host's call key.
    pub call: u64,
    pub session: SessionId,
    pub leg: LegId,
}

/// What the host does for a join or a leave, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomAction {
    /// Send this to the media plane.
    Media(MediaCommand),
    /// Play the music-on-hold class to this member (alone in the room);
    /// the host picks the playback id.
    StartMoh {
        session: SessionId,
        leg: LegId,
        class: String,
    },
}

/// Why a caller could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("room {0} is not in conferences.toml")]
    UnknownRoom(String),
    #[error("room {room} is full ({max} members)")]
    Full { room: String, max: u32 },
    #[error("the caller's media worker is not the room's (a mix lives on one worker)")]
    OtherWorker,
    #[error("call {0} is already in a room")]
    AlreadyIn(u64),
}

/// A member's departure.
#[derive(Debug, Clone, PartialEq)]
pub struct Left {
    pub room: String,
    /// Members still in the room.
    pub remaining: usize,
    pub actions: Vec<RoomAction>,
}

#[derive(Debug)]
struct Room {
    mix: MixId,
    /// The session the mix was created with (decides its worker).
    session: SessionId,
    members: Vec<Member>,
}

/// The live rooms.
#[derive(Debug)]
pub struct Rooms {
    config: ConferenceConfig,
    workers: usize,
    rooms: BTreeMap<String, Room>,
    next_mix: u64,
}

impl Rooms {
    /// Rooms of `config`, with `workers` media workers.
    pub fn new(config: ConferenceConfig, workers: usize) -> Rooms {
        Rooms {
            config,
            workers: workers.max(1),
            rooms: BTreeMap::new(),
            next_mix: 1,
        }
    }

    /// Replaces the configuration (reload); live rooms stay as they are.
    pub fn set_config(&mut self, config: ConferenceConfig) {
        self.config = config;
    }

    /// Number of members in `room` (0: no live room).
    pub fn members(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| r.members.len())
    }

    /// The room call `call` is in.
    pub fn room_of(&self, call: u64) -> Option<&str> {
        self.rooms
            .iter()
            .find(|(_, r)| r.members.iter().any(|m| m.call == call))
            .map(|(name, _)| name.as_str())
    }

    /// Number of live rooms (mixes).
    pub fn live(&self) -> usize {
        self.rooms.len()
    }

    /// Adds `member` to `room`; the returned actions create the mix for
    /// the first member, add the leg, and start or stop the music.
    pub fn join(&mut self, room: &str, member: Member) -> Result<Vec<RoomAction>, JoinError> {
        let cfg = self
            .config
            .rooms
            .get(room)
            .ok_or_else(|| JoinError::UnknownRoom(room.to_owned()))?;
        if self.room_of(member.call).is_some() {
            return Err(JoinError::AlreadyIn(member.call));
        }
        let mut actions = Vec::new();
        if let Some(live) = self.rooms.get(room) {
            if let Some(max) = cfg.max_members {
                if live.members.len() >= max as usize {
                    return Err(JoinError::Full {
                        room: room.to_owned(),
                        max,
                    });
                }
            }
            if member.session.worker(self.workers) != live.session.worker(self.workers) {
                return Err(JoinError::OtherWorker);
            }
        } else {
            let mix = MixId(self.next_mix);
            self.next_mix += 1;
            actions.push(RoomAction::Media(MediaCommand::CreateMix {
                session: member.session,
                mix,
            }));
            self.rooms.insert(
                room.to_owned(),
                Room {
                    mix,
                    session: member.session,
                    members: Vec::new(),
                },
            );
        }
        let moh = cfg.moh.clone();
        let Some(live) = self.rooms.get_mut(room) else {
            return Err(JoinError::UnknownRoom(room.to_owned()));
        };
        if moh.is_some() && live.members.len() == 1 {
            let alone = live.members[0];
            actions.push(RoomAction::Media(MediaCommand::StopPlay {
                session: alone.session,
                leg: alone.leg,
            }));
        }
        actions.push(RoomAction::Media(MediaCommand::AddToMix {
            session: live.session,
            mix: live.mix,
            leg: member.leg,
            role: MixRole::normal(),
        }));
        live.members.push(member);
        if let (Some(class), 1) = (moh, live.members.len()) {
            actions.push(RoomAction::StartMoh {
                session: member.session,
                leg: member.leg,
                class,
            });
        }
        Ok(actions)
    }

    /// Call `call` leaves its room (hung up or done): its leg is removed,
    /// the last member's departure destroys the mix, a member left alone
    /// gets the music. `None`: the call was in no room.
    pub fn leave(&mut self, call: u64) -> Option<Left> {
        let name = self.room_of(call)?.to_owned();
        let live = self.rooms.get_mut(&name)?;
        let at = live.members.iter().position(|m| m.call == call)?;
        let member = live.members.remove(at);
        let mut actions = vec![RoomAction::Media(MediaCommand::RemoveFromMix {
            session: live.session,
            mix: live.mix,
            leg: member.leg,
        })];
        let remaining = live.members.len();
        if remaining == 0 {
            actions.push(RoomAction::Media(MediaCommand::DestroyMix {
                session: live.session,
                mix: live.mix,
            }));
            self.rooms.remove(&name);
        } else if remaining == 1 {
            let alone = live.members[0];
            if let Some(class) = self.config.rooms.get(&name).and_then(|c| c.moh.clone()) {
                actions.push(RoomAction::StartMoh {
                    session: alone.session,
                    leg: alone.leg,
                    class,
                });
            }
        }
        Some(Left {
            room: name,
            remaining,
            actions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: Option<u32>, moh: Option<&str>) -> ConferenceConfig {
        let mut rooms = BTreeMap::new();
        rooms.insert(
            "800".to_owned(),
            RoomConfig {
                max_members: max,
                moh: moh.map(str::to_owned),
            },
        );
        ConferenceConfig { rooms }
    }

    fn member(call: u64) -> Member {
        Member {
            call,
            session: SessionId(call * 10),
            leg: LegId(call * 10 + 1),
        }
    }

    fn media(actions: &[RoomAction]) -> Vec<&MediaCommand> {
        actions
            .iter()
            .filter_map(|a| match a {
                RoomAction::Media(m) => Some(m),
                RoomAction::StartMoh { .. } => None,
            })
            .collect()
    }

    #[test]
    fn first_member_creates_the_mix_and_others_join_it() {
        let mut rooms = Rooms::new(config(None, None), 1);
        let a = rooms.join("800", member(1)).unwrap();
        assert_eq!(
            media(&a),
            vec![
                &MediaCommand::CreateMix {
                    session: SessionId(10),
                    mix: MixId(1)
                },
                &MediaCommand::AddToMix {
                    session: SessionId(10),
                    mix: MixId(1),
                    leg: LegId(11),
                    role: MixRole::normal()
                }
            ]
        );
        let b = rooms.join("800", member(2)).unwrap();
        assert_eq!(
            media(&b),
            vec![&MediaCommand::AddToMix {
                session: SessionId(10),
                mix: MixId(1),
                leg: LegId(21),
                role: MixRole::normal()
            }]
        );
        assert_eq!(rooms.members("800"), 2);
        assert_eq!(rooms.room_of(2), Some("800"));
        assert_eq!(rooms.live(), 1);
    }

    #[test]
    fn leaving_removes_and_the_last_destroys_the_mix() {
        let mut rooms = Rooms::new(config(None, None), 1);
        rooms.join("800", member(1)).unwrap();
        rooms.join("800", member(2)).unwrap();
        // The creator leaves first: the mix stays (on its session's worker).
        let left = rooms.leave(1).unwrap();
        assert_eq!(left.remaining, 1);
        assert_eq!(
            media(&left.actions),
            vec![&MediaCommand::RemoveFromMix {
                session: SessionId(10),
                mix: MixId(1),
                leg: LegId(11)
            }]
        );
        let last = rooms.leave(2).unwrap();
        assert_eq!(last.remaining, 0);
        assert_eq!(
            media(&last.actions),
            vec![
                &MediaCommand::RemoveFromMix {
                    session: SessionId(10),
                    mix: MixId(1),
                    leg: LegId(21)
                },
                &MediaCommand::DestroyMix {
                    session: SessionId(10),
                    mix: MixId(1)
                }
            ]
        );
        assert_eq!(rooms.live(), 0);
        assert!(
            rooms.leave(2).is_none(),
            "a hangup after leaving is a no-op"
        );
        // A new first member creates a new mix.
        let again = rooms.join("800", member(3)).unwrap();
        assert!(matches!(
            media(&again)[0],
            MediaCommand::CreateMix { mix: MixId(2), .. }
        ));
    }

    #[test]
    fn a_full_room_refuses_and_keeps_its_members() {
        let mut rooms = Rooms::new(config(Some(2), None), 1);
        rooms.join("800", member(1)).unwrap();
        rooms.join("800", member(2)).unwrap();
        assert_eq!(
            rooms.join("800", member(3)),
            Err(JoinError::Full {
                room: "800".into(),
                max: 2
            })
        );
        assert_eq!(rooms.members("800"), 2);
        assert!(rooms.leave(3).is_none());
        rooms.leave(1).unwrap();
        assert!(rooms.join("800", member(3)).is_ok());
    }

    #[test]
    fn unknown_rooms_and_double_joins_are_refused() {
        let mut rooms = Rooms::new(config(None, None), 1);
        assert_eq!(
            rooms.join("801", member(1)),
            Err(JoinError::UnknownRoom("801".into()))
        );
        assert_eq!(rooms.live(), 0);
        rooms.join("800", member(1)).unwrap();
        assert_eq!(rooms.join("800", member(1)), Err(JoinError::AlreadyIn(1)));
    }

    #[test]
    fn a_member_of_another_worker_is_refused() {
        let mut rooms = Rooms::new(config(None, None), 4);
        rooms.join("800", member(1)).unwrap();
        let first = SessionId(10).worker(4);
        let other = (2..200u64)
            .find(|c| SessionId(c * 10).worker(4) != first)
            .unwrap();
        assert_eq!(
            rooms.join("800", member(other)),
            Err(JoinError::OtherWorker)
        );
        let same = (2..200u64)
            .find(|c| SessionId(c * 10).worker(4) == first)
            .unwrap();
        assert!(rooms.join("800", member(same)).is_ok());
    }

    #[test]
    fn a_member_alone_hears_music_until_a_second_joins() {
        let mut rooms = Rooms::new(config(None, Some("default")), 1);
        let a = rooms.join("800", member(1)).unwrap();
        assert_eq!(
            a.last(),
            Some(&RoomAction::StartMoh {
                session: SessionId(10),
                leg: LegId(11),
                class: "default".into()
            })
        );
        let b = rooms.join("800", member(2)).unwrap();
        assert_eq!(
            b[0],
            RoomAction::Media(MediaCommand::StopPlay {
                session: SessionId(10),
                leg: LegId(11)
            })
        );
        assert!(!b.iter().any(|x| matches!(x, RoomAction::StartMoh { .. })));
        let left = rooms.leave(1).unwrap();
        assert_eq!(
            left.actions.last(),
            Some(&RoomAction::StartMoh {
                session: SessionId(20),
                leg: LegId(21),
                class: "default".into()
            })
        );
    }

    #[test]
    fn conferences_toml_loads_rooms_and_refuses_unknown_keys() {
        let cfg = ConferenceConfig::load(
            "conferences.toml",
            "[room.800]\nmax_members = 10\nmoh = \"default\"\n[room.801]\n",
        )
        .unwrap();
        assert_eq!(cfg.rooms["800"].max_members, Some(10));
        assert_eq!(cfg.rooms["800"].moh.as_deref(), Some("default"));
        assert_eq!(cfg.rooms["801"], RoomConfig::default());
        let errs =
            ConferenceConfig::load("conferences.toml", "[room.800]\npin = \"1234\"\n").unwrap_err();
        let text = errs[0].to_string();
        assert!(
            text.starts_with("conferences.toml:2: room.800.pin"),
            "{text}"
        );
        let errs = ConferenceConfig::load("conferences.toml", "[room.abc]\n").unwrap_err();
        assert!(
            errs[0].to_string().contains("bad room number"),
            "{}",
            errs[0]
        );
        let errs = ConferenceConfig::load("conferences.toml", "[room.800]\nmax_members = 0\n")
            .unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("conferences.toml:2: room.800.max_members"),
            "{}",
            errs[0]
        );
    }
}
