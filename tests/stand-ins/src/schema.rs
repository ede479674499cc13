//! Strict checking of configuration documents against the upstream key trees (embedded at build time from
//! `tests/data/upstream`): unknown fields, wrong leaf types and keys newer than the release.
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value as Tree;
use serde_yaml_ng::Value;

const KUBEADM_SCHEMA: &str = include_str!(concat!(
    env!("UPSTREAM_SCHEMAS_DIR"),
    "/kubeadm-schema.json"
));

fn schema() -> &'static Tree {
    static SCHEMA: OnceLock<Tree> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(KUBEADM_SCHEMA).expect("embedded kubeadm-schema.json is JSON")
    })
}

/// The key tree of `kind` in `api_version`, if upstream has that pair.
pub fn kind_tree(api_version: &str, kind: &str) -> Option<&'static Tree> {
    schema().get("kinds")?.get(api_version)?.get(kind)
}

/// The Kubernetes minor that introduced a key path (`a.b.c`), as the key trees record it ("master" = unreleased).
pub fn introduced(api_version: &str, kind: &str, key_path: &str) -> Option<&'static str> {
    schema()
        .get("_meta")?
        .get("introduced")?
        .get(api_version)?
        .get(kind)?
        .get("introduced")?
        .get(key_path)?
        .as_str()
}

/// One parsed YAML document with its apiVersion and kind.
#[derive(Debug, Clone)]
pub struct Document {
    pub api_version: String,
    pub kind: String,
    pub value: Value,
}

impl Document {
    /// The document as JSON, for typed access once the tree check passed.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.value).unwrap_or_default()
    }
}

/// Splits multi-document YAML; duplicate keys, non-mapping documents and missing apiVersion/kind are errors.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, String> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| format!("document {i}: {e}"))?;
        if value.is_null() {
            continue;
        }
        let Value::Mapping(map) = &value else {
            return Err(format!("document {i}: not a mapping"));
        };
        let field = |k: &str| match map.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(format!("document {i}: {k} must be a non-empty string")),
            None => Err(format!("document {i}: {k} is missing")),
        };
        let api_version = field("apiVersion")?;
        let kind = field("kind")?;
        docs.push(Document {
            api_version,
            kind,
            value,
        });
    }
    Ok(docs)
}

/// Checks `doc` against its key tree. Errors are "Kind: path: message".
pub fn check(doc: &Document) -> Vec<String> {
    let mut errs = Vec::new();
    match kind_tree(&doc.api_version, &doc.kind) {
        None => errs.push(format!(
            "{}: no kind {:?} is registered for version {:?}",
            doc.kind, doc.kind, doc.api_version
        )),
        Some(tree) => walk(&doc.value, tree, "", &mut errs),
    }
    errs.into_iter()
        .map(|e| format!("{}: {e}", doc.kind))
        .collect()
}

/// Keys of `doc` that the given Kubernetes minor does not know yet (per `_meta.introduced`).
pub fn too_new_keys(doc: &Document, minor: u64) -> Vec<String> {
    let mut paths = Vec::new();
    key_paths(&doc.value, "", &mut paths);
    paths
        .into_iter()
        .filter_map(|p| {
            let since = introduced(&doc.api_version, &doc.kind, &p)?;
            // "master": in no tagged release of the key trees yet (releases.json says which minor).
            let since_minor = match since {
                "master" => Some(crate::releases::key_tree_master()),
                _ => since.strip_prefix("1.").and_then(|m| m.parse::<u64>().ok()),
            };
            let since = since_minor.map_or_else(|| since.to_string(), |m| format!("1.{m}"));
            since_minor.is_none_or(|m| m > minor).then(|| {
                format!(
                    "{}: {p}: field introduced in Kubernetes {since}, unknown to 1.{minor}",
                    doc.kind
                )
            })
        })
        .collect()
}

fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    let p = if prefix.is_empty() {
                        k.to_string()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    key_paths(v, &p, out);
                    out.push(p);
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| key_paths(i, prefix, out)),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "<root>"
    } else {
        path
    }
}

