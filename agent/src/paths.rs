//! The node paths the agent writes or reads, each named once (like kubeadm's `constants`
//! package). They are paths on the node: `Root::path` puts them under `--root` in tests.

// The agent's own state and configuration.
pub const STATE_DIR: &str = "/var/lib/kubeboot";
pub const PHASES_DIR: &str = "/var/lib/kubeboot/phases";
/// Written once every phase for this node is done; the systemd unit is conditioned on its absence.
pub const DONE_MARKER: &str = "/var/lib/kubeboot/done";
pub const FACTS_FILE: &str = "/var/lib/kubeboot/node-facts.json";
/// The node's upgrade (`kubeboot-agent upgrade`): from which version to which, and when it finished.
pub const UPGRADE_RECORD: &str = "/var/lib/kubeboot/upgrade.json";
/// The upgrade steps' records, as `PHASES_DIR` holds the boot phases'.
pub const UPGRADE_STEPS_DIR: &str = "/var/lib/kubeboot/upgrade";
/// Held for a whole run: the phases and the sweep of staging leftovers assume that no other run
/// writes the node's files at the same time.
pub const RUN_LOCK: &str = "/var/lib/kubeboot/run.lock";
/// Holds the bootstrap token in kubeadm's configuration, hence 0700.
pub const CONFIG_DIR: &str = "/etc/kubeboot";
pub const KUBEADM_CONFIG: &str = "/etc/kubeboot/kubeadm.yaml";
pub const ADDONS_DIR: &str = "/etc/kubeboot/addons";

// kubeadm's files.
pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
pub const CLUSTER_CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The kubelet's client certificate and key (one file, rotated by the kubelet), which
/// kubelet.conf names.
pub const KUBELET_CLIENT_CERT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
pub const API_SERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
pub const CONTROLLER_MANAGER_MANIFEST: &str =
    "/etc/kubernetes/manifests/kube-controller-manager.yaml";
pub const SCHEDULER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-scheduler.yaml";
pub const ETCD_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
pub const ETCD_DATA_DIR: &str = "/var/lib/etcd";
pub const ETCD_MEMBER_DIR: &str = "/var/lib/etcd/member";
/// Written by kubeadm from the KubeletConfiguration the agent puts in its configuration.
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const KUBELET_FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";

// The API server's files the agent writes on a master; each directory is mounted read-only into
// the static pod at the same path (the audit log directory read-write).
pub const ADMISSION_CONFIG_FILE: &str = "/etc/kubernetes/admission/config.yaml";
pub const EVENT_RATE_LIMIT_FILE: &str = "/etc/kubernetes/admission/event-rate-limit.yaml";
pub const AUDIT_POLICY_FILE: &str = "/etc/kubernetes/audit/policy.yaml";
pub const ENCRYPTION_CONFIG_FILE: &str = "/etc/kubernetes/encryption/config.yaml";
pub const OIDC_CA_FILE: &str = "/etc/kubernetes/oidc/ca.crt";

// Units, the container runtime and the OS.
pub const ETC_DIR: &str = "/etc";
pub const FSTAB: &str = "/etc/fstab";
pub const HOSTS_FILE: &str = "/etc/hosts";
pub const SYSTEMD_UNIT_DIR: &str = "/etc/systemd/system";
pub const KUBELET_UNIT: &str = "/etc/systemd/system/kubelet.service";
pub const KUBELET_DROP_IN: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
pub const CONTAINERD_CONFIG_DIR: &str = "/etc/containerd";
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
pub const MODULES_LOAD_DIR: &str = "/etc/modules-load.d";
pub const MODULES_FILE: &str = "/etc/modules-load.d/kubeboot.conf";
pub const SYSCTL_DIR: &str = "/etc/sysctl.d";
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-kubeboot.conf";
