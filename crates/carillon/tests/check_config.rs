//! `carillon check-config DIR`: the example configuration passes; a broken
//! one exits 1 with one `file:line: key: message` line per problem, across
//! all files (a syntax error in one does not hide the others) and between
//! them (contexts, users, trunks, numbering named in another file). `run`
//! loads the same way: the same problems stop it. Both take the directory
//! as `DIR` or `--config DIR`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bin, example_config, run_tool, Env, Options, Running, ToolRun};

/// `carillon check-config DIR` (bounded).
fn check(dir: &Path, scratch: &Path) -> ToolRun {
    let args = [std::ffi::OsStr::new("check-config"), dir.as_os_str()];
    carillon(&args, scratch, "check-config")
}

/// `carillon ARGS...` (bounded), e.g. `["run", "--config", dir]`.
fn carillon(args: &[&std::ffi::OsStr], scratch: &Path, name: &str) -> ToolRun {
    common::link_sounds(scratch);
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(scratch).env("NO_COLOR", "1");
    run_tool(cmd, scratch, name, Duration::from_secs(30))
}

/// A temporary copy of the example configuration, to break.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(example_config()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// The run exited with `code` (else its output is shown).
fn assert_exit(run: &ToolRun, code: i32) {
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(code),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

/// `(file name, line, key)` of every `file:line: key: message` line;
/// panics on a line of any other form.
fn problems(stdout: &str) -> Vec<(String, usize, String)> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(4, ": ");
            let loc = parts.next().unwrap_or_default();
            let key = parts.next().unwrap_or_default();
            let message = parts.next().unwrap_or_default();
            let (file, line) = loc
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("no file:line in {l:?}"));
            let line: usize = line
                .parse()
                .unwrap_or_else(|_| panic!("line is not a number in {l:?}"));
            assert!(!key.is_empty() && !key.contains(' '), "bad key in {l:?}");
            assert!(!message.trim().is_empty(), "no message in {l:?}");
            let name = Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, line, key.to_owned())
        })
        .collect()
}

#[test]
fn the_example_config_passes() {
    let scratch = tempfile::tempdir().unwrap();
    let run = check(&example_config(), scratch.path());
    assert_exit(&run, 0);
}

const BROKEN_MAIN: &str = r#"[general]
realm = "x"

[[listen]]
transport = "sctp"
address = "127.0.0.1:5060"

[[listen]]
transport = "udp"
address = "nowhere"

[security]
exempt = ["not-an-ip"]
digest_algorithms = ["MD4"]

[rtp]
port_min = 20000
port_max = 10000
"#;

const BROKEN_USERS: &str = r#"[[user]]
extension = "100"
password = "short"

[[user]]
extension = "100"
password = "longenough"
"#;

#[test]
fn every_problem_of_a_broken_config_is_reported_with_file_line_and_key() {
    let dir = example_copy();
    std::fs::write(dir.path().join("carillon.toml"), BROKEN_MAIN).unwrap();
    std::fs::write(dir.path().join("users.toml"), BROKEN_USERS).unwrap();
    // Only these two files' own problems here: without a dialplan the
    // example's Dial targets (users 101, 8013…) are not cross-checked.
    std::fs::remove_file(dir.path().join("dialplan.toml")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    let got = problems(&run.stdout);
    let want = [
        ("carillon.toml", 5, "listen[0].transport"),
        ("carillon.toml", 10, "listen[1].address"),
        ("carillon.toml", 13, "security.exempt[0]"),
        ("carillon.toml", 14, "security.digest_algorithms[0]"),
        ("carillon.toml", 17, "rtp.port_min"),
        ("users.toml", 3, "user[0].password"),
        ("users.toml", 6, "user[1].extension"),
    ];
    let missing: Vec<_> = want
        .iter()
        .filter(|(f, l, k)| !got.iter().any(|(gf, gl, gk)| gf == f && gl == l && gk == k))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}; check-config printed:\n{}",
        run.stdout
    );
    assert_eq!(got.len(), want.len(), "{}", run.stdout);
}

