//! Fuzzing strategies shared by the NodeConfig and cluster spec harnesses: arbitrary YAML-ish
//! text, byte-level edits of valid documents, and structured mutations of their YAML trees.

use proptest::prelude::*;
use serde_yaml_ng::{Mapping, Value};

/// Text that looks like YAML: keys, indentation, flow collections, anchors, tags, odd scalars.
pub fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: kubeboot.io/v1alpha1\n".to_string()),
        Just("kind: NodeConfig\n".to_string()),
        Just("kind: Cluster\n".to_string()),
        Just("spec:\n".to_string()),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("\n".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!binary ".to_string()),
        Just("? ".to_string()),
        Just("|\n".to_string()),
        Just("~".to_string()),
        Just("---\n".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("1e999".to_string()),
        Just("-0x1F".to_string()),
        Just("9999999999999999999999".to_string()),
        "[a-zA-Z0-9./:-]{1,12}",
        any::<String>(),
    ];
    prop::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

/// Every path in a YAML tree (keys for mappings, indices for sequences), root first.
fn paths(value: &Value, here: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(here.clone());
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let mut p = here.clone();
                p.push(k.clone());
                paths(v, p, out);
            }
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter().enumerate() {
                let mut p = here.clone();
                p.push(Value::from(i as u64));
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

fn at<'a>(value: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| match (v, key) {
        (Value::Mapping(m), k) => m.get_mut(k),
        (Value::Sequence(s), Value::Number(n)) => s.get_mut(n.as_u64()? as usize),
        _ => None,
    })
}

/// A replacement value: scalars of every type, odd strings, empty and nested collections.
fn replacement() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z0-9.:/-]{0,30}".prop_map(Value::String),
        Just(Value::String("v1.36.0".into())),
        Just(Value::String("-----BEGIN X-----".into())),
    ];
    scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Sequence),
            prop::collection::vec(("[a-zA-Z]{1,8}", inner), 0..3).prop_map(|kv| {
                Value::Mapping(
                    kv.into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect::<Mapping>(),
                )
            }),
        ]
    })
}

#[derive(Debug, Clone)]
pub enum Edit {
    Remove,
    Replace(Value),
    AddKey(String, Value),
    Duplicate,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::Remove),
        replacement().prop_map(Edit::Replace),
        ("[a-zA-Z]{1,10}", replacement()).prop_map(|(k, v)| Edit::AddKey(k, v)),
        Just(Edit::Duplicate),
    ]
}

/// Applies `edit` at the path chosen by `pick` (an index into the tree's paths, modulo their count).
pub fn apply(doc: &mut Value, pick: usize, edit: &Edit) {
    let mut all = Vec::new();
    paths(doc, Vec::new(), &mut all);
    let path = all[pick % all.len()].clone();
    match edit {
        Edit::Replace(v) => {
            if let Some(slot) = at(doc, &path) {
                *slot = v.clone();
            }
        }
        Edit::AddKey(k, v) => {
            if let Some(Value::Mapping(m)) = at(doc, &path) {
                m.insert(Value::String(k.clone()), v.clone());
            }
        }
        Edit::Remove | Edit::Duplicate => {
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match (at(doc, parent), edit) {
                (Some(Value::Mapping(m)), Edit::Remove) => {
                    m.remove(last);
                }
                (Some(Value::Sequence(s)), Edit::Remove) => {
                    let i = last.as_u64().unwrap_or(0) as usize;
                    if i < s.len() {
                        s.remove(i);
                    }
                }
                (Some(Value::Sequence(s)), Edit::Duplicate) => {
                    let i = last.as_u64().unwrap_or(0) as usize;
                    if let Some(item) = s.get(i).cloned() {
                        s.push(item);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Up to `max` structured edits of a document tree.
pub fn edits(max: usize) -> impl Strategy<Value = Vec<(usize, Edit)>> {
    prop::collection::vec((any::<usize>(), edit()), 1..=max)
}

/// Byte-level edits of a document's text: (position, bytes to delete, bytes to insert).
pub fn text_edits() -> impl Strategy<Value = Vec<(usize, usize, String)>> {
    prop::collection::vec((any::<usize>(), 0usize..8, "[ -~\n\t]{0,6}"), 1..6)
}

pub fn apply_text(text: &str, edits: &[(usize, usize, String)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (pos, delete, insert) in edits {
        let at = pos % (bytes.len() + 1);
        let end = (at + delete).min(bytes.len());
        bytes.splice(at..end, insert.bytes());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Fixed seed and case count so CI runs are bounded and reproducible; failures found are saved
/// next to the test as a regressions file and replayed first on every run.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b75_6265_626f_6f74),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// The three fuzz properties both harnesses share: arbitrary text, structured mutations and text
/// mutations of a corpus of valid documents must all satisfy `$check` (a fn(&str) -> Result<(),
/// TestCaseError>). The caller needs `proptest` and `serde_yaml_ng` among its dependencies.
#[macro_export]
macro_rules! fuzz_properties {
    ($corpus:expr, $check:path, $cases:expr) => {
        ::proptest::proptest! {
            #![proptest_config($crate::mutate::config($cases))]

            #[test]
            fn arbitrary_text_never_panics(text in $crate::mutate::yamlish()) {
                $check(&text)?;
            }

            #[test]
            fn structured_mutations_never_panic(doc in 0..$corpus.len(), edits in $crate::mutate::edits(4)) {
                let mut tree: ::serde_yaml_ng::Value = ::serde_yaml_ng::from_str($corpus[doc]).unwrap();
                for (pick, edit) in &edits {
                    $crate::mutate::apply(&mut tree, *pick, edit);
                }
                $check(&::serde_yaml_ng::to_string(&tree).unwrap())?;
            }

            #[test]
            fn text_mutations_never_panic(doc in 0..$corpus.len(), edits in $crate::mutate::text_edits()) {
                $check(&$crate::mutate::apply_text($corpus[doc], &edits))?;
            }
        }
    };
}
