//! The kubelet's command line and configuration file, as the real kubelet of each minor 1.31–1.37 accepts
//! them (flags removed in a minor come from `releases.json`).
use std::net::IpAddr;

use crate::flags::{boolean, optional, value, Flag};
use crate::releases;

const BOOL_FLAGS: &[&str] = &[
    "anonymous-auth",
    "authentication-token-webhook",
    "cgroups-per-qos",
    "contention-profiling",
    "cpu-cfs-quota",
    "enable-controller-attach-detach",
    "enable-debugging-handlers",
    "enable-load-reader",
    "enable-server",
    "exit-on-lock-contention",
    "fail-cgroupv1",
    "fail-swap-on",
    "help",
    "kernel-memcg-notification",
    "local-storage-capacity-isolation",
    "log-cadvisor-usage",
    "log-json-split-stream",
    "log-text-split-stream",
    "make-iptables-util-chains",
    "protect-kernel-defaults",
    "register-node",
    "register-schedulable",
    "rotate-certificates",
    "rotate-server-certificates",
    "runonce",
    "seccomp-default",
    "serialize-image-pulls",
    "storage-driver-secure",
];

const VALUE_FLAGS: &[&str] = &[
    "address",
    "application-metrics-count-limit",
    "authentication-token-webhook-cache-ttl",
    "authorization-mode",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "boot-id-file",
    "bootstrap-kubeconfig",
    "cert-dir",
    "cgroup-driver",
    "cgroup-root",
    "client-ca-file",
    "cloud-config",
    "cloud-provider",
    "cluster-dns",
    "cluster-domain",
    "config",
    "config-dir",
    "container-hints",
    "container-log-max-files",
    "container-log-max-size",
    "container-runtime-endpoint",
    "containerd",
    "containerd-namespace",
    "cpu-cfs-quota-period",
    "cpu-manager-policy",
    "cpu-manager-policy-options",
    "cpu-manager-reconcile-period",
    "enforce-node-allocatable",
    "event-burst",
    "event-qps",
    "event-storage-age-limit",
    "event-storage-event-limit",
    "eviction-hard",
    "eviction-max-pod-grace-period",
    "eviction-minimum-reclaim",
    "eviction-pressure-transition-period",
    "eviction-soft",
    "eviction-soft-grace-period",
    "feature-gates",
    "file-check-frequency",
    "global-housekeeping-interval",
    "hairpin-mode",
    "healthz-bind-address",
    "healthz-port",
    "hostname-override",
    "housekeeping-interval",
    "http-check-frequency",
    "image-credential-provider-bin-dir",
    "image-credential-provider-config",
    "image-gc-high-threshold",
    "image-gc-low-threshold",
    "image-service-endpoint",
    "kube-api-burst",
    "kube-api-content-type",
    "kube-api-qps",
    "kube-reserved",
    "kube-reserved-cgroup",
    "kubeconfig",
    "kubelet-cgroups",
    "lock-file",
    "log-flush-frequency",
    "log-json-info-buffer-size",
    "log-text-info-buffer-size",
    "logging-format",
    "machine-id-file",
    "manifest-url",
    "manifest-url-header",
    "max-open-files",
    "max-pods",
    "maximum-dead-containers",
    "maximum-dead-containers-per-container",
    "memory-manager-policy",
    "minimum-container-ttl-duration",
    "minimum-image-ttl-duration",
    "node-ip",
    "node-labels",
    "node-status-max-images",
    "node-status-update-frequency",
    "oom-score-adj",
    "pod-cidr",
    "pod-infra-container-image",
    "pod-manifest-path",
    "pod-max-pids",
    "pods-per-core",
    "port",
    "provider-id",
    "qos-reserved",
    "read-only-port",
    "register-with-taints",
    "registry-burst",
    "registry-qps",
    "reserved-cpus",
    "reserved-memory",
    "resolv-conf",
    "root-dir",
    "runtime-cgroups",
    "runtime-request-timeout",
    "storage-driver-buffer-duration",
    "storage-driver-db",
    "storage-driver-host",
    "storage-driver-password",
    "storage-driver-table",
    "storage-driver-user",
    "streaming-connection-idle-timeout",
    "sync-frequency",
    "system-cgroups",
    "system-reserved",
    "system-reserved-cgroup",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "topology-manager-policy",
    "topology-manager-policy-options",
    "topology-manager-scope",
    "v",
    "vmodule",
    "volume-plugin-dir",
    "volume-stats-agg-period",
];

/// Whether `name` is a kubelet flag of release 1.`minor` (kubeadm's kubeletExtraArgs check).
pub fn is_flag(name: &str, minor: u64) -> bool {
    (BOOL_FLAGS.contains(&name) || VALUE_FLAGS.contains(&name))
        && !releases::kubelet_flag_removed(minor, name)
}

/// The kubelet flag set of release 1.`minor`: the flags above (every one some release 1.31+ has)
/// less those removed in that release or earlier.
pub fn flag_spec(minor: u64) -> Vec<Flag> {
    let mut spec: Vec<Flag> = BOOL_FLAGS.iter().map(|n| boolean(n)).collect();
    spec.extend(VALUE_FLAGS.iter().map(|n| value(n)));
    spec.retain(|f| !releases::kubelet_flag_removed(minor, f.name));
    spec.push(optional("version"));
    for f in spec.iter_mut() {
        if f.name == "help" {
            *f = f.short('h');
        } else if f.name == "v" {
            *f = f.short('v');
        }
    }
    spec
}

