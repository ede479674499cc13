//! `kubeboot-agent upgrade`: a 1.36 cluster (first master, extra master, worker) rendered by
//! kubeboot-gen and booted by the agent is moved to 1.37 node by node, with the stand-in kubeadm
//! enforcing kubeadm's version-skew policy and the stand-in API server playing each version;
//! refusals (a skipped minor, a downgrade, a node not done) are one line each.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use kubeboot_stand_ins::apiserver::state::State;
use kubeboot_stand_ins::Root as StandInRoot;
use kubeboot_test_kit::output::text;
use kubeboot_test_kit::port::free_port;
use serde_json::Value;

use crate::support::machine::{
    loopback_spec, with_bind_port, with_release_mirror, Machine, ReleaseMirror, Rendered,
};

const FROM: &str = "v1.36.2";
const TO: &str = "v1.37.1";

fn boot(machine: &Machine, what: &str) {
    let out = machine.agent(&["run"]);
    assert!(out.status.success(), "{what}: {}", text(&out));
}

fn status(machine: &Machine) -> Value {
    let out = machine.agent(&["status", "--output", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)))
}

/// `kubectl` with `kubeconfig` (a host path), as the test's operator runs it.
fn kubectl(machine: &Machine, kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = machine
        .command(&kubeboot_stand_ins::test_kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The one line a refused upgrade prints, and its exit code (2: bad input).
fn refused(machine: &Machine, args: &[&str]) -> String {
    let out = machine.agent(args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    lines[0].to_string()
}

/// Runs the upgrade to TO on `machine`, timed.
fn upgrade(machine: &Machine, what: &str, extra: &[&str]) -> f64 {
    let started = Instant::now();
    let mut args = vec!["upgrade", "--to", TO];
    args.extend_from_slice(extra);
    let out = machine.agent(&args);
    let took = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{what}: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("from {FROM} to {TO}")),
        "{what}: {}",
        text(&out)
    );
    took
}

/// Every upgrade step that applies is done, the upgrade finished, and the node runs TO's
/// kubelet, kubeadm and kubectl, byte for byte what the mirror serves.
fn assert_upgraded(machine: &Machine, mirror: &ReleaseMirror, what: &str) {
    let status = status(machine);
    let upgrade = &status["upgrade"];
    assert_eq!(upgrade["from"], FROM, "{what}: {status:#}");
    assert_eq!(upgrade["to"], TO, "{what}: {status:#}");
    assert!(upgrade["finishedAt"].is_string(), "{what}: {status:#}");
    for step in upgrade["steps"].as_array().unwrap() {
        assert!(
            step["state"] == "done" || step["state"] == "skipped",
            "{what}: {step:#}"
        );
    }
    for name in ["kubelet", "kubeadm", "kubectl"] {
        assert!(
            std::fs::read(machine.node(&format!("/usr/local/bin/{name}"))).unwrap()
                == mirror.binary(TO, name),
            "{what}: {name} is not {TO}'s"
        );
    }
    // The boot phases agree with the node at its new version: nothing to run again.
    let plan = machine.agent(&["plan", "--output", "json"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    for stage in plan["stages"].as_array().unwrap() {
        assert!(
            stage["action"] == "done" || stage["action"] == "skip",
            "{what}: after the upgrade, plan says {stage:#}"
        );
    }
    let audit = machine.agent(&["audit"]);
    assert!(audit.status.success(), "{what}: {}", text(&audit));
}

/// A running pod on `node`: owned by a ReplicaSet and holding an emptyDir (as the disk driver's
/// controller does), or owned by flannel's DaemonSet.
fn pod(name: &str, node: &str, owner: &str) -> Value {
    let (namespace, owner_ref, volumes) = match owner {
        "DaemonSet" => (
            "kube-flannel",
            serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-flannel-ds", "uid": "ds-1", "controller": true}),
            serde_json::json!([]),
        ),
        _ => (
            "kube-system",
            serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "controller-5d9f", "uid": "rs-1", "controller": true}),
            serde_json::json!([{"name": "socket-dir", "emptyDir": {}}]),
        ),
    };
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "ownerReferences": [owner_ref]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}], "volumes": volumes},
        "status": {"phase": "Running"}})
}

/// The pods the stand-in API server (on `first`) holds, by name.
fn pods(first: &Machine) -> Vec<String> {
    let state = State::new(&StandInRoot::new(first.root()));
    state
        .objects()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_prefix("v1/Pod/"))
        .map(|k| k.rsplit('/').next().unwrap().to_string())
        .collect()
}

fn control_plane_image_tags(machine: &Machine) -> Vec<String> {
    [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .map(|pod| {
        let manifest =
            std::fs::read_to_string(machine.node(&format!("/etc/kubernetes/manifests/{pod}.yaml")))
                .unwrap();
        let image = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("image: "))
            .unwrap()
            .to_string();
        image.rsplit_once(':').unwrap().1.to_string()
    })
    .collect()
}

