//! `STANDIN_DELAY_MS` lets kill tests stop kubeadm between phases; re-running converges the way it does with
//! the real kubeadm (a half-written control plane needs `reset -f`, which also removes the shared PKI).
use crate::common;

use std::time::{Duration, Instant};

use common::*;
use kubeboot_test_kit::port::free_port;

fn wait_for(node: &Node, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.path(path).exists() {
        assert!(Instant::now() < deadline, "{path} never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn write_pki(node: &Node, pki: &SharedPki) {
    for (name, content, mode) in &pki.files {
        node.write(&format!("/etc/kubernetes/pki/{name}"), content, *mode);
    }
}

#[test]
fn init_killed_between_phases_converges() {
    let pki = SharedPki::generate();
    let port = free_port();
    let node = Node::with_pki(&pki);
    let cfg = node.config(&init_config(port));
    let slow_init = || {
        node.command("kubeadm")
            .env("STANDIN_DELAY_MS", "1000")
            .args(["init", "--config", &cfg])
            .spawn()
            .unwrap()
    };

    // Killed right after the certs phase: the next phase is a second away, so nothing else is written yet.
    let mut child = slow_init();
    wait_for(&node, "/etc/kubernetes/pki/apiserver.crt");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!node.path("/etc/kubernetes/admin.conf").exists());
    // kubeadm reuses what the certs phase wrote: a plain re-run converges.
    assert_ok(&node.run("kubeadm", &["init", "--config", &cfg]));
    assert_ok(&node.run("kubeadm", &["reset", "-f"]));
    assert!(
        !node.path("/etc/kubernetes/pki/ca.key").exists(),
        "reset removes the shared PKI too"
    );

    // Killed once the API server runs: a re-run fails preflight until reset; then the PKI must be written again.
    write_pki(&node, &pki);
    let mut child = slow_init();
    wait_for(
        &node,
        "/var/lib/stand-ins/kube-apiserver/kube-apiserver.pid",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
    );
    assert_ok(&node.run("kubeadm", &["reset", "-f"]));
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "kubeboot pre-writes the shared PKI",
    );
    write_pki(&node, &pki);
    assert_ok(&node.run("kubeadm", &["init", "--config", &cfg]));
    let nodes = node.read_json("/var/lib/stand-ins/kube-apiserver/nodes.json");
    assert!(nodes.get("master-0").is_some());
}
