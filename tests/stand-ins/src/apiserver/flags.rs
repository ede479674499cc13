//! kube-apiserver's flag set (1.34's) and the checks the real server makes at start-up, for the
//! release the stand-in plays (feature gates removed by then are unrecognized, per `releases.json`).
use std::path::Path;

use anyhow::{bail, Result};

use crate::flags::{self, boolean, value, Flag, Parsed};
use crate::{fsx, releases, Root};

const BOOL_FLAGS: &[&str] = &[
    "aggregator-reject-forwarding-redirect",
    "allow-privileged",
    "anonymous-auth",
    "audit-log-batch-throttle-enable",
    "audit-log-compress",
    "audit-log-truncate-enabled",
    "audit-webhook-batch-throttle-enable",
    "audit-webhook-truncate-enabled",
    "contention-profiling",
    "enable-aggregator-routing",
    "enable-bootstrap-token-auth",
    "enable-garbage-collector",
    "enable-priority-and-fairness",
    "encryption-provider-config-automatic-reload",
    "help",
    "log-json-split-stream",
    "log-text-split-stream",
    "permit-address-sharing",
    "permit-port-sharing",
    "profiling",
    "service-account-extend-token-expiration",
    "service-account-lookup",
    "watch-cache",
    "emulation-forward-compatible",
    "runtime-config-emulation-forward-compatible",
];

const VALUE_FLAGS: &[&str] = &[
    "admission-control-config-file",
    "advertise-address",
    "allow-metric-labels",
    "allow-metric-labels-manifest",
    "api-audiences",
    "apiserver-count",
    "audit-log-batch-buffer-size",
    "audit-log-batch-max-size",
    "audit-log-batch-max-wait",
    "audit-log-batch-throttle-burst",
    "audit-log-batch-throttle-qps",
    "audit-log-format",
    "audit-log-maxage",
    "audit-log-maxbackup",
    "audit-log-maxsize",
    "audit-log-mode",
    "audit-log-path",
    "audit-log-truncate-max-batch-size",
    "audit-log-truncate-max-event-size",
    "audit-log-version",
    "audit-policy-file",
    "audit-webhook-batch-buffer-size",
    "audit-webhook-batch-max-size",
    "audit-webhook-batch-max-wait",
    "audit-webhook-batch-throttle-burst",
    "audit-webhook-batch-throttle-qps",
    "audit-webhook-config-file",
    "audit-webhook-initial-backoff",
    "audit-webhook-mode",
    "audit-webhook-truncate-max-batch-size",
    "audit-webhook-truncate-max-event-size",
    "audit-webhook-version",
    "authentication-config",
    "authentication-token-webhook-cache-ttl",
    "authentication-token-webhook-config-file",
    "authentication-token-webhook-version",
    "authorization-config",
    "authorization-mode",
    "authorization-policy-file",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "authorization-webhook-config-file",
    "authorization-webhook-version",
    "bind-address",
    "cert-dir",
    "client-ca-file",
    "cloud-config",
    "cloud-provider",
    "cors-allowed-origins",
    "debug-socket-path",
    "default-not-ready-toleration-seconds",
    "default-unreachable-toleration-seconds",
    "delete-collection-workers",
    "disable-admission-plugins",
    "disabled-metrics",
    "egress-selector-config-file",
    "emulated-version",
    "enable-admission-plugins",
    "encryption-provider-config",
    "endpoint-reconciler-type",
    "etcd-cafile",
    "etcd-certfile",
    "etcd-compaction-interval",
    "etcd-count-metric-poll-period",
    "etcd-db-metric-poll-interval",
    "etcd-healthcheck-timeout",
    "etcd-keyfile",
    "etcd-prefix",
    "etcd-readycheck-timeout",
    "etcd-servers",
    "etcd-servers-overrides",
    "event-ttl",
    "external-hostname",
    "feature-gates",
    "goaway-chance",
    "http2-max-streams-per-connection",
    "kubelet-certificate-authority",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "kubelet-preferred-address-types",
    "kubelet-timeout",
    "kubernetes-service-node-port",
    "lease-reuse-duration-seconds",
    "livez-grace-period",
    "log-flush-frequency",
    "log-json-info-buffer-size",
    "log-text-info-buffer-size",
    "logging-format",
    "max-connection-bytes-per-sec",
    "max-mutating-requests-inflight",
    "max-requests-inflight",
    "min-request-timeout",
    "oidc-ca-file",
    "oidc-client-id",
    "oidc-groups-claim",
    "oidc-groups-prefix",
    "oidc-issuer-url",
    "oidc-required-claim",
    "oidc-signing-algs",
    "oidc-username-claim",
    "oidc-username-prefix",
    "peer-advertise-ip",
    "peer-advertise-port",
    "peer-ca-file",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "request-timeout",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-uid-headers",
    "requestheader-username-headers",
    "runtime-config",
    "secure-port",
    "service-account-issuer",
    "service-account-jwks-uri",
    "service-account-key-file",
    "service-account-max-token-expiration",
    "service-account-signing-endpoint",
    "service-account-signing-key-file",
    "service-cluster-ip-range",
    "service-node-port-range",
    "show-hidden-metrics-for-version",
    "shutdown-delay-duration",
    "shutdown-send-retry-after",
    "shutdown-watch-termination-grace-period",
    "storage-backend",
    "storage-initialization-timeout",
    "storage-media-type",
    "strict-transport-security-directives",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "tls-sni-cert-key",
    "token-auth-file",
    "tracing-config-file",
    "v",
    "version",
    "vmodule",
    "watch-cache-sizes",
];

