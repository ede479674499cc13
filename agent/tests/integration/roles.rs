//! The three node recipes, end to end with the real binaries: `kubeboot-gen` renders a plain-VM
//! cluster of two masters and a worker, and `kubeboot-agent run` with the stand-ins on PATH turns
//! one machine each into the first master (`kubeadm init`), the extra master (`kubeadm join` with
//! a `controlPlane` section and the shared PKI) and the worker (`kubeadm join` with the token and
//! CA pin), in the order a real cluster comes up.

use crate::support;

use kubeboot_test_kit::output::text;
use kubeboot_test_kit::port::free_port;
use serde_json::Value;
use support::machine::{loopback_spec, with_bind_port, Machine, Rendered};

const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";

/// Runs the agent to the end and checks that `status` says so for a node of `kind`.
fn run_to_done(machine: &Machine, kind: &str) {
    let run = machine.agent(&["run"]);
    assert!(run.status.success(), "{kind}: {}", text(&run));
    let status = machine.agent(&["status", "--output", "json"]);
    assert!(status.status.success(), "{kind}: {}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["done"], true, "{kind}: {status:#}");
    assert_eq!(status["node"]["kind"], kind, "{status:#}");
    let phases = status["phases"].as_array().unwrap();
    let state = |name: &str| {
        phases
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{kind}: no phase {name} in {status:#}"))
    };
    let (init, join) = match kind {
        "first-master" => ("done", "skipped"),
        _ => ("skipped", "done"),
    };
    assert_eq!(state("control-plane-init"), init, "{kind}");
    assert_eq!(state("join"), join, "{kind}");
    for phase in phases {
        assert!(
            phase["state"] == "done" || phase["state"] == "skipped",
            "{kind}: {phase}"
        );
    }
}

fn read_json(machine: &Machine, node_path: &str) -> Value {
    let path = machine.node(node_path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn is_control_plane(node: &Value) -> bool {
    let tainted = node["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == CONTROL_PLANE && t["effect"] == "NoSchedule");
    let labelled = node["metadata"]["labels"]
        .as_object()
        .unwrap()
        .contains_key(CONTROL_PLANE);
    assert_eq!(tainted, labelled, "label and taint disagree: {node:#}");
    labelled
}

#[test]
fn first_master_extra_master_and_worker_reach_done() {
    let (endpoint_port, extra_port) = (free_port(), free_port());
    let cluster = Rendered::new(&loopback_spec("roles", "v1.35.0", endpoint_port, 2));
    let master_yaml = cluster.node_yaml("master");

    let first = Machine::new(
        "roles-master-0",
        &with_bind_port(&master_yaml, endpoint_port),
    );
    run_to_done(&first, "first-master");
    let extra = Machine::new("roles-master-1", &with_bind_port(&master_yaml, extra_port));
    run_to_done(&extra, "extra-master");
    let worker = Machine::new("roles-workers-0", &cluster.node_yaml("workers"));
    run_to_done(&worker, "worker");

    // Every registration reached the cluster's (the first master's) API server, with its role.
    let nodes = read_json(&first, "/var/lib/stand-ins/kube-apiserver/nodes.json");
    let names: Vec<&String> = nodes.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["roles-master-0", "roles-master-1", "roles-workers-0"],
        "{nodes:#}"
    );
    assert!(is_control_plane(&nodes["roles-master-0"]));
    assert!(is_control_plane(&nodes["roles-master-1"]));
    assert!(!is_control_plane(&nodes["roles-workers-0"]));
    for (name, pool) in [
        ("roles-master-0", "master"),
        ("roles-master-1", "master"),
        ("roles-workers-0", "workers"),
    ] {
        assert_eq!(
            nodes[name]["metadata"]["labels"]["kubeboot.io/pool"], pool,
            "{nodes:#}"
        );
    }
    assert_eq!(
        nodes["roles-workers-0"]["metadata"]["labels"]["tier"], "general",
        "the pool's labels reach the worker: {nodes:#}"
    );

    // The extra master is a control plane of its own: same CAs, its own API server and etcd.
    for shared in [
        "ca.crt",
        "ca.key",
        "sa.key",
        "front-proxy-ca.key",
        "etcd/ca.key",
    ] {
        let path = format!("/etc/kubernetes/pki/{shared}");
        assert_eq!(
            std::fs::read(first.node(&path)).unwrap(),
            std::fs::read(extra.node(&path)).unwrap(),
            "{shared} is not shared"
        );
    }
    let manifest =
        std::fs::read_to_string(extra.node("/etc/kubernetes/manifests/kube-apiserver.yaml"))
            .unwrap();
    assert!(
        manifest.contains(&format!("--secure-port={extra_port}")),
        "{manifest}"
    );
    let extra_ready = std::net::TcpStream::connect(("127.0.0.1", extra_port));
    assert!(
        extra_ready.is_ok(),
        "the extra master's API server is not listening"
    );

    // A worker gets no cluster secret but the token it joined with, and trusts the pinned CA.
    for private in ["ca.key", "sa.key", "etcd/ca.key", "front-proxy-ca.key"] {
        let path = worker.node(&format!("/etc/kubernetes/pki/{private}"));
        assert!(!path.exists(), "the worker got {private}");
    }
    assert_eq!(
        std::fs::read(first.node("/etc/kubernetes/pki/ca.crt")).unwrap(),
        std::fs::read(worker.node("/etc/kubernetes/pki/ca.crt")).unwrap()
    );
    assert!(worker
        .node("/var/lib/kubelet/pki/kubelet-client-current.pem")
        .exists());

    // The first master applied the CNI through the API server.
    let objects = read_json(&first, "/var/lib/stand-ins/kube-apiserver/objects.json");
    assert!(
        objects
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("DaemonSet/kube-flannel/kube-flannel-ds")),
        "flannel was not applied: {:?}",
        objects.as_object().unwrap().keys().collect::<Vec<_>>()
    );
}
