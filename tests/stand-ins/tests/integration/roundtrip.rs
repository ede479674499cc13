//! init → join over loopback: the worker pins the CA over real TLS, verifies the JWS, bootstraps its client
//! certificate and registers; the kubelet stand-in heartbeats with the credentials join wrote.
use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use kubeboot_test_kit::output::{stderr, stdout};
use kubeboot_test_kit::port::free_port;

#[test]
fn init_then_join_registers_both_nodes_with_their_labels_taints_and_provider_ids() {
    let pki = SharedPki::generate();
    let port = free_port();
    let master = Node::with_pki(&pki);
    let cfg = master.config(&init_config(port));
    let out = master.run("kubeadm", &["init", "--config", &cfg, "--skip-token-print"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("--token <value withheld>"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(TOKEN));
    for f in [
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        let mode = std::fs::metadata(master.path(&format!("/etc/kubernetes/{f}")))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let manifest = read(&master.path("/etc/kubernetes/manifests/kube-apiserver.yaml"));
    assert!(
        manifest.contains("--profiling=false")
            && manifest.contains(&format!("--secure-port={port}")),
        "{manifest}"
    );
    let flags_env = read(&master.path("/var/lib/kubelet/kubeadm-flags.env"));
    assert!(
        flags_env.contains("--cloud-provider=external")
            && flags_env.contains(
                "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule"
            ),
        "{flags_env}"
    );
    assert!(read(&master.path("/var/lib/kubelet/config.yaml")).contains("readOnlyPort: 0"));

    let worker = Node::new();
    let cfg = worker.config(&join_config(port, "worker-3", &pki.ca_pin()));
    let out = worker.run("kubeadm", &["join", "--config", &cfg]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("TLS certificate validates against pinned roots"),
        "{}",
        stdout(&out)
    );
    let mode = std::fs::metadata(worker.path("/var/lib/kubelet/pki/kubelet-client-current.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        read(&worker.path("/var/lib/kubelet/config.yaml")).contains("protectKernelDefaults: true"),
        "kubelet config comes from the cluster"
    );

    let nodes = master.read_json("/var/lib/stand-ins/kube-apiserver/nodes.json");
    let m = &nodes["master-0"];
    assert_eq!(m["metadata"]["labels"]["kubeboot.io/pool"], "masters");
    assert_eq!(
        m["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(
        m["spec"]["taints"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    assert!(m["spec"]["providerID"]
        .as_str()
        .unwrap()
        .ends_with("virtualMachineScaleSets/masters/virtualMachines/0"));
    let w = &nodes["worker-3"];
    assert_eq!(w["metadata"]["labels"]["kubeboot.io/pool"], "workers");
    assert!(w["metadata"]["labels"]
        .get("node-role.kubernetes.io/control-plane")
        .is_none());
    assert_eq!(
        w["spec"]["taints"][0],
        serde_json::json!({"key": "kubeboot.io/dedicated", "value": "batch", "effect": "NoExecute"})
    );
    assert!(w["spec"]["providerID"]
        .as_str()
        .unwrap()
        .ends_with("workers/virtualMachines/3"));

    // The kubelet runs with what kubeadm wrote and heartbeats to the API server.
    std::fs::create_dir_all(worker.path("/run/containerd")).unwrap();
    let _sock =
        std::os::unix::net::UnixListener::bind(worker.path("/run/containerd/containerd.sock"))
            .unwrap();
    let mut kubelet = worker
        .command("kubelet")
        .args([
            "--config=/var/lib/kubelet/config.yaml",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--hostname-override=worker-3",
            "--node-labels=kubeboot.io/pool=workers",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let beats = loop {
        let nodes = master.read_json("/var/lib/stand-ins/kube-apiserver/nodes.json");
        let beats = nodes["worker-3"]["metadata"]["annotations"]["stand-in/heartbeats"]
            .as_str()
            .unwrap_or("0")
            .parse::<u32>()
            .unwrap();
        if beats >= 2 || Instant::now() > deadline {
            break beats;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    kubelet.kill().unwrap();
    let out = kubelet.wait_with_output().unwrap();
    assert!(
        beats >= 2,
        "kubelet sent {beats} heartbeats; stderr: {}",
        stderr(&out)
    );

    let out = master.run("kubeadm", &["reset", "-f"]);
    assert_ok(&out);
    assert!(!master.path("/etc/kubernetes/admin.conf").exists());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "reset stops the API server"
    );
}

#[test]
fn join_fails_on_a_wrong_ca_pin_and_a_wrong_token() {
    let pki = SharedPki::generate();
    let port = free_port();
    let master = Node::with_pki(&pki);
    let cfg = master.config(&init_config(port));
    assert_ok(&master.run("kubeadm", &["init", "--config", &cfg]));

    let worker = Node::new();
    let other_pin = SharedPki::generate().ca_pin();
    let cfg = worker.config(&join_config(port, "worker-1", &other_pin));
    assert_fails(
        &worker.run("kubeadm", &["join", "--config", &cfg]),
        "none of the public keys",
    );

    let cfg = worker.config(
        &join_config(port, "worker-1", &pki.ca_pin()).replace(TOKEN, "abcdef.0123456789abcdee"),
    );
    assert_fails(
        &worker.run("kubeadm", &["join", "--config", &cfg]),
        "failed to verify JWS signature",
    );

    let cfg = worker.config(
        &join_config(port, "worker-1", &pki.ca_pin()).replace(TOKEN, "zzzzzz.0123456789abcdef"),
    );
    assert_fails(
        &worker.run("kubeadm", &["join", "--config", &cfg]),
        "there is no JWS signed token",
    );
    assert!(!worker.path("/etc/kubernetes/kubelet.conf").exists());
}

#[test]
fn init_phases_rerun_idempotently_a_second_init_fails_preflight_and_an_extra_master_joins() {
    let pki = SharedPki::generate();
    let port = free_port();
    let master = Node::with_pki(&pki);
    let cfg = master.config(&init_config(port));
    assert_ok(&master.run("kubeadm", &["init", "--config", &cfg, "--skip-token-print"]));

    // What the agent runs when it finds the control plane up after a restart.
    for phase in [
        &["upload-config", "all"][..],
        &["mark-control-plane"],
        &["bootstrap-token", "--skip-token-print"],
        &["kubelet-finalize", "all"],
        &["addon", "all"],
    ] {
        let mut args = vec!["init", "phase"];
        args.extend_from_slice(phase);
        args.extend_from_slice(&["--config", &cfg]);
        let out = master.run("kubeadm", &args);
        assert_ok(&out);
        assert!(!stdout(&out).contains(TOKEN), "{}", stdout(&out));
    }
    assert_fails(
        &master.run("kubeadm", &["init", "phase", "addons", "--config", &cfg]),
        "unknown command \"addons\"",
    );
    let out = master.run("kubeadm", &["init", "--config", &cfg]);
    assert_fails(
        &out,
        "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]",
    );
    assert_fails(&out, &format!("[ERROR Port-{port}]"));

    let port2 = free_port();
    let extra = Node::with_pki(&pki);
    let join = join_config(port, "master-1", &pki.ca_pin())
        .replace("kubeboot.io/pool=workers", "kubeboot.io/pool=masters")
        .replace("  taints:\n  - key: kubeboot.io/dedicated\n    value: batch\n    effect: NoExecute\n", "")
        .replace("timeouts:", &format!("controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 127.0.0.1\n    bindPort: {port2}\ntimeouts:"));
    let cfg = extra.config(&join);
    let out = extra.run("kubeadm", &["join", "--config", &cfg]);
    assert_ok(&out);
    // The extra master's own API server answers discovery with the same CA and token; the worker then
    // registers through the controlPlaneEndpoint that cluster-info names (the first master here).
    let worker = Node::new();
    let cfg = worker.config(&join_config(port2, "worker-9", &pki.ca_pin()));
    assert_ok(&worker.run("kubeadm", &["join", "--config", &cfg]));
    let nodes = master.read_json("/var/lib/stand-ins/kube-apiserver/nodes.json");
    assert!(nodes.get("worker-9").is_some(), "{nodes}");
    assert_eq!(
        nodes["master-1"]["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(
        nodes["master-1"]["spec"]["taints"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    assert!(
        read(&extra.path("/etc/kubernetes/manifests/kube-apiserver.yaml"))
            .contains(&format!("--secure-port={port2}"))
    );
}

/// A hardened API server without anonymous access breaks token discovery, as the real one does; an
/// AuthenticationConfiguration that allows anonymous access to cluster-info (and health) only keeps it working.
#[test]
fn anonymous_access_decides_whether_token_discovery_works() {
    let pki = SharedPki::generate();
    let port = free_port();
    let closed = Node::with_pki(&pki);
    let text = init_config(port).replace(
        "  - name: profiling\n",
        "  - name: anonymous-auth\n    value: \"false\"\n  - name: profiling\n",
    );
    let cfg = closed.config(&text);
    assert_ok(&closed.run("kubeadm", &["init", "--config", &cfg]));
    let worker = Node::new();
    let cfg = worker.config(&join_config(port, "worker-1", &pki.ca_pin()));
    let out = worker.run("kubeadm", &["join", "--config", &cfg]);
    assert_fails(&out, "HTTP 401");
    assert_ok(&closed.run("kubeadm", &["reset", "-f"]));

    let port = free_port();
    let open = Node::with_pki(&pki);
    open.write(
        "/etc/kubernetes/authn/config.yaml",
        "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\nanonymous:\n  enabled: true\n  conditions:\n  - path: /api/v1/namespaces/kube-public/configmaps/cluster-info\n  - path: /readyz\n",
        0o600,
    );
    let text = init_config(port).replace(
        "  - name: profiling\n",
        "  - name: authentication-config\n    value: /etc/kubernetes/authn/config.yaml\n  - name: profiling\n",
    ).replace("controllerManager:", "  extraVolumes:\n  - name: authn\n    hostPath: /etc/kubernetes/authn\n    mountPath: /etc/kubernetes/authn\n    readOnly: true\n    pathType: DirectoryOrCreate\ncontrollerManager:");
    let cfg = open.config(&text);
    assert_ok(&open.run("kubeadm", &["init", "--config", &cfg]));
    let cfg = worker.config(&join_config(port, "worker-1", &pki.ca_pin()));
    assert_ok(&worker.run("kubeadm", &["join", "--config", &cfg]));
    // Anonymous requests elsewhere are still refused.
    let anonymous = kubeboot_stand_ins::client::Client::new(
        &format!("127.0.0.1:{port}"),
        kubeboot_stand_ins::client::Trust::Insecure,
        kubeboot_stand_ins::client::Auth::None,
    )
    .unwrap();
    assert_eq!(
        anonymous
            .call(reqwest::Method::GET, "/version", None)
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        anonymous
            .call(reqwest::Method::GET, "/readyz", None)
            .unwrap()
            .0,
        200
    );
}

/// In a VM the kubelet may register the Node before kubeadm marks it: mark-control-plane must then merge
/// the control-plane label and taint into the existing Node.
#[test]
fn mark_control_plane_merges_into_a_node_the_kubelet_registered_first() {
    let pki = SharedPki::generate();
    let port = free_port();
    let master = Node::with_pki(&pki);
    let cfg = master.config(&init_config(port));
    assert_ok(&master.run(
        "kubeadm",
        &["init", "--config", &cfg, "--skip-phases=mark-control-plane"],
    ));
    std::fs::create_dir_all(master.path("/run/containerd")).unwrap();
    let _sock =
        std::os::unix::net::UnixListener::bind(master.path("/run/containerd/containerd.sock"))
            .unwrap();
    let mut kubelet = master
        .command("kubelet")
        .args([
            "--config=/var/lib/kubelet/config.yaml",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--hostname-override=master-0",
            "--node-labels=kubeboot.io/pool=masters",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while master
        .path("/var/lib/stand-ins/kube-apiserver/nodes.json")
        .metadata()
        .is_err()
    {
        assert!(Instant::now() < deadline, "the kubelet never registered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let nodes = master.read_json("/var/lib/stand-ins/kube-apiserver/nodes.json");
    assert!(nodes["master-0"]["metadata"]["labels"]
        .get("node-role.kubernetes.io/control-plane")
        .is_none());
    assert_ok(&master.run(
        "kubeadm",
        &["init", "phase", "mark-control-plane", "--config", &cfg],
    ));
    kubelet.kill().unwrap();
    kubelet.wait().unwrap();
    let node = &master.read_json("/var/lib/stand-ins/kube-apiserver/nodes.json")["master-0"];
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(node["metadata"]["labels"]["kubeboot.io/pool"], "masters");
    assert_eq!(
        node["spec"]["taints"],
        serde_json::json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    );
    assert!(node["spec"]["providerID"]
        .as_str()
        .unwrap()
        .ends_with("masters/virtualMachines/0"));
}
