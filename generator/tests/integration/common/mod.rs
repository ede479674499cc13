//! Shared helpers of the generator's integration tests.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use std::collections::BTreeMap;

use kubeboot_gen::arm::{self, ArmSecrets};
use kubeboot_gen::secrets::ClusterSecrets;
use kubeboot_gen::spec::ClusterSpec;
use serde_json::Value;

pub mod shell;

/// The repository's top directory (the README and docs/ are read from there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn gen_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubeboot-gen")
}

/// Runs `kubeboot-gen ARGS` and returns its output.
pub fn gen(args: &[&str]) -> Output {
    std::process::Command::new(gen_bin())
        .args(args)
        .output()
        .expect("kubeboot-gen runs")
}

/// `kubeboot-gen render --spec SPEC --out OUT`.
pub fn gen_render(spec: &Path, out: &Path) -> Output {
    gen(&[
        "render",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// One set of secrets per test binary: RSA key generation is slow.
pub fn secrets() -> &'static ClusterSecrets {
    static SECRETS: OnceLock<ClusterSecrets> = OnceLock::new();
    SECRETS.get_or_init(|| ClusterSecrets::generate().expect("secrets generate"))
}

/// Stores the shared secrets in `out/secrets/`, so a render into `out` reuses them instead of
/// generating its own (RSA key generation dominates test time).
pub fn seed_secrets(out: &Path) {
    use kubeboot_gen::secrets::{LocalStore, SecretStore};
    LocalStore::new(out).save(secrets()).expect("secrets saved");
}

/// The upstream facts the tests check against, kept in the repository (`tests/data/upstream`).
pub fn upstream_schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/upstream")
}

/// Every file under `dir`, relative path first, sorted.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let tree = kubeboot_gen::tree::Tree::read(dir).expect("readable");
    tree.files.into_iter().map(|(p, f)| (p, f.bytes)).collect()
}

/// Stand-in custom data per pool, distinct so a test can tell which scale set got which.
pub fn custom_data(spec: &ClusterSpec) -> BTreeMap<String, String> {
    spec.spec
        .pools
        .iter()
        .map(|p| (p.name.clone(), format!("H4sIAAAAAAAA/{}-user-data", p.name)))
        .collect()
}

/// The ARM template and parameters file rendered in-process from `spec` (custom data stood in:
/// only the parameter names matter here; the vault's secrets are the tests' shared ones).
pub fn render_arm(spec: &ClusterSpec) -> (Value, Value) {
    let custom_data = custom_data(spec);
    let secrets = secrets();
    let files = arm::render(
        spec,
        &ArmSecrets {
            ssh_public_key: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ test@kubeboot",
            custom_data: &custom_data,
            join_token: &secrets.bootstrap_token,
            pki: &secrets.shared_pki(),
        },
    )
    .unwrap();
    (
        serde_json::from_str(&files.template).unwrap(),
        serde_json::from_str(&files.parameters).unwrap(),
    )
}