#[test]
fn a_type_error_is_reported_at_its_line() {
    let dir = example_copy();
    std::fs::write(
        dir.path().join("carillon.toml"),
        "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n\n[registrar]\nmin_expires = \"soon\"\n",
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    let got = problems(&run.stdout);
    assert_eq!(
        got,
        vec![(
            "carillon.toml".to_owned(),
            6,
            "registrar.min_expires".to_owned()
        )],
        "{}",
        run.stdout
    );
}

/// A configuration with mistakes in every file: a TOML syntax error in
/// carillon.toml, codecs the media plane lacks, names that the other files
/// do not define, an application the switch does not execute, gateway/ and
/// trunk/ swapped.
const MANY_MAIN: &str = r#"[general]
realm = "x"

[[listen]]
transport = "udp"
address = "127.0.0.1:5060"

[rtp
port_min = 10000
"#;

const MANY_USERS: &str = r#"[defaults]
codecs = ["ulaw", "g722"]

[[user]]
extension = "100"
password = "changeme100"
context = "nowhere"

[[user]]
extension = "101"
password = "changeme101"
codecs = ["alaw", "opus"]
"#;

const MANY_TRUNKS: &str = r#"[trunk.carrier]
kind = "carrier"
contacts = ["sip:127.0.0.9"]
context = "from-carrier"
numbering = "india"
allow = ["ulaw", "g729"]

[trunk.gsm]
kind = "gsm_gateway"
ports = [ { name = "sim1", contact = "sip:127.0.0.10:5061" } ]
context = "from-gsm"
"#;

const MANY_DIALPLAN: &str = r#"[numbering.pk]
rules = [ { prefix = "03", length = 11, strip = 1, add = "+92" } ]

[context.internal]
allow_trunks = ["carrier", "gsm", "carier"]

[[context.internal.extension]]
match = "_1XX"
steps = [
  { app = "Dial", targets = ["user/${EXTEN}"], timeout = 30 },
  { app = "VoiceMail", mailbox = "100" },
]

[[context.internal.extension]]
match = "200"
steps = [ { app = "Dial", targets = ["user/102"] } ]

[[context.internal.extension]]
match = "_9X."
steps = [
  { app = "Dial", targets = ["gateway/carrier/${EXTEN:1}", "trunk/gsm/${EXTEN:1}"] },
]

[context.from-carrier]
[[context.from-carrier.extension]]
match = "_X."
steps = [ { app = "Dial", targets = ["user/100"] } ]
"#;

/// Every problem of the files above, as `(file, line, key)`.
const MANY_WANT: [(&str, usize, &str); 12] = [
    ("carillon.toml", 8, "(syntax)"),
    ("dialplan.toml", 5, "context.internal.allow_trunks[2]"),
    (
        "dialplan.toml",
        11,
        "context.internal.extension[0].steps[1].mailbox",
    ),
    (
        "dialplan.toml",
        16,
        "context.internal.extension[1].steps[0].targets[0]",
    ),
    (
        "dialplan.toml",
        21,
        "context.internal.extension[2].steps[0].targets[0]",
    ),
    (
        "dialplan.toml",
        21,
        "context.internal.extension[2].steps[0].targets[1]",
    ),
    ("trunks.toml", 5, "trunk.carrier.numbering"),
    ("trunks.toml", 6, "trunk.carrier.allow[1]"),
    ("trunks.toml", 11, "trunk.gsm.context"),
    ("users.toml", 2, "defaults.codecs[1]"),
    ("users.toml", 7, "user[0].context"),
    ("users.toml", 12, "user[1].codecs[1]"),
];

fn many_mistakes_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("carillon.toml", MANY_MAIN),
        ("users.toml", MANY_USERS),
        ("trunks.toml", MANY_TRUNKS),
        ("dialplan.toml", MANY_DIALPLAN),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn assert_many_mistakes(output: &str) {
    let got = problems(output);
    let missing: Vec<_> = MANY_WANT
        .iter()
        .filter(|(f, l, k)| !got.iter().any(|(gf, gl, gk)| gf == f && gl == l && gk == k))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}; printed:\n{output}"
    );
    assert_eq!(got.len(), MANY_WANT.len(), "{output}");
    for (fragment, key) in [
        (
            "mailbox '100' is not a [mailbox.100] of voicemail.toml",
            "steps[1].mailbox",
        ),
        ("codec 'g722' is not available yet", "defaults.codecs[1]"),
        (
            "codec 'g729' is not available yet",
            "trunk.carrier.allow[1]",
        ),
        (
            "context 'nowhere' is not defined in dialplan.toml",
            "user[0].context",
        ),
        (
            "context 'from-gsm' is not defined in dialplan.toml",
            "trunk.gsm.context",
        ),
        (
            "numbering 'india' is not defined",
            "trunk.carrier.numbering",
        ),
        ("'carier' is not a trunk", "allow_trunks[2]"),
        ("user '102' is not defined in users.toml", "extension[1]"),
        (
            "'carrier' is a carrier trunk: dial it as trunk/carrier/",
            "targets[0]",
        ),
        (
            "'gsm' is a gsm_gateway: dial it as gateway/gsm/",
            "targets[1]",
        ),
    ] {
        assert!(
            output
                .lines()
                .any(|l| l.contains(fragment) && l.contains(key)),
            "no line with {key:?} and {fragment:?} in:\n{output}"
        );
    }
}

