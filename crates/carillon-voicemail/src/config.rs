//! `voicemail.toml`: the mailboxes and where messages are kept, loaded
//! through `carillon-tomlconf` (every problem as `file:line: key:
//! message`, unknown keys refused).
//!
//! ```toml
//! [voicemail]
//! dir = "var/voicemail"      # default; messages under DIR/<mailbox>/
//! max_message = 180          # seconds, default for every mailbox
//! max_messages = 100         # default for every mailbox
//! max_silence = 5            # seconds of silence that end a message
//! smtp = "127.0.0.1:25"      # optional: mail relay for new messages (plain SMTP, no auth)
//! from = "voicemail@pbx.example.com"  # the mails' sender (default carillon@localhost)
//!
//! [mailbox.600]
//! pin = "6000"               # digits
//! name = "Complaints"
//! language = "en"            # prompts of VoiceMailMain and the default greeting
//! greeting_unavailable = "/srv/greetings/600-unavail.wav"   # optional
//! greeting_busy = "/srv/greetings/600-busy.wav"             # optional
//! max_message = 120          # optional, overrides [voicemail]
//! max_messages = 50          # optional
//! email = "quality@example.com"  # optional: new messages are mailed here (needs smtp)
//! ```
//!
//! Owns only the schema and its validation; the messages are
//! [`crate::index`]'s.

