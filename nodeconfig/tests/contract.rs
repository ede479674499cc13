//! The NodeConfig contract as the agent sees it: versioning, strictness and role rules, each
//! failing with one line naming the field.

use kubeboot_nodeconfig::parse;

const MASTER: &str = include_str!("corpus/master.yaml");
const WORKER: &str = include_str!("corpus/worker.yaml");

fn error_of(text: &str) -> String {
    parse(text).expect_err("must be rejected").to_string()
}

#[test]
fn the_corpus_parses() {
    assert!(parse(MASTER).unwrap().is_master());
    assert!(!parse(WORKER).unwrap().is_master());
}

#[test]
fn an_unknown_api_version_is_rejected_with_a_clear_message() {
    let err = error_of(&WORKER.replacen("kubeboot.io/v1alpha1", "kubeboot.io/v1beta1", 1));
    assert_eq!(
        err,
        "apiVersion: unsupported \"kubeboot.io/v1beta1\"; this build reads \"kubeboot.io/v1alpha1\""
    );
    let err = error_of(&WORKER.replacen("kind: NodeConfig", "kind: Cluster", 1));
    assert!(err.starts_with("kind: expected \"NodeConfig\""), "{err}");
}

#[test]
fn an_unknown_field_is_rejected_with_its_path() {
    let err = error_of(&WORKER.replacen("  podCIDR:", "  dnsDomian: x\n  podCIDR:", 1));
    assert!(
        err.starts_with("cluster.dnsDomian: unknown field `dnsDomian`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn a_worker_with_pki_is_rejected() {
    let start = MASTER.find("\npki:").expect("master has pki");
    let end = MASTER
        .find("\napiServer:")
        .expect("pki is followed by apiServer");
    let err = error_of(&format!("{}{}\n", WORKER.trim_end(), &MASTER[start..end]));
    assert_eq!(
        err,
        "pki: must not be given to a worker (it would leak the CA keys)"
    );
}

#[test]
fn a_master_without_pki_is_rejected() {
    let without = &MASTER[..MASTER.find("\npki:").unwrap()];
    assert_eq!(error_of(without), "pki: required on a master");
}

#[test]
fn a_malformed_bootstrap_token_is_rejected() {
    let token = "abcdef.0123456789abcdef";
    assert!(WORKER.contains(token));
    for bad in [
        "ABCDEF.0123456789abcdef",
        "abcdef0123456789abcdef",
        "abcde.0123456789abcdefg",
    ] {
        let err = error_of(&WORKER.replacen(token, bad, 1));
        assert_eq!(err, "bootstrap.token: must match [a-z0-9]{6}.[a-z0-9]{16}");
    }
}

/// The product's release table and the stand-ins' independent facts (tests/data/upstream/
/// releases.json, collected separately so that the stand-ins do not trust product code) agree on
/// what each minor removed and on the kubeadm config apiVersion it reads.
#[test]
fn the_release_table_agrees_with_the_stand_ins_facts() {
    use kubeboot_nodeconfig::releases::RELEASES;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/upstream/releases.json"
    ))
    .unwrap();
    let facts: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let names = |v: &serde_yaml_ng::Value| -> std::collections::BTreeSet<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    for release in RELEASES {
        let minor = &facts["minors"][format!("1.{}", release.minor).as_str()];
        assert!(
            minor.is_mapping(),
            "the stand-ins know nothing of 1.{}",
            release.minor
        );
        assert_eq!(
            names(&minor["removed_feature_gates"]),
            release
                .removed_feature_gates
                .iter()
                .map(|g| g.to_string())
                .collect(),
            "removed feature gates of 1.{}",
            release.minor
        );
        assert!(
            names(&minor["kubeadm_api_versions"]).contains(release.kubeadm_api_version),
            "kubeadm 1.{} does not read {}",
            release.minor,
            release.kubeadm_api_version
        );
    }
}
