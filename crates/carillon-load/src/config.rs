//! Command line (clap) and the validated run [`Config`] built from it.
//!
//! Owns option parsing, duration syntax (`30s`, `500ms`, `2m`), callee
//! ranges (`2000` or `2000-2099`) and the `--auth`/`--auth-file`
//! credential list. Every count and time is bounded here so the engine can
//! trust it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

/// Which sides of the call this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Only places calls (the target answers them somewhere else).
    Uac,
    /// Only answers calls the target routes to `--uas-listen`.
    Uas,
    /// Places calls and answers them: the target routes the dialled number
    /// back to `--uas-listen`.
    Both,
}

impl Role {
    pub fn places_calls(self) -> bool {
        matches!(self, Role::Uac | Role::Both)
    }

    pub fn answers_calls(self) -> bool {
        matches!(self, Role::Uas | Role::Both)
    }
}

/// The G.711 law used for RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The code of a zero sample, used as filler payload.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    pub fn sdp_name(self) -> carillon_sdp::CodecName {
        match self {
            Codec::Pcmu => carillon_sdp::CodecName::Pcmu,
            Codec::Pcma => carillon_sdp::CodecName::Pcma,
        }
    }
}

/// Report output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// carillon-load: places and answers SIP calls through a switch at a given
/// rate and concurrency, sends and checks G.711 RTP, and reports statistics.
#[derive(Debug, Parser)]
#[command(name = "carillon-load", version)]
pub struct Args {
    /// The switch to send INVITEs to (ip:port).
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub target: SocketAddr,
    /// uac: place calls only; uas: answer only; both: place and answer.
    #[arg(long, value_enum, default_value = "both")]
    pub role: Role,
    /// New calls per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Maximum simultaneous calls placed.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Total calls to place (uac/both) or to answer (uas).
    #[arg(long, default_value_t = 100)]
    pub calls: u64,
    /// Hold time of each call before the BYE (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Send and check RTP (off: signalling only).
    #[arg(long)]
    pub rtp: bool,
    /// Codec of the calling side: its SDP offers and accepts only this one.
    #[arg(long, value_enum, default_value = "pcmu")]
    pub codec: Codec,
    /// Codec of the answering side (default: `--codec`). When it differs,
    /// the target must transcode between the two G.711 laws.
    #[arg(long, value_enum)]
    pub uas_codec: Option<Codec>,
    /// RTP packetization time in milliseconds (10-60).
    #[arg(long, default_value_t = 20)]
    pub ptime: u32,
    /// Caller number prefix; the call index is appended.
    #[arg(long, default_value = "1000")]
    pub caller_prefix: String,
    /// Number dialled, or a range `2000-2099` used round robin.
    #[arg(long, default_value = "2000")]
    pub callee: String,
    /// Digest credentials `user:password` answering 401/407.
    #[arg(long)]
    pub auth: Option<String>,
    /// CSV file of `user,password` lines, rotated per call.
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
    /// Address the answering side listens on; the target must route the
    /// dialled number here.
    #[arg(long, default_value = "127.0.0.1:6000")]
    pub uas_listen: SocketAddr,
    /// Address the calling side sends from (port 0: any).
    #[arg(long)]
    pub uac_listen: Option<SocketAddr>,
    /// Local IP for SIP Contact/Via and RTP sockets.
    #[arg(long, default_value = "127.0.0.1")]
    pub local_ip: IpAddr,
    #[arg(long, value_enum, default_value = "text")]
    pub report: ReportFormat,
    /// Hard bound on the whole run.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub max_time: Duration,
    /// Exit 1 when more than this percentage of calls failed.
    #[arg(long, default_value_t = 0.1)]
    pub max_failure_pct: f64,
    /// RTP worker threads (each ticks every ptime for its share of calls).
    #[arg(long, default_value_t = 1)]
    pub media_threads: usize,
}

/// The validated run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: SocketAddr,
    pub role: Role,
    pub rate: f64,
    pub concurrency: usize,
    pub calls: u64,
    pub duration: Duration,
    pub rtp: bool,
    /// The calling side's codec.
    pub codec: Codec,
    /// The answering side's codec.
    pub uas_codec: Codec,
    pub ptime: u32,
    pub caller_prefix: String,
    pub callees: Vec<String>,
    pub credentials: Vec<(String, String)>,
    pub uas_listen: SocketAddr,
    pub uac_listen: SocketAddr,
    pub local_ip: IpAddr,
    pub report: ReportFormat,
    pub max_time: Duration,
    pub max_failure_pct: f64,
    pub media_threads: usize,
}

/// Upper bounds that keep a typo from exhausting the machine.
pub const MAX_CONCURRENCY: usize = 50_000;
pub const MAX_CALLS: u64 = 100_000_000;
pub const MAX_RATE: f64 = 10_000.0;
pub const MAX_CALLEES: usize = 1_000_000;