const EVICTION_SIGNALS: &[&str] = &[
    "memory.available",
    "allocatableMemory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
];

/// Semantic checks of a KubeletConfiguration (a subset of pkg/kubelet/apis/config/validation) on its JSON.
pub fn validate_config(c: &serde_json::Value) -> Vec<String> {
    let mut errs = Vec::new();
    let int = |k: &str| c.get(k).and_then(|v| v.as_i64());
    if let Some(d) = c.get("cgroupDriver").and_then(|v| v.as_str()) {
        if !["systemd", "cgroupfs"].contains(&d) {
            errs.push(format!(
                "cgroupDriver: {d:?} must be \"systemd\" or \"cgroupfs\""
            ));
        }
    }
    for (k, min) in [("readOnlyPort", 0), ("healthzPort", 0), ("port", 1)] {
        if let Some(p) = int(k) {
            if !(min..=65535).contains(&p) {
                errs.push(format!(
                    "{k}: {p} must be between {min} and 65535, inclusive"
                ));
            }
        }
    }
    let high = int("imageGCHighThresholdPercent");
    let low = int("imageGCLowThresholdPercent");
    for (k, v) in [
        ("imageGCHighThresholdPercent", high),
        ("imageGCLowThresholdPercent", low),
    ] {
        if let Some(v) = v {
            if !(0..=100).contains(&v) {
                errs.push(format!("{k}: {v} must be between 0 and 100, inclusive"));
            }
        }
    }
    if let (Some(h), Some(l)) = (high, low) {
        if l >= h {
            errs.push(format!("imageGCLowThresholdPercent ({l}) must be less than imageGCHighThresholdPercent ({h})"));
        }
    }
    if let Some(n) = int("nodeLeaseDurationSeconds") {
        if n <= 0 {
            errs.push("nodeLeaseDurationSeconds: must be greater than 0".into());
        }
    }
    for k in [
        "evictionHard",
        "evictionSoft",
        "evictionMinimumReclaim",
        "evictionSoftGracePeriod",
    ] {
        for signal in c
            .get(k)
            .and_then(|m| m.as_object())
            .into_iter()
            .flat_map(|m| m.keys())
        {
            if !EVICTION_SIGNALS.contains(&signal.as_str()) {
                errs.push(format!("{k}[{signal}]: unsupported eviction signal"));
            }
        }
    }
    for ip in c
        .get("clusterDNS")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()).is_none() {
            errs.push(format!("clusterDNS: {ip} is not an IP address"));
        }
    }
    if let Some(v) = c.get("tlsMinVersion").and_then(|v| v.as_str()) {
        if ![
            "",
            "VersionTLS10",
            "VersionTLS11",
            "VersionTLS12",
            "VersionTLS13",
        ]
        .contains(&v)
        {
            errs.push(format!("tlsMinVersion: {v:?} is not a TLS version"));
        }
    }
    if c.pointer("/authorization/mode").and_then(|v| v.as_str()) == Some("Webhook")
        && c.pointer("/authentication/webhook/enabled")
            .and_then(|v| v.as_bool())
            == Some(false)
        && c.pointer("/authentication/x509/clientCAFile")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .is_empty()
    {
        errs.push("authorization.mode: Webhook needs authentication.webhook.enabled or authentication.x509.clientCAFile".into());
    }
    errs
}

const ALLOWED_KUBERNETES_LABELS: &[&str] = &[
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// The kubelet refuses `--node-labels` in the kubernetes.io/k8s.io namespaces outside an allowed set
/// (so e.g. node-role.kubernetes.io/* cannot be self-assigned).
pub fn check_node_label_key(key: &str) -> Result<(), String> {
    let prefix = key.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let restricted = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")));
    let allowed = ALLOWED_KUBERNETES_LABELS.contains(&key)
        || ["kubelet.kubernetes.io", "node.kubernetes.io"]
            .iter()
            .any(|p| prefix == *p || prefix.ends_with(&format!(".{p}")));
    if restricted && !allowed {
        return Err(format!(
            "unknown 'kubernetes.io' or 'k8s.io' label {key:?} specified with --node-labels; labels in these namespaces must begin with kubelet.kubernetes.io or node.kubernetes.io or be in the allowed set"
        ));
    }
    Ok(())
}

/// `--register-with-taints key[=value]:Effect,...`.
pub fn parse_taints(text: &str) -> Result<Vec<crate::kubeadm::config::Taint>, String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (kv, effect) = t
                .rsplit_once(':')
                .ok_or_else(|| format!("invalid taint spec {t:?}: missing effect"))?;
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
                return Err(format!(
                    "invalid taint spec {t:?}: invalid taint effect {effect:?}"
                ));
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (kv.to_string(), None),
            };
            Ok(crate::kubeadm::config::Taint {
                key,
                value,
                effect: effect.into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::KNOWN_MINORS;

    #[test]
    fn every_removed_flag_was_a_flag_until_its_removal() {
        for m in KNOWN_MINORS.skip(1) {
            for name in &releases::minor(m).removed_kubelet_flags {
                assert!(is_flag(name, m - 1), "--{name} before 1.{m}");
                assert!(!is_flag(name, m), "--{name} in 1.{m}");
                assert!(flag_spec(m - 1).iter().any(|f| f.name == name));
                assert!(!flag_spec(m).iter().any(|f| f.name == name));
            }
        }
    }
}
