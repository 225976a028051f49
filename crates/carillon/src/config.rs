//! Configuration: the TOML files in the config directory (`carillon.toml`,
//! `users.toml` deserialized with serde here; `trunks.toml`,
//! `dialplan.toml` and `queues.toml` through their crates' loaders),
//! validated whole, then
//! cross-checked ([`crate::crosscheck`]). Every problem is reported as
//! `file:line: dotted.key: what is wrong` on one line, and all of them are
//! collected before giving up (a file that does not parse does not stop the
//! others being checked), so `carillon check-config` and `carillon run`
//! show everything an operator must fix in one run.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carillon_b2bua::{DtmfMode, NatMode, PolicyConfig, Transport, User};
use carillon_digest::Algorithm;
use carillon_net::ListenSpec;
use carillon_registrar::RegistrarConfig;
use serde::Deserialize;
use toml::Spanned;

use crate::crosscheck;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// Always one line: a message that spans several (a TOML parser's) is
    /// folded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: ", self.file, self.line, self.key)?;
        let mut lines = self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for more in lines {
            write!(f, "; {more}")?;
        }
        Ok(())
    }
}

/// A problem of a file read by `carillon-tomlconf` (the dialplan, the
/// trunks); a TOML syntax error has no key and is shown as `(syntax)`.
impl From<carillon_tomlconf::ConfigProblem> for Problem {
    fn from(p: carillon_tomlconf::ConfigProblem) -> Self {
        Problem {
            file: p.file,
            line: p.line,
            key: if p.key.is_empty() {
                "(syntax)".into()
            } else {
                p.key
            },
            message: p.message,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MainFile {
    #[serde(default)]
    general: General,
    #[serde(default)]
    listen: Vec<Listen>,
    #[serde(default)]
    database: Database,
    #[serde(default)]
    registrar: Registrar,
    #[serde(default)]
    security: Security,
    #[serde(default)]
    rtp: Rtp,
    #[serde(default)]
    events: Events,
    #[serde(default)]
    sounds: SoundsSection,
    #[serde(default)]
    recording: Recording,
    /// `[moh.<class>]`: music-on-hold classes.
    #[serde(default)]
    moh: std::collections::BTreeMap<String, MohEntry>,
    /// `[ami]`: the AMI-compatible manager interface (absent: off).
    ami: Option<AmiSection>,
    /// `[api]`: the management API (absent: not served).
    api: Option<ApiSection>,
}

/// `[api]`: the management API's listener and tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    /// `address:port` of the HTTP listener.
    address: Spanned<String>,
    /// TLS certificate and key (PEM): refused, TLS is not available yet.
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    /// `[[api.token]]`.
    #[serde(default)]
    token: Vec<ApiTokenEntry>,
}

/// `[[api.token]]`: a bearer token and its role.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiTokenEntry {
    /// A label for logs.
    name: Spanned<String>,
    /// The bearer secret (never logged; hidden from `Debug`).
    secret: Spanned<String>,
    /// `read-only`, `supervisor` or `admin`.
    role: Spanned<String>,
}

impl std::fmt::Debug for ApiTokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenEntry")
            .field("name", self.name.get_ref())
            .field("role", self.role.get_ref())
            .finish_non_exhaustive()
    }
}

/// The management API as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub address: SocketAddr,
    /// Its tokens (their `Debug` hides the secrets).
    pub tokens: Vec<carillon_api::ApiToken>,
}

/// Shortest token secret accepted.
const MIN_TOKEN_LEN: usize = 16;

/// `[ami]`: where the AMI listener binds and who may log in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmiSection {
    address: Spanned<String>,
    /// Connections served at once; more are refused.
    #[serde(default = "default_ami_connections")]
    max_connections: Spanned<i64>,
    #[serde(default)]
    user: Vec<AmiUserEntry>,
}

fn default_ami_connections() -> Spanned<i64> {
    Spanned::new(0..0, 64)
}

/// `[[ami.user]]`: a manager user, its secret and its classes
/// (`manager.conf`'s `read`/`write` lists, e.g. `"call,dtmf"` or `"all"`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmiUserEntry {
    name: Spanned<String>,
    secret: Spanned<String>,
    #[serde(default)]
    read: Option<Spanned<String>>,
    #[serde(default)]
    write: Option<Spanned<String>>,
}

/// Never prints the secret.
impl fmt::Debug for AmiUserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiUserEntry")
            .field("name", self.name.get_ref())
            .finish_non_exhaustive()
    }
}

/// The AMI interface as loaded (`[ami]`).
#[derive(Debug, Clone)]
pub struct AmiConfig {
    pub addr: SocketAddr,
    pub max_connections: usize,
    /// Secrets inside never print (`AmiUser`'s Debug hides them).
    pub users: Vec<carillon_ami::AmiUser>,
}

/// `[sounds]`: where the dialplan's prompts are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoundsSection {
    /// `<dir>/<lang>/<name>.wav`; relative to the configuration
    /// directory's parent (absent: `sounds`).
    dir: Option<Spanned<String>>,
}

/// `[recording]`: where call recordings (MixMonitor, Record) are written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recording {
    /// Directory of the recordings, relative to the working directory like
    /// the database (default `var/recordings`).
    #[serde(default = "default_recording_dir")]
    dir: Spanned<String>,
}

fn default_recording_dir() -> Spanned<String> {
    Spanned::new(0..0, "var/recordings".into())
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            dir: default_recording_dir(),
        }
    }
}

/// `[moh.<class>]`: a folder of 8 kHz 16-bit mono WAV files, played in
/// name order and looped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MohEntry {
    dir: Spanned<String>,
}

/// A music-on-hold class as loaded: its name and its folder (resolved, see
/// [`resolve_relative`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MohConfig {
    pub class: String,
    pub dir: PathBuf,
}

/// Where a relative path of `carillon.toml` that must exist at load (a
/// music-on-hold folder) is found: in the working directory (the base of
/// every relative path of the file, like the database), else next to the
/// configuration directory (a checkout or installation where `config/` and
/// `sounds/` sit side by side, so `check-config config` works from
/// anywhere). Absolute paths are taken as they are.
pub fn resolve_relative(config_dir: &Path, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() || path.exists() {
        return path;
    }
    match config_dir.parent().map(|p| p.join(&path)) {
        Some(beside) if beside.exists() => beside,
        _ => path,
    }
}

/// `[events]`: where switch events go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Events {
    /// JSON-lines file the events are appended to (absent: none).
    file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct General {
    realm: String,
    user_agent: String,
    /// 64 hex digits; pins every RNG for reproducible runs.
    rng_seed: Option<Spanned<String>>,
    /// Address written in Via/Contact/SDP when listeners bind 0.0.0.0.
    advertise_ip: Option<Spanned<String>>,
}

