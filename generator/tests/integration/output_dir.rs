//! The output directory as a whole (#15 items 7 and 10): secrets that do not belong together are
//! refused by render and check, one render at a time, a failed render leaves the previous output
//! as it was, and every directory is 0700.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{gen, gen_bin, seed_secrets};
use kubeboot_gen::tree::Tree;
use kubeboot_test_kit::output::stderr;

/// `kubeboot-gen render --out OUT ARGS`, asserting success, then `check OUT`, asserting success.
fn render_and_check(out: &Path, args: &[&str]) {
    let mut all = vec!["render", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = gen(&all);
    assert!(o.status.success(), "render: {}", stderr(&o));
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(o.status.success(), "check: {}", stderr(&o));
}

/// A P-256 private key of no cluster, in the PEM form the store keeps.
fn foreign_p256_key() -> String {
    rcgen::KeyPair::generate().unwrap().serialize_pem()
}

/// Entries in `dir` whose names start with `prefix`.
fn entries_starting_with(dir: &Path, prefix: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

#[test]
fn a_key_from_another_cluster_is_refused_by_render_and_check_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    render_and_check(&out, &[]);
    let rsa = ssh_key::private::RsaKeypair::random(&mut rand::rngs::OsRng, 2048).unwrap();
    let foreign_ssh = ssh_key::PrivateKey::new(rsa.into(), "elsewhere")
        .unwrap()
        .to_openssh(ssh_key::LineEnding::LF)
        .unwrap()
        .to_string();
    let cases = [
        (
            "ca.key",
            foreign_p256_key(),
            "ca.key: is not the key of ca.crt",
        ),
        (
            "front-proxy-ca.key",
            foreign_p256_key(),
            "front-proxy-ca.key: is not the key of front-proxy-ca.crt",
        ),
        (
            "etcd-ca.key",
            foreign_p256_key(),
            "etcd-ca.key: is not the key of etcd-ca.crt",
        ),
        (
            "sa.key",
            foreign_p256_key(),
            "sa.key: is not the key of sa.pub",
        ),
        (
            "id_rsa",
            foreign_ssh,
            "id_rsa: is not the key of id_rsa.pub",
        ),
    ];
    for (file, foreign, message) in cases {
        let path = out.join("secrets").join(file);
        let original = fs::read(&path).unwrap();
        fs::write(&path, &foreign).unwrap();
        let before = Tree::read(&out).unwrap();

        let o = gen(&["render", "--out", out.to_str().unwrap()]);
        assert!(!o.status.success(), "{file}: render accepted a foreign key");
        assert!(stderr(&o).contains(message), "{file}: {}", stderr(&o));
        assert_eq!(
            Tree::read(&out).unwrap(),
            before,
            "{file}: render changed DIR"
        );

        let o = gen(&["check", out.to_str().unwrap()]);
        assert!(!o.status.success(), "{file}: check passed a foreign key");
        assert!(
            stderr(&o).contains(&format!("secrets/{message}")),
            "{file}: {}",
            stderr(&o)
        );
        fs::write(&path, original).unwrap();
    }

    // The CA hash written beside the CA must be the CA's.
    fs::write(
        out.join("secrets/ca-cert-hash"),
        format!("sha256:{}\n", "0".repeat(64)),
    )
    .unwrap();
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("secrets/ca-cert-hash: is not the hash of secrets/ca.crt"),
        "{}",
        stderr(&o)
    );
}

/// Both renders generate secrets (seconds of RSA key generation, under the lock), so they overlap.
#[test]
fn two_renders_into_one_directory_at_once_one_fails_and_the_ca_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spawn = || {
        Command::new(gen_bin())
            .args(["render", "--out", out.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        succeeded,
        1,
        "{}\n{}",
        stderr(&outputs[0]),
        stderr(&outputs[1])
    );
    let failed = outputs.iter().find(|o| !o.status.success()).unwrap();
    assert!(
        stderr(failed).contains(&format!(
            "another kubeboot-gen render into {} is running",
            out.display()
        )),
        "{}",
        stderr(failed)
    );
    // The winner's output is whole: its CA, its keys and every node's pin agree.
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A full disk while the new output is written: a file size limit (`ulimit -f`, SIGXFSZ ignored so
/// the write fails with EFBIG instead of killing the process) stops the render part way.
#[test]
fn a_failed_render_leaves_the_previous_output_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    render_and_check(&out, &[]);
    let before = Tree::read(&out).unwrap();

    let o = Command::new("/bin/sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 8; exec \"$0\" render --rotate --out \"$1\"",
            gen_bin(),
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the render did not fail");
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    assert_eq!(Tree::read(&out).unwrap(), before);
    assert_eq!(
        entries_starting_with(dir.path(), ".out.staging"),
        Vec::<String>::new()
    );

    // What a killed render leaves behind goes with the next render; another output's staging
    // directory (`out.staging-x`'s) stays.
    for leftover in [".out.staging-AbC123", ".out.staging-x.staging-AbC123"] {
        fs::create_dir(dir.path().join(leftover)).unwrap();
        fs::write(dir.path().join(leftover).join("cluster.yaml"), "half").unwrap();
    }

    // Without the limit the same render goes through and replaces everything.
    render_and_check(&out, &["--rotate"]);
    assert_eq!(
        entries_starting_with(dir.path(), ".out.staging"),
        [".out.staging-x.staging-AbC123"]
    );
    assert_ne!(
        Tree::read(&out).unwrap().get("secrets/ca.crt"),
        before.get("secrets/ca.crt")
    );
}

#[test]
fn the_output_directory_and_every_directory_under_it_are_0700() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
    render_and_check(&out, &[]);
    let tree = Tree::read(&out).unwrap();
    assert!(tree.dirs.len() >= 6, "{:?}", tree.dirs.keys());
    for (path, mode) in &tree.dirs {
        assert_eq!(*mode, 0o700, "{}/", path.display());
    }
    for (path, file) in &tree.files {
        assert_eq!(file.mode, 0o600, "{}", path.display());
    }

    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("./: mode 0755, expected 0700"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_directory_render_did_not_write_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("home");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("notes.txt"), "mine\n").unwrap();
    let before = Tree::read(&out).unwrap();
    let o = gen(&["render", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("holds notes.txt, which kubeboot-gen does not write"),
        "{}",
        stderr(&o)
    );
    assert_eq!(Tree::read(&out).unwrap(), before);
}

/// Foreign entries are refused by name, before anything under `--out` is read: a FIFO there
/// would block a reader for ever.
#[test]
fn a_foreign_entry_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("home");
    fs::create_dir(&out).unwrap();
    nix::unistd::mkfifo(&out.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut child = std::process::Command::new(common::gen_bin())
        .args(["render", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("render blocked reading the FIFO under --out");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("holds pipe, which kubeboot-gen does not write"),
        "{}",
        stderr(&o)
    );
}
