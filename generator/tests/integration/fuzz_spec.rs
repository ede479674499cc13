//! Fuzzing the cluster spec parser and validator: whatever the input, `validate_text` returns a
//! spec or one-line field errors, never panics; an accepted spec's effective form is accepted
//! again. Bounded for CI (fixed seed and case count); failures are persisted next to this file.

use kubeboot_gen::validate::validate_text;
use kubeboot_test_kit::fuzz_properties;
use proptest::prelude::*;

const CORPUS: &[&str] = &[
    include_str!("../corpus/example.yaml"),
    include_str!("../corpus/plain-vms.yaml"),
];

fn check(text: &str) -> Result<(), TestCaseError> {
    match validate_text(text) {
        Ok(spec) => {
            let again = validate_text(&spec.effective_yaml());
            prop_assert!(
                again.is_ok(),
                "the effective spec is refused: {:?}",
                again.err()
            );
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty(), "refused without an error");
            for e in errors {
                let line = e.to_string();
                prop_assert!(!e.path.is_empty(), "error without a field path: {line}");
                prop_assert!(!line.contains('\n'), "error is not one line: {line:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn corpus_specs_are_valid() {
    for doc in CORPUS {
        if let Err(errors) = validate_text(doc) {
            panic!("{errors:?}");
        }
    }
}

fuzz_properties!(CORPUS, check, 1000);
