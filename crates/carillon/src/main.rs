//! The `carillon` binary: command line, logging, configuration loading and
//! the wiring of the switch core, the network edge, the store and the
//! webhook sender. `run` and
//! `check-config` take the configuration directory the same way (`DIR` or
//! `--config DIR`) and load it the same way, so `run` refuses to start on
//! exactly the problems `check-config` prints. Signals:
//! SIGTERM/SIGINT stop cleanly after flushing registrations to the
//! database; SIGHUP (or `POST /api/v1/reload`) reloads users, policies,
//! the dialplan, the trunks and the API tokens without dropping
//! registrations or calls. With `[api]` the management API is served
//! ([`api`], `carillon-api`).

mod ami;
mod api;
mod config;
mod crosscheck;
mod events;
mod offpath;
mod recordings;
mod voicemail;
mod voicemail_mail;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use carillon_b2bua::{Switch, SwitchConfig};
use carillon_cdr::CdrSink;
use carillon_net::{Control, Driver, Sinks, TrunksReload};
use carillon_registrar::{Binding, BindingChange};
use carillon_store::{
    BindingRow, BindingWriter, BindingWriterConfig, CdrWriter, Store, StoreOptions, SystemClock,
};
use clap::{Parser, Subcommand};
use rand::RngCore;
use tracing::{error, info, warn};

/// mimalloc instead of glibc malloc: the signalling path allocates and
/// frees many small, short-lived buffers per message, and glibc's
/// malloc/free was ~10 % of the switch's CPU under call load (perf,
/// benches/README.md §4); mimalloc's thread-local free lists cut that.
/// Built with `no_thp`: with transparent huge pages its arenas grew in
/// 2 MiB steps, which more than doubled the memory per relayed call
/// (28 → 66 KiB); without them it is 22 KiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "carillon", version, about = "Carillon SIP/RTP softswitch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch. Refuses to start on a configuration with problems,
    /// printing them as check-config does (on stderr).
    Run {
        #[command(flatten)]
        config: ConfigDir,
    },
    /// Validate a configuration directory; prints one line per problem.
    CheckConfig {
        #[command(flatten)]
        config: ConfigDir,
    },
}

/// The configuration directory, given the same way to every command:
/// `carillon run DIR` or `carillon run --config DIR` (default `config`).
#[derive(clap::Args)]
struct ConfigDir {
    /// Configuration directory (default: config).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Configuration directory, as an option (the same as DIR).
    #[arg(long = "config", value_name = "DIR", conflicts_with = "dir")]
    config: Option<PathBuf>,
}