impl Config {
    pub fn from_args(args: Args) -> anyhow::Result<Config> {
        if !(args.rate > 0.0 && args.rate <= MAX_RATE) {
            bail!("--rate must be in (0, {MAX_RATE}]");
        }
        if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
            bail!("--concurrency must be in 1..={MAX_CONCURRENCY}");
        }
        if args.calls == 0 || args.calls > MAX_CALLS {
            bail!("--calls must be in 1..={MAX_CALLS}");
        }
        if !(10..=60).contains(&args.ptime) {
            bail!("--ptime must be 10..=60 ms");
        }
        if args.media_threads == 0 || args.media_threads > 64 {
            bail!("--media-threads must be 1..=64");
        }
        if args.max_time.is_zero() {
            bail!("--max-time must be positive");
        }
        if !args
            .caller_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
        {
            bail!("--caller-prefix must be alphanumeric");
        }
        let callees = parse_callees(&args.callee)?;
        let mut credentials = Vec::new();
        if let Some(a) = &args.auth {
            let (u, p) = a.split_once(':').context("--auth must be user:password")?;
            credentials.push((u.to_owned(), p.to_owned()));
        }
        if let Some(path) = &args.auth_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            credentials.extend(parse_auth_csv(&text)?);
        }
        Ok(Config {
            target: args.target,
            role: args.role,
            rate: args.rate,
            concurrency: args.concurrency,
            calls: args.calls,
            duration: args.duration,
            rtp: args.rtp,
            codec: args.codec,
            uas_codec: args.uas_codec.unwrap_or(args.codec),
            ptime: args.ptime,
            caller_prefix: args.caller_prefix,
            callees,
            credentials,
            uas_listen: args.uas_listen,
            uac_listen: args.uac_listen.unwrap_or(SocketAddr::new(args.local_ip, 0)),
            local_ip: args.local_ip,
            report: args.report,
            max_time: args.max_time,
            max_failure_pct: args.max_failure_pct,
            media_threads: args.media_threads,
        })
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    if !(0.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `2000` → one callee; `2000-2099` → the inclusive range, keeping the
/// width of the first number (so `0100-0199` keeps its leading zero).
pub fn parse_callees(s: &str) -> anyhow::Result<Vec<String>> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let lo: u64 = a.parse().context("callee range start")?;
        let hi: u64 = b.parse().context("callee range end")?;
        if hi < lo || hi - lo >= MAX_CALLEES as u64 {
            bail!("callee range {s:?} is empty or too large");
        }
        let width = a.len();
        return Ok((lo..=hi).map(|n| format!("{n:0width$}")).collect());
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#".contains(c))
    {
        bail!("bad callee {s:?}");
    }
    Ok(vec![s.to_owned()])
}

/// `user,password` lines; blank lines and `#` comments are skipped.
pub fn parse_auth_csv(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (u, p) = line
            .split_once(',')
            .with_context(|| format!("auth file line {}: expected user,password", i + 1))?;
        out.push((u.trim().to_owned(), p.trim().to_owned()));
    }
    if out.is_empty() {
        bail!("auth file has no credentials");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn a_callee_range_keeps_leading_zeros() {
        assert_eq!(
            parse_callees("098-101").unwrap(),
            ["098", "099", "100", "101"]
        );
        assert_eq!(parse_callees("2000").unwrap(), ["2000"]);
        assert!(parse_callees("5-1").is_err());
    }

    fn config(args: &[&str]) -> Config {
        let argv = ["carillon-load", "--target", "127.0.0.1:5060"]
            .iter()
            .chain(args)
            .copied();
        Config::from_args(Args::try_parse_from(argv).unwrap()).unwrap()
    }

    #[test]
    fn the_answering_side_uses_the_calling_sides_codec_unless_told_otherwise() {
        let c = config(&["--codec", "pcma"]);
        assert_eq!((c.codec, c.uas_codec), (Codec::Pcma, Codec::Pcma));
        let c = config(&["--uas-codec", "pcma"]);
        assert_eq!((c.codec, c.uas_codec), (Codec::Pcmu, Codec::Pcma));
        let c = config(&["--codec", "pcma", "--uas-codec", "pcmu"]);
        assert_eq!((c.codec, c.uas_codec), (Codec::Pcma, Codec::Pcmu));
    }

    #[test]
    fn an_unknown_uas_codec_is_a_usage_error() {
        let argv = [
            "carillon-load",
            "--target",
            "127.0.0.1:5060",
            "--uas-codec",
            "g729",
        ];
        assert!(Args::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_auth_file_skips_comments_and_blank_lines() {
        let c = parse_auth_csv("# users\n100,secret\n\n101, pw \n").unwrap();
        assert_eq!(
            c,
            [("100".into(), "secret".into()), ("101".into(), "pw".into())]
        );
    }
}
