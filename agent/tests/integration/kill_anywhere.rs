//! Kill anywhere, converge anyway: `kubeboot-agent run` is SIGKILLed (with its whole process
//! group and the group of each command it runs, as systemd stops a unit's whole cgroup: the
//! kubeadm it runs dies too, the API server it started, a static pod in real life, does not) at every phase boundary and in the middle of phases, then
//! run again until done. Every such node must end with the same files as a node whose run was
//! never interrupted. For a first master and for a worker, NodeConfigs rendered by kubeboot-gen.
//!
//! Kill points, for each node kind, derived from an uninterrupted run (not hard-coded):
//! - boundaries: as soon as the k-th phase's done-marker appears, for every phase but the last;
//! - commands: while the n-th stand-in call of the run sleeps (STANDIN_DELAY_MS), i.e. in the
//!   middle of the phase that runs it, for every call of the run;
//! - inside kubeadm: once each file `kubeadm init`/`join` writes between its own phases appears.
//!
//! The worker's NodeConfig names containerd and runc releases (from a `file://` mirror), so the
//! container-runtime phase installs them and containerd's unit before it restarts containerd.
//!
//! `kubeboot-agent upgrade` is killed the same way, on nodes that are done: at every step
//! boundary, during every stand-in call of the upgrade, and once kubeadm rewrote the API server's
//! manifest; every such node must end as an upgrade that was never interrupted.

// A release tree for the worker's containerd and runc; the other tests use the rest of it.
#[allow(dead_code)]
use crate::release;

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kubeboot_test_kit::output::text;
use kubeboot_test_kit::port::free_port;
use kubeboot_test_kit::snapshot::{self, Entry, Snapshot};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use support::machine::{
    loopback_spec, with_endpoint_port, with_release_mirror, Machine, ReleaseMirror, Rendered,
};

/// How long every stand-in call (and kubeadm between its phases) sleeps in a run that is going to
/// be killed: long enough that a kill decided on seeing a call or a file lands before the next one.
/// A run that a starved test thread failed to interrupt is tried again with a longer sleep.
const DELAY_MS: u64 = 300;
const MAX_DELAY_MS: u64 = 4800;
const PHASES_DIR: &str = "/var/lib/kubeboot/phases";
const DONE_MARKER: &str = "/var/lib/kubeboot/done";
const UPGRADE_STEPS_DIR: &str = "/var/lib/kubeboot/upgrade";
const UPGRADE_RECORD: &str = "/var/lib/kubeboot/upgrade.json";
/// The upgrade the upgrade subjects make (the cluster boots at the version before it).
const UPGRADE_FROM: &str = "v1.36.2";
const UPGRADE_TO: &str = "v1.37.1";
const CALL_LOG: &str = "/var/log/stand-ins/calls.jsonl";
/// A run that is killed never needs this long to reach its kill point (upper bound only).
const KILL_POINT_DEADLINE: Duration = Duration::from_secs(300);
/// A kill may leave the node needing more than one further run (e.g. a reset, then init).
const MAX_RERUNS: usize = 3;

#[derive(Clone)]
enum KillPoint {
    /// The done-marker of this phase (or upgrade step) exists.
    After(String),
    /// The stand-in call log has this many lines more than when the command started: that call
    /// is running.
    DuringCall(usize, String),
    /// This node file holds this text (written by kubeadm, which sleeps before its next part).
    Written(&'static str, &'static str),
}

impl std::fmt::Debug for KillPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillPoint::After(phase) => write!(f, "after {phase}"),
            KillPoint::DuringCall(n, call) => write!(f, "during call {n} ({call})"),
            KillPoint::Written(path, "") => write!(f, "once {path} appeared"),
            KillPoint::Written(path, text) => write!(f, "once {path} said {text}"),
        }
    }
}

