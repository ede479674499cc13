//! The API resources the stand-in serves (what kubeboot's addon manifests use), their discovery documents,
//! and request-path parsing.
use std::collections::BTreeMap;

use serde_json::{json, Value};

pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

const fn r(
    group: &'static str,
    version: &'static str,
    name: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        name,
        kind,
        namespaced,
    }
}

pub const RESOURCES: &[Resource] = &[
    r("", "v1", "namespaces", "Namespace", false),
    r("", "v1", "nodes", "Node", false),
    r("", "v1", "configmaps", "ConfigMap", true),
    r("", "v1", "secrets", "Secret", true),
    r("", "v1", "serviceaccounts", "ServiceAccount", true),
    r("", "v1", "services", "Service", true),
    r("apps", "v1", "deployments", "Deployment", true),
    r("apps", "v1", "daemonsets", "DaemonSet", true),
    r("apps", "v1", "statefulsets", "StatefulSet", true),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    r("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
    ),
    r(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
    ),
    r("storage.k8s.io", "v1", "csidrivers", "CSIDriver", false),
    r(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
    ),
    r(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
    ),
    r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    r(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
    ),
];

const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

pub fn group_list() -> Value {
    let mut groups: Vec<&str> = RESOURCES
        .iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let v = RESOURCES
                .iter()
                .find(|r| r.group == *g)
                .map(|r| r.version)
                .unwrap_or("v1");
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn resource_list(group: &str, version: &str) -> Value {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({"name": r.name, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// A request path resolved to a resource, an optional namespace and an optional object name.
pub struct Target<'a> {
    pub resource: &'static Resource,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// `/api/v1[/namespaces/NS]/RES[/NAME]` or `/apis/G/V[/namespaces/NS]/RES[/NAME]`.
pub fn parse_path<'a>(segs: &[&'a str]) -> Option<Target<'a>> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |name: &str| {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.name == name)
    };
    match rest {
        ["namespaces", ns, res, tail @ ..] if tail.len() <= 1 => {
            let resource = find(res).filter(|r| r.namespaced)?;
            Some(Target {
                resource,
                namespace: Some(ns),
                name: tail.first().copied(),
            })
        }
        [res, tail @ ..] if tail.len() <= 1 => {
            let resource = find(res)?;
            // A namespaced resource without a namespace is a cross-namespace list only.
            if resource.namespaced && !tail.is_empty() {
                return None;
            }
            Some(Target {
                resource,
                namespace: None,
                name: tail.first().copied(),
            })
        }
        _ => None,
    }
}

impl Target<'_> {
    pub fn api_version(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.version.to_string()
        } else {
            format!("{}/{}", self.resource.group, self.resource.version)
        }
    }

    pub fn key_prefix(&self) -> String {
        format!(
            "{}/{}/{}/",
            self.api_version(),
            self.resource.kind,
            self.namespace.unwrap_or("")
        )
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.key_prefix())
    }

    /// An applied object must be what the URL says: same apiVersion, kind, name and namespace.
    pub fn check_object(&self, obj: &Value, name: &str) -> Result<(), String> {
        let api_version = self.api_version();
        if obj["apiVersion"] != api_version.as_str() || obj["kind"] != self.resource.kind {
            return Err(format!(
                "the object is {} {}, but the URL is for {api_version} {}",
                obj["apiVersion"], obj["kind"], self.resource.kind
            ));
        }
        if obj["metadata"]["name"] != name {
            return Err(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj["metadata"]["name"]
            ));
        }
        match (obj["metadata"]["namespace"].as_str(), self.namespace) {
            (Some(ns), Some(url_ns)) if ns != url_ns => Err(format!("the namespace of the object ({ns}) does not match the namespace on the request ({url_ns})")),
            (Some(_), None) => Err(format!("{} is not namespaced", self.resource.kind)),
            _ => Ok(()),
        }
    }
}

pub fn namespace_exists(objects: &BTreeMap<String, Value>, ns: &str) -> bool {
    BUILTIN_NAMESPACES.contains(&ns) || objects.contains_key(&format!("v1/Namespace//{ns}"))
}

/// Server-set metadata: uid, resourceVersion, creationTimestamp (kept on updates).
pub fn stamp(obj: &mut Value) {
    let now = time::OffsetDateTime::now_utc();
    let ts = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let meta = &mut obj["metadata"];
    if meta["uid"].is_null() {
        meta["uid"] = json!(format!("{:032x}", now.unix_timestamp_nanos()));
        meta["creationTimestamp"] = json!(ts);
    }
    meta["resourceVersion"] = json!(now.unix_timestamp_nanos().to_string());
}

/// What the API server's Node validation rejects: a bad name, label, taint or provider ID change.
pub fn validate_node(node: &Value) -> Result<(), String> {
    if node["apiVersion"] != "v1" || node["kind"] != "Node" {
        return Err("the object is not a v1 Node".into());
    }
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    if !crate::kubeadm::config::is_dns1123_subdomain(name) {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain is required"
        ));
    }
    for (k, v) in node["metadata"]["labels"].as_object().into_iter().flatten() {
        if !v.is_string() || k.is_empty() {
            return Err(format!("metadata.labels: Invalid value: {k:?}"));
        }
    }
    for (i, t) in node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"]
            .contains(&t["effect"].as_str().unwrap_or_default())
        {
            return Err(format!(
                "spec.taints[{i}].effect: Unsupported value: {}",
                t["effect"]
            ));
        }
        if t["key"].as_str().unwrap_or_default().is_empty() {
            return Err(format!("spec.taints[{i}].key: Required value"));
        }
    }
    Ok(())
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents kubectl fetches before applying.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES {
        let p = gv_path(r.group, r.version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=stand-in")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv>`: for each resource a PATCH operation tagged with its GVK and the query parameters the
/// server supports, which is all kubectl looks for (it then sends `fieldValidation=Strict`).
pub fn openapi_group_version(gv: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| gv_path(r.group, r.version) == gv)
    {
        let scope = if r.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let params: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
            .iter()
            .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string"}}))
            .collect();
        paths.insert(
            format!("/{gv}/{scope}{}/{{name}}", r.name),
            json!({"patch": {"operationId": format!("patch{}", r.kind), "parameters": params, "responses": {"200": {"description": "OK"}},
                             "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind}}}),
        );
    }
    (!paths.is_empty()).then(|| json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "stand-in"}, "paths": paths}))
}
