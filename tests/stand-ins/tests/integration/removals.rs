//! What a Kubernetes minor removed (tests/data/upstream/releases.json) is refused by the stand-ins
//! playing that minor, with the real binaries' wording, and accepted by those playing the minor before.
use crate::common;

use common::*;

const KUBELET_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nreadOnlyPort: 0\n";
/// Where the kubelet stand-in stops once its flags and config passed: no container runtime here.
const KUBELET_GOT_PAST_ITS_INPUT: &str = "container runtime socket";
/// Where the kube-apiserver stand-in stops once `--feature-gates` passed: the other required flags.
const APISERVER_GOT_PAST_ITS_GATES: &str = "--etcd-servers must be specified";

fn kubeadm_validate(node: &Node, release: &str, text: &str) -> std::process::Output {
    let cfg = node.config(&text.replace(
        "kubernetesVersion: v1.35.0",
        &format!("kubernetesVersion: {release}"),
    ));
    node.command("kubeadm")
        .env("STANDIN_KUBERNETES_VERSION", release)
        .args(["config", "validate", "--config", &cfg])
        .output()
        .unwrap()
}

fn with_kubeadm_gate(gate: &str) -> String {
    init_config(6443).replace(
        "clusterName: kubeboot\n",
        &format!("clusterName: kubeboot\nfeatureGates:\n  {gate}: true\n"),
    )
}

#[test]
fn kubeadm_feature_gates_are_those_of_its_release() {
    let node = Node::new();
    for (gate, removed_in) in [
        ("WaitForAllControlPlaneComponents", 35),
        ("ControlPlaneKubeletLocalMode", 36),
        ("NodeLocalCRISocket", 37),
    ] {
        let text = with_kubeadm_gate(gate);
        assert_ok(&kubeadm_validate(
            &node,
            &format!("v1.{}.0", removed_in - 1),
            &text,
        ));
        assert_fails(
            &kubeadm_validate(&node, &format!("v1.{removed_in}.0"), &text),
            &format!("ClusterConfiguration: featureGates: {gate} is not a valid feature name."),
        );
    }
    assert_ok(&kubeadm_validate(
        &node,
        "v1.37.0",
        &with_kubeadm_gate("RootlessControlPlane"),
    ));
    // Deprecated until its removal in 1.37: kubeadm's Supports() is false for it all along.
    for release in ["v1.36.0", "v1.37.0"] {
        assert_fails(
            &kubeadm_validate(&node, release, &with_kubeadm_gate("PublicKeysECDSA")),
            "featureGates: PublicKeysECDSA is not a valid feature name.",
        );
    }
}

#[test]
fn kubeadm_1_37_has_no_v1beta3() {
    let node = Node::new();
    let text = init_config(6443).replace(
        "kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration",
        "kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration",
    );
    assert_fails(
        &kubeadm_validate(&node, "v1.37.0", &text),
        "your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta3\" (kind: \"ClusterConfiguration\"). Please use kubeadm v1.36 instead",
    );
    // 1.36 still reads it; this stand-in does not implement v1beta3 and says so.
    assert_fails(
        &kubeadm_validate(&node, "v1.36.0", &text),
        "kubeadm 1.36 reads this deprecated API, but this stand-in reads kubeadm.k8s.io/v1beta4 only",
    );
}

#[test]
fn kubelet_keys_only_on_master_are_new_in_1_37() {
    let node = Node::new();
    let text = init_config(6443).replace(
        "readOnlyPort: 0\n",
        "readOnlyPort: 0\ndefaultPodSysctls: {}\n",
    );
    assert_ok(&kubeadm_validate(&node, "v1.37.0", &text));
    assert_fails(
        &kubeadm_validate(&node, "v1.36.0", &text),
        "KubeletConfiguration: defaultPodSysctls: field introduced in Kubernetes 1.37, unknown to 1.36",
    );
}

#[test]
fn kubeadm_refuses_kubelet_extra_args_the_kubelet_removed() {
    let node = Node::new();
    let text = init_config(6443).replace(
        "  - name: cloud-provider\n    value: external\n  taints",
        "  - name: containerd\n    value: /run/containerd/containerd.sock\n  taints",
    );
    assert_ok(&kubeadm_validate(&node, "v1.36.0", &text));
    assert_fails(
        &kubeadm_validate(&node, "v1.37.0", &text),
        "\"containerd\" is not a kubelet flag of 1.37",
    );
}

