//! The mailbox index: every stored message of every mailbox, the PINs
//! changed by their owners and which greetings were recorded, in memory.
//!
//! The binary loads it from the database (and the greeting files) at
//! start-up; sessions read and update it as messages arrive, are heard,
//! moved and deleted, and hand the same changes to the database writer as
//! [`crate::Persist`] operations. Owns no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A message folder (Asterisk's numbering: the folder digit after `9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Folder {
    Inbox,
    Old,
    Work,
    Family,
    Friends,
}

impl Folder {
    pub const ALL: [Folder; 5] = [
        Folder::Inbox,
        Folder::Old,
        Folder::Work,
        Folder::Family,
        Folder::Friends,
    ];

    /// The folder's name as stored (`INBOX`, `Old`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "INBOX",
            Folder::Old => "Old",
            Folder::Work => "Work",
            Folder::Family => "Family",
            Folder::Friends => "Friends",
        }
    }

    /// The folder of a stored name.
    pub fn parse(name: &str) -> Option<Folder> {
        Folder::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The folder a menu digit selects (`0` INBOX … `4` Friends).
    pub fn from_digit(digit: char) -> Option<Folder> {
        let n = digit.to_digit(10)?;
        Folder::ALL.get(usize::try_from(n).ok()?).copied()
    }
}

/// A greeting a mailbox owner can record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GreetingKind {
    Unavailable,
    Busy,
}