use carillon_tomlconf::{ConfigProblem, Kind, Loader, Node};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[voicemail] dir` when not given (relative to the working directory,
/// like `[recording] dir`).
pub const DEFAULT_DIR: &str = "var/voicemail";
const DEFAULT_MAX_MESSAGE: Duration = Duration::from_secs(180);
const DEFAULT_MAX_MESSAGES: u32 = 100;
const DEFAULT_MAX_SILENCE: Duration = Duration::from_secs(5);

/// One mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Digits (`600`).
    pub number: String,
    /// Digits.
    pub pin: String,
    pub name: String,
    /// Prompt language (`en`, `ar`, `fr`, `ur`); `None`: the caller's.
    pub language: Option<String>,
    pub greeting_unavailable: Option<PathBuf>,
    pub greeting_busy: Option<PathBuf>,
    pub max_message: Duration,
    pub max_messages: u32,
    pub email: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailConfig {
    /// Where messages and recorded greetings live.
    pub dir: PathBuf,
    pub max_silence: Duration,
    /// `host:port` of the mail relay new messages are sent through.
    pub smtp: Option<String>,
    /// The sender of those mails.
    pub mail_from: String,
    pub mailboxes: BTreeMap<String, Mailbox>,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        VoicemailConfig {
            dir: PathBuf::from(DEFAULT_DIR),
            max_silence: DEFAULT_MAX_SILENCE,
            smtp: None,
            mail_from: "carillon@localhost".to_owned(),
            mailboxes: BTreeMap::new(),
        }
    }
}

impl VoicemailConfig {
    /// The mailbox numbered `number`.
    pub fn mailbox(&self, number: &str) -> Option<&Mailbox> {
        self.mailboxes.get(number)
    }

    /// Loads and validates `text` (`file_name` labels the problems).
    pub fn load(file_name: &str, text: &str) -> Result<VoicemailConfig, Vec<ConfigProblem>> {
        carillon_tomlconf::load(file_name, text, load_root)
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_language(s: &str) -> bool {
    (2..=8).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Defaults {
    max_message: Duration,
    max_messages: u32,
}

fn load_root(lo: &mut Loader<'_>, root: &Node) -> Option<VoicemailConfig> {
    let mut fields = lo.fields("", root)?;
    let general = fields.get("voicemail");
    let boxes = fields.get("mailbox");
    lo.finish(fields, &["voicemail", "mailbox"], "the voicemail file");
    let mut config = VoicemailConfig::default();
    let mut defaults = Defaults {
        max_message: DEFAULT_MAX_MESSAGE,
        max_messages: DEFAULT_MAX_MESSAGES,
    };
    if let Some((path, node)) = general {
        if let Some(mut f) = lo.fields(&path, node) {
            if let Some((p, n)) = f.get("dir") {
                if let Some(dir) = lo.nonempty(&p, n) {
                    config.dir = PathBuf::from(dir);
                }
            }
            if let Some((p, n)) = f.get("max_message") {
                if let Some(d) = lo.seconds(&p, n, false, 3600.0) {
                    defaults.max_message = d;
                }
            }
            if let Some((p, n)) = f.get("max_messages") {
                if let Some(m) = lo.integer(&p, n, 1, 9999) {
                    defaults.max_messages = u32::try_from(m).unwrap_or(DEFAULT_MAX_MESSAGES);
                }
            }
            if let Some((p, n)) = f.get("max_silence") {
                if let Some(d) = lo.seconds(&p, n, false, 60.0) {
                    config.max_silence = d;
                }
            }
            if let Some((p, n)) = f.get("smtp") {
                if let Some(addr) = lo.nonempty(&p, n) {
                    if addr.rsplit_once(':').is_some_and(|(h, port)| {
                        !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                    }) {
                        config.smtp = Some(addr);
                    } else {
                        lo.report(n.line, &p, format!("'{addr}' is not host:port"));
                    }
                }
            }
            if let Some((p, n)) = f.get("from") {
                if let Some(from) = lo.nonempty(&p, n) {
                    if from.contains('@') && !from.contains(['<', '>', '\r', '\n']) {
                        config.mail_from = from;
                    } else {
                        lo.report(n.line, &p, format!("'{from}' is not an e-mail address"));
                    }
                }
            }
            lo.finish(
                f,
                &[
                    "dir",
                    "max_message",
                    "max_messages",
                    "max_silence",
                    "smtp",
                    "from",
                ],
                "[voicemail]",
            );
        }
    }
    if let Some((path, node)) = boxes {
        let Kind::Table(entries) = &node.kind else {
            lo.expected(&path, node, "[mailbox.NUMBER] tables");
            return None;
        };
        for entry in entries {
            let box_path = carillon_tomlconf::join(&path, &entry.key);
            if !is_digits(&entry.key) {
                lo.report(
                    entry.value.line,
                    &box_path,
                    format!("bad mailbox number '{}' (digits only)", entry.key),
                );
                continue;
            }
            if let Some(mailbox) = load_mailbox(lo, &box_path, &entry.key, &entry.value, &defaults)
            {
                config.mailboxes.insert(entry.key.clone(), mailbox);
            }
        }
    }
    Some(config)
}

const MAILBOX_KEYS: &[&str] = &[
    "pin",
    "name",
    "language",
    "greeting_unavailable",
    "greeting_busy",
    "max_message",
    "max_messages",
    "email",
];

fn load_mailbox(
    lo: &mut Loader<'_>,
    path: &str,
    number: &str,
    node: &Node,
    defaults: &Defaults,
) -> Option<Mailbox> {
    let mut f = lo.fields(path, node)?;
    let owner = format!("mailbox {number}");
    let pin = lo.required(&mut f, "pin", &owner).and_then(|(p, n)| {
        let pin = lo.string(&p, n)?;
        if is_digits(pin) {
            Some(pin.to_owned())
        } else {
            lo.report(n.line, &p, "a PIN is digits only");
            None
        }
    });
    let name = match f.get("name") {
        Some((p, n)) => lo.nonempty(&p, n),
        None => Some(number.to_owned()),
    };
    let language = match f.get("language") {
        Some((p, n)) => match lo.string(&p, n) {
            Some(l) if is_language(l) => Some(Some(l.to_owned())),
            Some(l) => {
                lo.report(n.line, &p, format!("'{l}' is not a language code"));
                None
            }
            None => None,
        },
        None => Some(None),
    };
    let mut greeting = |key: &str, lo: &mut Loader<'_>| match f.get(key) {
        Some((p, n)) => lo.nonempty(&p, n).map(|s| Some(PathBuf::from(s))),
        None => Some(None),
    };
    let greeting_unavailable = greeting("greeting_unavailable", lo);
    let greeting_busy = greeting("greeting_busy", lo);
    let max_message = match f.get("max_message") {
        Some((p, n)) => lo.seconds(&p, n, false, 3600.0),
        None => Some(defaults.max_message),
    };
    let max_messages = match f.get("max_messages") {
        Some((p, n)) => lo
            .integer(&p, n, 1, 9999)
            .and_then(|m| u32::try_from(m).ok()),
        None => Some(defaults.max_messages),
    };
    let email = match f.get("email") {
        Some((p, n)) => match lo.nonempty(&p, n) {
            Some(e) if e.contains('@') && !e.contains(['<', '>', '\r', '\n']) => Some(Some(e)),
            Some(e) => {
                lo.report(n.line, &p, format!("'{e}' is not an e-mail address"));
                None
            }
            None => None,
        },
        None => Some(None),
    };
    lo.finish(f, MAILBOX_KEYS, &owner);
    Some(Mailbox {
        number: number.to_owned(),
        pin: pin?,
        name: name?,
        language: language?,
        greeting_unavailable: greeting_unavailable?,
        greeting_busy: greeting_busy?,
        max_message: max_message?,
        max_messages: max_messages?,
        email: email?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        VoicemailConfig::load("voicemail.toml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_mailbox_gets_the_general_limits_unless_it_sets_its_own() {
        let c = VoicemailConfig::load(
            "voicemail.toml",
            r#"
[voicemail]
dir = "/srv/vm"
max_message = 60
max_messages = 10
smtp = "127.0.0.1:2525"

[mailbox.600]
pin = "6000"
name = "Complaints"
language = "ar"
max_messages = 3
email = "q@example.com"

[mailbox.100]
pin = "1234"
"#,
        )
        .unwrap();
        assert_eq!(c.dir, PathBuf::from("/srv/vm"));
        assert_eq!(c.smtp.as_deref(), Some("127.0.0.1:2525"));
        assert_eq!(c.mail_from, "carillon@localhost");
        let m = c.mailbox("600").unwrap();
        assert_eq!(m.max_message, Duration::from_secs(60));
        assert_eq!(m.max_messages, 3);
        assert_eq!(m.language.as_deref(), Some("ar"));
        assert_eq!(m.email.as_deref(), Some("q@example.com"));
        let m = c.mailbox("100").unwrap();
        assert_eq!(m.name, "100");
        assert_eq!(m.max_messages, 10);
        assert_eq!(m.language, None);
    }

    #[test]
    fn an_empty_file_is_no_mailbox_under_the_default_directory() {
        let c = VoicemailConfig::load("voicemail.toml", "").unwrap();
        assert_eq!(c.dir, PathBuf::from(DEFAULT_DIR));
        assert!(c.mailboxes.is_empty());
    }

    #[test]
    fn bad_values_and_unknown_keys_name_their_line_and_key() {
        let p = problems(
            r#"
[voicemail]
dirr = "x"

[mailbox.600]
pin = "60a0"
max_message = 0
colour = "red"

[mailbox.sales]
pin = "1"

[mailbox.601]
name = "no pin"
"#,
        );
        assert_eq!(
            p,
            [
                "voicemail.toml:3: voicemail.dirr: unknown key 'dirr' for [voicemail] (expected one of: dir, max_message, max_messages, max_silence, smtp, from)",
                "voicemail.toml:6: mailbox.600.pin: a PIN is digits only",
                "voicemail.toml:7: mailbox.600.max_message: 0 seconds is out of range (more than 0 to 3600)",
                "voicemail.toml:8: mailbox.600.colour: unknown key 'colour' for mailbox 600 (expected one of: pin, name, language, greeting_unavailable, greeting_busy, max_message, max_messages, email)",
                "voicemail.toml:10: mailbox.sales: bad mailbox number 'sales' (digits only)",
                "voicemail.toml:13: mailbox.601.pin: mailbox 601 needs 'pin'",
            ]
        );
    }
}