fn kubelet(node: &Node, release: &str, extra: &[&str]) -> std::process::Output {
    node.command("kubelet")
        .env("STANDIN_KUBERNETES_VERSION", release)
        .args([
            "--config=/var/lib/kubelet/config.yaml",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn kubelet_refuses_the_flags_its_release_removed() {
    let node = Node::new();
    node.write("/var/lib/kubelet/config.yaml", KUBELET_CONFIG, 0o644);
    let cadvisor = [
        "application-metrics-count-limit",
        "boot-id-file",
        "container-hints",
        "containerd",
        "containerd-namespace",
        "enable-load-reader",
        "event-storage-age-limit",
        "event-storage-event-limit",
        "global-housekeeping-interval",
        "log-cadvisor-usage",
        "machine-id-file",
        "storage-driver-buffer-duration",
        "storage-driver-db",
        "storage-driver-host",
        "storage-driver-password",
        "storage-driver-secure",
        "storage-driver-table",
        "storage-driver-user",
    ];
    for flag in cadvisor {
        let arg = format!("--{flag}=1");
        assert_fails(
            &kubelet(&node, "v1.36.0", &[&arg]),
            KUBELET_GOT_PAST_ITS_INPUT,
        );
        assert_fails(
            &kubelet(&node, "v1.37.0", &[&arg]),
            &format!("failed to parse kubelet flag: unknown flag: --{flag}"),
        );
    }
    assert_fails(
        &kubelet(&node, "v1.37.0", &["--housekeeping-interval=10s"]),
        KUBELET_GOT_PAST_ITS_INPUT,
    );
    let pause = "--pod-infra-container-image=registry.k8s.io/pause:3.10.1";
    assert_fails(
        &kubelet(&node, "v1.34.0", &[pause]),
        KUBELET_GOT_PAST_ITS_INPUT,
    );
    for release in ["v1.35.0", "v1.37.0"] {
        assert_fails(
            &kubelet(&node, release, &[pause]),
            "unknown flag: --pod-infra-container-image",
        );
    }
}

#[test]
fn kubelet_refuses_feature_gates_its_release_removed() {
    let node = Node::new();
    node.write("/var/lib/kubelet/config.yaml", KUBELET_CONFIG, 0o644);
    let unrecognized = "failed to set feature gates from initial flags-based config: unrecognized feature gate: SidecarContainers";
    let flag = "--feature-gates=SidecarContainers=true";
    assert_fails(
        &kubelet(&node, "v1.36.0", &[flag]),
        KUBELET_GOT_PAST_ITS_INPUT,
    );
    assert_fails(&kubelet(&node, "v1.37.0", &[flag]), unrecognized);
    node.write(
        "/var/lib/kubelet/config.yaml",
        &format!("{KUBELET_CONFIG}featureGates:\n  SidecarContainers: true\n"),
        0o644,
    );
    assert_fails(&kubelet(&node, "v1.36.0", &[]), KUBELET_GOT_PAST_ITS_INPUT);
    assert_fails(&kubelet(&node, "v1.37.0", &[]), unrecognized);
}

#[test]
fn kube_apiserver_refuses_feature_gates_its_release_or_an_earlier_one_removed() {
    let node = Node::new();
    let apiserver = |release: &str, gates: &str| {
        node.command("kube-apiserver")
            .env("STANDIN_KUBERNETES_VERSION", release)
            .arg(format!("--feature-gates={gates}"))
            .output()
            .unwrap()
    };
    for (gate, removed_in) in [
        ("ComponentSLIs", 35),
        ("HonorPVReclaimPolicy", 36),
        ("SidecarContainers", 37),
    ] {
        let gates = format!("SomeOtherGate=true,{gate}=true");
        assert_fails(
            &apiserver(&format!("v1.{}.0", removed_in - 1), &gates),
            APISERVER_GOT_PAST_ITS_GATES,
        );
        for minor in removed_in..=37 {
            assert_fails(
                &apiserver(&format!("v1.{minor}.0"), &gates),
                &format!("invalid argument \"{gates}\" for \"--feature-gates\" flag: unrecognized feature gate: {gate}"),
            );
        }
    }
}