impl ConfigDir {
    fn path(self) -> PathBuf {
        self.config
            .or(self.dir)
            .unwrap_or_else(|| PathBuf::from("config"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => {
            let dir = config.path();
            match config::load(&dir) {
                Ok(c) => {
                    // Warnings leave the exit status alone.
                    for w in c.trunks.iter().flat_map(|t| t.warnings()) {
                        println!("warning: {w}");
                    }
                    println!(
                        "{}: OK ({} users, {} listeners)",
                        dir.display(),
                        c.users.len(),
                        c.listen.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    for p in problems {
                        println!("{p}");
                    }
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { config } => {
            let dir = config.path();
            init_logging();
            // Loaded as check-config loads it: the same problems stop it.
            let cfg = match config::load(&dir) {
                Ok(cfg) => cfg,
                Err(problems) => {
                    error!(
                        config = %dir.display(),
                        problems = problems.len(),
                        "invalid configuration; not starting (problems listed on stderr)"
                    );
                    for p in problems {
                        eprintln!("{p}");
                    }
                    return ExitCode::from(1);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(run(&dir, cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("carillon: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Open files kept for everything but RTP sockets (SIP, database, spool).
const FILES_RESERVED: u64 = 256;

/// Every relayed call holds four UDP sockets (RTP and RTCP on each leg),
/// and the media workers keep released sockets open for reuse, so up to
/// the whole RTP range can be open at once; the usual soft limit of 1,024
/// open files would cap the switch at about 250 calls. Raises the limit to
/// what the range needs (the hard limit too when allowed, as for root),
/// else to the hard limit, says how many calls the result leaves room for
/// and returns it.
fn raise_open_file_limit(rtp_ports: (u16, u16)) -> u64 {
    let (soft, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot read the open file limit");
            return 1024;
        }
    };
    let wanted = u64::from(rtp_ports.1.saturating_sub(rtp_ports.0)) + 1 + FILES_RESERVED;
    let limit = if soft >= wanted {
        soft
    } else if hard < wanted && rlimit::Resource::NOFILE.set(wanted, wanted).is_ok() {
        wanted
    } else if soft < hard {
        match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                warn!(error = %e, soft, hard, "cannot raise the open file limit");
                soft
            }
        }
    } else {
        soft
    };
    let calls_by_files = limit.saturating_sub(FILES_RESERVED) / 4;
    let calls_by_ports = u64::from(rtp_ports.1.saturating_sub(rtp_ports.0)) / 4;
    if calls_by_files < calls_by_ports {
        warn!(
            open_files = limit,
            relayed_calls = calls_by_files,
            rtp_range_calls = calls_by_ports,
            "the open file limit caps concurrent relayed calls below what the RTP port range allows; raise it (LimitNOFILE= in systemd, ulimit -Hn)"
        );
    } else {
        info!(
            open_files = limit,
            relayed_calls = calls_by_ports,
            "capacity"
        );
    }
    limit
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .compact()
        .init();
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_row(b: Binding) -> BindingRow {
    BindingRow {
        aor: b.aor,
        contact: b.contact,
        instance: b.instance,
        reg_id: b.reg_id,
        source: Some(b.source),
        path: b.path,
        call_id: b.call_id,
        cseq: b.cseq,
        expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
        q: b.q,
        user_agent: b.user_agent,
    }
}

fn from_row(r: BindingRow) -> Binding {
    Binding {
        aor: r.aor,
        contact: r.contact,
        source: r.source.unwrap_or_default(),
        instance: r.instance,
        reg_id: r.reg_id,
        path: r.path,
        call_id: r.call_id,
        cseq: r.cseq,
        expires_at: u64::try_from(r.expires_at).unwrap_or(0),
        q: r.q,
        user_agent: r.user_agent,
    }
}

/// The address other hosts reach us on: the first listener's IP if it is
/// specific, else the source address the kernel would use for an outside
/// destination (no packet is sent), else loopback.
fn guess_local_ip(cfg: &config::Config) -> std::net::IpAddr {
    if let Some(l) = cfg.listen.iter().find(|l| !l.addr.ip().is_unspecified()) {
        return l.addr.ip();
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// Resolves the host names of trunk contacts once at start-up (the switch
/// core never does DNS). Bounded: a name that does not resolve within a few
/// seconds is logged and its trunk cannot be reached.
async fn resolve_trunk_hosts(
    set: Option<&carillon_trunk::TrunkSet>,
) -> std::collections::HashMap<String, std::net::IpAddr> {
    let mut hosts = std::collections::HashMap::new();
    let Some(set) = set else { return hosts };
    let mut names: Vec<String> = Vec::new();
    // A disabled trunk is never resolved.
    for t in set.iter().filter(|t| t.enabled) {
        let uris = t
            .contacts
            .iter()
            .chain(t.registration.iter().map(|r| &r.registrar));
        for uri in uris {
            let host = uri.split_once(':').map_or(uri.as_str(), |(_, r)| r);
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            let host = host.split([':', ';', '>']).next().unwrap_or("");
            if !host.is_empty()
                && host.parse::<std::net::IpAddr>().is_err()
                && !names.iter().any(|n| n == host)
            {
                names.push(host.to_owned());
            }
        }
    }
    for name in names {
        let lookup = tokio::net::lookup_host(format!("{name}:5060"));
        match tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await {
            Ok(Ok(mut addrs)) => {
                if let Some(a) = addrs.next() {
                    info!(host = %name, address = %a.ip(), "trunk host resolved");
                    hosts.insert(name, a.ip());
                }
            }
            _ => warn!(host = %name, "trunk host does not resolve; calls to it will fail"),
        }
    }
    hosts
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Logs the configuration's warnings (they do not stop it loading).
fn log_warnings(cfg: &config::Config) {
    for w in cfg.trunks.iter().flat_map(|t| t.warnings()) {
        warn!(warning = %w, "configuration");
    }
    if let Some(q) = cfg.queues.as_ref().filter(|q| !q.queues.is_empty()) {
        warn!(
            queues = q.queues.len(),
            "queues.toml is valid but not run yet: the Queue application is not wired to the queue engine"
        );
    }
}

/// Reads the configuration again and hands it to the switch (SIGHUP, or
/// the API's reload): all of it or nothing; with problems the running
/// configuration is kept and they are logged and returned. The API's
/// tokens are replaced too; its address is read at start only.
async fn reload(
    dir: &Path,
    handle: &carillon_net::DriverHandle,
    api: Option<&carillon_api::ApiState>,
    vm: &carillon_voicemail::Voicemail,
) -> Result<(), Vec<config::Problem>> {
    match config::load(dir) {
        Ok(mut new) => {
            log_warnings(&new);
            if let Err(e) = voicemail::absolute_dir(&mut new.voicemail) {
                warn!(error = %e, "voicemail directory");
            }
            vm.set_config(new.voicemail.clone());
            new.dialplan = new.dialplan.map(|d| d.with_voicemail(vm.clone()));
            let hosts = resolve_trunk_hosts(new.trunks.as_ref()).await;
            match (api, new.api) {
                (Some(api), Some(cfg)) => api.set_tokens(cfg.tokens),
                (Some(_), None) => {
                    warn!("[api] removed: the API keeps serving with its tokens until restart")
                }
                (None, Some(_)) => warn!("[api] added: the API starts at the next restart"),
                (None, None) => {}
            }
            handle
                .send(Control::Reload {
                    users: new.users,
                    policy: new.policy,
                    registrar: new.registrar,
                    dialplan: new.dialplan,
                    trunks: Box::new(TrunksReload {
                        set: new.trunks,
                        hosts,
                    }),
                })
                .await;
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                warn!(problem = %p, "reload refused; the running configuration is kept");
            }
            Err(problems)
        }
    }
}

async fn run(dir: &Path, mut cfg: config::Config) -> anyhow::Result<()> {
    log_warnings(&cfg);
    voicemail::absolute_dir(&mut cfg.voicemail).context("the voicemail directory")?;
    info!(
        config = %dir.display(),
        users = cfg.users.len(),
        rtp_ports = ?cfg.rtp_ports,
        cdr_spool = %cfg.cdr_spool.display(),
        "starting Carillon {}", env!("CARGO_PKG_VERSION"));
    // A database that is down at boot does not stop the switch: calls and
    // registrations work, CDRs spool and binding changes queue until it is
    // reachable (then the stored registrations are restored). Any other
    // database error (bad URL, failed migration) is fatal.
    let store = match Store::connect(&cfg.database_url).await {
        Ok(store) => Some(store),
        Err(e) if e.is_connection() => {
            warn!(database = %redact(&cfg.database_url), error = %e, "database unreachable at start: running without it; CDRs are spooled and registrations kept in memory until it is back");
            None
        }
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("opening database {}", redact(&cfg.database_url)))
        }
    };
    let now = unix_now();
    let rows = match &store {
        Some(store) => {
            let _ = store
                .purge_expired(i64::try_from(now).unwrap_or(i64::MAX))
                .await;
            let rows = store
                .load_bindings(i64::try_from(now).unwrap_or(i64::MAX))
                .await
                .context("loading registrations")?;
            info!(bindings = rows.len(), database = %redact(&cfg.database_url), "registrations restored");
            rows
        }
        None => Vec::new(),
    };

    // Before any call: a recording a kill left unfinished becomes a valid
    // WAV again (its header sized to the audio on disk).
    recordings::repair_at_start(&cfg.recording_dir)?;

    // Voicemail: the switch's index of every mailbox, shared by the
    // dialplan's VoiceMail/VoiceMailMain; changes go to the writer.
    let vm = carillon_voicemail::Voicemail::new(
        cfg.voicemail.clone(),
        voicemail::load_index(store.as_ref(), &cfg.voicemail).await,
    );
    let vm_writer =
        voicemail::VoicemailWriter::spawn(store.clone(), cfg.database_url.clone(), vm.clone());

    let open_files = raise_open_file_limit(cfg.rtp_ports);
    let mut media_cfg = carillon_rtpnet::RuntimeConfig::new(cfg.rtp_bind);
    media_cfg.rtp_timeout = cfg.rtp_timeout;
    media_cfg.hold_timeout = cfg.hold_timeout;
    media_cfg.kernel_offload = cfg.rtp_kernel_forwarding;
    // The switch picks the ports itself and learns of failures from
    // OpenFailed; LegOpened would only wake it. LegClosed is only logged,
    // so the media worker writes that line itself.
    media_cfg.report_opened = false;
    media_cfg.report_closed = false;
    media_cfg.max_open_sockets =
        usize::try_from(open_files.saturating_sub(FILES_RESERVED)).unwrap_or(usize::MAX);
    let advertise = cfg.advertise_ip.unwrap_or_else(|| guess_local_ip(&cfg));
    info!(advertise = %advertise, "address written in SIP and SDP");
    media_cfg.media_ip = Some(advertise);
    // A conference mix lives on one media worker and its members must be
    // legs of that worker: with rooms configured the media plane runs one.
    if !cfg.conferences.rooms.is_empty() {
        media_cfg.workers = 1;
    }
    let seed = cfg.rng_seed.unwrap_or_else(|| {
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut s);
        s
    });
    let mut switch = Switch::new(SwitchConfig {
        realm: cfg.realm.clone(),
        user_agent: cfg.user_agent.clone(),
        users: cfg.users.clone(),
        registrar: cfg.registrar.clone(),
        policy: cfg.policy.clone(),
        digest_algorithms: cfg.digest_algorithms.clone(),
        nonce_lifetime: cfg.nonce_lifetime,
        rng_seed: seed,
        timers: carillon_transaction::TimerConfig::default(),
        calls: carillon_b2bua::calls::CallConfig {
            dialplan: cfg.dialplan.clone().map(|d| d.with_voicemail(vm.clone())),
            media_ip: advertise,
            sip_addr: std::net::SocketAddr::new(advertise, 5060),
            rtp_ports: cfg.rtp_ports,
            media_workers: media_cfg.workers,
            default_codecs: vec![carillon_sdp::CodecName::Pcmu, carillon_sdp::CodecName::Pcma],
            timers: carillon_transaction::TimerConfig::default(),
            trunks: cfg.trunks.clone(),
            hosts: resolve_trunk_hosts(cfg.trunks.as_ref()).await,
            // Built for the event file and for the API's and AMI's event streams.
            events: cfg.events_file.is_some() || cfg.ami.is_some() || cfg.api.is_some(),
            recording_dir: cfg.recording_dir.clone(),
            conferences: cfg.conferences.clone(),
        },
    })?;
    switch.restore_bindings(rows.into_iter().map(from_row).collect(), now);

    let (late_store_tx, late_store) = tokio::sync::oneshot::channel();
    let (writer, cdrs) = match &store {
        Some(store) => (
            BindingWriter::spawn(store.clone()),
            CdrWriter::spawn(store.clone(), cfg.cdr_spool.clone(), SystemClock),
        ),
        None => (
            BindingWriter::spawn_unconnected(
                cfg.database_url.clone(),
                StoreOptions::default(),
                BindingWriterConfig::default(),
                SystemClock,
                late_store_tx,
            ),
            CdrWriter::spawn(cfg.database_url.clone(), cfg.cdr_spool.clone(), SystemClock),
        ),
    };
    let sink = writer.clone();
    let cdr_sink = cdrs.clone();
    let cdr_stats = cdrs.clone();
    let (event_sink, event_writer) = match &cfg.events_file {
        Some(path) => {
            let (sink, writer) = events::EventWriter::start(path)?;
            info!(file = %path.display(), "switch events written");
            (Some(sink), Some(writer))
        }
        None => (None, None),
    };
    // Live consumers of the switch events (the API and AMI) subscribe here.
    let event_hub = events::EventHub::default();
    let ami_driver = std::sync::Arc::new(std::sync::OnceLock::new());
    if let Some(ami_cfg) = &cfg.ami {
        // Subscribed before the switch runs: no event is missed.
        let bound = ami::start(ami_cfg, &event_hub, std::sync::Arc::clone(&ami_driver))
            .await
            .with_context(|| format!("AMI listener on {}", ami_cfg.addr))?;
        info!(address = %bound, users = ami_cfg.users.len(), "AMI listener ready");
    }
    let api_hub = event_hub.clone();
    let events_dropped = event_writer
        .as_ref()
        .map(events::EventWriter::dropped_counter);
    let (sounds, skipped) = carillon_media::Sounds::load_moh(
        cfg.moh.iter().map(|m| (m.class.as_str(), m.dir.as_path())),
        std::time::Instant::now(),
    )?;
    for file in skipped {
        tracing::warn!(error = %file, "music on hold: file skipped");
    }
    let (media, media_events) =
        carillon_rtpnet::MediaRuntime::start_with_sounds(media_cfg, std::sync::Arc::new(sounds))?;
    let media_workers = media.workers();
    // One webhook sender for the process (the dialplan's Webhook).
    let webhooks = carillon_webhook::WebhookSender::spawn(Default::default())?;
    let sinks = Sinks {
        binding: Box::new(move |c: BindingChange| {
            sink.submit(match c {
                BindingChange::Upsert(b) => carillon_store::BindingChange::Upsert(to_row(b)),
                BindingChange::Remove { aor, contact } => {
                    carillon_store::BindingChange::Remove { aor, contact }
                }
            })
        }),
        media: Box::new(move |batch| {
            if let Err(e) = media.send_all(batch) {
                warn!(error = %e, "media command not delivered");
            }
        }),
        cdr: Box::new(move |r| cdr_sink.submit(r)),
        event: Box::new(move |e| {
            let e = std::sync::Arc::new(e);
            if let Some(sink) = &event_sink {
                sink.submit(std::sync::Arc::clone(&e));
            }
            event_hub.publish(e);
        }),
        callback: offpath::callback_sink(cdrs.clone()),
        webhook: offpath::webhook_sink(webhooks),
        voicemail: vm_writer.sink(),
        media_workers,
    };
    let (handle, join) = Driver::start(switch, &cfg.listen, advertise, sinks, media_events).await?;
    let _ = ami_driver.set(handle.clone());
    // The API is bound before the SIP listeners are announced, so a client
    // that waits for those finds it serving too.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<api::ReloadRequest>(4);
    let api_server = match &cfg.api {
        Some(api_cfg) => {
            let listener = tokio::net::TcpListener::bind(api_cfg.address)
                .await
                .with_context(|| format!("binding the API listener {}", api_cfg.address))?;
            let link = api::SwitchLink {
                driver: handle.clone(),
                cdrs: cdr_stats,
                hub: api_hub.clone(),
                events_dropped,
                reload: reload_tx,
            };
            let subscribe_hub = api_hub;
            let state = carillon_api::ApiState::new(
                api_cfg.tokens.clone(),
                std::sync::Arc::new(link),
                cfg.recording_dir.clone(),
                std::sync::Arc::new(move || subscribe_hub.subscribe()),
            );
            if let Some(store) = &store {
                state.set_store(store.clone());
            }
            info!(address = %listener.local_addr()?, tokens = api_cfg.tokens.len(), "API listening");
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let router = carillon_api::router(state.clone());
            let task = tokio::spawn(async move {
                let stopped = async {
                    let _ = stop_rx.await;
                };
                if let Err(e) = carillon_api::serve(listener, router, stopped).await {
                    warn!(error = %e, "API server stopped");
                }
            });
            Some((state, stop_tx, task))
        }
        None => {
            drop((reload_tx, cdr_stats, api_hub, events_dropped));
            None
        }
    };
    let api_state = api_server.as_ref().map(|(state, _, _)| state.clone());
    for l in &handle.bound {
        info!(transport = l.transport.as_str(), address = %l.addr, "SIP listener ready");
    }
    if store.is_none() {
        // Started without the database: once the binding writer reaches it,
        // hand the switch what was stored before the outage.
        let restore = handle.clone();
        let api_state = api_state.clone();
        tokio::spawn(async move {
            let Ok(store) = late_store.await else { return };
            if let Some(api) = &api_state {
                api.set_store(store.clone());
            }
            let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
            match store.load_bindings(now).await {
                Ok(rows) => {
                    restore
                        .send(Control::RestoreBindings(
                            rows.into_iter().map(from_row).collect(),
                        ))
                        .await
                }
                Err(e) => warn!(error = %e, "could not load stored registrations"),
            }
        });
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => {
                let _ = reload(dir, &handle, api_state.as_ref(), &vm).await;
            }
            Some(reply) = reload_rx.recv() => {
                let outcome = reload(dir, &handle, api_state.as_ref(), &vm).await;
                let _ = reply.send(outcome.map_err(|ps| ps.iter().map(ToString::to_string).collect()));
            }
        }
    }
    if let Some((_, stop, task)) = api_server {
        // Requests in flight get a moment to finish; event streams end.
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            warn!("API connections still open at stop: closed");
        }
    }
    info!("stopping: flushing registrations");
    handle.shutdown().await;
    let _ = join.await;
    // Bounded: with the database down, queued binding changes are given up
    // (phones re-register); CDRs are never given up (they spool).
    if tokio::time::timeout(Duration::from_secs(5), writer.flush())
        .await
        .is_err()
    {
        warn!("database unreachable at stop: unsaved registration changes dropped");
    }
    if let Some(writer) = event_writer {
        // The driver (and with it the sink) is gone: the thread ends once
        // it has written what was queued.
        match tokio::task::spawn_blocking(move || writer.finish()).await {
            Ok(0) | Err(_) => {}
            Ok(dropped) => warn!(dropped, "switch events dropped (event file writer behind)"),
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), vm_writer.flush())
        .await
        .is_err()
    {
        warn!("voicemail changes still queued at stop");
    }
    let report = cdrs.flush().await;
    info!(
        spooled = report.spooled,
        unsaved = report.unsaved,
        "CDRs flushed"
    );
    if let Some(store) = store {
        store.close().await;
    }
    info!("stopped");
    Ok(())
}