impl GreetingKind {
    /// The file name under the mailbox's directory.
    pub fn file_name(self) -> &'static str {
        match self {
            GreetingKind::Unavailable => "greeting-unavailable.wav",
            GreetingKind::Busy => "greeting-busy.wav",
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique (the recording's file stem).
    pub id: String,
    pub mailbox: String,
    pub caller_num: String,
    pub caller_name: String,
    /// Unix ms.
    pub received_at_ms: i64,
    pub duration_ms: u64,
    pub folder: Folder,
    /// Heard by the owner (a new message is one not read yet).
    pub read: bool,
    /// The WAV file.
    pub path: PathBuf,
}

/// Every mailbox's messages.
#[derive(Debug, Clone, Default)]
pub struct MailboxIndex {
    /// Per mailbox, new messages first, then old, each oldest first.
    messages: BTreeMap<String, Vec<Message>>,
    /// PINs changed by their owners (over the configured ones).
    pins: BTreeMap<String, String>,
    greetings: BTreeSet<(String, GreetingKind)>,
}

impl MailboxIndex {
    /// An index of the given messages (any order), PIN overrides and
    /// recorded greetings.
    pub fn new(
        messages: impl IntoIterator<Item = Message>,
        pins: impl IntoIterator<Item = (String, String)>,
        greetings: impl IntoIterator<Item = (String, GreetingKind)>,
    ) -> MailboxIndex {
        let mut index = MailboxIndex {
            messages: BTreeMap::new(),
            pins: pins.into_iter().collect(),
            greetings: greetings.into_iter().collect(),
        };
        for m in messages {
            index.insert(m);
        }
        index
    }

    fn sort(list: &mut [Message]) {
        list.sort_by(|a, b| {
            (a.read, a.received_at_ms, &a.id).cmp(&(b.read, b.received_at_ms, &b.id))
        });
    }

    /// Adds a message.
    pub fn insert(&mut self, message: Message) {
        let list = self.messages.entry(message.mailbox.clone()).or_default();
        list.push(message);
        Self::sort(list);
    }

    /// `mailbox`'s messages, new first.
    pub fn messages(&self, mailbox: &str) -> &[Message] {
        self.messages.get(mailbox).map_or(&[], Vec::as_slice)
    }

    /// Messages in `mailbox`.
    pub fn count(&self, mailbox: &str) -> usize {
        self.messages(mailbox).len()
    }

    /// (new, old) message counts.
    pub fn counts(&self, mailbox: &str) -> (usize, usize) {
        let list = self.messages(mailbox);
        let new = list.iter().filter(|m| !m.read).count();
        (new, list.len() - new)
    }

    fn find_mut(&mut self, mailbox: &str, id: &str) -> Option<&mut Message> {
        self.messages
            .get_mut(mailbox)?
            .iter_mut()
            .find(|m| m.id == id)
    }

    /// Marks a message heard (an INBOX message moves to Old, as in
    /// Asterisk). The list keeps its order until the next session, so a
    /// session's positions stay valid; returns whether it changed.
    pub fn mark_read(&mut self, mailbox: &str, id: &str) -> bool {
        match self.find_mut(mailbox, id) {
            Some(m) if !m.read => {
                m.read = true;
                if m.folder == Folder::Inbox {
                    m.folder = Folder::Old;
                }
                true
            }
            _ => false,
        }
    }

    /// Moves a message to `folder`; whether it exists.
    pub fn move_to(&mut self, mailbox: &str, id: &str, folder: Folder) -> bool {
        match self.find_mut(mailbox, id) {
            Some(m) => {
                m.folder = folder;
                true
            }
            None => false,
        }
    }

    /// Removes a message; returns it.
    pub fn remove(&mut self, mailbox: &str, id: &str) -> Option<Message> {
        let list = self.messages.get_mut(mailbox)?;
        let at = list.iter().position(|m| m.id == id)?;
        Some(list.remove(at))
    }

    /// Re-sorts a mailbox (new first) when a session ends.
    pub fn resort(&mut self, mailbox: &str) {
        if let Some(list) = self.messages.get_mut(mailbox) {
            Self::sort(list);
        }
    }

    /// The PIN set by the owner, if changed.
    pub fn pin(&self, mailbox: &str) -> Option<&str> {
        self.pins.get(mailbox).map(String::as_str)
    }

    pub fn set_pin(&mut self, mailbox: &str, pin: &str) {
        self.pins.insert(mailbox.to_owned(), pin.to_owned());
    }

    /// Whether the owner recorded this greeting.
    pub fn has_greeting(&self, mailbox: &str, kind: GreetingKind) -> bool {
        self.greetings.contains(&(mailbox.to_owned(), kind))
    }

    pub fn set_greeting(&mut self, mailbox: &str, kind: GreetingKind) {
        self.greetings.insert((mailbox.to_owned(), kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, at: i64, read: bool) -> Message {
        Message {
            id: id.into(),
            mailbox: "600".into(),
            caller_num: "100".into(),
            caller_name: String::new(),
            received_at_ms: at,
            duration_ms: 3000,
            folder: if read { Folder::Old } else { Folder::Inbox },
            read,
            path: PathBuf::from(format!("/vm/600/{id}.wav")),
        }
    }

    #[test]
    fn new_messages_come_first_then_old_each_oldest_first() {
        let index = MailboxIndex::new(
            [
                msg("c", 3, true),
                msg("b", 2, false),
                msg("a", 1, true),
                msg("d", 4, false),
            ],
            [],
            [],
        );
        let ids: Vec<&str> = index
            .messages("600")
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(ids, ["b", "d", "a", "c"]);
        assert_eq!(index.counts("600"), (2, 2));
        assert_eq!(index.counts("601"), (0, 0));
    }

    #[test]
    fn reading_moves_an_inbox_message_to_old_and_remove_forgets_it() {
        let mut index = MailboxIndex::new([msg("a", 1, false)], [], []);
        assert!(index.mark_read("600", "a"));
        assert!(!index.mark_read("600", "a"));
        assert_eq!(index.messages("600")[0].folder, Folder::Old);
        assert!(index.move_to("600", "a", Folder::Work));
        assert_eq!(index.counts("600"), (0, 1));
        assert_eq!(index.remove("600", "a").map(|m| m.id), Some("a".into()));
        assert_eq!(index.count("600"), 0);
    }

    #[test]
    fn folder_digits_and_names_round_trip() {
        assert_eq!(Folder::from_digit('2'), Some(Folder::Work));
        assert_eq!(Folder::from_digit('5'), None);
        for f in Folder::ALL {
            assert_eq!(Folder::parse(f.as_str()), Some(f));
        }
    }
}
