//! Each kubeadm rule has a failing case (and the fixtures pass): flags, secrets, file modes, key trees,
//! semantic rules, versions, preflight, shared PKI.
use crate::common;

use common::*;
use kubeboot_test_kit::output::stdout;
use kubeboot_test_kit::port::free_port;

const PIN: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn validate(node: &Node, text: &str) -> std::process::Output {
    let cfg = node.config(text);
    node.run("kubeadm", &["config", "validate", "--config", &cfg])
}

#[test]
fn the_fixtures_are_valid() {
    let node = Node::new();
    assert_ok(&validate(&node, &init_config(6443)));
    assert_ok(&validate(&node, &join_config(6443, "worker-1", PIN)));
}

#[test]
fn key_tree_violations_name_their_path() {
    let node = Node::new();
    let base = init_config(6443);
    let cases = [
        (
            base.replace("  bindPort: 6443", "  bindPort: 6443\n  bogus: 1"),
            "InitConfiguration: localAPIEndpoint.bogus: unknown field",
        ),
        (
            base.replace("bindPort: 6443", "bindPort: \"6443\""),
            "localAPIEndpoint.bindPort: expected int, got \"6443\"",
        ),
        (
            base.replace("  name: master-0", "  name: master-0\n  name: master-1"),
            "duplicate entry with key \"name\"",
        ),
        (
            base.replace("effect: NoSchedule", "effect: Sometimes"),
            "taints[0].effect: unsupported value \"Sometimes\"",
        ),
        (
            base.replace("ttl: 24h0m0s", "ttl: 24"),
            "bootstrapTokens[0].ttl: expected duration",
        ),
        (
            base.replace("kubernetesVersion: v1.35.0", "kubernetesVersion: 1.35"),
            "kubernetesVersion: expected string",
        ),
        (
            base.replace(
                "  extraArgs:\n  - name: profiling\n    value: \"false\"",
                "  extraArgs:\n    profiling: \"false\"\n  extraVolumes: []\n  x:",
            ),
            "apiServer.extraArgs: expected a list",
        ),
        (
            base.replace(
                "kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration",
                "kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration",
            ),
            "kubeadm 1.35 reads this deprecated API, but this stand-in reads kubeadm.k8s.io/v1beta4 only",
        ),
        (
            base.replace("readOnlyPort: 0", "readOnlyPort: 0\nreadOnlyPorts: 0"),
            "KubeletConfiguration: readOnlyPorts: unknown field",
        ),
        (
            format!("{base}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"),
            "more than one document of this kind",
        ),
    ];
    for (text, needle) in cases {
        assert_fails(&validate(&node, &text), needle);
    }
}