impl KillPoint {
    /// Whether the command started on `machine` (with `calls_before` stand-in calls logged)
    /// reached this point of `workflow`.
    fn reached(&self, machine: &Machine, workflow: &Workflow, calls_before: usize) -> bool {
        match self {
            KillPoint::After(phase) => machine
                .node(&format!("{}/{phase}.done", workflow.markers_dir()))
                .exists(),
            KillPoint::DuringCall(n, _) => calls(machine).len() >= calls_before + n,
            KillPoint::Written(path, text) => std::fs::read_to_string(machine.node(path))
                .is_ok_and(|contents| contents.contains(text)),
        }
    }
}

/// The command the loop kills, and where it records its progress.
enum Workflow {
    /// `kubeboot-agent run` on a fresh machine.
    Boot,
    /// `kubeboot-agent upgrade --to UPGRADE_TO` (and these arguments) on a machine that is done.
    Upgrade(Vec<String>),
}

impl Workflow {
    fn args(&self) -> Vec<String> {
        match self {
            Workflow::Boot => vec!["run".into()],
            Workflow::Upgrade(extra) => ["upgrade", "--to", UPGRADE_TO]
                .into_iter()
                .map(String::from)
                .chain(extra.iter().cloned())
                .collect(),
        }
    }

    fn markers_dir(&self) -> &'static str {
        match self {
            Workflow::Boot => PHASES_DIR,
            Workflow::Upgrade(_) => UPGRADE_STEPS_DIR,
        }
    }

    fn finished(&self, machine: &Machine) -> bool {
        match self {
            Workflow::Boot => machine.node(DONE_MARKER).exists(),
            Workflow::Upgrade(_) => std::fs::read(machine.node(UPGRADE_RECORD))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|record| record["finishedAt"].is_string()),
        }
    }

    /// The phases or steps `status --output json` lists.
    fn stages<'a>(&self, status: &'a serde_json::Value) -> &'a Vec<serde_json::Value> {
        match self {
            Workflow::Boot => status["phases"].as_array().unwrap(),
            Workflow::Upgrade(_) => status["upgrade"]["steps"].as_array().unwrap(),
        }
    }
}

fn calls(machine: &Machine) -> Vec<String> {
    let log = std::fs::read_to_string(machine.node(CALL_LOG)).unwrap_or_default();
    log.lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| {
            let call: serde_json::Value = serde_json::from_str(l).unwrap();
            let argv: Vec<&str> = call["argv"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
                .take(3)
                .collect();
            format!("{} {}", call["tool"].as_str().unwrap(), argv.join(" "))
        })
        .collect()
}

/// One node kind under test: how to make a fresh machine for it, and what is killed on it.
struct Subject<'a> {
    kind: &'static str,
    hostname: &'static str,
    node_yaml: Box<dyn Fn() -> String + Sync + 'a>,
    workflow: Workflow,
    /// What kubeadm writes between two of its parts on this kind of node (file, text).
    kubeadm_writes: &'static [(&'static str, &'static str)],
}

impl Subject<'_> {
    /// A machine ready for the workflow: fresh to boot, or done to upgrade.
    fn machine(&self) -> Machine {
        let machine = Machine::new(self.hostname, &(self.node_yaml)());
        if let Workflow::Upgrade(_) = self.workflow {
            run_to_finished(&machine, &Workflow::Boot, &format!("{} boot", self.kind));
        }
        machine
    }
}

/// What one run of the kill-and-rerun loop saw.
struct Outcome {
    point: KillPoint,
    interrupted: bool,
    reruns: usize,
}

fn run_to_done(machine: &Machine, what: &str) -> usize {
    run_to_finished(machine, &Workflow::Boot, what)
}

/// Runs the workflow's command until it finishes (at most MAX_RERUNS times); how many runs it took.
fn run_to_finished(machine: &Machine, workflow: &Workflow, what: &str) -> usize {
    let args = workflow.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut last_failure = String::new();
    for attempt in 1..=MAX_RERUNS {
        let out = machine.agent(&args);
        if out.status.success() {
            assert!(
                workflow.finished(machine),
                "{what}: exit 0 but not finished: {}",
                text(&out)
            );
            return attempt;
        }
        last_failure = text(&out);
    }
    panic!("{what}: not done after {MAX_RERUNS} re-runs; the last one: {last_failure}");
}

