//! Carillon's voicemail, sans-IO: what `voicemail.toml` says
//! ([`config`]), the mailboxes' messages as the switch knows them
//! ([`index`]), and the state machines of the two dialplan applications
//! ([`session`]): `VoiceMail` (greeting, beep, record, keep or discard)
//! and `VoiceMailMain` (login, counts, the message and options menus).
//!
//! It owns no file and no database: a session asks its host (the dialplan
//! execution, hence the switch) to play prompts, record to a path and
//! collect digits, and hands it [`Persist`] operations (store a message's
//! row, mark it read, move it to a folder, delete its row and file, change
//! a PIN) that the binary carries out off the signalling path. The
//! [`Voicemail`] handle shares the configuration and the index between the
//! sessions of one switch; it is only touched on the switch's thread
//! (the mutex is never contended) and never does I/O.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod index;
pub mod session;

pub use config::{Mailbox, VoicemailConfig, DEFAULT_DIR};
pub use index::{Folder, GreetingKind, MailboxIndex, Message};
pub use session::{Action, DepositKind, Persist, Prompt, Session, VmStatus};

use std::sync::{Arc, Mutex, MutexGuard};

/// The switch's voicemail: configuration and message index, shared by
/// every running session (cheap to clone). A reload replaces the
/// configuration and keeps the index.
#[derive(Debug, Clone)]
pub struct Voicemail {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<VoicemailConfig>,
    pub(crate) index: MailboxIndex,
    /// Messages whose caller hung up while recording, by file: they are
    /// kept (or discarded) when the recording's end is reported.
    pub(crate) orphans: std::collections::HashMap<std::path::PathBuf, Message>,
}

impl Voicemail {
    /// A handle over `config` with the messages already stored (`index`).
    pub fn new(config: VoicemailConfig, index: MailboxIndex) -> Voicemail {
        Voicemail {
            shared: Arc::new(Mutex::new(Shared {
                config: Arc::new(config),
                index,
                orphans: std::collections::HashMap::new(),
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding it cannot leave the plain data half
        // changed in a way that matters more than losing voicemail.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the configuration (reload); messages are kept.
    pub fn set_config(&self, config: VoicemailConfig) {
        self.lock().config = Arc::new(config);
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<VoicemailConfig> {
        Arc::clone(&self.lock().config)
    }

    /// A recording ended after its call did (the media plane reports
    /// the end later): when it is a message whose caller hung up while
    /// recording, it is kept if it lasts a second or more (in the index,
    /// and the returned `Persist::Store`) or its file discarded; `None`
    /// for any other recording.
    pub fn orphan_recording_done(
        &self,
        path: &std::path::Path,
        duration_ms: u64,
        failed: bool,
    ) -> Option<Persist> {
        let mut shared = self.lock();
        let mut message = shared.orphans.remove(path)?;
        if failed {
            return None;
        }
        if u128::from(duration_ms) < session::MIN_MESSAGE.as_millis() {
            return Some(Persist::Discard {
                path: path.to_path_buf(),
            });
        }
        message.duration_ms = duration_ms;
        shared.index.insert(message.clone());
        Some(Persist::Store(message))
    }

    /// (new, old) message counts of `mailbox`.
    pub fn counts(&self, mailbox: &str) -> (usize, usize) {
        self.lock().index.counts(mailbox)
    }

    /// A copy of `mailbox`'s messages, new first.
    pub fn messages(&self, mailbox: &str) -> Vec<Message> {
        self.lock().index.messages(mailbox).to_vec()
    }
}
