//! Fuzzing the NodeConfig parser (the agent's first line of defence: node.yaml comes from user
//! data): whatever the input, `parse` returns a value or a one-line field error, never panics; and
//! whatever it accepts survives a serialise/parse round trip unchanged.
//!
//! Bounded for CI: a fixed seed and case count (see `kubeboot_test_kit::mutate`); failures found are
//! persisted under `proptest-regressions/` and replayed first.

use kubeboot_nodeconfig::{parse, FieldError};
use kubeboot_test_kit::fuzz_properties;
use proptest::prelude::*;

const CORPUS: &[&str] = &[
    include_str!("../corpus/master.yaml"),
    include_str!("../corpus/worker.yaml"),
    include_str!("../corpus/azure-vault-master.yaml"),
    include_str!("../corpus/azure-vault-worker.yaml"),
];

/// The properties every input must satisfy.
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(config) => {
            let again = parse(&config.to_yaml());
            prop_assert_eq!(
                again.as_ref(),
                Ok(&config),
                "round trip of an accepted document"
            );
        }
        Err(FieldError { path, message }) => {
            prop_assert!(!path.is_empty(), "error without a field path: {message}");
            let line = format!("{path}: {message}");
            prop_assert!(!line.contains('\n'), "error is not one line: {line:?}");
        }
    }
    Ok(())
}

#[test]
fn corpus_documents_are_valid() {
    for doc in CORPUS {
        parse(doc).unwrap();
    }
}

fuzz_properties!(CORPUS, check, 1500);