/// Kills the agent `pid` as systemd stops its unit (the whole cgroup): its process group, and the
/// group each command it runs leads (the agent starts every child in a group of its own, so that
/// a deadline kills what the child started). The agent is stopped first, so it starts nothing
/// while its children are found. The API server kubeadm started, in a group of its own under
/// kubeadm, survives, as a static pod would.
fn kill_like_systemd(pid: u32) {
    let agent = Pid::from_raw(pid as i32);
    kill(agent, Signal::SIGSTOP).unwrap();
    for command in children_of(pid) {
        // Gone already, or forked but not yet in its own group (then in the agent's).
        let _ = killpg(Pid::from_raw(command), Signal::SIGKILL);
    }
    killpg(agent, Signal::SIGKILL).unwrap();
}

/// The processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<i32> {
    let parent_of = |stat: &str| -> Option<u32> {
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
                == Some(pid)
        })
        .collect()
}

/// Starts a slow run, kills it as systemd would at `point`, then re-runs until done.
fn kill_and_rerun(subject: &Subject, point: KillPoint, delay_ms: u64) -> (Outcome, Machine) {
    let machine = subject.machine();
    let calls_before = calls(&machine).len();
    let log = tempfile::NamedTempFile::new().unwrap();
    let args = subject.workflow.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child: Child = machine
        .agent_command(&args)
        .env("STANDIN_DELAY_MS", delay_ms.to_string())
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let interrupted = loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{} {point:?}: the slow run failed ({status}): {}",
                subject.kind,
                std::fs::read_to_string(log.path()).unwrap()
            );
            break false;
        }
        if point.reached(&machine, &subject.workflow, calls_before) {
            kill_like_systemd(child.id());
            child.wait().unwrap();
            break true;
        }
        assert!(
            started.elapsed() < KILL_POINT_DEADLINE,
            "{} {point:?}: never reached",
            subject.kind
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let reruns = run_to_finished(
        &machine,
        &subject.workflow,
        &format!("{} {point:?}", subject.kind),
    );
    let outcome = Outcome {
        point,
        interrupted,
        reruns,
    };
    (outcome, machine)
}

/// What the systemctl and modprobe shims record of the node's state: units enabled, active or
/// masked, modules loaded. Part of what must converge.
const SYSTEMD_STATE: &str = "var/lib/stand-ins/systemd.json";
const MODULES_STATE: &str = "var/lib/stand-ins/modules.json";

/// `kill_and_rerun`, slower until the kill lands while a stand-in sleeps (a phase boundary can
/// only be aimed at: the last phases take no time).
fn interrupted_run(subject: &Subject, point: KillPoint) -> (Outcome, Machine) {
    let mut delay_ms = DELAY_MS;
    loop {
        let (outcome, machine) = kill_and_rerun(subject, point.clone(), delay_ms);
        if outcome.interrupted || matches!(point, KillPoint::After(_)) || delay_ms >= MAX_DELAY_MS {
            return (outcome, machine);
        }
        delay_ms *= 2;
    }
}

