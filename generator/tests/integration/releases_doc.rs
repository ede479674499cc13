//! docs/releases.md carries `kubeboot-gen releases` verbatim, so the documented per-minor facts
//! cannot drift from the table the binaries use.

#[test]
fn the_documented_table_is_the_binarys() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-gen"))
        .arg("releases")
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.lines().count() >= 4, "{table}");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/releases.md"))
        .unwrap();
    let documented = doc
        .split_once("<!-- kubeboot-gen releases -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- end -->"))
        .map(|(table, _)| table)
        .expect("docs/releases.md marks the table");
    assert_eq!(
        documented, table,
        "regenerate the table in docs/releases.md with `kubeboot-gen releases`"
    );
}
