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
    // Listed and evicted by `kubectl drain`; only tests put any in the state.
    r("", "v1", "pods", "Pod", true),
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
    let mut resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({"name": r.name, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
        })
        .collect();
    if group_version == "v1" {
        // kubectl drain evicts through this subresource when discovery lists it.
        resources.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                              "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
    }
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

    /// The state-key prefix of the objects this path lists: a namespaced resource without a namespace
    /// lists every namespace.
    pub fn key_prefix(&self) -> String {
        match (self.resource.namespaced, self.namespace) {
            (true, None) => format!("{}/{}/", self.api_version(), self.resource.kind),
            (_, ns) => format!(
                "{}/{}/{}/",
                self.api_version(),
                self.resource.kind,
                ns.unwrap_or("")
            ),
        }
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

/// Why a write is refused: HTTP status, `Status` reason, message.
pub type Refusal = (hyper::StatusCode, &'static str, String);

/// What the API server does to a Secret on write (core/v1 conversion, defaulting, ValidateSecret):
/// `stringData` is merged into `data` (base64, stringData wins) and dropped, `type` defaults to Opaque,
/// `data` values must be base64 and keys valid config keys.
pub fn normalize_secret(obj: &mut Value) -> Result<(), Refusal> {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cannot_handle = |e: String| {
        (
            hyper::StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Secret in version \"v1\" cannot be handled as a Secret: {e}"),
        )
    };
    let mut data = match obj.get("data") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(cannot_handle(format!(
                "data: expected an object, got {other}"
            )))
        }
    };
    for v in data.values() {
        let text = v
            .as_str()
            .ok_or_else(|| cannot_handle(format!("data: expected a base64 string, got {v}")))?;
        B64.decode(text).map_err(|e| cannot_handle(e.to_string()))?;
    }
    if let Some(string_data) = obj.get("stringData").filter(|v| !v.is_null()) {
        let m = string_data.as_object().ok_or_else(|| {
            cannot_handle(format!("stringData: expected an object, got {string_data}"))
        })?;
        for (k, v) in m {
            let text = v.as_str().ok_or_else(|| {
                cannot_handle(format!("stringData.{k}: expected a string, got {v}"))
            })?;
            data.insert(k.clone(), json!(B64.encode(text)));
        }
    }
    static KEY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let key_re = crate::schema::regex(&KEY, r"^[-._a-zA-Z0-9]+$");
    for k in data.keys() {
        if !key_re.is_match(k) {
            return Err((hyper::StatusCode::UNPROCESSABLE_ENTITY, "Invalid", format!("Secret {name:?} is invalid: data[{k}]: Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")));
        }
    }
    let m = obj.as_object_mut().expect("a decoded object");
    m.remove("stringData");
    m.insert("data".into(), Value::Object(data));
    if m.get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        m.insert("type".into(), json!("Opaque"));
    }
    Ok(())
}

/// A `labelSelector`/`fieldSelector` requirement: key, operator, value.
pub struct Requirement {
    key: String,
    op: &'static str,
    value: String,
}

/// Parses a selector: `k=v`, `k==v`, `k!=v` and (labels only) `k`, `!k`, comma-separated. Set-based
/// requirements (`in`, `notin`) are refused as unsupported rather than misread.
pub fn parse_selector(text: &str, labels: bool) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains('(') || part.contains(' ') {
            return Err(format!(
                "stand-in: set-based selector {part:?} is not supported"
            ));
        }
        let (key, op, value) = if let Some((k, v)) = part.split_once("!=") {
            (k, "!=", v)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, "=", v)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, "=", v)
        } else if !labels {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        } else if let Some(k) = part.strip_prefix('!') {
            (k, "!", "")
        } else {
            (part, "exists", "")
        };
        if key.is_empty() {
            return Err(format!("invalid selector {part:?}: empty key"));
        }
        out.push(Requirement {
            key: key.into(),
            op,
            value: value.into(),
        });
    }
    Ok(out)
}

/// Whether `obj` satisfies every label requirement.
pub fn labels_match(obj: &Value, reqs: &[Requirement]) -> bool {
    reqs.iter().all(|r| {
        let v = obj["metadata"]["labels"][&r.key].as_str();
        match r.op {
            "=" => v == Some(r.value.as_str()),
            "!=" => v != Some(r.value.as_str()),
            "!" => v.is_none(),
            _ => v.is_some(),
        }
    })
}

/// Whether `obj` satisfies every field requirement (`metadata.name`, `metadata.namespace`, and a Secret's
/// `type`, the fields kubectl selects on).
pub fn fields_match(obj: &Value, reqs: &[Requirement]) -> Result<bool, String> {
    let mut ok = true;
    for r in reqs {
        let v = match r.key.as_str() {
            "metadata.name" => &obj["metadata"]["name"],
            "metadata.namespace" => &obj["metadata"]["namespace"],
            "type" if obj["kind"] == "Secret" => &obj["type"],
            "spec.nodeName" if obj["kind"] == "Pod" => &obj["spec"]["nodeName"],
            other => return Err(format!("field label not supported: {other}")),
        };
        let v = v.as_str().unwrap_or_default();
        ok &= if r.op == "!=" {
            v != r.value
        } else {
            v == r.value
        };
    }
    Ok(ok)
}