/// The node's files as they must converge. Left out or blurred, and why:
/// - the stand-ins' bookkeeping (`/var/lib/stand-ins`, `/var/log/stand-ins`) but the node state
///   above: e.g. a re-run legitimately calls kubeadm again and restarts units once more, so the
///   call log and the units' start counters differ;
/// - timestamps and durations in the phase markers;
/// - certificates, keys and kubeconfigs that kubeadm issues on the node (fresh key pairs on every
///   init/join; after a reset they are issued again): path and mode only. The shared PKI the
///   agent writes is compared in full;
/// - the machine's temporary root and its API server port, which differ from run to run.
fn converged_files(machine: &Machine, port: Option<u16>) -> BTreeMap<String, Entry> {
    let root = machine.root().display().to_string();
    let mut out = BTreeMap::new();
    for (path, entry) in snapshot::take(machine.root()) {
        let node_state = [SYSTEMD_STATE, MODULES_STATE].contains(&path.as_str());
        if !node_state
            && (path.starts_with("var/lib/stand-ins") || path.starts_with("var/log/stand-ins"))
        {
            continue;
        }
        let entry = match entry {
            Entry::File { mode, contents } => Entry::File {
                mode,
                contents: normalised(&path, contents, &root, port),
            },
            other => other,
        };
        out.insert(path, entry);
    }
    out
}