impl Default for General {
    fn default() -> Self {
        General {
            realm: "carillon".into(),
            user_agent: format!("Carillon/{}", env!("CARGO_PKG_VERSION")),
            rng_seed: None,
            advertise_ip: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listen {
    transport: Spanned<String>,
    address: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Database {
    url: String,
    cdr_spool: String,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: "sqlite://var/carillon.db".into(),
            cdr_spool: "var/cdr-spool.jsonl".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Registrar {
    min_expires: Spanned<u32>,
    max_expires: Spanned<u32>,
    default_expires: Spanned<u32>,
    remove_existing: bool,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar {
            min_expires: Spanned::new(0..0, 60),
            max_expires: Spanned::new(0..0, 3600),
            default_expires: Spanned::new(0..0, 3600),
            remove_existing: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Security {
    max_auth_failures: u32,
    failure_window_secs: u64,
    ban_secs: u64,
    rate_per_sec: Spanned<f64>,
    burst: Spanned<f64>,
    exempt: Vec<Spanned<String>>,
    digest_algorithms: Vec<Spanned<String>>,
    nonce_lifetime_secs: u64,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            max_auth_failures: 10,
            failure_window_secs: 60,
            ban_secs: 600,
            rate_per_sec: Spanned::new(0..0, 200.0),
            burst: Spanned::new(0..0, 400.0),
            exempt: Vec::new(),
            digest_algorithms: vec![
                Spanned::new(0..0, "MD5".into()),
                Spanned::new(0..0, "SHA-256".into()),
            ],
            nonce_lifetime_secs: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Rtp {
    port_min: Spanned<u16>,
    port_max: Spanned<u16>,
    /// Address RTP sockets bind to.
    address: Spanned<String>,
    /// Hang up calls whose media stopped for this long (0 = never).
    timeout_secs: u64,
    /// The same while a party is on hold.
    hold_timeout_secs: u64,
    /// Forward latched RTP (transcoding G.711) in the kernel (eBPF), like
    /// rtpengine's kernel module; needs root. Falls back to userspace
    /// with a warning when the program cannot be attached.
    kernel_forwarding: bool,
}

impl Default for Rtp {
    fn default() -> Self {
        Rtp {
            port_min: Spanned::new(0..0, 10000),
            port_max: Spanned::new(0..0, 20000),
            address: Spanned::new(0..0, "0.0.0.0".into()),
            timeout_secs: 30,
            hold_timeout_secs: 300,
            kernel_forwarding: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    defaults: UserDefaults,
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct UserDefaults {
    context: String,
    codecs: Vec<Spanned<String>>,
    max_contacts: usize,
    /// Concurrent calls per user (none: unlimited).
    max_calls: Option<Spanned<u32>>,
    /// New calls per second a user may place (none: unlimited).
    max_cps: Option<Spanned<u32>>,
    /// Send to the REGISTER's source address (true) or to the Contact as
    /// registered (false).
    nat: bool,
    /// `rfc4733` (the default), `info`, `inband` or `auto`.
    dtmf_mode: Option<Spanned<String>>,
}

/// The context of a user when neither the user nor `[defaults]` names one.
pub(crate) const DEFAULT_CONTEXT: &str = "internal";

impl Default for UserDefaults {
    fn default() -> Self {
        UserDefaults {
            context: DEFAULT_CONTEXT.into(),
            codecs: vec![
                Spanned::new(0..0, "ulaw".into()),
                Spanned::new(0..0, "alaw".into()),
            ],
            max_contacts: 3,
            max_calls: None,
            max_cps: None,
            nat: true,
            dtmf_mode: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    extension: Spanned<String>,
    password: Spanned<String>,
    context: Option<String>,
    codecs: Option<Vec<Spanned<String>>>,
    max_contacts: Option<Spanned<usize>>,
    max_calls: Option<Spanned<u32>>,
    max_cps: Option<Spanned<u32>>,
    nat: Option<bool>,
    dtmf_mode: Option<Spanned<String>>,
    /// The user's voicemail box (a `[mailbox.N]` of `voicemail.toml`,
    /// checked by [`crate::crosscheck::check_mailboxes`]).
    #[serde(rename = "mailbox")]
    _mailbox: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub realm: String,
    pub user_agent: String,
    pub rng_seed: Option<[u8; 32]>,
    pub listen: Vec<ListenSpec>,
    pub database_url: String,
    pub cdr_spool: PathBuf,
    pub registrar: RegistrarConfig,
    pub policy: PolicyConfig,
    pub digest_algorithms: Vec<Algorithm>,
    pub nonce_lifetime: Duration,
    pub rtp_ports: (u16, u16),
    pub rtp_bind: IpAddr,
    pub rtp_timeout: Option<Duration>,
    pub rtp_kernel_forwarding: bool,
    pub hold_timeout: Option<Duration>,
    pub advertise_ip: Option<IpAddr>,
    pub users: Vec<User>,
    pub dialplan: Option<carillon_dialplan::Dialplan>,
    pub trunks: Option<carillon_trunk::TrunkSet>,
    /// `queues.toml` (issue 15): checked and loaded, not run yet (the
    /// `Queue` application is not wired to the queue engine).
    pub queues: Option<carillon_queue::QueuesConfig>,
    /// `[events] file`: JSON lines of switch events (relative to the
    /// working directory).
    pub events_file: Option<PathBuf>,
    /// `[recording] dir`: where recordings are written and, at start,
    /// repaired (relative to the working directory).
    pub recording_dir: PathBuf,
    /// `[moh.<class>]`, by class name.
    pub moh: Vec<MohConfig>,
    /// `[ami]`: the AMI listener (absent: none).
    pub ami: Option<AmiConfig>,
    /// `[api]`: the management API (absent: not served).
    pub api: Option<ApiConfig>,
    /// `voicemail.toml` (absent: no mailboxes, messages under
    /// `var/voicemail`).
    pub voicemail: carillon_voicemail::VoicemailConfig,
    /// `conferences.toml`: the ConfBridge rooms (absent: none).
    pub conferences: carillon_b2bua::conference::ConferenceConfig,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// The dotted key at a byte offset: the nearest table header above and
/// the key on that line (`user[2].password`).
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let mut table = String::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|x| x.split("]]").next()) {
            let name = name.trim();
            let idx = text[..line_start]
                .lines()
                .filter(|x| {
                    x.trim()
                        .strip_prefix("[[")
                        .and_then(|y| y.split("]]").next())
                        .map(str::trim)
                        == Some(name)
                })
                .count()
                .saturating_sub(1);
            table = format!("{name}[{idx}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|x| x.split(']').next()) {
            table = name.trim().to_owned();
        }
    }
    let key = line.split('=').next().unwrap_or("").trim();
    let key = if line.contains('=') { key } else { "" };
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".into(),
        (true, false) => key.into(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

struct Checker<'a> {
    file: String,
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: line_of(self.text, span.start),
            key: key.into(),
            message: message.into(),
        });
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    // Syntax first, so a syntax error is named as such (key `(syntax)`,
    // as for the files read through carillon-tomlconf).
    if let Err(e) = carillon_tomlconf::parse(text) {
        problems.push(Problem {
            file: path.display().to_string(),
            line: e.line,
            key: "(syntax)".into(),
            message: e.message,
        });
        return None;
    }
    match toml::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            problems.push(Problem {
                file: path.display().to_string(),
                line: line_of(text, offset),
                key: key_at(text, offset),
                message: e.message().trim().to_owned(),
            });
            None
        }
    }
}

/// A file that may be left out (`trunks.toml`, `dialplan.toml`).
fn read_optional(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    if path.exists() {
        read(path, problems)
    } else {
        None
    }
}

/// The sounds directory, scanned: `[sounds] dir` (or `sounds`) relative to
/// the configuration directory's parent, so the example's `config/` finds
/// the repository's `sounds/` whatever the working directory. A directory
/// that does not exist leaves prompts unchecked (an installed
/// `/etc/carillon` without sounds beside it still loads; prompts missing at
/// run time are skipped by the media plane with a warning); a path that
/// exists but is not a sounds directory is a problem.
fn sounds_dir(
    dir: &Path,
    main_path: &Path,
    main: Option<&MainFile>,
    main_text: Option<&str>,
    problems: &mut Vec<Problem>,
) -> carillon_dialplan::Sounds {
    let base = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| dir.join(".."));
    let configured = main.and_then(|m| m.sounds.dir.as_ref());
    let path = base.join(configured.map_or("sounds", |d| d.get_ref().as_str()));
    if !path.exists() {
        return carillon_dialplan::Sounds::unscanned(path);
    }
    let why = match carillon_dialplan::Sounds::scan(&path) {
        Ok(sounds) if sounds.is_scanned() => return sounds,
        Ok(_) => "no language directories (en/, ar/, ...) in it".to_owned(),
        Err(e) => e.to_string(),
    };
    if let Some(configured) = configured {
        problems.push(Problem {
            file: main_path.display().to_string(),
            line: main_text.map_or(1, |t| line_of(t, configured.span().start)),
            key: "sounds.dir".into(),
            message: format!("cannot use sounds directory {}: {why}", path.display()),
        });
    }
    carillon_dialplan::Sounds::unscanned(path)
}

fn source<'a>(path: &Path, text: &'a Option<String>) -> crosscheck::Source<'a> {
    crosscheck::Source {
        path: path.display().to_string(),
        text: text.as_deref(),
    }
}

fn read(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(Problem {
                file: path.display().to_string(),
                line: 0,
                key: "(file)".into(),
                message: format!("cannot read: {e}"),
            });
            None
        }
    }
}

/// What `carillon.toml` yields besides its plain values.
struct MainValues {
    listen: Vec<ListenSpec>,
    rng_seed: Option<[u8; 32]>,
    exempt: Vec<IpAddr>,
    algorithms: Vec<Algorithm>,
    rtp_bind: IpAddr,
    advertise_ip: Option<IpAddr>,
    events_file: Option<PathBuf>,
    recording_dir: PathBuf,
    moh: Vec<MohConfig>,
    ami: Option<AmiConfig>,
    api: Option<ApiConfig>,
}

/// Checks `[api]`: an address, no TLS keys (not available yet), and at
/// least one token, each with a known role and a secret of
/// [`MIN_TOKEN_LEN`] characters or more, no secret given twice.
fn check_api(c: &mut Checker<'_>, api: &ApiSection) -> Option<ApiConfig> {
    let address = match api.address.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.at(
                api.address.span(),
                "api.address",
                format!(
                    "{:?} is not an address:port (e.g. \"127.0.0.1:8088\")",
                    api.address.get_ref()
                ),
            );
            None
        }
    };
    for (key, value) in [
        ("api.tls_cert", &api.tls_cert),
        ("api.tls_key", &api.tls_key),
    ] {
        if let Some(v) = value {
            c.at(
                v.span(),
                key,
                "TLS for the API is not available yet: leave tls_cert and tls_key out and serve the API on loopback or behind a TLS-terminating proxy",
            );
        }
    }
    if api.token.is_empty() {
        c.at(
            api.address.span(),
            "api.token",
            "no [[api.token]]: every API route but health needs a token",
        );
    }
    let mut tokens: Vec<carillon_api::ApiToken> = Vec::new();
    let mut ok = true;
    for (i, t) in api.token.iter().enumerate() {
        let role = carillon_api::Role::parse(t.role.get_ref());
        if role.is_none() {
            c.at(
                t.role.span(),
                format!("api.token[{i}].role"),
                format!(
                    "unknown role {:?} (expected read-only, supervisor or admin)",
                    t.role.get_ref()
                ),
            );
        }
        let secret = t.secret.get_ref();
        if secret.chars().count() < MIN_TOKEN_LEN || secret.chars().any(char::is_whitespace) {
            c.at(
                t.secret.span(),
                format!("api.token[{i}].secret"),
                format!("must be at least {MIN_TOKEN_LEN} characters without spaces"),
            );
            ok = false;
        } else if tokens.iter().any(|o| o.secret == *secret) {
            c.at(
                t.secret.span(),
                format!("api.token[{i}].secret"),
                "the same secret is given to another token",
            );
            ok = false;
        }
        if t.name.get_ref().trim().is_empty() {
            c.at(t.name.span(), format!("api.token[{i}].name"), "empty");
        }
        match role {
            Some(role) => tokens.push(carillon_api::ApiToken {
                name: t.name.get_ref().clone(),
                secret: secret.clone(),
                role,
            }),
            None => ok = false,
        }
    }
    let tls = api.tls_cert.is_some() || api.tls_key.is_some();
    match address {
        Some(address) if ok && !tls && !tokens.is_empty() => Some(ApiConfig { address, tokens }),
        _ => None,
    }
}

/// Checks `[ami]`: an address, a positive connection limit, users with
/// a name (unique), a secret and known classes.
fn check_ami(c: &mut Checker<'_>, section: &AmiSection) -> Option<AmiConfig> {
    let before = c.problems.len();
    let addr = match section.address.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.at(
                section.address.span(),
                "ami.address",
                format!(
                    "{:?} is not an address:port (e.g. \"127.0.0.1:5038\")",
                    section.address.get_ref()
                ),
            );
            None
        }
    };
    let max = *section.max_connections.get_ref();
    if max < 1 {
        c.at(
            section.max_connections.span(),
            "ami.max_connections",
            "must be at least 1",
        );
    }
    if section.user.is_empty() {
        c.at(
            section.address.span(),
            "ami.user",
            "no [[ami.user]]: nobody could log in (leave [ami] out to turn AMI off)",
        );
    }
    let mut users: Vec<carillon_ami::AmiUser> = Vec::new();
    for (i, u) in section.user.iter().enumerate() {
        let name = u.name.get_ref().trim();
        if name.is_empty() {
            c.at(u.name.span(), format!("ami.user[{i}].name"), "is empty");
        } else if users.iter().any(|x| x.name.eq_ignore_ascii_case(name)) {
            c.at(
                u.name.span(),
                format!("ami.user[{i}].name"),
                format!("user {name:?} is defined twice"),
            );
        }
        if u.secret.get_ref().is_empty() {
            c.at(u.secret.span(), format!("ami.user[{i}].secret"), "is empty");
        }
        let mut classes = |v: &Option<Spanned<String>>, key: &str| match v {
            None => carillon_ami::ClassMask::NONE,
            Some(v) => carillon_ami::ClassMask::parse_list(v.get_ref()).unwrap_or_else(|e| {
                c.at(v.span(), format!("ami.user[{i}].{key}"), e.to_string());
                carillon_ami::ClassMask::NONE
            }),
        };
        let read = classes(&u.read, "read");
        let write = classes(&u.write, "write");
        users.push(carillon_ami::AmiUser {
            name: name.to_owned(),
            secret: u.secret.get_ref().clone(),
            read,
            write,
        });
    }
    if c.problems.len() > before {
        return None;
    }
    Some(AmiConfig {
        addr: addr?,
        max_connections: usize::try_from(max).unwrap_or(1),
        users,
    })
}

