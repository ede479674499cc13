//! What each Kubernetes minor removed, as the stand-ins enforce it: embedded at build time from
//! `tests/data/upstream/releases.json` (facts with their sources, independent of kubeboot's own table).
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

const RELEASES: &str = include_str!(concat!(env!("UPSTREAM_SCHEMAS_DIR"), "/releases.json"));

#[derive(Deserialize, Debug)]
pub struct Minor {
    pub kubeadm_api_versions: Vec<String>,
    pub kubeadm_feature_gates: Vec<String>,
    pub kubeadm_deprecated_feature_gates: Vec<String>,
    pub removed_feature_gates: Vec<String>,
    pub removed_kubelet_flags: Vec<String>,
}

#[derive(Deserialize)]
struct Facts {
    key_tree_master: String,
    minors: BTreeMap<String, Minor>,
}

fn minor_number(text: &str) -> u64 {
    text.strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("releases.json: {text:?} is not a 1.MINOR"))
}

fn facts() -> &'static (u64, BTreeMap<u64, Minor>) {
    static FACTS: OnceLock<(u64, BTreeMap<u64, Minor>)> = OnceLock::new();
    FACTS.get_or_init(|| {
        let facts: Facts = serde_json::from_str(RELEASES)
            .expect("embedded releases.json has the documented shape");
        let minors = facts
            .minors
            .into_iter()
            .map(|(k, v)| (minor_number(&k), v))
            .collect();
        (minor_number(&facts.key_tree_master), minors)
    })
}

/// The facts of release 1.`minor` (every minor in `KNOWN_MINORS` has an entry; a unit test checks).
pub fn minor(minor: u64) -> &'static Minor {
    facts()
        .1
        .get(&minor)
        .unwrap_or_else(|| panic!("releases.json has no entry for 1.{minor}"))
}

/// The minor the key trees' `"master"` (keys in no tagged release yet) stands for.
pub fn key_tree_master() -> u64 {
    facts().0
}

/// The minor, at or before 1.`minor`, that removed `name` from one of the per-minor lists `list` picks.
fn removed_by(minor: u64, name: &str, list: fn(&Minor) -> &Vec<String>) -> Option<u64> {
    facts()
        .1
        .range(..=minor)
        .find(|(_, m)| list(m).iter().any(|n| n == name))
        .map(|(m, _)| *m)
}

/// Whether release 1.`minor` no longer has the component feature gate `name`.
pub fn feature_gate_removed(minor: u64, name: &str) -> bool {
    removed_by(minor, name, |m| &m.removed_feature_gates).is_some()
}

/// Whether release 1.`minor` no longer has the kubelet flag `--name`.
pub fn kubelet_flag_removed(minor: u64, name: &str) -> bool {
    removed_by(minor, name, |m| &m.removed_kubelet_flags).is_some()
}

/// The newest minor whose kubeadm still reads `api_version`, if any does.
pub fn last_minor_reading(api_version: &str) -> Option<u64> {
    facts()
        .1
        .iter()
        .rev()
        .find(|(_, m)| m.kubeadm_api_versions.iter().any(|a| a == api_version))
        .map(|(m, _)| *m)
}

/// Component-base's check of feature gate names (a `--feature-gates` value or a `featureGates` map):
/// a gate removed in this release or earlier is "unrecognized". Gates never listed are not checked.
pub fn check_feature_gates<'a>(
    minor: u64,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    match names.into_iter().find(|n| feature_gate_removed(minor, n)) {
        Some(name) => Err(format!("unrecognized feature gate: {name}")),
        None => Ok(()),
    }
}

/// The gate names of a `--feature-gates` value (`A=true,B=false`).
pub fn feature_gate_names(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|pair| pair.split('=').next().unwrap_or_default().trim())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::KNOWN_MINORS;

    #[test]
    fn every_known_minor_has_facts() {
        for m in KNOWN_MINORS {
            let facts = minor(m);
            assert!(
                facts
                    .kubeadm_api_versions
                    .iter()
                    .any(|a| a == "kubeadm.k8s.io/v1beta4"),
                "1.{m}"
            );
            for gate in &facts.kubeadm_deprecated_feature_gates {
                assert!(facts.kubeadm_feature_gates.contains(gate), "1.{m}: {gate}");
            }
        }
        assert!(KNOWN_MINORS.contains(&key_tree_master()));
    }

    #[test]
    fn a_removal_holds_from_its_minor_on() {
        assert!(!feature_gate_removed(34, "ComponentSLIs"));
        assert!(feature_gate_removed(35, "ComponentSLIs"));
        assert!(feature_gate_removed(37, "ComponentSLIs"));
        assert!(!feature_gate_removed(36, "SidecarContainers"));
        assert!(feature_gate_removed(37, "SidecarContainers"));
        assert!(!kubelet_flag_removed(34, "pod-infra-container-image"));
        assert!(kubelet_flag_removed(35, "pod-infra-container-image"));
        assert!(!kubelet_flag_removed(36, "containerd"));
        assert!(kubelet_flag_removed(37, "containerd"));
        assert_eq!(last_minor_reading("kubeadm.k8s.io/v1beta3"), Some(36));
        assert_eq!(last_minor_reading("kubeadm.k8s.io/v1beta2"), None);
    }

    #[test]
    fn feature_gate_values_are_checked_by_name() {
        let names: Vec<&str> = feature_gate_names("A=true, SidecarContainers=false,,B").collect();
        assert_eq!(names, ["A", "SidecarContainers", "B"]);
        assert_eq!(
            check_feature_gates(37, names.iter().copied()),
            Err("unrecognized feature gate: SidecarContainers".into())
        );
        assert_eq!(check_feature_gates(36, names), Ok(()));
    }
}