const SHARED_PKI: &[&str] = &[
    "ca.crt",
    "ca.key",
    "sa.pub",
    "sa.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

fn issued_on_the_node(path: &str) -> bool {
    let shared = path
        .strip_prefix("etc/kubernetes/pki/")
        .is_some_and(|p| SHARED_PKI.contains(&p));
    !shared
        && (path.starts_with("etc/kubernetes/pki/")
            || path.starts_with("var/lib/kubelet/pki/")
            || (path.starts_with("etc/kubernetes/") && path.ends_with(".conf")))
}

fn normalised(path: &str, contents: Vec<u8>, root: &str, port: Option<u16>) -> Vec<u8> {
    if issued_on_the_node(path) {
        return b"(issued on the node)".to_vec();
    }
    if path == SYSTEMD_STATE {
        let mut state: serde_json::Value = serde_json::from_slice(&contents).unwrap();
        state["last_reload"] = "(time)".into();
        for unit in state["units"].as_object_mut().unwrap().values_mut() {
            unit["starts"] = "(count)".into();
        }
        return state.to_string().into_bytes();
    }
    let is_marker = (path.starts_with(&PHASES_DIR[1..])
        || path.starts_with(&UPGRADE_STEPS_DIR[1..]))
        && path.ends_with(".done");
    if is_marker || path == &DONE_MARKER[1..] || path == &UPGRADE_RECORD[1..] {
        let mut record: serde_json::Value = serde_json::from_slice(&contents).unwrap();
        for timing in ["startedAt", "finishedAt", "durationMs"] {
            if record.get(timing).is_some() {
                record[timing] = "(time)".into();
            }
        }
        return record.to_string().into_bytes();
    }
    let Ok(text) = String::from_utf8(contents.clone()) else {
        return contents;
    };
    let text = text.replace(root, "/ROOT");
    match port {
        Some(port) => whole_number_replaced(&text, &port.to_string(), "PORT"),
        None => text,
    }
    .into_bytes()
}

/// `text` with every `number` that is not part of a longer word or number replaced by `with`.
fn whole_number_replaced(text: &str, number: &str, with: &str) -> String {
    let bytes = text.as_bytes();
    let (mut out, mut copied) = (String::with_capacity(text.len()), 0);
    for (i, _) in text.match_indices(number) {
        let before = i.checked_sub(1).map(|b| bytes[b]);
        let after = bytes.get(i + number.len()).copied();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        {
            out.push_str(&text[copied..i]);
            out.push_str(with);
            copied = i + number.len();
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn differences(reference: &Snapshot, other: &Snapshot) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, entry) in reference {
        match other.get(path) {
            None => diffs.push(format!("missing {path}")),
            Some(e) if e != entry => diffs.push(format!(
                "{path} differs:\n  reference {}\n  this run  {}",
                describe(entry),
                describe(e)
            )),
            Some(_) => {}
        }
    }
    for path in other.keys().filter(|p| !reference.contains_key(*p)) {
        diffs.push(format!("extra {path}"));
    }
    diffs
}

fn describe(entry: &Entry) -> String {
    match entry {
        Entry::File { mode, contents } => {
            format!("{mode:o} {:?}", String::from_utf8_lossy(contents))
        }
        other => format!("{other:?}"),
    }
}

/// Kills and re-runs at every kill point of `subject`, two at a time (two cores).
fn every_kill_point(subject: &Subject, port_of: &(dyn Fn(&Machine) -> Option<u16> + Sync)) {
    let reference = subject.machine();
    let calls_before = calls(&reference).len();
    let args = subject.workflow.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = reference.agent(&args);
    assert!(out.status.success(), "{}: {}", subject.kind, text(&out));
    let expected = converged_files(&reference, port_of(&reference));

    let mut points: Vec<KillPoint> = Vec::new();
    let status = reference.agent(&["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let stages = subject.workflow.stages(&status);
    let done: Vec<String> = stages
        .iter()
        .filter(|p| p["state"] == "done")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_needs_kept(subject.kind, stages);
    // After a boot's last phase only the final marker is left, which is `done` itself; after an
    // upgrade's last step the upgrade still records its end.
    let boundaries = match subject.workflow {
        Workflow::Boot => &done[..done.len() - 1],
        Workflow::Upgrade(_) => &done[..],
    };
    points.extend(boundaries.iter().cloned().map(KillPoint::After));
    points.extend(
        calls(&reference)
            .into_iter()
            .skip(calls_before)
            .enumerate()
            .map(|(i, call)| KillPoint::DuringCall(i + 1, call)),
    );
    points.extend(
        subject
            .kubeadm_writes
            .iter()
            .map(|(path, text)| KillPoint::Written(path, text)),
    );
    drop(reference);

    let queue = Mutex::new(points.clone());
    let failures = Mutex::new(Vec::new());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(point) = queue.lock().unwrap().pop() else {
                    break;
                };
                let (outcome, machine) = interrupted_run(subject, point);
                let diffs = differences(&expected, &converged_files(&machine, port_of(&machine)));
                if !diffs.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "{} killed at {:?}:\n{}",
                        subject.kind,
                        outcome.point,
                        diffs.join("\n")
                    ));
                }
                outcomes.lock().unwrap().push(outcome);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let outcomes = outcomes.into_inner().unwrap();
    assert_eq!(outcomes.len(), points.len());
    for o in &outcomes {
        // A run stopped during a stand-in call or between kubeadm's phases cannot have finished.
        if !matches!(o.point, KillPoint::After(_)) {
            assert!(
                o.interrupted,
                "{} {:?}: not interrupted",
                subject.kind, o.point
            );
        }
    }
    let interrupted = outcomes.iter().filter(|o| o.interrupted).count();
    let reruns: usize = outcomes.iter().map(|o| o.reruns).sum();
    eprintln!(
        "{}: {} kill points ({} boundaries), {interrupted} runs interrupted, {reruns} re-runs in all",
        subject.kind,
        outcomes.len(),
        boundaries.len()
    );
}

/// The uninterrupted run started each phase only after every phase it needs had finished, and
/// `status` names no phase it needs among those it ran beside.
fn assert_needs_kept(kind: &str, phases: &[serde_json::Value]) {
    let done = |name: &str| {
        phases
            .iter()
            .find(|p| p["name"] == name && p["state"] == "done")
    };
    for phase in phases.iter().filter(|p| p["state"] == "done") {
        let name = phase["name"].as_str().unwrap();
        // RFC 3339 UTC with milliseconds: the strings order as the times do.
        let started = phase["startedAt"].as_str().unwrap();
        for needed in phase["after"].as_array().unwrap() {
            let Some(needed) = done(needed.as_str().unwrap()) else {
                continue;
            };
            let finished = needed["finishedAt"].as_str().unwrap();
            assert!(
                finished <= started,
                "{kind}: {name} started {started}, before {} finished {finished}",
                needed["name"]
            );
            assert!(
                !phase["ranBeside"]
                    .as_array()
                    .unwrap()
                    .contains(&needed["name"]),
                "{kind}: {name} ran beside {}, which it needs",
                needed["name"]
            );
        }
    }
}

/// The NodeConfig naming the test release tree's containerd and runc under `base`.
fn with_container_runtime(node_yaml: &str, base: &str) -> String {
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(node_yaml).unwrap();
    let tool =
        |release: kubeboot_nodeconfig::ToolRelease| serde_yaml_ng::to_value(release).unwrap();
    config["artifacts"]["containerd"] = tool(release::containerd_release(base));
    config["artifacts"]["runc"] = tool(release::runc_release(base));
    serde_yaml_ng::to_string(&config).unwrap()
}

fn bind_port(machine: &Machine) -> Option<u16> {
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(machine.node("/etc/kubeboot/node.yaml")).unwrap(),
    )
    .unwrap();
    config["cluster"]["apiServerBindPort"]
        .as_u64()
        .map(|p| p as u16)
}