const ADMISSION_PLUGINS: &[&str] = &[
    "AlwaysAdmit",
    "AlwaysDeny",
    "AlwaysPullImages",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "ClusterTrustBundleAttest",
    "DefaultIngressClass",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "DenyServiceExternalIPs",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "ImagePolicyWebhook",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "NamespaceAutoProvision",
    "NamespaceExists",
    "NamespaceLifecycle",
    "NodeRestriction",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "PodNodeSelector",
    "PodSecurity",
    "PodTolerationRestriction",
    "PodTopologyLabels",
    "Priority",
    "ResourceQuota",
    "RuntimeClass",
    "ServiceAccount",
    "StorageObjectInUseProtection",
    "TaintNodesByCondition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
];

pub fn spec() -> Vec<Flag> {
    let mut spec: Vec<Flag> = BOOL_FLAGS.iter().map(|n| boolean(n)).collect();
    spec.extend(VALUE_FLAGS.iter().map(|n| value(n)));
    spec
}

/// Flags naming files the server reads at start.
pub fn is_input_file_flag(name: &str) -> bool {
    (name.ends_with("-file") && !name.starts_with("audit-log"))
        || name.ends_with("-certificate")
        || name.ends_with("-key")
        || matches!(
            name,
            "encryption-provider-config"
                | "authentication-config"
                | "authorization-config"
                | "etcd-cafile"
                | "etcd-certfile"
                | "etcd-keyfile"
        )
}

/// Parses and checks the command line as the real server of release 1.`minor` does before serving.
pub fn parse(root: &Root, args: &[String], minor: u64) -> Result<Parsed> {
    let p = flags::parse(args, &spec())?;
    // The gate names are checked while the flag is parsed, so pflag reports the failure.
    for value in p.all("feature-gates") {
        if let Err(e) = releases::check_feature_gates(minor, releases::feature_gate_names(value)) {
            bail!("invalid argument {value:?} for \"--feature-gates\" flag: {e}");
        }
    }
    let mut errs = Vec::new();
    for required in [
        "etcd-servers",
        "service-account-issuer",
        "service-account-key-file",
        "service-account-signing-key-file",
        "secure-port",
        "tls-cert-file",
        "tls-private-key-file",
        "client-ca-file",
    ] {
        if p.last(required).unwrap_or_default().is_empty() {
            errs.push(format!("--{required} must be specified"));
        }
    }
    for (name, v) in &p.flags {
        if is_input_file_flag(name) && !v.is_empty() {
            for f in v.split(',') {
                if !root.path(f).is_file() {
                    errs.push(format!("--{name}={f}: no such file"));
                }
            }
        }
    }
    for name in ["enable-admission-plugins", "disable-admission-plugins"] {
        for plugin in p
            .all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|s| !s.is_empty())
        {
            if !ADMISSION_PLUGINS.contains(&plugin) {
                errs.push(format!(
                    "--{name}: plugins [{plugin}] in {name} are not registered"
                ));
            }
        }
    }
    if let Some(modes) = p.last("authorization-mode") {
        if p.last("authorization-config").is_some() {
            errs.push("--authorization-config can not be specified when --authorization-mode is specified".into());
        }
        for m in modes.split(',') {
            if ![
                "AlwaysAllow",
                "AlwaysDeny",
                "ABAC",
                "Webhook",
                "RBAC",
                "Node",
            ]
            .contains(&m)
            {
                errs.push(format!(
                    "--authorization-mode: authorization-mode {m:?} is not a valid mode"
                ));
            }
        }
    }
    if let Some(v) = p.last("tls-min-version") {
        if ![
            "VersionTLS10",
            "VersionTLS11",
            "VersionTLS12",
            "VersionTLS13",
        ]
        .contains(&v)
        {
            errs.push(format!("--tls-min-version: {v:?} is not a TLS version"));
        }
    }
    if let Some(v) = p.last("cloud-provider") {
        if !v.is_empty() && v != "external" {
            errs.push(format!("--cloud-provider: {v:?}: in-tree cloud providers are removed; only \"external\" is allowed"));
        }
    }
    for (name, kind) in [
        ("audit-policy-file", ("audit.k8s.io/v1", "Policy")),
        (
            "encryption-provider-config",
            ("apiserver.config.k8s.io/v1", "EncryptionConfiguration"),
        ),
    ] {
        if let Some(f) = p.last(name).filter(|f| root.path(f).is_file()) {
            if let Err(e) = check_config_file(&root.path(f), kind) {
                errs.push(format!("--{name}={f}: {e}"));
            }
        }
    }
    for (name, v) in &p.flags {
        if [
            "secure-port",
            "audit-log-maxage",
            "audit-log-maxbackup",
            "audit-log-maxsize",
        ]
        .contains(&name.as_str())
            && v.parse::<u32>().is_err()
        {
            errs.push(format!("--{name}: {v:?} is not a number"));
        }
    }
    if !errs.is_empty() {
        bail!("invalid flags:\n  {}", errs.join("\n  "));
    }
    Ok(p)
}

fn check_config_file(path: &Path, (api_version, kind): (&str, &str)) -> Result<()> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&fsx::read(path)?)?;
    if v.get("apiVersion").and_then(|a| a.as_str()) != Some(api_version)
        || v.get("kind").and_then(|a| a.as_str()) != Some(kind)
    {
        bail!("must be apiVersion {api_version}, kind {kind}");
    }
    Ok(())
}