fn walk(v: &Value, tree: &Tree, path: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        // JSON null leaves the Go zero value in place: accepted by upstream decoding.
        return;
    }
    match tree {
        Tree::String(leaf) => check_leaf(v, leaf, path, errs),
        Tree::Object(obj) if obj.len() == 1 && obj.contains_key("list-of") => match v {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &obj["list-of"], &format!("{path}[{i}]"), errs);
                }
            }
            _ => errs.push(format!(
                "{}: expected a list, got {}",
                shown(path),
                type_name(v)
            )),
        },
        Tree::Object(obj) if obj.len() == 1 && obj.contains_key("map-of") => match v {
            Value::Mapping(m) => {
                for (k, item) in m {
                    match k.as_str() {
                        Some(k) => walk(item, &obj["map-of"], &format!("{path}[{k}]"), errs),
                        None => errs.push(format!("{}: map keys must be strings", shown(path))),
                    }
                }
            }
            _ => errs.push(format!(
                "{}: expected a map, got {}",
                shown(path),
                type_name(v)
            )),
        },
        Tree::Object(obj) => match v {
            Value::Mapping(m) => {
                for (k, item) in m {
                    let Some(k) = k.as_str() else {
                        errs.push(format!("{}: keys must be strings", shown(path)));
                        continue;
                    };
                    let p = join(path, k);
                    match obj.get(k) {
                        Some(sub) => walk(item, sub, &p, errs),
                        None => errs.push(format!("{p}: unknown field {k:?}")),
                    }
                }
            }
            _ => errs.push(format!(
                "{}: expected an object, got {}",
                shown(path),
                type_name(v)
            )),
        },
        _ => errs.push(format!("{}: unsupported key tree node", shown(path))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "object",
        Value::Tagged(_) => "tagged value",
    }
}

/// A regex compiled once into `cell`.
pub(crate) fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