#[test]
fn a_first_master_killed_anywhere_converges() {
    let cluster = Rendered::new(&loopback_spec("kill", "v1.35.0", free_port(), 1));
    let master_yaml = cluster.node_yaml("master");
    let subject = Subject {
        kind: "first-master",
        hostname: "kill-master-0",
        // Every first master runs its own API server: a port each, so cases run side by side.
        node_yaml: Box::new(|| with_endpoint_port(&master_yaml, free_port())),
        workflow: Workflow::Boot,
        kubeadm_writes: &[
            ("/etc/kubernetes/pki/apiserver.crt", ""),
            ("/etc/kubernetes/admin.conf", ""),
            ("/etc/kubernetes/manifests/kube-apiserver.yaml", ""),
            ("/var/lib/kubelet/config.yaml", ""),
        ],
    };
    every_kill_point(&subject, &bind_port);
}

#[test]
fn a_worker_killed_anywhere_converges() {
    let port = free_port();
    let cluster = Rendered::new(&loopback_spec("kill", "v1.35.0", port, 1));
    let master = Machine::new(
        "kill-master-0",
        &with_endpoint_port(&cluster.node_yaml("master"), port),
    );
    let out = master.agent(&["run"]);
    assert!(out.status.success(), "first master: {}", text(&out));
    let mirror = tempfile::tempdir().unwrap();
    release::ReleaseTree::generate(1000).write_to(mirror.path());
    let base = format!("file://{}", mirror.path().display());
    let worker_yaml = with_container_runtime(&cluster.node_yaml("workers"), &base);
    let once = Machine::new("kill-workers-0", &worker_yaml);
    run_to_done(&once, "worker with containerd and runc releases");
    for installed in [
        "/usr/local/bin/containerd",
        "/usr/local/bin/containerd-shim-runc-v2",
        "/usr/local/bin/runc",
        "/etc/systemd/system/containerd.service",
    ] {
        assert!(once.node(installed).exists(), "{installed}");
    }
    drop(once);
    let subject = Subject {
        kind: "worker",
        hostname: "kill-workers-0",
        node_yaml: Box::new(|| worker_yaml.clone()),
        workflow: Workflow::Boot,
        kubeadm_writes: &[
            ("/var/lib/kubelet/pki/kubelet-client-current.pem", ""),
            ("/etc/kubernetes/kubelet.conf", ""),
        ],
    };
    every_kill_point(&subject, &|_| None);
}

#[test]
fn a_first_master_upgrade_killed_anywhere_converges() {
    let mirror = ReleaseMirror::new(UPGRADE_TO);
    let cluster = Rendered::new(&loopback_spec("kill", UPGRADE_FROM, free_port(), 1));
    let master_yaml = with_release_mirror(&cluster.node_yaml("master"), &mirror.url());
    let subject = Subject {
        kind: "first-master upgrade",
        hostname: "kill-master-0",
        node_yaml: Box::new(|| with_endpoint_port(&master_yaml, free_port())),
        workflow: Workflow::Upgrade(Vec::new()),
        // Between rewriting the static pods and recording the cluster's new version.
        kubeadm_writes: &[("/etc/kubernetes/manifests/kube-apiserver.yaml", UPGRADE_TO)],
    };
    every_kill_point(&subject, &bind_port);
}

