//! CIS 4.2.x: the kubelet's configuration file (what kubeadm writes from the agent's
//! KubeletConfiguration).

use serde_yaml_ng::Value;

use super::{verdict, Finding, Node};
use crate::paths::{self, KUBELET_CONFIG};

/// Strong TLS cipher suites CIS 4.2.12 accepts for the kubelet.
pub const KUBELET_STRONG_CIPHERS: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
];

enum Rule {
    Is(&'static str, Value),
    IsOrUnset(&'static str, Value),
    Set(&'static str),
    /// A duration that, when set, is not zero.
    NonZeroDurationOrUnset(&'static str),
    /// A number that, when set, is at least this.
    AtLeastOrUnset(&'static str, f64),
    NotFalseOrUnset(&'static str),
    OnlyFrom(&'static str, &'static [&'static str]),
}

struct KubeletItem {
    id: &'static str,
    title: &'static str,
    rule: Rule,
}

fn items() -> Vec<KubeletItem> {
    let item = |id, title, rule| KubeletItem { id, title, rule };
    vec![
        item(
            "4.2.1",
            "kubelet anonymous authentication is disabled",
            Rule::Is("authentication.anonymous.enabled", Value::Bool(false)),
        ),
        item(
            "4.2.2",
            "kubelet authorization mode is not AlwaysAllow",
            Rule::Is("authorization.mode", Value::from("Webhook")),
        ),
        item(
            "4.2.3",
            "kubelet client CA file is set",
            Rule::Set("authentication.x509.clientCAFile"),
        ),
        item(
            "4.2.4",
            "kubelet read-only port is 0",
            Rule::Is("readOnlyPort", Value::from(0)),
        ),
        item(
            "4.2.5",
            "kubelet streaming connection idle timeout is not 0",
            Rule::NonZeroDurationOrUnset("streamingConnectionIdleTimeout"),
        ),
        item(
            "4.2.6",
            "kubelet makeIPTablesUtilChains is true",
            Rule::IsOrUnset("makeIPTablesUtilChains", Value::Bool(true)),
        ),
        item(
            "4.2.8",
            "kubelet eventRecordQPS ensures appropriate event capture",
            Rule::AtLeastOrUnset("eventRecordQPS", 0.0),
        ),
        item(
            "4.2.10",
            "kubelet certificate rotation is not disabled",
            Rule::IsOrUnset("rotateCertificates", Value::Bool(true)),
        ),
        item(
            "4.2.11",
            "RotateKubeletServerCertificate is not disabled",
            Rule::NotFalseOrUnset("featureGates.RotateKubeletServerCertificate"),
        ),
        item(
            "4.2.12",
            "The kubelet only uses strong cryptographic ciphers",
            Rule::OnlyFrom("tlsCipherSuites", KUBELET_STRONG_CIPHERS),
        ),
        item(
            "4.2.13",
            "A limit is set on pod PIDs",
            Rule::Set("podPidsLimit"),
        ),
        item(
            "4.2.14",
            "The kubelet's seccomp default is set",
            Rule::Is("seccompDefault", Value::Bool(true)),
        ),
    ]
}

fn load(node: &Node) -> Result<Value, String> {
    let text = node
        .read(paths::KUBELET_CONFIG)
        .map_err(|e| format!("{KUBELET_CONFIG}: {e}"))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{KUBELET_CONFIG}: not YAML: {e}"))
}

/// The kubelet's client CA file as its configuration names it.
pub fn client_ca_file(node: &Node) -> Result<String, String> {
    let config = load(node)?;
    Ok(lookup(&config, "authentication.x509.clientCAFile")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(paths::CLUSTER_CA_CERT)
        .to_string())
}

fn lookup<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(config, |v, key| v.get(key))
}

pub(super) fn checks(node: &Node) -> Vec<Finding> {
    let config = load(node);
    items()
        .into_iter()
        .map(|item| {
            let (ok, evidence) = match &config {
                Err(e) => (false, e.clone()),
                Ok(config) => judge(config, &item.rule),
            };
            Finding::new(item.id, item.title, (verdict(ok), evidence))
        })
        .collect()
}

fn show(config: &Value, path: &str) -> String {
    match lookup(config, path) {
        None => format!("{path} not set"),
        Some(v) => format!(
            "{path}: {}",
            serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
        ),
    }
}

fn judge(config: &Value, rule: &Rule) -> (bool, String) {
    match rule {
        Rule::Is(path, want) => (lookup(config, path) == Some(want), show(config, path)),
        Rule::IsOrUnset(path, want) => (
            lookup(config, path).is_none_or(|v| v == want),
            show(config, path),
        ),
        Rule::Set(path) => (
            lookup(config, path).is_some_and(|v| !v.is_null() && v.as_str() != Some("")),
            show(config, path),
        ),
        Rule::NonZeroDurationOrUnset(path) => (
            lookup(config, path).is_none_or(|v| !is_zero_duration(v)),
            show(config, path),
        ),
        Rule::AtLeastOrUnset(path, min) => (
            lookup(config, path).is_none_or(|v| v.as_f64().is_some_and(|n| n >= *min)),
            show(config, path),
        ),
        Rule::NotFalseOrUnset(path) => (
            lookup(config, path) != Some(&Value::Bool(false)),
            show(config, path),
        ),
        Rule::OnlyFrom(path, allowed) => {
            let values: Vec<&str> = lookup(config, path)
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            (
                !values.is_empty() && values.iter().all(|v| allowed.contains(v)),
                show(config, path),
            )
        }
    }
}

/// `0`, `0s`, `0m0s`, ... (any Go duration whose digits are all zero).
fn is_zero_duration(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.chars().filter(char::is_ascii_digit).all(|c| c == '0'),
        _ => false,
    }
}