/// Go's time.ParseDuration syntax.
pub fn is_duration(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    s == "0" || regex(&RE, r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$").is_match(s)
}

fn is_rfc3339(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(
        &RE,
        r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
    )
    .is_match(s)
}

fn is_quantity(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(
        &RE,
        r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$",
    )
    .is_match(s)
}

fn is_int(v: &Value) -> bool {
    matches!(v, Value::Number(n) if n.is_i64() || n.is_u64())
}

fn check_leaf(v: &Value, leaf: &str, path: &str, errs: &mut Vec<String>) {
    let p = shown(path);
    if let Some(inner) = leaf.strip_prefix("list-of:") {
        match v {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_leaf(item, inner, &format!("{path}[{i}]"), errs);
                }
            }
            _ => errs.push(format!(
                "{p}: expected a list of {inner}, got {}",
                type_name(v)
            )),
        }
        return;
    }
    if let Some(inner) = leaf.strip_prefix("map-of:") {
        match v {
            Value::Mapping(m) => {
                for (k, item) in m {
                    match k.as_str() {
                        Some(k) => check_leaf(item, inner, &format!("{path}[{k}]"), errs),
                        None => errs.push(format!("{p}: map keys must be strings")),
                    }
                }
            }
            _ => errs.push(format!(
                "{p}: expected a map of {inner}, got {}",
                type_name(v)
            )),
        }
        return;
    }
    if let Some(allowed) = leaf.strip_prefix("enum:") {
        match v.as_str() {
            Some(s) if s.is_empty() || allowed.split('|').any(|a| a == s) => {}
            Some(s) => errs.push(format!(
                "{p}: unsupported value {s:?}, must be one of {}",
                allowed.replace('|', ", ")
            )),
            None => errs.push(format!("{p}: expected a string, got {}", type_name(v))),
        }
        return;
    }
    let ok = match leaf {
        "any" => true,
        "string" => v.is_string(),
        "bool" => v.is_bool(),
        "int" => is_int(v),
        "number" => v.is_number(),
        "duration" => v.as_str().is_some_and(is_duration),
        "duration-or-int" => is_int(v) || v.as_str().is_some_and(is_duration),
        "time" => v.as_str().is_some_and(is_rfc3339),
        "quantity" => v.is_number() || v.as_str().is_some_and(is_quantity),
        "int-or-string" => is_int(v) || v.is_string(),
        "status-only" => {
            errs.push(format!(
                "{p}: status field, not settable in a configuration file"
            ));
            return;
        }
        other => {
            errs.push(format!("{p}: unknown leaf type {other:?} in the key tree"));
            return;
        }
    };
    if !ok {
        let shown_value = match v {
            Value::String(s) => format!("{s:?}"),
            _ => type_name(v).to_string(),
        };
        errs.push(format!("{p}: expected {leaf}, got {shown_value}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Document {
        parse_documents(yaml).unwrap().remove(0)
    }

    #[test]
    fn the_embedded_tree_has_the_kubeadm_kinds() {
        for kind in [
            "InitConfiguration",
            "ClusterConfiguration",
            "JoinConfiguration",
            "ResetConfiguration",
        ] {
            assert!(
                kind_tree("kubeadm.k8s.io/v1beta4", kind).is_some(),
                "{kind}"
            );
        }
        assert!(kind_tree("kubeadm.k8s.io/v1beta9", "InitConfiguration").is_none());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_reported_with_their_path() {
        let d = doc("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: \"6443\"\n  bogus: 1\nnodeRegistration:\n  taints:\n  - key: a\n    effect: Sometimes\n");
        let errs = check(&d);
        assert!(
            errs.iter()
                .any(|e| e
                    == "InitConfiguration: localAPIEndpoint.bindPort: expected int, got \"6443\""),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("localAPIEndpoint.bogus: unknown field")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e
                .contains("nodeRegistration.taints[0].effect: unsupported value \"Sometimes\"")),
            "{errs:?}"
        );
    }

    #[test]
    fn leaf_types_follow_go_decoding() {
        let good = doc("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nsyncFrequency: 1m30s\nevictionHard:\n  memory.available: 100Mi\nmaxPods: 110\nfailSwapOn: false\n");
        assert_eq!(check(&good), Vec::<String>::new());
        let bad = doc("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nsyncFrequency: 90\nmaxPods: 110.5\nfailSwapOn: \"false\"\nevictionHard: [a]\n");
        let errs = check(&bad);
        assert_eq!(errs.len(), 4, "{errs:?}");
    }

    #[test]
    fn duplicate_keys_and_unknown_kinds_fail() {
        assert!(parse_documents("apiVersion: v1\nkind: A\nkind: B\n")
            .unwrap_err()
            .contains("duplicate"));
        let d = doc("apiVersion: kubeadm.k8s.io/v1beta4\nkind: NodeConfiguration\n");
        assert!(check(&d)[0].contains("no kind"));
        assert!(parse_documents("kind: X\n")
            .unwrap_err()
            .contains("apiVersion is missing"));
    }

    #[test]
    fn keys_newer_than_the_release_are_found() {
        let d = doc("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ntlsCurvePreferences: [a]\nmaxPods: 10\n");
        assert_eq!(too_new_keys(&d, 35).len(), 1);
        assert!(too_new_keys(&d, 36).is_empty());
    }

    #[test]
    fn keys_only_on_master_are_new_in_the_newest_minor() {
        let d = doc("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ndefaultPodSysctls: {}\n");
        assert_eq!(
            introduced(&d.api_version, &d.kind, "defaultPodSysctls"),
            Some("master")
        );
        assert_eq!(
            too_new_keys(&d, 36),
            ["KubeletConfiguration: defaultPodSysctls: field introduced in Kubernetes 1.37, unknown to 1.36"]
        );
        assert!(too_new_keys(&d, 37).is_empty());
    }

    #[test]
    fn go_durations() {
        for ok in ["0", "10s", "1h30m", "1.5h", "300ms"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "10", "1d", "s"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }
}
