//! End-to-end renders through the binary: the example, re-renders, rotation, plain VMs.

mod common;

use std::fs;

use common::{gen, stderr, stdout};

#[test]
fn renders_and_checks_the_builtin_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let o = gen(&["render", "--out", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    for pool in ["master", "general", "gpu"] {
        assert!(stdout(&o).contains(&format!("pool {pool}: custom data ")));
        assert!(out
            .join("pools")
            .join(pool)
            .join("custom-data.b64")
            .is_file());
    }
    assert!(out.join("azure.json").is_file());
    let o = gen(&["check", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A tampered file is caught.
    let user_data = out.join("pools/gpu/user-data.yaml");
    let text = fs::read_to_string(&user_data).unwrap();
    fs::write(&user_data, text.replace("role: worker", "role: master")).unwrap();
    let o = gen(&["check", out_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pools/gpu/"), "{}", stderr(&o));
}
