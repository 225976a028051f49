//! The binary's half of voicemail: building the switch's mailbox index at
//! start-up (messages and PINs from the database, recorded greetings from
//! the voicemail directory) and the off-path writer that carries out the
//! switch's `Output::Voicemail` changes: rows in the database
//! (`Store::apply_voicemail`) and files deleted (a message deleted, a
//! recording too short to keep), and, for a mailbox with an `email` when
//! `[voicemail] smtp` is set, the mail of a new message with its WAV
//! ([`crate::voicemail_mail`], a task of its own per mail). The
//! signalling thread only queues; the writer's tasks do the disk, database
//! and network work.
//!
//! Limits: with the database unreachable at start the index starts empty
//! (messages stored before are not listed until a restart with the
//! database), and a change the database refuses for about five seconds
//! is logged and dropped (the file side is still done).

use std::path::{Path, PathBuf};
use std::time::Duration;

use carillon_store::Store;
use carillon_voicemail::{
    GreetingKind, MailboxIndex, Message, Persist, Voicemail, VoicemailConfig,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// `[voicemail] dir` made absolute (the media plane takes absolute paths,
/// and the Record path of a relative one would land under the recordings).
pub fn absolute_dir(config: &mut VoicemailConfig) -> std::io::Result<()> {
    if config.dir.is_relative() {
        config.dir = std::env::current_dir()?.join(&config.dir);
    }
    Ok(())
}

/// The greetings owners recorded: the files present under the directory.
pub fn recorded_greetings(config: &VoicemailConfig) -> Vec<(String, GreetingKind)> {
    let mut out = Vec::new();
    for mailbox in config.mailboxes.keys() {
        for kind in [GreetingKind::Unavailable, GreetingKind::Busy] {
            if config.dir.join(mailbox).join(kind.file_name()).is_file() {
                out.push((mailbox.clone(), kind));
            }
        }
    }
    out
}

/// The index the switch starts with.
pub async fn load_index(store: Option<&Store>, config: &VoicemailConfig) -> MailboxIndex {
    let (messages, pins) = match store {
        Some(store) => {
            let messages = store.load_voicemail_messages().await.unwrap_or_else(|e| {
                warn!(error = %e, "voicemail messages could not be loaded");
                Vec::new()
            });
            let pins = store.load_voicemail_pins().await.unwrap_or_else(|e| {
                warn!(error = %e, "voicemail PINs could not be loaded");
                Vec::new()
            });
            (messages, pins)
        }
        None => (Vec::new(), Vec::new()),
    };
    info!(
        messages = messages.len(),
        changed_pins = pins.len(),
        mailboxes = config.mailboxes.len(),
        "voicemail index loaded"
    );
    MailboxIndex::new(messages, pins, recorded_greetings(config))
}

enum Job {
    Change(Persist),
    Flush(oneshot::Sender<()>),
}

/// The queue of voicemail changes (cheap to clone).
#[derive(Clone)]
pub struct VoicemailWriter {
    tx: mpsc::UnboundedSender<Job>,
}

impl VoicemailWriter {
    /// Starts the writer's task on the current runtime. `store`: the
    /// database when it was reachable at start, else `url` is tried again
    /// when a change comes.
    /// `vm` gives the configuration in force (mail relay, addresses).
    pub fn spawn(store: Option<Store>, url: String, vm: Voicemail) -> VoicemailWriter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            let mut store = store;
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Change(change) => {
                        if let Persist::Store(message) = &change {
                            mail(&vm, message.clone());
                        }
                        apply(&mut store, &url, change).await;
                    }
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        VoicemailWriter { tx }
    }

    /// Queues a change (never waits).
    pub fn submit(&self, change: Persist) {
        if self.tx.send(Job::Change(change)).is_err() {
            warn!("voicemail writer gone: change dropped");
        }
    }

    /// Waits until every change queued before is done.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// The switch's sink.
    pub fn sink(&self) -> Box<dyn FnMut(Persist) + Send> {
        let writer = self.clone();
        Box::new(move |change| writer.submit(change))
    }
}

/// Mails a new message when its mailbox has an address and a relay is
/// configured (a task of its own; the result is logged).
fn mail(vm: &Voicemail, message: Message) {
    let config = vm.config();
    let (Some(relay), Some(to)) = (
        config.smtp.clone(),
        config
            .mailbox(&message.mailbox)
            .and_then(|m| m.email.clone()),
    ) else {
        return;
    };
    let from = config.mail_from.clone();
    tokio::spawn(async move {
        let wav = match tokio::fs::read(&message.path).await {
            Ok(wav) => wav,
            Err(e) => {
                warn!(file = %message.path.display(), error = %e, "voicemail not mailed: file unreadable");
                return;
            }
        };
        let text = crate::voicemail_mail::compose(&from, &to, &message, &wav);
        match crate::voicemail_mail::send(&relay, &from, &to, &text).await {
            Ok(()) => {
                info!(mailbox = %message.mailbox, message = %message.id, to = %to, "voicemail mailed")
            }
            Err(e) => {
                warn!(mailbox = %message.mailbox, message = %message.id, to = %to, error = %e, "voicemail not mailed")
            }
        }
    });
}

async fn remove_file(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => info!(file = %path.display(), "voicemail file deleted"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(file = %path.display(), error = %e, "voicemail file not deleted"),
    }
}

/// Tries of a database change, a second apart.
const TRIES: u32 = 5;

async fn apply(store: &mut Option<Store>, url: &str, change: Persist) {
    let file: Option<PathBuf> = match &change {
        Persist::Delete { path, .. } | Persist::Discard { path } => Some(path.clone()),
        _ => None,
    };
    if let Some(path) = file {
        remove_file(&path).await;
    }
    if matches!(change, Persist::Discard { .. }) {
        return;
    }
    for attempt in 1..=TRIES {
        if store.is_none() {
            *store = Store::connect(url).await.ok();
        }
        if let Some(s) = store.as_ref() {
            match s.apply_voicemail(std::slice::from_ref(&change)).await {
                Ok(_) => return,
                Err(e) => warn!(error = %e, attempt, "voicemail change not stored yet"),
            }
        }
        if attempt < TRIES {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    warn!(change = ?change, "voicemail change dropped: the database did not take it");
}