/// Checks the `[moh.<class>]` sections: a plain class name, a folder that
/// holds at least one readable 8 kHz 16-bit mono WAV file.
fn check_moh(c: &mut Checker<'_>, config_dir: &Path, main: &MainFile) -> Vec<MohConfig> {
    let mut classes = Vec::new();
    for (class, entry) in &main.moh {
        let key = format!("moh.{class}.dir");
        if class.is_empty()
            || !class
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.at(
                entry.dir.span(),
                key.clone(),
                format!("class name {class:?}: use letters, digits, '-' and '_'"),
            );
            continue;
        }
        let dir = resolve_relative(config_dir, entry.dir.get_ref());
        // Reads the files once to check them; the media runtime reads them
        // again at start (a class costs one decoded copy while running).
        match carillon_media::MohClass::load(&dir, std::time::Instant::now()) {
            Ok(_) => classes.push(MohConfig {
                class: class.clone(),
                dir,
            }),
            Err(e) => c.at(entry.dir.span(), key, e.to_string()),
        }
    }
    classes
}

/// Checks `carillon.toml` on its own.
fn check_main(
    main_path: &Path,
    main_text: &str,
    main: &MainFile,
    problems: &mut Vec<Problem>,
) -> MainValues {
    let mut c = Checker {
        file: main_path.display().to_string(),
        text: main_text,
        problems,
    };
    let mut listen = Vec::new();
    if main.listen.is_empty() {
        c.at(
            0..0,
            "listen",
            "no listener configured: add a [[listen]] table",
        );
    }
    for (i, l) in main.listen.iter().enumerate() {
        let transport = match l.transport.get_ref().to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            other => {
                c.at(
                    l.transport.span(),
                    format!("listen[{i}].transport"),
                    format!("unknown transport {other:?} (expected \"udp\" or \"tcp\")"),
                );
                None
            }
        };
        let addr = match l.address.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                c.at(
                    l.address.span(),
                    format!("listen[{i}].address"),
                    format!(
                        "{:?} is not an address:port (e.g. \"0.0.0.0:5060\" or \"[::]:5060\")",
                        l.address.get_ref()
                    ),
                );
                None
            }
        };
        if let (Some(transport), Some(addr)) = (transport, addr) {
            listen.push(ListenSpec { transport, addr });
        }
    }
    let rng_seed = main.general.rng_seed.as_ref().and_then(|s| {
        let mut seed = [0u8; 32];
        match hex::decode_to_slice(s.get_ref(), &mut seed) {
            Ok(()) => Some(seed),
            Err(_) => {
                c.at(s.span(), "general.rng_seed", "must be 64 hex digits");
                None
            }
        }
    });
    let r = &main.registrar;
    if *r.min_expires.get_ref() > *r.max_expires.get_ref() {
        c.at(
            r.min_expires.span(),
            "registrar.min_expires",
            "is larger than registrar.max_expires",
        );
    }
    if *r.default_expires.get_ref() < *r.min_expires.get_ref() {
        c.at(
            r.default_expires.span(),
            "registrar.default_expires",
            "is below registrar.min_expires",
        );
    }
    let s = &main.security;
    if *s.rate_per_sec.get_ref() <= 0.0 {
        c.at(
            s.rate_per_sec.span(),
            "security.rate_per_sec",
            "must be positive",
        );
    }
    if *s.burst.get_ref() < 1.0 {
        c.at(s.burst.span(), "security.burst", "must be at least 1");
    }
    let mut exempt = Vec::new();
    for (i, e) in s.exempt.iter().enumerate() {
        match e.get_ref().parse::<IpAddr>() {
            Ok(ip) => exempt.push(ip),
            Err(_) => c.at(
                e.span(),
                format!("security.exempt[{i}]"),
                format!("{:?} is not an IP address", e.get_ref()),
            ),
        }
    }
    let mut algorithms = Vec::new();
    for (i, a) in s.digest_algorithms.iter().enumerate() {
        match Algorithm::parse(a.get_ref()) {
            Ok(alg) => algorithms.push(alg),
            Err(_) => c.at(
                a.span(),
                format!("security.digest_algorithms[{i}]"),
                format!("{:?} is not MD5 or SHA-256", a.get_ref()),
            ),
        }
    }
    if algorithms.is_empty() && s.digest_algorithms.is_empty() {
        c.at(
            0..0,
            "security.digest_algorithms",
            "at least one algorithm is needed",
        );
    }
    if main.rtp.port_min.get_ref() >= main.rtp.port_max.get_ref() {
        c.at(
            main.rtp.port_min.span(),
            "rtp.port_min",
            "must be below rtp.port_max",
        );
    }
    let rtp_bind = match main.rtp.address.get_ref().parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            c.at(
                main.rtp.address.span(),
                "rtp.address",
                format!("{:?} is not an IP address", main.rtp.address.get_ref()),
            );
            IpAddr::from([0, 0, 0, 0])
        }
    };
    let advertise_ip =
        main.general
            .advertise_ip
            .as_ref()
            .and_then(|a| match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    c.at(
                        a.span(),
                        "general.advertise_ip",
                        format!("{:?} is not an IP address", a.get_ref()),
                    );
                    None
                }
            });
    let events_file = main.events.file.as_ref().and_then(|f| {
        if f.get_ref().trim().is_empty() {
            c.at(
                f.span(),
                "events.file",
                "an empty path (leave the key out for no event file)",
            );
            None
        } else {
            Some(PathBuf::from(f.get_ref()))
        }
    });
    let recording = &main.recording.dir;
    if recording.get_ref().trim().is_empty() {
        c.at(
            recording.span(),
            "recording.dir",
            "an empty path (leave the key out for var/recordings)",
        );
    }
    let recording_dir = PathBuf::from(recording.get_ref());
    let config_dir = main_path.parent().unwrap_or(Path::new("."));
    let moh = check_moh(&mut c, config_dir, main);
    let ami = main.ami.as_ref().and_then(|a| check_ami(&mut c, a));
    let api = main.api.as_ref().and_then(|a| check_api(&mut c, a));
    MainValues {
        listen,
        rng_seed,
        exempt,
        algorithms,
        rtp_bind,
        advertise_ip,
        events_file,
        recording_dir,
        moh,
        ami,
        api,
    }
}