#[test]
fn semantic_rules_of_kubeadm_validation() {
    let node = Node::new();
    let init = init_config(6443);
    let join = join_config(6443, "worker-1", PIN);
    let cases = [
        (init.replace(TOKEN, "abcdef.0123456789ABCDEF"), "bootstrapTokens[0].token: the bootstrap token is invalid"),
        (init.replace("usages: [signing, authentication]", "usages: [signing]"), "token groups cannot be specified unless usages includes \"authentication\""),
        (init.replace("serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.244.0.0/20"), "podSubnet 10.244.0.0/16 overlaps serviceSubnet 10.244.0.0/20"),
        (init.replace("serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.0.0.0/8"), "specified service subnet is too large"),
        (init.replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.244.0.0/25"), "smaller than the size of node subnet"),
        (init.replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.244.0.1/16"), "has host bits set"),
        (init.replace("controlPlaneEndpoint: 127.0.0.1:6443", "controlPlaneEndpoint: 127.0.0.1"), "controlPlaneEndpoint: endpoint is not valid"),
        (init.replace("advertiseAddress: 127.0.0.1", "advertiseAddress: master-0"), "advertiseAddress: \"master-0\": ip address is not valid"),
        (init.replace("name: master-0", "name: Master_0"), "nodeRegistration.name: \"Master_0\""),
        (init.replace("criSocket: unix:///run", "criSocket: /run"), "criSocket: \"/run/containerd/containerd.sock\": only URL scheme \"unix\""),
        (init.replace("- name: cloud-provider\n    value: external\n  taints", "- name: cloud-providr\n    value: external\n  taints"), "\"cloud-providr\" is not a kubelet flag"),
        (init.replace("- name: profiling", "- name: --profiling"), "give the flag name without leading dashes"),
        (init.replace("kubeboot.io/pool=masters", "node-role.kubernetes.io/master="), "the kubelet would refuse to start"),
        (init.replace("cgroupDriver: systemd", "cgroupDriver: system"), "cgroupDriver: \"system\" must be"),
        (init.replace("skipPhases: [addon/kube-proxy]", "skipPhases: [addons]"), "\"addons\" is not a phase"),
        (init.replace("certSANs: [kube.example.com]", "certSANs: [\"kube example\"]"), "altname is not a valid IP address"),
        (init.replace("kubernetesVersion: v1.35.0", "kubernetesVersion: stable-1"), "is not a Kubernetes version"),
        (join.replace(PIN, "sha256:0123"), "caCertHashes: \"sha256:0123\" must be sha256:<64 lowercase hex digits>"),
        (join.replace(&format!("    caCertHashes: [\"{PIN}\"]\n"), ""), "using token-based discovery without caCertHashes can be unsafe"),
        (join.replace(&format!("    caCertHashes: [\"{PIN}\"]\n"), "    unsafeSkipCAVerification: true\n"), "the CA must always be pinned"),
        (join.replace("apiServerEndpoint: 127.0.0.1:6443", "apiServerEndpoint: 127.0.0.1"), "apiServerEndpoint: \"127.0.0.1\" is not host:port"),
        (join.replace(TOKEN, "abcdef-0123456789abcdef"), "discovery.bootstrapToken.token: the bootstrap token is invalid"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: w\n".to_string(), "discovery: bootstrapToken or file must be set"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n".to_string(), "an InitConfiguration needs a ClusterConfiguration document"),
    ];
    for (text, needle) in cases {
        assert_fails(&validate(&node, &text), needle);
    }
}

#[test]
fn the_kubernetes_version_must_suit_this_kubeadm() {
    let node = Node::new();
    let cfg = node.config(&init_config(6443));
    let with_version = |v: &str| {
        node.command("kubeadm")
            .env("STANDIN_KUBERNETES_VERSION", v)
            .args(["config", "validate", "--config", &cfg])
            .output()
            .unwrap()
    };
    assert_ok(&with_version("v1.35.0"));
    assert_ok(&with_version("v1.36.2"));
    assert_fails(&with_version("v1.34.0"), "is newer than this kubeadm");
    let old = node.config(&init_config(6443).replace("v1.35.0", "v1.33.0"));
    let out = node
        .command("kubeadm")
        .env("STANDIN_KUBERNETES_VERSION", "v1.35.0")
        .args(["config", "validate", "--config", &old])
        .output()
        .unwrap();
    assert_fails(
        &out,
        "only supports deploying clusters with the control plane version >= v1.34.0",
    );
    let too_new_key = node.config(&init_config(6443).replace(
        "readOnlyPort: 0",
        "readOnlyPort: 0\ntlsCurvePreferences: [29]",
    ));
    assert_fails(
        &node.run("kubeadm", &["config", "validate", "--config", &too_new_key]),
        "tlsCurvePreferences: field introduced in Kubernetes 1.36, unknown to 1.35",
    );
}

#[test]
fn version_reports_the_configured_release() {
    let node = Node::new();
    let out = node
        .command("kubeadm")
        .env("STANDIN_KUBERNETES_VERSION", "v1.35.2")
        .args(["version", "-o", "short"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "v1.35.2");
    assert_fails(
        &node.run("kubeadm", &["version", "-o", "short"]),
        "this stand-in has no version",
    );
    assert_fails(
        &node
            .command("kubeadm")
            .env("STANDIN_KUBERNETES_VERSION", "v1.35.2")
            .args(["version", "-o", "wide"])
            .output()
            .unwrap(),
        "invalid output format",
    );
}

#[test]
fn flags_the_real_kubeadm_lacks_or_that_carry_secrets_are_refused() {
    let node = Node::new();
    let cfg = node.config(&init_config(6443));
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg, "--bogus"]),
        "unknown flag: --bogus",
    );
    assert_fails(
        &node.run(
            "kubeadm",
            &["init", "--config", &cfg, "--pod-network-cidr=10.244.0.0/16"],
        ),
        "can not mix '--config' with arguments [\"pod-network-cidr\"]",
    );
    assert_fails(
        &node.run("kubeadm", &["join", "--config", &cfg, "--control-plane"]),
        "can not mix '--config' with arguments [\"control-plane\"]",
    );
    assert_fails(
        &node.run("kubeadm", &["join", "--discovery-token-ca-cert-hash", PIN]),
        "kubeboot must pass it in the config file",
    );
    assert_fails(
        &node.run("kubeadm", &["init", "--certificate-key=abc"]),
        "--certificate-key carries a secret",
    );
    assert_fails(
        &node.run("kubeadm", &["join", "127.0.0.1:6443"]),
        "kubeboot always joins with --config",
    );
    assert_fails(&node.run("kubeadm", &["reset"]), "kubeboot must pass -f");
    assert_fails(
        &node.run("kubeadm", &["upgrade", "apply"]),
        "usage: kubeadm upgrade apply VERSION",
    );
    assert_fails(
        &node.run("kubeadm", &["upgrade", "plan"]),
        "implements only `kubeadm upgrade apply` and `kubeadm upgrade node`",
    );
    assert_fails(
        &node.run("kubeadm", &["upgrade", "node", "v1.37.1"]),
        "takes the version from the cluster",
    );
    assert_fails(
        &node.run(
            "kubeadm",
            &["init", "--config", &cfg, "--skip-phases=addons"],
        ),
        "\"addons\" is not a phase",
    );
}