#[test]
fn a_cluster_moves_to_the_next_minor_node_by_node() {
    let mirror = ReleaseMirror::new(TO);
    let (endpoint_port, extra_port) = (free_port(), free_port());
    let cluster = Rendered::new(&loopback_spec("up", FROM, endpoint_port, 2));
    let master_yaml = with_release_mirror(&cluster.node_yaml("master"), &mirror.url());
    let worker_yaml = with_release_mirror(&cluster.node_yaml("workers"), &mirror.url());
    let first = Machine::new("up-master-0", &with_bind_port(&master_yaml, endpoint_port));
    let extra = Machine::new("up-master-1", &with_bind_port(&master_yaml, extra_port));
    let worker = Machine::new("up-workers-0", &worker_yaml);

    // A node that is not done yet is not upgraded.
    let line = refused(&first, &["upgrade", "--to", TO]);
    assert!(line.contains("not done booting"), "{line}");
    boot(&first, "first master");
    boot(&extra, "extra master");
    boot(&worker, "worker");

    // The first master runs a controller's pod (drained: evicted) and a DaemonSet's (left).
    let state = State::new(&StandInRoot::new(first.root()));
    let mut objects = state.objects().unwrap();
    for (name, owner) in [
        ("controller-5d9f-x2", "ReplicaSet"),
        ("kube-flannel-ds-q7", "DaemonSet"),
    ] {
        let pod = pod(name, "up-master-0", owner);
        let namespace = pod["metadata"]["namespace"].as_str().unwrap().to_string();
        objects.insert(format!("v1/Pod/{namespace}/{name}"), pod);
    }
    state.set_objects(&objects).unwrap();

    let line = refused(&first, &["upgrade", "--to", "v1.35.9"]);
    assert!(line.contains("refusing to downgrade"), "{line}");
    let admin = first.node("/etc/kubernetes/admin.conf");
    // Credentials others may read, or another user's, are refused, not used.
    let shared = tempfile::tempdir().unwrap();
    let copy = shared.path().join("admin.conf");
    std::fs::copy(&admin, &copy).unwrap();
    let with_copy = [
        "upgrade",
        "--to",
        TO,
        "--kubeconfig",
        copy.to_str().unwrap(),
    ];
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = refused(&worker, &with_copy);
    assert!(line.contains("readable by others than its owner"), "{line}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(&copy, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let line = refused(&worker, &with_copy);
    assert!(line.contains("owned by another user"), "{line}");

    // The worker cannot go first: the control plane is not at the target. Its upgrade stays
    // unfinished (status exits 4) but changed nothing, so another target may replace it.
    let early = worker.agent(&["upgrade", "--to", "v1.37.2"]);
    assert!(!early.status.success());
    assert!(
        text(&early).contains(&format!("the control plane is at {FROM}, not v1.37.2")),
        "{}",
        text(&early)
    );
    assert_eq!(worker.agent(&["status"]).status.code(), Some(4));

    let mut took = Vec::new();
    took.push(("first master", upgrade(&first, "first master", &[])));
    let server = kubectl(&first, &admin, &["version", "--output=json"]);
    let server: Value = serde_json::from_str(&server).unwrap();
    assert_eq!(server["serverVersion"]["gitVersion"], TO, "{server:#}");
    assert_eq!(control_plane_image_tags(&first), [TO, TO, TO]);
    assert_upgraded(&first, &mirror, "first master");
    assert_eq!(
        pods(&first),
        ["kube-flannel-ds-q7"],
        "the drain evicts all but the DaemonSet's"
    );

    took.push(("extra master", upgrade(&extra, "extra master", &[])));
    assert_eq!(control_plane_image_tags(&extra), [TO, TO, TO]);
    assert_upgraded(&extra, &mirror, "extra master");

    // The worker's own credentials may not evict pods: without --kubeconfig it must have been
    // drained by the operator, and it uncordons itself.
    let undrained = worker.agent(&["upgrade", "--to", TO]);
    assert!(!undrained.status.success());
    assert!(
        text(&undrained).contains("worker up-workers-0 is not cordoned"),
        "{}",
        text(&undrained)
    );
    // Half-way, the node runs neither version: another target and a boot `run` are refused.
    let line = refused(&worker, &["upgrade", "--to", "v1.37.2"]);
    assert!(line.contains("unfinished"), "{line}");
    let line = refused(&worker, &["run"]);
    assert!(line.contains("unfinished"), "{line}");
    kubectl(&first, &admin, &["cordon", "up-workers-0"]);
    took.push(("worker", upgrade(&worker, "worker", &[])));
    assert_upgraded(&worker, &mirror, "worker");
    for node in ["up-master-0", "up-master-1", "up-workers-0"] {
        let unschedulable = kubectl(
            &first,
            &admin,
            &[
                "get",
                "node",
                node,
                "--output=jsonpath={.spec.unschedulable}",
            ],
        );
        assert_eq!(unschedulable, "", "{node} is still cordoned");
    }

    // Done is done: the same upgrade again changes nothing.
    let again = first.agent(&["upgrade", "--to", TO]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already"),
        "{}",
        text(&again)
    );
    for (node, seconds) in took {
        eprintln!("upgrade {FROM} -> {TO} under the stand-ins: {node} {seconds:.1} s");
    }
}

/// A node may move one minor at a time: from 1.35 to 1.37 is refused with one line, before
/// anything changes; `--plan` lists the steps of an allowed upgrade and changes nothing.
#[test]
fn a_skipped_minor_is_refused_and_the_plan_changes_nothing() {
    let port = free_port();
    let cluster = Rendered::new(&loopback_spec("skip", "v1.35.2", port, 1));
    let master = Machine::new(
        "skip-master-0",
        &with_bind_port(&cluster.node_yaml("master"), port),
    );
    boot(&master, "first master");
    let before = kubeboot_test_kit::snapshot::take(master.root());
    let line = refused(&master, &["upgrade", "--to", "v1.37.0"]);
    assert!(line.contains("one minor at a time"), "{line}");
    let plan = master.agent(&["upgrade", "--to", "v1.36.2", "--plan", "--output", "json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let actions: Vec<(&str, &str)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions.first(), Some(&("check", "run")), "{actions:?}");
    assert_eq!(actions.last(), Some(&("addons", "run")), "{actions:?}");
    assert_eq!(kubeboot_test_kit::snapshot::take(master.root()), before);
}