/// A `codecs` list of `users.toml`, lower-cased. Only G.711 is carried by
/// the media plane today: `opus`, `g722` and `g729` are refused as not
/// available yet (the switch would leave them out of every offer), any
/// other name as unknown.
fn user_codecs(uc: &mut Checker<'_>, list: &[Spanned<String>], key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (j, c) in list.iter().enumerate() {
        let name = c.get_ref().to_ascii_lowercase();
        match name.as_str() {
            "ulaw" | "alaw" | "pcmu" | "pcma" => out.push(name),
            "opus" | "g722" | "g729" => uc.at(
                c.span(),
                format!("{key}[{j}]"),
                format!(
                    "codec '{}' is not available yet (the media plane has ulaw and alaw)",
                    c.get_ref()
                ),
            ),
            _ => uc.at(
                c.span(),
                format!("{key}[{j}]"),
                format!("unknown codec '{}' (expected ulaw or alaw)", c.get_ref()),
            ),
        }
    }
    out
}

/// A `dtmf_mode` of `users.toml` (`rfc4733`, `info`, `inband` or
/// `auto`); anything else is a problem at its line.
fn user_dtmf_mode(uc: &mut Checker<'_>, v: &Spanned<String>, key: String) -> Option<DtmfMode> {
    let mode = DtmfMode::from_name(v.get_ref());
    if mode.is_none() {
        uc.at(
            v.span(),
            key,
            format!(
                "unknown dtmf_mode '{}' (expected rfc4733, info, inband or auto)",
                v.get_ref()
            ),
        );
    }
    mode
}