/// Workers of a control plane at the target already, upgraded with the operator's credentials.
#[test]
fn a_worker_upgrade_killed_anywhere_converges() {
    let mirror = ReleaseMirror::new(UPGRADE_TO);
    let port = free_port();
    let cluster = Rendered::new(&loopback_spec("kill", UPGRADE_FROM, port, 1));
    let master = Machine::new(
        "kill-master-0",
        &with_endpoint_port(
            &with_release_mirror(&cluster.node_yaml("master"), &mirror.url()),
            port,
        ),
    );
    run_to_done(&master, "first master");
    run_to_finished(
        &master,
        &Workflow::Upgrade(Vec::new()),
        "first master upgrade",
    );
    let admin = master
        .node("/etc/kubernetes/admin.conf")
        .display()
        .to_string();
    let worker_yaml = with_release_mirror(&cluster.node_yaml("workers"), &mirror.url());
    let subject = Subject {
        kind: "worker upgrade",
        hostname: "kill-workers-0",
        node_yaml: Box::new(|| worker_yaml.clone()),
        workflow: Workflow::Upgrade(vec!["--kubeconfig".into(), admin.clone()]),
        kubeadm_writes: &[],
    };
    every_kill_point(&subject, &|_| None);
}

/// How many moments of an uninterrupted dry run a dry run is killed at, spread evenly over it.
const DRY_RUN_KILLS: u32 = 12;

/// Dry runs of a first master and a worker, killed anywhere: the node stays byte-identical (so no
/// `.kubeboot-*` staging file is left under the root either), and the temporary tree a killed dry
/// run leaves in $TMPDIR goes with the next dry run.
#[test]
fn a_dry_run_killed_anywhere_changes_nothing() {
    let cluster = Rendered::new(&loopback_spec("kill", "v1.35.0", free_port(), 1));
    for (hostname, pool) in [("kill-master-0", "master"), ("kill-workers-0", "workers")] {
        let machine = Machine::new(hostname, &cluster.node_yaml(pool));
        let before = snapshot::take(machine.root());
        let tmp = tempfile::tempdir().unwrap();
        let dry_run = || {
            let mut cmd = machine.agent_command(&["run", "--dry-run"]);
            cmd.env("TMPDIR", tmp.path());
            cmd
        };
        let started = Instant::now();
        let out = dry_run().output().unwrap();
        let took = started.elapsed();
        assert!(out.status.success(), "{hostname}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("nothing was changed"),
            "{hostname}: {}",
            text(&out)
        );
        assert_eq!(snapshot::take(machine.root()), before, "{hostname}");
        let mut interrupted = 0;
        // Never at 0: a kill before the run starts would count as an interruption.
        for i in 1..=DRY_RUN_KILLS {
            let at = took * i / (DRY_RUN_KILLS + 1);
            let mut child = dry_run()
                .process_group(0)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(at);
            match child.try_wait().unwrap() {
                // Done already (a busy machine runs it faster than the uninterrupted one ran).
                Some(status) => assert!(status.success(), "{hostname}: {status}"),
                None => {
                    interrupted += 1;
                    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
                    child.wait().unwrap();
                }
            }
            let after = snapshot::take(machine.root());
            assert_eq!(after, before, "{hostname}: a dry run killed after {at:?}");
        }
        assert!(interrupted > 0, "{hostname}: no dry run was interrupted");
        eprintln!(
            "{hostname}: a dry run takes {took:?}; {interrupted} of {DRY_RUN_KILLS} killed while running"
        );
        let out = dry_run().output().unwrap();
        assert!(out.status.success(), "{hostname}: {}", text(&out));
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{hostname}: left in $TMPDIR: {left:?}");
    }
}
