//! systemctl shim for `--root` integration tests: records calls, checks unit names exist under the test root,
//! keeps unit state in `<root>/var/lib/stand-ins/systemd.json`, and creates containerd's socket on start.
//! Calls that run at once (the agent runs phases side by side) take turns on that state, as systemd
//! serialises its clients' jobs.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Result};
use kubeboot_stand_ins::flags::{self, boolean, value, Flag};
use kubeboot_stand_ins::{fsx, Invocation, Root};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

const FLAGS: &[Flag] = &[
    boolean("now"),
    boolean("no-block"),
    boolean("no-reload"),
    boolean("quiet").short('q'),
    boolean("no-pager"),
    boolean("system"),
    boolean("force"),
    value("property").short('p'),
    boolean("value"),
];

const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

#[derive(Serialize, Deserialize, Default)]
struct Systemd {
    /// Seconds since the epoch of the last daemon-reload.
    last_reload: f64,
    units: BTreeMap<String, Unit>,
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct Unit {
    enabled: bool,
    active: bool,
    masked: bool,
    starts: u32,
}

fn main() {
    Invocation::begin("systemctl").run(|inv| run(&inv.root, &inv.args))
}

fn state_path(root: &Root) -> PathBuf {
    root.path("/var/lib/stand-ins/systemd.json")
}

/// An exclusive lock beside the state file, held until the call ends (dropped).
fn take_turn(state: &std::path::Path) -> Result<Flock<std::fs::File>> {
    let lock = state.with_extension("lock");
    std::fs::create_dir_all(lock.parent().expect("the state file has a directory"))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| anyhow::anyhow!("locking {}: {errno}", lock.display()))
}

fn unit_name(n: &str) -> String {
    if n.contains('.') {
        n.to_string()
    } else {
        format!("{n}.service")
    }
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The unit file and its drop-ins; None when the unit does not exist under the root.
fn unit_files(root: &Root, unit: &str) -> Option<Vec<PathBuf>> {
    let main = UNIT_DIRS
        .iter()
        .map(|d| root.path(format!("{d}/{unit}")))
        .find(|p| p.is_file())?;
    let mut files = vec![main];
    for d in UNIT_DIRS {
        for e in std::fs::read_dir(root.path(format!("{d}/{unit}.d")))
            .into_iter()
            .flatten()
            .flatten()
        {
            files.push(e.path());
        }
    }
    Some(files)
}

fn run(root: &Root, args: &[String]) -> Result<()> {
    let p = flags::parse(args, FLAGS)?;
    let (command, names) = p
        .positionals
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("a command is required"))?;
    let path = state_path(root);
    let _turn = take_turn(&path)?;
    let mut sd: Systemd = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
    let needs_units = !matches!(
        command.as_str(),
        "daemon-reload" | "list-units" | "show-environment"
    );
    if needs_units && units.is_empty() {
        bail!("Too few arguments.");
    }
    let mut exit_code = 0;
    for unit in &units {
        // mask/unmask and is-active work on units that do not exist, as in systemd.
        let files = match unit_files(root, unit) {
            Some(files) => files,
            None if matches!(command.as_str(), "mask" | "unmask" | "is-active") => vec![],
            None => {
                eprintln!("Failed to {command} {unit}: Unit {unit} not found.");
                std::process::exit(5);
            }
        };
        let known = sd.units.contains_key(unit);
        let state = sd.units.entry(unit.clone()).or_default();
        let changed = files.iter().any(|f| {
            f.metadata()
                .and_then(|m| m.modified())
                .map(|t| epoch(t) > sd.last_reload)
                .unwrap_or(false)
        });
        let start = |state: &mut Unit| -> Result<()> {
            if state.masked {
                bail!("Failed to start {unit}: Unit {unit} is masked.");
            }
            // systemd keeps using the old definition until daemon-reload: a silent bug, so refuse.
            if known && changed {
                bail!("the unit file of {unit} changed on disk since the last daemon-reload; run 'systemctl daemon-reload' first");
            }
            state.active = true;
            state.starts += 1;
            if unit == "containerd.service" {
                let sock = root.path("/run/containerd/containerd.sock");
                if let Some(dir) = sock.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let _ = std::fs::remove_file(&sock);
                std::os::unix::net::UnixListener::bind(&sock)?;
            }
            Ok(())
        };
        match command.as_str() {
            "enable" => {
                if state.masked {
                    bail!("Failed to enable unit: Unit file {unit} is masked.");
                }
                state.enabled = true;
                if p.is_true("now") {
                    start(state)?;
                }
            }
            "disable" => {
                state.enabled = false;
                if p.is_true("now") {
                    state.active = false;
                }
            }
            "start" | "restart" | "reload-or-restart" | "try-restart" => start(state)?,
            "stop" => state.active = false,
            "mask" => {
                state.masked = true;
                state.enabled = false;
            }
            "unmask" => state.masked = false,
            "is-active" => {
                println!("{}", if state.active { "active" } else { "inactive" });
                if !state.active {
                    exit_code = 3;
                }
            }
            "is-enabled" => {
                println!("{}", if state.masked { "masked" } else if state.enabled { "enabled" } else { "disabled" });
                if !state.enabled {
                    exit_code = 1;
                }
            }
            other => bail!("Unknown command verb {other} (the shim implements daemon-reload, enable, disable, start, restart, stop, mask, unmask, is-active, is-enabled)"),
        }
    }
    if command == "daemon-reload" {
        sd.last_reload = epoch(SystemTime::now());
    }
    fsx::write(&path, serde_json::to_vec_pretty(&sd)?, 0o644)?;
    if exit_code != 0 {
        std::process::exit(exit_code);
    }
    Ok(())
}
