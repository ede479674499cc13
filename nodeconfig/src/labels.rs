//! Kubernetes label key and value syntax (apimachinery's IsQualifiedName / IsValidLabelValue).

fn is_name_part(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= max
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !label.is_empty()
                && label.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// `[prefix/]name`, as label and taint keys are written.
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return Err(format!("{key:?} has a prefix that is not a DNS subdomain"));
        }
    }
    if !is_name_part(name, 63) {
        return Err(format!(
            "{key:?} must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value, 63) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

/// The label prefix kubeboot sets its own labels under (`kubeboot.io/pool`).
pub const KUBEBOOT_LABEL_PREFIX: &str = "kubeboot.io";

/// The label the agent puts on every node: its pool's name. The generator writes it into an
/// autoscaled pool's node template too, so that a pod selecting a pool can scale it from zero.
pub const POOL_LABEL: &str = "kubeboot.io/pool";

/// A label a user asks for on a pool's nodes: valid syntax, and not one kubeboot, the kubelet or
/// the cloud provider sets itself (a user value would silently override theirs) nor one the kubelet
/// may not set under NodeRestriction (it would fail to register the node).
pub fn check_node_label(key: &str, value: &str) -> Result<(), String> {
    check_qualified_name(key)?;
    check_label_value(value)?;
    check_not_reserved(key)
}

/// The kubelet's `--node-labels` rule: in the kubernetes.io and k8s.io namespaces only
/// `[*.]kubelet.kubernetes.io/*`, `[*.]node.kubernetes.io/*` and a fixed set of well-known keys may
/// be set; those well-known keys are the ones the kubelet, kubeboot or the cloud provider set.
fn check_not_reserved(key: &str) -> Result<(), String> {
    const SET_BY_THE_NODE: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    const KUBELET_MAY_SET: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
    let Some((prefix, _)) = key.split_once('/') else {
        return Ok(());
    };
    let within = |domain: &str| prefix == domain || prefix.ends_with(&format!(".{domain}"));
    if prefix == KUBEBOOT_LABEL_PREFIX {
        return Err(format!(
            "{key:?} is in the {KUBEBOOT_LABEL_PREFIX} namespace, which kubeboot sets itself"
        ));
    }
    if SET_BY_THE_NODE.contains(&key) {
        return Err(format!(
            "{key:?} is set by the kubelet, kubeboot or the cloud provider"
        ));
    }
    if (within("kubernetes.io") || within("k8s.io")) && !KUBELET_MAY_SET.iter().any(|d| within(d)) {
        return Err(format!(
            "{key:?} is in a kubernetes.io/k8s.io namespace the kubelet may not set (NodeRestriction)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert!(check_qualified_name("workload").is_ok());
        assert!(check_qualified_name("node.kubernetes.io/pool").is_ok());
        assert!(check_qualified_name("Bad_Prefix/x").is_err());
        assert!(check_qualified_name("-x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("general").is_ok());
        assert!(check_label_value("a b").is_err());
        assert!(is_dns_subdomain("demo-abc.westeurope.cloudapp.azure.com"));
        assert!(!is_dns_subdomain("Demo"));
        assert!(check_node_label(
            "node.kubernetes.io/exclude-from-external-load-balancers",
            ""
        )
        .is_ok());
        assert!(check_node_label("team.kubelet.kubernetes.io/x", "y").is_ok());
        assert!(check_node_label("example.com/x", "y").is_ok());
        assert!(check_node_label("e2e.kubeboot.io/pool", "y").is_ok());
        for reserved in [
            "kubeboot.io/pool",
            "node-role.kubernetes.io/worker",
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/instance-type",
            "node-restriction.kubernetes.io/x",
            "example.k8s.io/x",
        ] {
            assert!(check_node_label(reserved, "y").is_err(), "{reserved}");
        }
        assert!(check_node_label("workload", "a b").is_err());
    }
}
