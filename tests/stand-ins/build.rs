//! Points the stand-ins at the upstream facts in the repository (`tests/data/upstream`), so the
//! binaries can embed them: the stand-ins also run inside test VMs, where the source tree does not exist.
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let dir = manifest_dir.join("../data/upstream");
    for file in [
        "kubeadm-schema.json",
        "releases.json",
        "k8s-api/v1.34.json",
        "k8s-api/v1.35.json",
        "k8s-api/v1.36.json",
        "k8s-api/v1.37.json",
    ] {
        let path = dir.join(file);
        assert!(path.is_file(), "{} is missing", path.display());
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=UPSTREAM_SCHEMAS_DIR={}", dir.display());
}
