//! Reads a static pod manifest (what kubeadm writes under /etc/kubernetes/manifests) and returns
//! its container's command-line flags, as the running process would see them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Node;

#[derive(Deserialize)]
struct Pod {
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
}

/// `--name=value` flags of the manifest's first container (a bare `--name` reads as `true`; a
/// repeated flag keeps its last value, as Go's flag parsing does).
pub fn flags(node: &Node, manifest: &str) -> Result<BTreeMap<String, String>, String> {
    let text = node
        .read(manifest)
        .map_err(|e| format!("{manifest}: {e}"))?;
    parse_flags(&text).map_err(|e| format!("{manifest}: {e}"))
}

fn parse_flags(text: &str) -> Result<BTreeMap<String, String>, String> {
    let pod: Pod = serde_yaml_ng::from_str(text).map_err(|e| format!("not a pod manifest: {e}"))?;
    let container = pod
        .spec
        .containers
        .into_iter()
        .next()
        .ok_or("the pod has no container")?;
    Ok(container
        .command
        .iter()
        .chain(&container.args)
        .filter_map(|word| word.strip_prefix("--"))
        .map(|flag| match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (flag.to_string(), "true".to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_command_and_args_last_wins() {
        let flags = parse_flags(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    command: [kube-apiserver, --profiling=false, --a=b=c, --v]\n    args: [--profiling=true]\n",
        )
        .unwrap();
        assert_eq!(flags["profiling"], "true");
        assert_eq!(flags["a"], "b=c");
        assert_eq!(flags["v"], "true");
        assert!(parse_flags("spec: {containers: []}")
            .unwrap_err()
            .contains("no container"));
        assert!(parse_flags("- a").is_err());
    }
}
