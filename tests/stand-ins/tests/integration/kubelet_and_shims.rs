//! The kubelet stand-in's input checks, and the systemctl/modprobe shims.
use crate::common;

use common::*;
use kubeboot_test_kit::output::{stderr, stdout};

const KUBELET_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nreadOnlyPort: 0\n";

fn kubelet_node() -> Node {
    let node = Node::new();
    node.write("/var/lib/kubelet/config.yaml", KUBELET_CONFIG, 0o644);
    node
}

#[test]
fn kubelet_refuses_flags_the_real_one_lacks_and_bad_values() {
    let node = kubelet_node();
    let base = [
        "--config=/var/lib/kubelet/config.yaml",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
    ];
    let run = |extra: &[&str], version: &str| {
        node.command("kubelet")
            .env("STANDIN_KUBERNETES_VERSION", version)
            .args(base)
            .args(extra)
            .output()
            .unwrap()
    };
    assert_fails(
        &run(&["--network-plugin=cni"], "v1.35.0"),
        "unknown flag: --network-plugin",
    );
    assert_fails(
        &run(&["--cloud-provider=azure"], "v1.35.0"),
        "only \"external\"",
    );
    // Flags a release removed (--pod-infra-container-image from 1.35): removals.rs.
    assert_fails(
        &run(
            &["--node-labels=node-role.kubernetes.io/worker="],
            "v1.35.0",
        ),
        "unknown 'kubernetes.io' or 'k8s.io' label",
    );
    assert_fails(
        &run(&["--register-with-taints=dedicated=batch"], "v1.35.0"),
        "missing effect",
    );
    assert_fails(&run(&["--node-ip=10.0.0"], "v1.35.0"), "--node-ip");
    let out = node
        .command("kubelet")
        .env("STANDIN_KUBERNETES_VERSION", "v1.35.1")
        .arg("--version")
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "Kubernetes v1.35.1");
}

#[test]
fn kubelet_validates_its_config_file_for_its_release() {
    let node = kubelet_node();
    let run = || {
        node.command("kubelet")
            .env("STANDIN_KUBERNETES_VERSION", "v1.35.0")
            .args([
                "--config=/var/lib/kubelet/config.yaml",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
            ])
            .output()
            .unwrap()
    };
    node.write(
        "/var/lib/kubelet/config.yaml",
        &format!("{KUBELET_CONFIG}readOnlyPorts: 0\n"),
        0o644,
    );
    assert_fails(&run(), "readOnlyPorts: unknown field");
    node.write(
        "/var/lib/kubelet/config.yaml",
        &format!("{KUBELET_CONFIG}memoryReservationPolicy: None\n"),
        0o644,
    );
    assert_fails(
        &run(),
        "memoryReservationPolicy: field introduced in Kubernetes 1.36",
    );
    node.write(
        "/var/lib/kubelet/config.yaml",
        &format!(
            "{KUBELET_CONFIG}imageGCHighThresholdPercent: 50\nimageGCLowThresholdPercent: 80\n"
        ),
        0o644,
    );
    assert_fails(&run(), "must be less than imageGCHighThresholdPercent");
    node.write("/var/lib/kubelet/config.yaml", KUBELET_CONFIG, 0o644);
    assert_fails(
        &run(),
        "container runtime socket /run/containerd/containerd.sock does not exist",
    );
    std::fs::create_dir_all(node.path("/run/containerd")).unwrap();
    let _sock =
        std::os::unix::net::UnixListener::bind(node.path("/run/containerd/containerd.sock"))
            .unwrap();
    assert_fails(&run(), "/etc/kubernetes/kubelet.conf does not exist");
}

#[test]
fn systemctl_shim_checks_units_and_records_state() {
    let node = Node::new();
    let out = node.run("systemctl", &["start", "kubeboot-nonexistent"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("Unit kubeboot-nonexistent.service not found"));
    assert_ok(&node.run("systemctl", &["daemon-reload"]));
    assert_ok(&node.run("systemctl", &["enable", "--now", "containerd"]));
    assert!(
        std::fs::metadata(node.path("/run/containerd/containerd.sock")).is_ok(),
        "starting containerd creates its socket"
    );
    let out = node.run("systemctl", &["is-active", "containerd.service"]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "active");
    assert_eq!(
        node.run("systemctl", &["is-active", "kubelet"])
            .status
            .code(),
        Some(3)
    );
    // A changed unit file needs a daemon-reload before the next (re)start.
    std::thread::sleep(std::time::Duration::from_millis(20));
    node.write(
        "/lib/systemd/system/containerd.service",
        "[Service]\nExecStart=/bin/false\n",
        0o644,
    );
    assert_fails(
        &node.run("systemctl", &["restart", "containerd"]),
        "changed on disk since the last daemon-reload",
    );
    assert_ok(&node.run("systemctl", &["daemon-reload"]));
    assert_ok(&node.run("systemctl", &["restart", "containerd"]));
    assert_ok(&node.run("systemctl", &["mask", "swap.target"]));
    assert_eq!(
        node.run("systemctl", &["is-active", "swap.target"])
            .status
            .code(),
        Some(3)
    );
    assert_ok(&node.run("systemctl", &["mask", "kubelet"]));
    assert_fails(&node.run("systemctl", &["start", "kubelet"]), "is masked");
    assert_fails(
        &node.run("systemctl", &["frobnicate", "kubelet"]),
        "Unknown command verb",
    );
    assert_fails(
        &node.run("systemctl", &["start", "--bogus", "kubelet"]),
        "unknown flag: --bogus",
    );
    let state = node.read_json("/var/lib/stand-ins/systemd.json");
    assert_eq!(state["units"]["containerd.service"]["starts"], 2);
    assert_eq!(state["units"]["containerd.service"]["enabled"], true);
    assert!(node.call_log().iter().all(|c| c["tool"] == "systemctl"));
}

#[test]
fn modprobe_shim_knows_module_names() {
    let node = Node::new();
    assert_ok(&node.run("modprobe", &["overlay"]));
    assert_ok(&node.run("modprobe", &["-a", "br_netfilter", "nf-conntrack"]));
    assert_fails(
        &node.run("modprobe", &["br_netfiltr"]),
        "Module br_netfiltr not found",
    );
    assert_fails(
        &node.run("modprobe", &["overlay", "br_netfilter"]),
        "is not a module parameter",
    );
    let loaded = node.read_json("/var/lib/stand-ins/modules.json");
    assert_eq!(
        loaded,
        serde_json::json!(["br_netfilter", "nf_conntrack", "overlay"])
    );
}
