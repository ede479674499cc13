//! Resolves the upstream key trees so the binaries can embed them: the stand-ins run inside test VMs where
//! the shared data directory does not exist. `KUBEBOOT_UPSTREAM_SCHEMAS` wins; otherwise the nearest
//! `shared/data/upstream-schemas` beside an ancestor of this crate (beside the repository, also for worktrees).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=KUBEBOOT_UPSTREAM_SCHEMAS");
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let dir = match std::env::var_os("KUBEBOOT_UPSTREAM_SCHEMAS") {
        Some(dir) => PathBuf::from(dir),
        None => manifest_dir
            .ancestors()
            .map(|a| a.join("shared/data/upstream-schemas"))
            .find(|d| d.join("kubeadm-schema.json").is_file())
            .unwrap_or_else(|| panic!("no shared/data/upstream-schemas beside any ancestor of {}; set KUBEBOOT_UPSTREAM_SCHEMAS", manifest_dir.display())),
    };
    let schema = dir.join("kubeadm-schema.json");
    assert!(schema.is_file(), "{} is missing", schema.display());
    println!("cargo:rerun-if-changed={}", schema.display());
    println!("cargo:rustc-env=UPSTREAM_SCHEMAS_DIR={}", dir.display());
}
