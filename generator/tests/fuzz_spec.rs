//! Fuzzing the cluster spec parser and validator: whatever the input, `validate_text` returns a
//! spec or one-line field errors, never panics; an accepted spec's effective form is accepted
//! again. Bounded for CI (fixed seed and case count); failures are persisted next to this file.

#[path = "../../nodeconfig/tests/support/mutate.rs"]
mod mutate;

use kubeboot_gen::validate::validate_text;
use proptest::prelude::*;

const CORPUS: &[&str] = &[
    include_str!("corpus/example.yaml"),
    include_str!("corpus/plain-vms.yaml"),
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

proptest! {
    #![proptest_config(mutate::config(1000))]

    #[test]
    fn arbitrary_text_never_panics(text in mutate::yamlish()) {
        check(&text)?;
    }

    #[test]
    fn structured_mutations_never_panic(doc in 0..CORPUS.len(), edits in mutate::edits(4)) {
        let mut tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(CORPUS[doc]).unwrap();
        for (pick, edit) in &edits {
            mutate::apply(&mut tree, *pick, edit);
        }
        check(&serde_yaml_ng::to_string(&tree).unwrap())?;
    }

    #[test]
    fn text_mutations_never_panic(doc in 0..CORPUS.len(), edits in mutate::text_edits()) {
        check(&mutate::apply_text(CORPUS[doc], &edits))?;
    }
}