/// Checks `users.toml` on its own.
fn check_users(
    users_path: &Path,
    users_text: &str,
    users: &UsersFile,
    problems: &mut Vec<Problem>,
) -> Vec<User> {
    let mut uc = Checker {
        file: users_path.display().to_string(),
        text: users_text,
        problems,
    };
    let mut user_list: Vec<User> = Vec::new();
    let default_codecs = user_codecs(&mut uc, &users.defaults.codecs, "defaults.codecs");
    // Call limits: at least 1 when given (left out means no limit).
    let mut limit = |v: &Option<Spanned<u32>>, key: String| -> Option<u32> {
        let v = v.as_ref()?;
        if *v.get_ref() == 0 {
            uc.at(
                v.span(),
                key,
                "must be at least 1 (leave it out for no limit)",
            );
            return None;
        }
        Some(*v.get_ref())
    };
    let default_max_calls = limit(&users.defaults.max_calls, "defaults.max_calls".into());
    let default_max_cps = limit(&users.defaults.max_cps, "defaults.max_cps".into());
    let mut user_limits = Vec::new();
    for (i, u) in users.user.iter().enumerate() {
        user_limits.push((
            limit(&u.max_calls, format!("user[{i}].max_calls")).or(u
                .max_calls
                .is_none()
                .then_some(default_max_calls)
                .flatten()),
            limit(&u.max_cps, format!("user[{i}].max_cps")).or(u
                .max_cps
                .is_none()
                .then_some(default_max_cps)
                .flatten()),
        ));
    }
    let default_dtmf = users
        .defaults
        .dtmf_mode
        .as_ref()
        .and_then(|v| user_dtmf_mode(&mut uc, v, "defaults.dtmf_mode".into()))
        .unwrap_or_default();
    for (i, u) in users.user.iter().enumerate() {
        let ext = u.extension.get_ref();
        if ext.is_empty()
            || !ext
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-_.".contains(&b))
        {
            uc.at(
                u.extension.span(),
                format!("user[{i}].extension"),
                "must be non-empty letters, digits or + - _ .",
            );
        } else if user_list.iter().any(|x| x.extension == *ext) {
            uc.at(
                u.extension.span(),
                format!("user[{i}].extension"),
                format!("extension {ext} is defined twice"),
            );
        }
        if u.password.get_ref().len() < 6 {
            uc.at(
                u.password.span(),
                format!("user[{i}].password"),
                "must be at least 6 characters",
            );
        }
        let codecs: Vec<String> = match &u.codecs {
            Some(list) => user_codecs(&mut uc, list, &format!("user[{i}].codecs")),
            None => default_codecs.clone(),
        };
        let max_contacts = match &u.max_contacts {
            Some(m) if *m.get_ref() == 0 => {
                uc.at(
                    m.span(),
                    format!("user[{i}].max_contacts"),
                    "must be at least 1",
                );
                1
            }
            Some(m) => *m.get_ref(),
            None => users.defaults.max_contacts.max(1),
        };
        let dtmf_mode = match &u.dtmf_mode {
            Some(v) => {
                user_dtmf_mode(&mut uc, v, format!("user[{i}].dtmf_mode")).unwrap_or_default()
            }
            None => default_dtmf,
        };
        user_list.push(User {
            extension: ext.clone(),
            password: u.password.get_ref().clone(),
            context: u
                .context
                .clone()
                .unwrap_or_else(|| users.defaults.context.clone()),
            codecs,
            max_contacts,
            max_calls: user_limits.get(i).and_then(|l| l.0),
            max_cps: user_limits.get(i).and_then(|l| l.1),
            nat: if u.nat.unwrap_or(users.defaults.nat) {
                NatMode::SourceAddress
            } else {
                NatMode::AsRegistered
            },
            dtmf_mode,
        });
    }
    user_list
}