#[test]
fn a_token_or_private_key_on_the_command_line_or_in_the_environment_is_refused_and_logged_redacted()
{
    let node = Node::new();
    let out = node.run("kubeadm", &["join", "--token", TOKEN]);
    assert_fails(&out, "looks like a secret");
    let out = node
        .command("kubeadm")
        .env("JOIN_TOKEN", TOKEN)
        .args(["version"])
        .output()
        .unwrap();
    assert_fails(&out, "environment variable JOIN_TOKEN");
    let out = node.run(
        "kubeadm",
        &["init", "--config", "-----BEGIN EC PRIVATE KEY-----\nMHc="],
    );
    assert_fails(&out, "a PEM private key");
    let log = node.call_log();
    assert_eq!(log.len(), 3);
    let text = std::fs::read_to_string(node.path("/var/log/stand-ins/calls.jsonl")).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains("PRIVATE KEY"),
        "{text}"
    );
    assert_eq!(log[0]["tool"], "kubeadm");
}

#[test]
fn the_config_file_must_be_private_and_the_shared_pki_prewritten_with_private_keys() {
    let pki = SharedPki::generate();
    let node = Node::with_pki(&pki);
    let cfg = node.config(&init_config(free_port()));
    node.chmod("/etc/kubeboot/kubeadm.yaml", 0o644);
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "has mode 0644; it holds secrets and must be 0600",
    );
    node.chmod("/etc/kubeboot/kubeadm.yaml", 0o600);
    node.chmod("/etc/kubernetes/pki/sa.key", 0o640);
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "sa.key has mode 0640",
    );
    node.chmod("/etc/kubernetes/pki/sa.key", 0o600);
    std::fs::remove_file(node.path("/etc/kubernetes/pki/etcd/ca.key")).unwrap();
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "kubeboot pre-writes the shared PKI",
    );
    assert!(
        !node.path("/etc/kubernetes/admin.conf").exists(),
        "nothing is written when validation fails"
    );
}

#[test]
fn init_refuses_documents_it_would_ignore_and_needs_both_documents() {
    let node = Node::with_pki(&SharedPki::generate());
    let text = format!("{}---\n{}", init_config(6443), join_config(6443, "w", PIN));
    let cfg = node.config(&text);
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "JoinConfiguration: kubeadm init ignores this document",
    );
    let only_init = init_config(6443).split("---").next().unwrap().to_string();
    let cfg = node.config(&only_init);
    assert_fails(
        &node.run("kubeadm", &["init", "--config", &cfg]),
        "init needs an InitConfiguration and a ClusterConfiguration",
    );
}

#[test]
fn api_server_file_flags_must_be_mounted_and_its_flags_real() {
    let node = Node::with_pki(&SharedPki::generate());
    let port = free_port();
    let audit = init_config(port).replace("  - name: profiling\n", "  - name: audit-policy-file\n    value: /etc/kubeboot/audit-policy.yaml\n  - name: profiling\n");
    node.write(
        "/etc/kubeboot/audit-policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
        0o600,
    );
    let cfg = node.config(&audit);
    assert_fails(&node.run("kubeadm", &["init", "--config", &cfg]), "--audit-policy-file=/etc/kubeboot/audit-policy.yaml: not inside any volume mounted into the kube-apiserver pod");

    let node = Node::with_pki(&SharedPki::generate());
    let bogus = init_config(port).replace(
        "  - name: profiling\n",
        "  - name: insecure-port\n    value: \"8080\"\n  - name: profiling\n",
    );
    let cfg = node.config(&bogus);
    let out = node.run("kubeadm", &["init", "--config", &cfg]);
    assert_fails(&out, "kube-apiserver exited");
    assert_fails(&out, "unknown flag: --insecure-port");
}