#[test]
fn mistakes_in_every_file_and_between_files_are_all_reported_one_per_line() {
    let dir = many_mistakes_dir();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    assert_many_mistakes(&run.stdout);
}

#[test]
fn check_config_and_run_take_the_directory_as_argument_or_option_and_run_refuses_the_same_problems()
{
    let dir = many_mistakes_dir();
    let scratch = tempfile::tempdir().unwrap();
    let d = dir.path().as_os_str();
    let s = std::ffi::OsStr::new;
    let positional = carillon(&[s("check-config"), d], scratch.path(), "check-pos");
    let option = carillon(
        &[s("check-config"), s("--config"), d],
        scratch.path(),
        "check-opt",
    );
    assert_eq!(positional.status.and_then(|s| s.code()), Some(1));
    assert_eq!(option.status.and_then(|s| s.code()), Some(1));
    assert_many_mistakes(&positional.stdout);
    assert_eq!(option.stdout, positional.stdout);
    for (name, args) in [
        ("run-pos", vec![s("run"), d]),
        ("run-opt", vec![s("run"), s("--config"), d]),
    ] {
        let run = carillon(&args, scratch.path(), name);
        assert_eq!(
            run.status.and_then(|s| s.code()),
            Some(1),
            "{name}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(run.stderr, positional.stdout, "{name}");
    }
    // The example passes both ways.
    let example = example_config();
    for args in [
        vec![s("check-config"), example.as_os_str()],
        vec![s("check-config"), s("--config"), example.as_os_str()],
    ] {
        let run = carillon(&args, scratch.path(), "check-example");
        assert_eq!(
            run.status.and_then(|s| s.code()),
            Some(0),
            "{args:?}: {}",
            run.stdout
        );
        assert!(run.stdout.contains(": OK ("), "{}", run.stdout);
    }
    // Both at once is refused by the command line parser (exit 2).
    let both = carillon(
        &[s("check-config"), d, s("--config"), example.as_os_str()],
        scratch.path(),
        "check-both",
    );
    assert_eq!(
        both.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        both.stderr
    );
}

#[test]
fn run_starts_on_a_good_directory_given_as_a_positional_argument() {
    let env = Env::new(&Options::default());
    let log = env.path().join("switch-positional.log");
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(bin())
        .arg("run")
        .arg(env.config_dir())
        .current_dir(env.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let mut running = Running::adopt(child, env.port, log, 2);
    let mut conn = common::Conn::udp(running.addr());
    let reply = conn.options().expect("an answer to OPTIONS");
    assert_eq!(reply.status(), Some(200), "{}", running.log());
    assert!(running.stop().success(), "{}", running.log());
}

#[test]
fn an_unknown_dtmf_mode_in_users_and_trunks_is_reported_with_file_line_and_key() {
    let dir = example_copy();
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    // The first user (100) gets a mode that does not exist.
    let users = users.replacen(
        "password = \"changeme100\"\n",
        "password = \"changeme100\"\ndtmf_mode = \"rfc2833\"\n",
        1,
    );
    let users_line = users
        .lines()
        .position(|l| l.starts_with("dtmf_mode = \"rfc2833\""))
        .unwrap()
        + 1;
    std::fs::write(dir.path().join("users.toml"), &users).unwrap();
    let trunks = std::fs::read_to_string(dir.path().join("trunks.toml")).unwrap();
    let trunks = trunks.replacen("dtmf_mode = \"auto\"", "dtmf_mode = \"tones\"", 1);
    let trunks_line = trunks
        .lines()
        .position(|l| l.starts_with("dtmf_mode = \"tones\""))
        .expect("the example's Dinstar has a dtmf_mode")
        + 1;
    std::fs::write(dir.path().join("trunks.toml"), &trunks).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    assert_eq!(
        problems(&run.stdout),
        [
            (
                "trunks.toml".to_owned(),
                trunks_line,
                "trunk.dinstar.dtmf_mode".to_owned()
            ),
            (
                "users.toml".to_owned(),
                users_line,
                "user[0].dtmf_mode".to_owned()
            ),
        ],
        "{}",
        run.stdout
    );
}

/// The repository's prompts.
fn repo_sounds() -> std::path::PathBuf {
    example_config().join("../sounds")
}

#[test]
fn a_prompt_that_no_language_has_is_reported_at_its_step_and_a_shipped_one_passes() {
    let dir = example_copy();
    let main = std::fs::read_to_string(dir.path().join("carillon.toml")).unwrap();
    let main = common::set_keys(
        &main,
        "sounds",
        &[("dir", format!("{:?}", repo_sounds().display().to_string()))],
    );
    std::fs::write(dir.path().join("carillon.toml"), main).unwrap();
    let plan = std::fs::read_to_string(dir.path().join("dialplan.toml")).unwrap();
    let extra = "\n[context.prompts]\n[[context.prompts.extension]]\nmatch = \"1\"\nsteps = [\n  { app = \"Playback\", file = [\"goodbye\", \"digits/7\"] },\n  { app = \"Background\", file = \"no-such-prompt\" },\n  { app = \"Read\", var = \"X\", file = \"${PROMPT}\" },\n]\n";
    let broken_line = plan.lines().count() + 7;
    std::fs::write(dir.path().join("dialplan.toml"), format!("{plan}{extra}")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    assert_eq!(
        problems(&run.stdout),
        [(
            "dialplan.toml".to_owned(),
            broken_line,
            "context.prompts.extension[0].steps[1].file".to_owned()
        )],
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("prompt 'no-such-prompt' not found: no ")
            && run
                .stdout
                .contains("/<lang>/no-such-prompt.wav for any language (ar, en, fr, ur)"),
        "{}",
        run.stdout
    );
    // The same step with a prompt every language has passes.
    let fixed = std::fs::read_to_string(dir.path().join("dialplan.toml"))
        .unwrap()
        .replace("no-such-prompt", "lang-menu");
    std::fs::write(dir.path().join("dialplan.toml"), fixed).unwrap();
    assert_exit(&check(dir.path(), scratch.path()), 0);
}

#[test]
fn a_sounds_dir_that_is_not_a_sounds_directory_is_reported() {
    let dir = example_copy();
    let main = std::fs::read_to_string(dir.path().join("carillon.toml")).unwrap();
    // A file, not a directory of languages.
    let file = dir.path().join("users.toml");
    let main = common::set_keys(
        &main,
        "sounds",
        &[("dir", format!("{:?}", file.display().to_string()))],
    );
    std::fs::write(dir.path().join("carillon.toml"), main).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    let found = problems(&run.stdout);
    assert_eq!(found.len(), 1, "{}", run.stdout);
    assert_eq!(found[0].0, "carillon.toml");
    assert_eq!(found[0].2, "sounds.dir");
}

/// A `queues.toml` beside the example (issue 15's queue engine, checked
/// and loaded but not run yet).
const GOOD_QUEUES: &str = r#"[queue.english]
strategy = "random"
timeout = 10
moh_class = "default"
exit = [{ digit = "1", context = "callcentre", extension = "s" }]
[[queue.english.member]]
extension = "211"
skills = { english = 5 }
"#;

const BROKEN_QUEUES: &str = r#"[queue.english]
strategy = "roundrobin"
moh_class = "jazz"
exit = [{ digit = "1", context = "nowhere", extension = "s" }]
ringinuse = "no"

[queue.french]
colour = "blue"
[[queue.french.member]]
penalty = 1
"#;

#[test]
fn a_queues_file_is_checked_with_file_line_and_key_and_a_good_one_passes() {
    let dir = example_copy();
    std::fs::write(dir.path().join("queues.toml"), GOOD_QUEUES).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    assert_exit(&check(dir.path(), scratch.path()), 0);

    std::fs::write(dir.path().join("queues.toml"), BROKEN_QUEUES).unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    let q = |line: usize, key: &str| ("queues.toml".to_owned(), line, key.to_owned());
    assert_eq!(
        problems(&run.stdout),
        [
            q(2, "queue.english.strategy"),
            q(3, "queue.english.moh_class"),
            q(4, "queue.english.exit[0].context"),
            q(5, "queue.english.ringinuse"),
            q(8, "queue.french.colour"),
            q(9, "queue.french.member[0].extension"),
        ],
        "{}",
        run.stdout
    );
    // The strategy problem names the strategies; the others say why.
    assert!(
        run.stdout.contains("unknown strategy 'roundrobin'"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("'jazz' is not a [moh.jazz]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("context 'nowhere' is not defined"),
        "{}",
        run.stdout
    );
}

#[test]
fn voicemail_mistakes_and_unknown_mailboxes_name_their_file_line_and_key() {
    let dir = example_copy();
    let scratch = tempfile::tempdir().unwrap();
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        users.replacen("mailbox = \"101\"", "mailbox = \"707\"", 1),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("voicemail.toml"),
        "[voicemail]\nmax_messages = 0\n\n[mailbox.100]\npin = \"12a4\"\n\n[mailbox.101]\npin = \"1\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    let got = problems(&run.stdout);
    for (line, key, fragment) in [
        (2, "voicemail.max_messages", "out of range"),
        (5, "mailbox.100.pin", "digits only"),
        (9, "mailbox.101.colour", "unknown key 'colour'"),
    ] {
        assert!(
            got.contains(&("voicemail.toml".into(), line, key.into()))
                && run.stdout.contains(fragment),
            "voicemail.toml:{line}: {key}: {fragment} not reported:\n{}",
            run.stdout
        );
    }
    // voicemail.toml did not load: references are not checked against it.
    assert_eq!(got.len(), 3, "{}", run.stdout);
    // With a file that loads, a user's unknown mailbox and the example's
    // VoiceMail of 600 (now missing) are reported where they are written.
    std::fs::write(
        dir.path().join("voicemail.toml"),
        "[mailbox.100]\npin = \"1234\"\n",
    )
    .unwrap();
    let run = check(dir.path(), scratch.path());
    assert_exit(&run, 1);
    let got = problems(&run.stdout);
    assert!(
        got.iter()
            .any(|(f, _, k)| f == "users.toml" && k == "user[1].mailbox")
            && run
                .stdout
                .contains("mailbox '707' is not a [mailbox.707] of voicemail.toml"),
        "{}",
        run.stdout
    );
    assert!(
        got.iter().any(|(f, _, k)| f == "dialplan.toml"
            && k.starts_with("context.internal.")
            && k.ends_with(".mailbox"))
            && run
                .stdout
                .contains("mailbox '600' is not a [mailbox.600] of voicemail.toml"),
        "{}",
        run.stdout
    );
}
