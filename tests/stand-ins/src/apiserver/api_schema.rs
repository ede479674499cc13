//! What the API server's decoder and validation refuse in an object, per Kubernetes minor, from the field
//! trees in `tests/data/upstream/k8s-api/` (generated from the upstream OpenAPI documents): unknown fields
//! (refused under `fieldValidation=Strict`, dropped otherwise), a value of the wrong JSON type (always
//! refused, as the real decoder cannot unmarshal it) and a missing required field.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

const MINORS: &[(u64, &str)] = &[
    (
        34,
        include_str!(concat!(env!("UPSTREAM_SCHEMAS_DIR"), "/k8s-api/v1.34.json")),
    ),
    (
        35,
        include_str!(concat!(env!("UPSTREAM_SCHEMAS_DIR"), "/k8s-api/v1.35.json")),
    ),
    (
        36,
        include_str!(concat!(env!("UPSTREAM_SCHEMAS_DIR"), "/k8s-api/v1.36.json")),
    ),
    (
        37,
        include_str!(concat!(env!("UPSTREAM_SCHEMAS_DIR"), "/k8s-api/v1.37.json")),
    ),
];

#[derive(Deserialize)]
struct ApiSchema {
    /// `group/version/Kind` (`v1/Kind` for the core group) -> model name.
    kinds: BTreeMap<String, String>,
    models: BTreeMap<String, Model>,
}

#[derive(Deserialize)]
struct Model {
    fields: BTreeMap<String, String>,
    required: Vec<String>,
}

fn schemas() -> &'static BTreeMap<u64, ApiSchema> {
    static SCHEMAS: OnceLock<BTreeMap<u64, ApiSchema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        MINORS
            .iter()
            .map(|(minor, text)| {
                let schema = serde_json::from_str(text).expect("embedded k8s-api schema is JSON");
                (*minor, schema)
            })
            .collect()
    })
}

/// The minors whose API field trees are known.
pub fn minors() -> Vec<u64> {
    schemas().keys().copied().collect()
}

/// What is wrong with one object, as the real server names it.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    /// Paths the strict decoder does not know (`spec.template.spec.containers[0].foo`).
    pub unknown: Vec<String>,
    /// Values that cannot be decoded, and required fields that are missing.
    pub invalid: Vec<String>,
}

/// Checks `object` (its `apiVersion` and `kind` pick the model) against the API of Kubernetes 1.`minor`;
/// with `prune`, removes the unknown fields as the non-strict decoder drops them. Err if the minor or
/// the kind is not known to the stand-in.
pub fn check(minor: u64, object: &mut Value, prune: bool) -> Result<Findings, String> {
    let schema = schemas()
        .get(&minor)
        .ok_or_else(|| format!("the stand-in knows no API schema for 1.{minor}"))?;
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let model = schema
        .kinds
        .get(&format!("{api_version}/{kind}"))
        .ok_or_else(|| {
            format!("no kind {kind:?} in {api_version:?} in the stand-in's 1.{minor} schema")
        })?;
    let mut walk = Walk {
        schema,
        prune,
        findings: Findings::default(),
    };
    walk.value(model, object, "");
    Ok(walk.findings)
}

struct Walk<'a> {
    schema: &'a ApiSchema,
    prune: bool,
    findings: Findings,
}

impl Walk<'_> {
    fn value(&mut self, type_name: &str, value: &mut Value, path: &str) {
        let at = |field: &str| {
            if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            }
        };
        if value.is_null() {
            return; // null is "unset" to the decoder, whatever the type
        }
        if let Some(item) = type_name
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
        {
            match value.as_array_mut() {
                Some(items) => {
                    for (i, v) in items.iter_mut().enumerate() {
                        self.value(item, v, &format!("{path}[{i}]"));
                    }
                }
                None => self.invalid(format!("{path}: expected a list, got {value}")),
            }
            return;
        }
        if let Some(item) = type_name
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
        {
            match value.as_object_mut() {
                Some(entries) => {
                    for (k, v) in entries.iter_mut() {
                        self.value(item, v, &at(k));
                    }
                }
                None => self.invalid(format!("{path}: expected a map, got {value}")),
            }
            return;
        }
        let scalar_ok = match type_name {
            "any" => return,
            "string" | "date-time" => Some(value.is_string()),
            "integer" => Some(value.is_i64() || value.is_u64()),
            "number" => Some(value.is_number()),
            "boolean" => Some(value.is_boolean()),
            _ => None,
        };
        if let Some(ok) = scalar_ok {
            if !ok {
                self.invalid(format!("{path}: expected {type_name}, got {value}"));
            }
            return;
        }
        let schema = self.schema;
        let Some(model) = schema.models.get(type_name) else {
            self.invalid(format!(
                "{path}: the stand-in's schema has no model {type_name}"
            ));
            return;
        };
        let Some(fields) = value.as_object_mut() else {
            self.invalid(format!("{path}: expected an object, got {value}"));
            return;
        };
        let mut unknown = Vec::new();
        for (name, v) in fields.iter_mut() {
            match model.fields.get(name) {
                Some(field_type) => self.value(field_type, v, &at(name)),
                None => unknown.push(name.clone()),
            }
        }
        for name in &model.required {
            if fields.get(name).is_none_or(Value::is_null) {
                self.invalid(format!("{}: Required value", at(name)));
            }
        }
        for name in unknown {
            if self.prune {
                fields.remove(&name);
            }
            self.findings.unknown.push(at(&name));
        }
    }

    fn invalid(&mut self, message: String) {
        self.findings.invalid.push(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labels": {"a": "b"}},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "b"}},
                                     "spec": {"containers": [{"name": "c", "image": "i",
                                              "resources": {"requests": {"cpu": "100m"}}}]}}}})
    }

    #[test]
    fn a_valid_deployment_passes_in_every_minor() {
        for minor in minors() {
            assert_eq!(
                check(minor, &mut deployment(), false).unwrap(),
                Findings::default()
            );
        }
    }

    #[test]
    fn names_unknown_fields_wrong_types_and_missing_required_fields_by_path() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = json!("Always");
        d["spec"]["replicas"] = json!("1");
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("name");
        let found = check(37, &mut d, false).unwrap();
        assert_eq!(
            found.unknown,
            ["spec.template.spec.containers[0].imagePullPolcy"]
        );
        assert_eq!(
            found.invalid,
            [
                "spec.replicas: expected integer, got \"1\"",
                "spec.template.spec.containers[0].name: Required value"
            ]
        );
    }

    #[test]
    fn a_field_new_in_a_minor_is_unknown_before_it() {
        // PodSpec.evictionResponders is in the 1.37 API, not in 1.36's.
        let mut d = deployment();
        d["spec"]["template"]["spec"]["evictionResponders"] = json!([]);
        assert!(check(37, &mut d.clone(), false).unwrap().unknown.is_empty());
        assert_eq!(
            check(36, &mut d, true).unwrap().unknown,
            ["spec.template.spec.evictionResponders"]
        );
        assert!(
            d["spec"]["template"]["spec"]
                .get("evictionResponders")
                .is_none(),
            "pruned"
        );
    }

    #[test]
    fn unknown_kinds_and_minors_are_errors() {
        assert!(check(33, &mut deployment(), false).is_err());
        let mut nope = json!({"apiVersion": "apps/v1", "kind": "Nope"});
        assert!(check(37, &mut nope, false).is_err());
    }
}
