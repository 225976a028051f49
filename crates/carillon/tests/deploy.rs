//! `deploy/install.sh` and `deploy/carillon.service`: a staged install
//! (`DESTDIR`) has the layout and permissions the unit expects, the unit
//! passes `systemd-analyze verify`, and the unit's own `ExecStartPre`,
//! `ExecStart` and `WorkingDirectory`, moved into the stage, start a switch
//! that answers OPTIONS, keeps its SQLite database under the state
//! directory and stops cleanly on the unit's `KillSignal`. The prompts of
//! `sounds/` are installed under `/usr/local/share/carillon/sounds`, the
//! installed configuration points at them, and check-config finds (and
//! checks) the dialplan's prompts there.

mod common;

use common::{bin, free_port, replace_listeners, repo_root, unique, Conn, Running, SipMsg};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where install.sh puts the prompts (the path the installed config names).
const SOUNDS: &str = "/usr/local/share/carillon/sounds";

/// The files under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The value of the first `key=` line of the unit.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
}

/// A unit command line with its absolute install paths moved into `stage`.
fn staged_command(line: &str, stage: &Path) -> Command {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| {
            if w.starts_with("/usr/local/") || w.starts_with("/etc/carillon") {
                format!("{}{w}", stage.display())
            } else {
                w.to_string()
            }
        })
        .collect();
    let (program, args) = words.split_first().expect("an empty command in the unit");
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// `deploy/install.sh` staged into `stage`, with the binary under test.
fn install(stage: &Path) {
    let out = Command::new("bash")
        .arg(repo_root().join("deploy/install.sh"))
        .env("DESTDIR", stage)
        .env("CARILLON_BIN", bin())
        .output()
        .expect("run deploy/install.sh");
    assert!(
        out.status.success(),
        "install.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_staged_install_runs_the_way_the_unit_starts_it() {
    let stage = std::env::temp_dir().join(format!("carillon-deploy-{}", unique()));
    install(&stage);

    // Layout and permissions: the passwords in users.toml are readable by
    // root and the service's group only.
    for (path, want) in [
        ("usr/local/bin/carillon", 0o755),
        ("etc/systemd/system/carillon.service", 0o644),
        ("etc/carillon", 0o750),
        ("etc/carillon/carillon.toml", 0o640),
        ("etc/carillon/users.toml", 0o640),
        ("etc/carillon/dialplan.toml", 0o640),
        ("etc/carillon/trunks.toml", 0o640),
        ("var/lib/carillon", 0o750),
        ("usr/local/share/doc/carillon/README.md", 0o644),
        ("usr/local/share/carillon/sounds", 0o755),
        ("usr/local/share/carillon/sounds/en/letters", 0o755),
        ("usr/local/share/carillon/sounds/ar/goodbye.wav", 0o644),
        ("usr/local/share/carillon/sounds/README.md", 0o644),
    ] {
        assert_eq!(mode(&stage.join(path)), want, "mode of {path}");
    }
    let unit = fs::read_to_string(stage.join("etc/systemd/system/carillon.service"))
        .expect("read the installed unit");
    assert_eq!(
        unit,
        fs::read_to_string(repo_root().join("deploy/carillon.service")).expect("read the unit"),
        "the installed unit is deploy/carillon.service"
    );

    // The prompts: every WAV of sounds/, byte for byte, and its README
    // (sources and licences); not the generator and its tables.
    let repo_sounds = repo_root().join("sounds");
    let staged_sounds = stage.join(SOUNDS.trim_start_matches('/'));
    let wavs: Vec<PathBuf> = files_under(&repo_sounds)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert!(wavs.len() > 500, "only {} WAVs in sounds/", wavs.len());
    let mut want = wavs.clone();
    want.push(PathBuf::from("README.md"));
    want.sort();
    assert_eq!(files_under(&staged_sounds), want, "installed sounds");
    for f in &wavs {
        assert!(
            fs::read(repo_sounds.join(f)).ok() == fs::read(staged_sounds.join(f)).ok(),
            "{} differs from sounds/",
            f.display()
        );
    }
    // The installed configuration names the installed prompts (the
    // example's "sounds" is relative to config/'s parent, /etc here).
    let main_toml = stage.join("etc/carillon/carillon.toml");
    let text = fs::read_to_string(&main_toml).expect("read carillon.toml");
    assert!(
        text.contains(&format!("[sounds]\ndir = \"{SOUNDS}\"\n")),
        "installed carillon.toml does not point [sounds] at {SOUNDS}:\n{text}"
    );
    assert!(
        !text.contains("dir = \"sounds"),
        "a relative path into sounds/ is left in the installed carillon.toml"
    );

    // A second run keeps the configuration an operator may have edited,
    // and replaces the prompts with a fresh copy.
    let users = stage.join("etc/carillon/users.toml");
    fs::write(&users, "# edited by the operator\n").expect("edit users.toml");
    fs::remove_file(staged_sounds.join("en/goodbye.wav")).expect("remove a prompt");
    fs::write(staged_sounds.join("en/stale.wav"), b"stale").expect("add a stray file");
    install(&stage);
    assert_eq!(
        files_under(&staged_sounds),
        want,
        "sounds after a reinstall"
    );
    assert_eq!(
        fs::read_to_string(&users).expect("read users.toml"),
        "# edited by the operator\n",
        "a reinstall overwrote the configuration"
    );
    fs::copy(repo_root().join("config/users.toml"), &users).expect("restore users.toml");

    // systemd's own check of the unit, paths moved into the stage: no
    // unknown keys, no missing executables.
    let staged_unit = stage.join("carillon-verify.service");
    fs::write(
        &staged_unit,
        unit.replace(
            "/usr/local/bin/carillon",
            &format!("{}/usr/local/bin/carillon", stage.display()),
        )
        .replace(
            "/etc/carillon",
            &format!("{}/etc/carillon", stage.display()),
        ),
    )
    .expect("write the unit to verify");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&staged_unit)
        .output()
        .expect("run systemd-analyze (tests/run.sh installs systemd)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );

    // The unit's commands, on loopback ports instead of 0.0.0.0:5060, with
    // the prompts' path moved into the stage like the unit's paths.
    let port = free_port(&["127.0.0.1".parse().expect("ip")]);
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    // The API on a free port too, not the example's 8088.
    let api_port = common::http::free_tcp_port(&[port]);
    let text = fs::read_to_string(&main_toml).expect("read carillon.toml");
    fs::write(
        &main_toml,
        replace_listeners(&text, &[("udp", addr), ("tcp", addr)])
            .replace(SOUNDS, &staged_sounds.display().to_string())
            .replace("127.0.0.1:8088", &format!("127.0.0.1:{api_port}")),
    )
    .expect("write carillon.toml");
    let workdir = PathBuf::from(format!(
        "{}{}",
        stage.display(),
        unit_value(&unit, "WorkingDirectory")
    ));
    let pre = staged_command(unit_value(&unit, "ExecStartPre"), &stage)
        .current_dir(&workdir)
        .output()
        .expect("run ExecStartPre");
    assert!(
        pre.status.success(),
        "ExecStartPre failed: {}",
        String::from_utf8_lossy(&pre.stdout)
    );
    // check-config looked in the installed prompts: without `goodbye` in
    // any language the dialplan that plays it is refused.
    let langs = ["en", "ar", "fr", "ur"];
    for lang in langs {
        fs::remove_file(staged_sounds.join(lang).join("goodbye.wav")).expect("remove goodbye");
    }
    let refused = staged_command(unit_value(&unit, "ExecStartPre"), &stage)
        .current_dir(&workdir)
        .output()
        .expect("run ExecStartPre");
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && said.contains("prompt 'goodbye' not found"),
        "check-config without goodbye.wav: {said}"
    );
    for lang in langs {
        fs::copy(
            repo_sounds.join(lang).join("goodbye.wav"),
            staged_sounds.join(lang).join("goodbye.wav"),
        )
        .expect("restore goodbye");
    }
    // The installed example's trunks are disabled: nothing leaves loopback.
    common::assert_trunks_contained(&stage.join("etc/carillon"));
    let log = stage.join("carillon.log");
    let out = fs::File::create(&log).expect("create the log");
    let child = staged_command(unit_value(&unit, "ExecStart"), &stage)
        .current_dir(&workdir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(out.try_clone().expect("clone the log handle"))
        .stderr(out)
        .spawn()
        .expect("run ExecStart");
    // Both listeners bound, or a panic with the log.
    let mut sw = Running::adopt(child, port, log, 2);

    let answer = Conn::udp(sw.addr()).options();
    assert_eq!(
        answer.as_ref().and_then(SipMsg::status),
        Some(200),
        "OPTIONS to the installed switch; log:\n{}",
        sw.log()
    );
    assert!(
        workdir.join("var/carillon.db").is_file(),
        "the SQLite database is not under the unit's WorkingDirectory; log:\n{}",
        sw.log()
    );

    // Running::stop sends SIGTERM, the unit's KillSignal.
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    let status = sw.stop();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; log:\n{}",
        sw.log()
    );
    let _ = fs::remove_dir_all(&stage);
}