/// Loads and validates the configuration directory. Every file is read
/// and checked on its own, so one that does not parse does not hide the
/// problems of the others; then the names one file gives another
/// ([`crate::crosscheck`]). Problems come sorted by file, then line.
pub fn load(dir: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let main_path = dir.join("carillon.toml");
    let users_path = dir.join("users.toml");
    let main_text = read(&main_path, &mut problems);
    let users_text = read(&users_path, &mut problems);
    let main: Option<MainFile> = main_text
        .as_deref()
        .and_then(|t| parse_file(&main_path, t, &mut problems));
    let users: Option<UsersFile> = users_text
        .as_deref()
        .and_then(|t| parse_file(&users_path, t, &mut problems));
    let trunks_path = dir.join("trunks.toml");
    let dialplan_path = dir.join("dialplan.toml");
    let voicemail_path = dir.join("voicemail.toml");
    let trunks_text = read_optional(&trunks_path, &mut problems);
    let dialplan_text = read_optional(&dialplan_path, &mut problems);
    let voicemail_text = read_optional(&voicemail_path, &mut problems);
    let voicemail = match voicemail_text.as_deref() {
        Some(text) => {
            carillon_voicemail::VoicemailConfig::load(&voicemail_path.display().to_string(), text)
                .map_err(|ps| problems.extend(ps.into_iter().map(Problem::from)))
                .ok()
        }
        None => Some(carillon_voicemail::VoicemailConfig::default()),
    };
    let conferences_path = dir.join("conferences.toml");
    let conferences_text = read_optional(&conferences_path, &mut problems);
    let conferences = match conferences_text.as_deref() {
        Some(text) => carillon_b2bua::conference::ConferenceConfig::load(
            &conferences_path.display().to_string(),
            text,
        )
        .map_err(|ps| problems.extend(ps.into_iter().map(Problem::from)))
        .ok(),
        None => Some(carillon_b2bua::conference::ConferenceConfig::default()),
    };
    problems.extend(crosscheck::check_rooms(
        &source(&dialplan_path, &dialplan_text),
        conferences
            .as_ref()
            .map(|c| c.rooms.keys().cloned().collect()),
    ));
    let trunks = trunks_text.as_deref().and_then(|text| {
        carillon_trunk::Trunks::load(&trunks_path.display().to_string(), text)
            .map_err(|ps| problems.extend(ps.into_iter().map(Problem::from)))
            .ok()
    });
    let sounds = sounds_dir(
        dir,
        &main_path,
        main.as_ref(),
        main_text.as_deref(),
        &mut problems,
    );
    let dialplan = dialplan_text.as_deref().and_then(|text| {
        carillon_dialplan::Dialplan::load_with_sounds(
            &dialplan_path.display().to_string(),
            text,
            sounds.clone(),
        )
        .map_err(|ps| problems.extend(ps.into_iter().map(Problem::from)))
        .ok()
    });
    problems.extend(crosscheck::check(
        &source(&users_path, &users_text),
        &source(&trunks_path, &trunks_text),
        &source(&dialplan_path, &dialplan_text),
    ));
    let queues_path = dir.join("queues.toml");
    let queues_text = read_optional(&queues_path, &mut problems);
    let queues = queues_text.as_deref().and_then(|text| {
        carillon_queue::QueuesConfig::load(&queues_path.display().to_string(), text)
            .map_err(|ps| problems.extend(ps.into_iter().map(Problem::from)))
            .ok()
    });
    let moh_classes: Option<std::collections::BTreeSet<String>> =
        main.as_ref().map(|m| m.moh.keys().cloned().collect());
    problems.extend(crosscheck::check_queues(
        &source(&queues_path, &queues_text),
        &source(&dialplan_path, &dialplan_text),
        moh_classes.as_ref(),
    ));
    problems.extend(crosscheck::check_mailboxes(
        &source(&users_path, &users_text),
        &source(&dialplan_path, &dialplan_text),
        voicemail
            .as_ref()
            .map(|v| v.mailboxes.keys().cloned().collect()),
    ));
    let main_values = match (&main, &main_text) {
        (Some(main), Some(text)) => Some(check_main(&main_path, text, main, &mut problems)),
        _ => None,
    };
    let user_list = match (&users, &users_text) {
        (Some(users), Some(text)) => Some(check_users(&users_path, text, users, &mut problems)),
        _ => None,
    };
    // Stable: within a file, the order each loader found them in.
    problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    let (Some(main), Some(values), Some(user_list)) = (main, main_values, user_list) else {
        return Err(problems);
    };
    let MainValues {
        listen,
        rng_seed,
        exempt,
        algorithms,
        rtp_bind,
        advertise_ip,
        events_file,
        recording_dir,
        moh,
        ami,
        api,
    } = values;

    let (true, Some(voicemail), Some(conferences)) = (problems.is_empty(), voicemail, conferences)
    else {
        return Err(problems);
    };
    let base = |p: &str| -> PathBuf { PathBuf::from(p) };
    Ok(Config {
        realm: main.general.realm,
        user_agent: main.general.user_agent,
        rng_seed,
        listen,
        database_url: main.database.url,
        cdr_spool: base(&main.database.cdr_spool),
        registrar: RegistrarConfig {
            min_expires: *main.registrar.min_expires.get_ref(),
            max_expires: *main.registrar.max_expires.get_ref(),
            default_expires: *main.registrar.default_expires.get_ref(),
            remove_existing: main.registrar.remove_existing,
        },
        policy: PolicyConfig {
            max_auth_failures: main.security.max_auth_failures.max(1),
            failure_window: Duration::from_secs(main.security.failure_window_secs),
            ban_time: Duration::from_secs(main.security.ban_secs),
            rate_per_sec: *main.security.rate_per_sec.get_ref(),
            burst: *main.security.burst.get_ref(),
            exempt,
        },
        digest_algorithms: algorithms,
        nonce_lifetime: Duration::from_secs(main.security.nonce_lifetime_secs.max(10)),
        rtp_ports: (*main.rtp.port_min.get_ref(), *main.rtp.port_max.get_ref()),
        rtp_bind,
        rtp_kernel_forwarding: main.rtp.kernel_forwarding,
        rtp_timeout: (main.rtp.timeout_secs > 0)
            .then(|| Duration::from_secs(main.rtp.timeout_secs)),
        hold_timeout: (main.rtp.hold_timeout_secs > 0)
            .then(|| Duration::from_secs(main.rtp.hold_timeout_secs)),
        advertise_ip,
        users: user_list,
        dialplan,
        trunks,
        queues,
        events_file,
        recording_dir,
        moh,
        ami,
        api,
        voicemail,
        conferences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, main: &str, users: &str) {
        std::fs::write(dir.join("carillon.toml"), main).unwrap();
        std::fs::write(dir.join("users.toml"), users).unwrap();
    }

    /// Writes the two files and loads them: the one problem they have.
    fn only_problem(dir: &Path, main: &str, users: &str) -> Problem {
        write(dir, main, users);
        let mut p = load(dir).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        p.remove(0)
    }

    #[test]
    fn the_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let c = load(&dir).unwrap_or_else(|p| {
            panic!(
                "{:?}",
                p.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        });
        for ext in ["100", "101", "8013", "8014"] {
            assert!(c.users.iter().any(|u| u.extension == ext), "{ext} missing");
        }
        assert_eq!(c.moh.len(), 1);
        assert_eq!(c.moh[0].class, "default");
        assert!(c.moh[0].dir.ends_with("sounds/moh/default"));
        assert_eq!(
            c.users
                .iter()
                .find(|u| u.extension == "100")
                .unwrap()
                .password,
            "changeme100"
        );
        assert!(c.database_url.starts_with("sqlite://var/"));
    }

    #[test]
    fn events_file_is_optional_read_as_given_and_checked() {
        let users = "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n";
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n",
            users,
        );
        assert_eq!(load(dir.path()).unwrap().events_file, None);
        write(dir.path(), "[events]\nfile = \"var/events.jsonl\"\n[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n", users);
        assert_eq!(
            load(dir.path()).unwrap().events_file,
            Some(PathBuf::from("var/events.jsonl"))
        );
        write(dir.path(), "[events]\nfile = \"\"\n[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n", users);
        let problems = load(dir.path()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.line == 2 && p.key == "events.file"),
            "{problems:?}"
        );
        write(
            dir.path(),
            "[events]\nfile = \"e\"\nformat = \"xml\"\n[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n",
            users,
        );
        let problems = load(dir.path()).unwrap_err();
        assert!(problems.iter().any(|p| p.line == 3), "{problems:?}");
    }

    #[test]
    fn the_example_config_serves_the_api_on_loopback_with_the_admin_token() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let c = load(&dir).unwrap_or_else(|p| panic!("{p:?}"));
        let api = c.api.expect("[api] in the example");
        assert_eq!(api.address, "127.0.0.1:8088".parse().unwrap());
        assert!(api
            .tokens
            .iter()
            .any(|t| t.secret == "changeme-api-token" && t.role == carillon_api::Role::Admin));
        // Printing the configuration never shows a secret.
        let shown = format!("{:?}", api);
        assert!(!shown.contains("changeme-api-token"), "{shown}");
    }

    #[test]
    fn api_problems_name_their_line_and_key_and_tls_keys_are_refused() {
        let users = "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n";
        let listen = "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n";
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &format!(
                "{listen}[api]\naddress = \"127.0.0.1:8088\"\n\n[[api.token]]\nname = \"crm\"\nsecret = \"crm-token-0123456789\"\nrole = \"read-only\"\n"
            ),
            users,
        );
        let api = load(dir.path()).unwrap().api.unwrap();
        assert_eq!(api.tokens[0].role, carillon_api::Role::ReadOnly);
        write(
            dir.path(),
            &format!(
                "{listen}[api]\naddress = \"localhost\"\ntls_cert = \"c.pem\"\n\n[[api.token]]\nname = \"crm\"\nsecret = \"short\"\nrole = \"root\"\n\n[[api.token]]\nname = \"b\"\nsecret = \"crm-token-0123456789\"\nrole = \"admin\"\n\n[[api.token]]\nname = \"c\"\nsecret = \"crm-token-0123456789\"\nrole = \"admin\"\n"
            ),
            users,
        );
        let problems = load(dir.path()).unwrap_err();
        let got: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        for want in [
            (5, "api.address"),
            (6, "api.tls_cert"),
            (10, "api.token[0].secret"),
            (11, "api.token[0].role"),
            (20, "api.token[2].secret"),
        ] {
            assert!(got.contains(&want), "{want:?} not in {got:?}");
        }
        assert!(problems
            .iter()
            .all(|p| !p.message.contains("crm-token-0123456789")));
    }

    #[test]
    fn the_example_enables_ami_on_loopback_for_the_dialer_with_every_class() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let ami = load(&dir).unwrap().ami.expect("[ami] in the example");
        assert_eq!(ami.addr, "127.0.0.1:5038".parse().unwrap());
        assert_eq!(ami.users.len(), 1);
        assert_eq!(ami.users[0].name, "dialer");
        assert_eq!(ami.users[0].secret, "changeme-ami");
        assert_eq!(ami.users[0].read, carillon_ami::ClassMask::ALL);
        assert_eq!(ami.users[0].write, carillon_ami::ClassMask::ALL);
        // The configuration's Debug form never shows the secret.
        assert!(!format!("{:?}", load(&dir).unwrap()).contains("changeme-ami"));
    }

    #[test]
    fn ami_problems_name_their_line_and_key() {
        let users = "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n";
        let listen = "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n";
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &format!("{listen}[ami]\naddress = \"127.0.0.1:5038\"\n[[ami.user]]\nname = \"d\"\nsecret = \"s\"\nread = \"call,dtmf\"\n"),
            users,
        );
        let ami = load(dir.path()).unwrap().ami.unwrap();
        assert_eq!(
            ami.users[0].read,
            carillon_ami::ClassMask::CALL.union(carillon_ami::ClassMask::DTMF)
        );
        assert_eq!(ami.users[0].write, carillon_ami::ClassMask::NONE);
        assert_eq!(ami.max_connections, 64);
        let p = only_problem(
            dir.path(),
            &format!("{listen}[ami]\naddress = \"127.0.0.1:5038\"\n[[ami.user]]\nname = \"d\"\nsecret = \"s\"\nread = \"call,bogus\"\n"),
            users,
        );
        assert_eq!((p.line, p.key.as_str()), (9, "ami.user[0].read"), "{p}");
        assert!(p.message.contains("bogus"), "{p}");
        let p = only_problem(
            dir.path(),
            &format!("{listen}[ami]\naddress = \"localhost\"\n[[ami.user]]\nname = \"d\"\nsecret = \"s\"\n"),
            users,
        );
        assert_eq!((p.line, p.key.as_str()), (5, "ami.address"), "{p}");
        let p = only_problem(
            dir.path(),
            &format!("{listen}[ami]\naddress = \"127.0.0.1:5038\"\nmax_connections = 0\n[[ami.user]]\nname = \"d\"\nsecret = \"s\"\n"),
            users,
        );
        assert_eq!(p.key, "ami.max_connections", "{p}");
    }

    #[test]
    fn recording_dir_defaults_under_var_and_an_empty_one_is_refused() {
        let users = "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n";
        let listen = "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n";
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), listen, users);
        assert_eq!(
            load(dir.path()).unwrap().recording_dir,
            PathBuf::from("var/recordings")
        );
        write(
            dir.path(),
            &format!("[recording]\ndir = \"/srv/rec\"\n{listen}"),
            users,
        );
        assert_eq!(
            load(dir.path()).unwrap().recording_dir,
            PathBuf::from("/srv/rec")
        );
        write(
            dir.path(),
            &format!("[recording]\ndir = \" \"\n{listen}"),
            users,
        );
        let problems = load(dir.path()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.line == 2 && p.key == "recording.dir"),
            "{problems:?}"
        );
    }

    #[test]
    fn moh_classes_need_a_folder_with_a_readable_8khz_mono_wav() {
        let users = "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n";
        let dir = tempfile::tempdir().unwrap();
        let listen = "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n";
        let music = dir.path().join("music");
        std::fs::create_dir_all(&music).unwrap();
        let wav = |name: &str, rate: u32| {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(music.join(name), spec).unwrap();
            for i in 0..800 {
                w.write_sample((i % 100) as i16 * 50).unwrap();
            }
            w.finalize().unwrap();
        };
        // A folder with only a 16 kHz file: no usable music.
        wav("b-wide.wav", 16000);
        let main = |d: &Path| format!("{listen}\n[moh.default]\ndir = \"{}\"\n", d.display());
        write(dir.path(), &main(&music), users);
        let problems = load(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].line, problems[0].key.as_str()),
            (6, "moh.default.dir")
        );
        assert!(problems[0].message.contains("no readable"), "{problems:?}");
        // One good file makes the class; the bad one is skipped at run time.
        wav("a-good.wav", 8000);
        write(dir.path(), &main(&music), users);
        let c = load(dir.path()).unwrap();
        assert_eq!(
            c.moh,
            vec![MohConfig {
                class: "default".into(),
                dir: music.clone()
            }]
        );
        // A folder that does not exist.
        write(dir.path(), &main(&dir.path().join("nowhere")), users);
        let problems = load(dir.path()).unwrap_err();
        assert_eq!(problems[0].key, "moh.default.dir", "{problems:?}");
        // No section: no class.
        write(dir.path(), listen, users);
        assert!(load(dir.path()).unwrap().moh.is_empty());
    }

    #[test]
    fn problems_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[general]\nrealm = \"x\"\n\n[[listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n\n[[listen]]\ntransport = \"sctp\"\naddress = \"nowhere\"\n",
            "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n\n[[user]]\nextension = \"100\"\npassword = \"x\"\n",
        );
        let problems = load(dir.path()).unwrap_err();
        let lines: Vec<String> = problems
            .iter()
            .map(|p| {
                format!(
                    "{}:{}: {}",
                    Path::new(&p.file).file_name().unwrap().to_string_lossy(),
                    p.line,
                    p.key
                )
            })
            .collect();
        assert!(
            lines.contains(&"carillon.toml:9: listen[1].transport".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"carillon.toml:10: listen[1].address".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"users.toml:6: user[1].extension".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"users.toml:7: user[1].password".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn call_limits_are_read_per_user_with_defaults_and_zero_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = "[[listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n";
        write(
            dir.path(),
            main,
            "[defaults]\nmax_cps = 5\n\n[[user]]\nextension = \"100\"\npassword = \"changeme100\"\nmax_calls = 2\n\n[[user]]\nextension = \"101\"\npassword = \"changeme101\"\nmax_cps = 1\n",
        );
        let c = load(dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
        let u = |e: &str| c.users.iter().find(|u| u.extension == e).unwrap().clone();
        assert_eq!((u("100").max_calls, u("100").max_cps), (Some(2), Some(5)));
        assert_eq!((u("101").max_calls, u("101").max_cps), (None, Some(1)));
        let p = only_problem(
            dir.path(),
            main,
            "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\nmax_calls = 0\n",
        );
        assert_eq!((p.line, p.key.as_str()), (4, "user[0].max_calls"));
    }

    #[test]
    fn nat_defaults_to_true_can_be_set_per_user_or_in_defaults_and_must_be_a_boolean() {
        let dir = tempfile::tempdir().unwrap();
        let main = "[[listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n";
        let users = |defaults: &str| {
            format!(
                "{defaults}[[user]]\nextension = \"100\"\npassword = \"changeme100\"\nnat = false\n\n\
                 [[user]]\nextension = \"101\"\npassword = \"changeme101\"\n\n\
                 [[user]]\nextension = \"102\"\npassword = \"changeme102\"\nnat = true\n"
            )
        };
        for (defaults, want101) in [
            ("", NatMode::SourceAddress),
            ("[defaults]\nnat = false\n\n", NatMode::AsRegistered),
        ] {
            write(dir.path(), main, &users(defaults));
            let c = load(dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
            let nat = |e: &str| c.users.iter().find(|u| u.extension == e).unwrap().nat;
            assert_eq!(nat("100"), NatMode::AsRegistered);
            assert_eq!(nat("101"), want101, "{defaults:?}");
            assert_eq!(nat("102"), NatMode::SourceAddress);
        }
        let p = only_problem(
            dir.path(),
            main,
            "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\nnat = \"no\"\n",
        );
        assert_eq!(p.line, 4, "{p:?}");
        let p = only_problem(
            dir.path(),
            main,
            "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\nnat_mode = false\n",
        );
        assert_eq!(p.line, 4, "{p:?}");
        assert!(p.message.contains("unknown field"), "{}", p.message);
    }

    #[test]
    fn dtmf_mode_defaults_to_rfc4733_can_be_set_per_user_or_in_defaults_and_must_be_known() {
        let dir = tempfile::tempdir().unwrap();
        let main = "[[listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n";
        let users = |defaults: &str| {
            format!(
                "{defaults}[[user]]\nextension = \"100\"\npassword = \"changeme100\"\ndtmf_mode = \"info\"\n\n\
                 [[user]]\nextension = \"101\"\npassword = \"changeme101\"\n\n\
                 [[user]]\nextension = \"102\"\npassword = \"changeme102\"\ndtmf_mode = \"Inband\"\n"
            )
        };
        for (defaults, want101) in [
            ("", DtmfMode::Rfc4733),
            ("[defaults]\ndtmf_mode = \"auto\"\n\n", DtmfMode::Auto),
        ] {
            write(dir.path(), main, &users(defaults));
            let c = load(dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
            let mode = |e: &str| c.users.iter().find(|u| u.extension == e).unwrap().dtmf_mode;
            assert_eq!(mode("100"), DtmfMode::Info);
            assert_eq!(mode("101"), want101, "{defaults:?}");
            assert_eq!(mode("102"), DtmfMode::Inband);
        }
        let p = only_problem(
            dir.path(),
            main,
            "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\ndtmf_mode = \"rfc2833\"\n",
        );
        assert_eq!((p.line, p.key.as_str()), (4, "user[0].dtmf_mode"), "{p:?}");
        assert!(p.message.contains("rfc2833"), "{}", p.message);
        let p = only_problem(
            dir.path(),
            main,
            "[defaults]\ndtmf_mode = \"tones\"\n\n[[user]]\nextension = \"100\"\npassword = \"changeme100\"\n",
        );
        assert_eq!((p.line, p.key.as_str()), (2, "defaults.dtmf_mode"), "{p:?}");
    }

    #[test]
    fn confbridge_rooms_come_from_conferences_toml() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "carillon.toml",
            "users.toml",
            "dialplan.toml",
            "trunks.toml",
            "voicemail.toml",
        ] {
            std::fs::copy(repo.join(f), dir.path().join(f)).unwrap();
        }
        let shown = |dir: &Path| -> Vec<String> {
            load(dir)
                .err()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let name = Path::new(&p.file).file_name().unwrap().to_string_lossy();
                    format!("{name}:{}: {}: {}", p.line, p.key, p.message)
                })
                .collect()
        };
        // No conferences.toml: the example's room 800 is unknown in each
        // of the three phone contexts.
        let missing: Vec<String> = shown(dir.path())
            .into_iter()
            .filter(|l| l.contains("room '800' is not a [room.800] of conferences.toml"))
            .collect();
        assert_eq!(missing.len(), 3, "{missing:#?}");
        // A key not implemented is refused with its line.
        std::fs::write(
            dir.path().join("conferences.toml"),
            "[room.800]\nmax_members = 5\npin = \"1234\"\n",
        )
        .unwrap();
        let lines = shown(dir.path());
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("conferences.toml:3: room.800.pin: unknown key 'pin'")),
            "{lines:#?}"
        );
        // The example's own file.
        std::fs::copy(
            repo.join("conferences.toml"),
            dir.path().join("conferences.toml"),
        )
        .unwrap();
        let lines = shown(dir.path());
        assert!(!lines.iter().any(|l| l.contains("room")), "{lines:#?}");
        let repo_cfg = load(&repo).unwrap();
        assert_eq!(repo_cfg.conferences.rooms["800"].max_members, Some(10));
    }

    #[test]
    fn a_syntax_error_in_one_file_does_not_hide_the_problems_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "[[listen]]\ntransport = \"udp\"\naddress = = 1\n",
            "[[user]]\nextension = \"100\"\npassword = \"changeme100\"\ncodecs = [\"ulaw\", \"opus\", \"speex\"]\ncontext = \"lobby\"\n",
        );
        std::fs::write(
            dir.path().join("dialplan.toml"),
            "[context.internal]\n[[context.internal.extension]]\nmatch = \"1\"\nsteps = [ { app = \"VoiceMail\", mailbox = \"100\" } ]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("trunks.toml"), "[trunk.a\n").unwrap();
        let shown: Vec<String> = load(dir.path())
            .unwrap_err()
            .iter()
            .map(|p| {
                let name = Path::new(&p.file).file_name().unwrap().to_string_lossy();
                format!("{name}:{}: {}: {}", p.line, p.key, p.message)
            })
            .collect();
        assert_eq!(shown.len(), 6, "{shown:#?}");
        let expect = [
            "carillon.toml:3: (syntax): ",
            "dialplan.toml:4: context.internal.extension[0].steps[0].mailbox: mailbox '100' is not a [mailbox.100] of voicemail.toml",
            "trunks.toml:1: (syntax): ",
            "users.toml:4: user[0].codecs[1]: codec 'opus' is not available yet",
            "users.toml:4: user[0].codecs[2]: unknown codec 'speex'",
            "users.toml:5: user[0].context: context 'lobby' is not defined in dialplan.toml",
        ];
        for (line, want) in shown.iter().zip(expect) {
            assert!(line.starts_with(want), "{line:?} is not {want:?}");
        }
        assert!(shown.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn the_example_users_have_no_call_limits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let c = load(&dir).unwrap_or_else(|p| panic!("{p:?}"));
        assert!(c
            .users
            .iter()
            .all(|u| u.max_calls.is_none() && u.max_cps.is_none()));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_reported_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "[[listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n\n[registrar]\nmin_expirez = 5\n", "");
        let p = load(dir.path()).unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 6);
        assert_eq!(p[0].key, "registrar.min_expirez");
        assert!(p[0].message.contains("unknown field"), "{}", p[0].message);
    }
}
