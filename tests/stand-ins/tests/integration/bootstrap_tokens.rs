//! Bootstrap tokens as a real cluster keeps them: Secrets in kube-system that REAL kubectl creates, reads,
//! lists and deletes with the admin certificate; a token authenticates and signs cluster-info only while it
//! exists, is unexpired and has the usage; `kubeadm init` stores its configured tokens the way kubeadm does.
use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::*;
use kubeboot_stand_ins::apiserver::state::State;
use kubeboot_stand_ins::client::{Auth, Client, Trust};
use kubeboot_stand_ins::Root;
use kubeboot_test_kit::output::{stdout, with_stdin};
use kubeboot_test_kit::port::free_port;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A second token, created through kubectl (never on a command line: the manifest goes on stdin).
const ROTATED: &str = "kb0001.fedcba9876543210";

struct Cluster {
    pki: SharedPki,
    port: u16,
    master: Node,
}

fn cluster() -> Cluster {
    let (pki, port, master) = initialised_master();
    Cluster { pki, port, master }
}

impl Cluster {
    fn state(&self) -> State {
        State::new(&Root::new(self.master.root()))
    }

    /// Real kubectl with the admin certificate; `stdin` is the manifest for `create -f -`.
    fn kubectl(&self, args: &[&str], stdin: &str) -> Output {
        let admin = self.master.path("/etc/kubernetes/admin.conf");
        with_stdin(
            Command::new(kubeboot_stand_ins::test_kubectl())
                .arg("--kubeconfig")
                .arg(admin)
                .args(args)
                .env("HOME", self.master.root()),
            stdin,
        )
    }

    /// Joins a fresh worker with `token` for discovery and TLS bootstrap (`tls_token` if given).
    fn join(&self, name: &str, token: &str, tls_token: Option<&str>) -> (Node, Output) {
        let worker = Node::new();
        let mut text = join_config(self.port, name, &self.pki.ca_pin()).replace(TOKEN, token);
        if let Some(t) = tls_token {
            text = text.replace(
                "discovery:\n",
                &format!("discovery:\n  tlsBootstrapToken: {t}\n"),
            );
        }
        let cfg = worker.config(&text);
        let out = worker.run("kubeadm", &["join", "--config", &cfg]);
        (worker, out)
    }

    fn bearer_client(&self, token: &str) -> Client {
        let ca = read(&self.master.path("/etc/kubernetes/pki/ca.crt"));
        Client::new(
            &format!("https://127.0.0.1:{}", self.port),
            Trust::Ca(&ca),
            Auth::Bearer(token),
        )
        .unwrap()
    }
}

/// What the API server answers `client` asking for the kubelet-config ConfigMap, which any
/// authenticated bootstrap token may read (401: the token does not authenticate).
fn kubelet_config_status(client: &Client) -> u16 {
    client
        .call(
            reqwest::Method::GET,
            "/api/v1/namespaces/kube-system/configmaps/kubelet-config",
            None,
        )
        .unwrap()
        .0
}

/// The Secret of the brief's format (labels, stringData), expiring at `expiration`.
fn token_secret(token: &str, expiration: &str, extra_top_level: &str) -> String {
    let (id, secret) = token.split_once('.').unwrap();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: bootstrap-token-{id}
  namespace: kube-system
  labels: {{app.kubernetes.io/managed-by: kubeboot}}
type: bootstrap.kubernetes.io/token
stringData:
  description: "kubeboot join token for window 1"
  token-id: {id}
  token-secret: {secret}
  expiration: "{expiration}"
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token
{extra_top_level}"#
    )
}

fn in_hours(h: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::hours(h))
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

fn decoded(secret: &serde_json::Value, key: &str) -> String {
    String::from_utf8(B64.decode(secret["data"][key].as_str().unwrap()).unwrap()).unwrap()
}

#[test]
fn kubectl_creates_gets_lists_and_deletes_a_token_secret_like_a_real_cluster() {
    let c = cluster();
    let name = "bootstrap-token-kb0001";
    let manifest = token_secret(ROTATED, &in_hours(2), "");
    let out = c.kubectl(&["create", "-f", "-"], &manifest);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!("secret/{name} created")),
        "{}",
        stdout(&out)
    );

    // stringData became base64 data, as the real API server converts it.
    let out = c.kubectl(
        &["get", "secret", name, "-n", "kube-system", "-o", "json"],
        "",
    );
    assert_ok(&out);
    let got: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(got["type"], "bootstrap.kubernetes.io/token");
    assert!(got.get("stringData").is_none(), "{got}");
    assert_eq!(decoded(&got, "token-id"), "kb0001");
    assert_eq!(decoded(&got, "usage-bootstrap-signing"), "true");
    assert_eq!(
        got["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kubeboot"
    );

    // The name is taken: the second create is refused with the real Status (AlreadyExists).
    let out = c.kubectl(&["create", "-f", "-"], &manifest);
    assert_fails(
        &out,
        &format!("Error from server (AlreadyExists): error when creating \"STDIN\": secrets \"{name}\" already exists"),
    );

    // The label selector lists ours and not kubeadm's own token Secret (which has no such label).
    let list = |selector: &str| -> Vec<String> {
        let out = c.kubectl(
            &[
                "get",
                "secrets",
                "-n",
                "kube-system",
                "-l",
                selector,
                "-o",
                "json",
            ],
            "",
        );
        assert_ok(&out);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("app.kubernetes.io/managed-by=kubeboot"), [name]);
    assert!(list("app.kubernetes.io/managed-by=someone-else").is_empty());
    assert_eq!(
        list("app.kubernetes.io/managed-by!=kubeboot"),
        ["bootstrap-token-abcdef"]
    );

    // Secrets are kept apart from the other objects, private to the server's user.
    let secrets = c
        .master
        .path("/var/lib/stand-ins/kube-apiserver/secrets.json");
    assert_eq!(
        std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let objects = c
        .master
        .path("/var/lib/stand-ins/kube-apiserver/objects.json");
    assert!(!std::fs::read_to_string(objects)
        .unwrap_or_default()
        .contains(name));

    let delete = || {
        c.kubectl(
            &[
                "delete",
                "secret",
                name,
                "-n",
                "kube-system",
                "--ignore-not-found",
            ],
            "",
        )
    };
    let out = delete();
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!("secret \"{name}\" deleted")),
        "{}",
        stdout(&out)
    );
    let out = delete();
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "", "nothing left to delete");
    let out = c.kubectl(
        &["get", "secret", name, "-n", "kube-system", "-o", "json"],
        "",
    );
    assert_fails(
        &out,
        &format!("Error from server (NotFound): secrets \"{name}\" not found"),
    );
}

#[test]
fn kubectl_strict_validation_refuses_an_unknown_field_of_a_secret() {
    let c = cluster();
    let manifest = token_secret(ROTATED, &in_hours(2), "bogusField: 1\n");
    let out = c.kubectl(&["create", "-f", "-"], &manifest);
    assert_fails(&out, "strict decoding error: unknown field \"bogusField\"");
    assert!(c
        .state()
        .bootstrap_tokens()
        .unwrap()
        .iter()
        .all(|t| t.id != "kb0001"));
    // Without strict validation the field is dropped and the Secret created.
    let out = c.kubectl(&["create", "--validate=false", "-f", "-"], &manifest);
    assert_ok(&out);
    let got: serde_json::Value = serde_json::from_str(&stdout(&c.kubectl(
        &[
            "get",
            "secret",
            "bootstrap-token-kb0001",
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
        "",
    )))
    .unwrap();
    assert!(got.get("bogusField").is_none(), "{got}");
}

#[test]
fn kubeadm_init_stores_its_token_as_kubeadm_does() {
    let c = cluster();
    let tokens = c.state().bootstrap_tokens().unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let t = &tokens[0];
    assert_eq!(t.id, "abcdef");
    assert_eq!(t.usages, ["authentication", "signing"]);
    assert_eq!(
        t.groups,
        ["system:bootstrappers:kubeadm:default-node-token"]
    );
    assert!(t.authenticates && t.signs, "{t:?}");
    // ttl 24h0m0s: expiration = now + 24h, RFC 3339 UTC.
    let at = OffsetDateTime::parse(t.expiration.as_deref().unwrap(), &Rfc3339).unwrap();
    let ahead = at - OffsetDateTime::now_utc();
    assert!(
        ahead > time::Duration::hours(24) - time::Duration::minutes(2)
            && ahead <= time::Duration::hours(24),
        "{at}"
    );
    assert!(!format!("{tokens:?}").contains("0123456789abcdef"));

    // ttl 0 never expires; no usages/groups given = kubeadm's defaults.
    let pki = SharedPki::generate();
    let port = free_port();
    let master = Node::with_pki(&pki);
    let text = init_config(port)
        .replace("  ttl: 24h0m0s\n", "  ttl: \"0\"\n")
        .replace("  usages: [signing, authentication]\n", "")
        .replace(
            "  groups: [system:bootstrappers:kubeadm:default-node-token]\n",
            "",
        );
    let cfg = master.config(&text);
    assert_ok(&master.run("kubeadm", &["init", "--config", &cfg]));
    let tokens = State::new(&Root::new(master.root()))
        .bootstrap_tokens()
        .unwrap();
    assert_eq!(tokens[0].expiration, None);
    assert_eq!(tokens[0].usages, ["authentication", "signing"]);
    assert_eq!(
        tokens[0].groups,
        ["system:bootstrappers:kubeadm:default-node-token"]
    );
}

#[test]
fn a_token_created_with_kubectl_joins_until_it_expires_or_is_deleted() {
    let c = cluster();
    let out = c.kubectl(
        &["create", "-f", "-"],
        &token_secret(ROTATED, &in_hours(2), ""),
    );
    assert_ok(&out);
    let (worker, out) = c.join("worker-1", ROTATED, None);
    assert_ok(&out);
    assert!(worker
        .path("/var/lib/kubelet/pki/kubelet-client-current.pem")
        .exists());
    assert!(c
        .state()
        .bootstrap_tokens()
        .unwrap()
        .iter()
        .any(|t| t.id == "kb0001" && t.authenticates && t.signs));

    // A bootstrap token may not read or write Secrets, as on a real cluster (403, not 401).
    let bearer = c.bearer_client(ROTATED);
    let (status, _) = bearer
        .call(
            reqwest::Method::GET,
            "/api/v1/namespaces/kube-system/secrets",
            None,
        )
        .unwrap();
    assert_eq!(status, 403);
    let (status, _) = bearer
        .call(
            reqwest::Method::POST,
            "/api/v1/namespaces/kube-system/secrets",
            Some(
                &serde_json::from_str::<serde_json::Value>(
                    &serde_json::to_string(
                        &serde_yaml_ng::from_str::<serde_json::Value>(&token_secret(
                            "kb0002.fedcba9876543210",
                            &in_hours(2),
                            "",
                        ))
                        .unwrap(),
                    )
                    .unwrap(),
                )
                .unwrap(),
            ),
        )
        .unwrap();
    assert_eq!(status, 403);

    // Time travel: the same token, expired one minute ago.
    c.state()
        .set_token_expiration(
            "kb0001",
            OffsetDateTime::now_utc() - time::Duration::minutes(1),
        )
        .unwrap();
    let (_, out) = c.join("worker-2", ROTATED, None);
    assert_fails(
        &out,
        "there is no JWS signed token in the cluster-info ConfigMap. This token id \"kb0001\" is invalid for this cluster",
    );
    let info = c.state().bootstrap_tokens().unwrap();
    let t = info.iter().find(|t| t.id == "kb0001").unwrap();
    assert!(!t.authenticates && !t.signs, "{t:?}");
    // Discovery with the valid init token, TLS bootstrap with the expired one: the API server says 401.
    let (_, out) = c.join("worker-3", TOKEN, Some(ROTATED));
    assert_fails(&out, "TLS bootstrap: the CSR was refused: HTTP 401");
    assert_eq!(kubelet_config_status(&bearer), 401);

    // Back to the future, then deleted: deletion alone stops it.
    c.state()
        .set_token_expiration(
            "kb0001",
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        )
        .unwrap();
    assert_eq!(
        kubelet_config_status(&bearer),
        200,
        "valid again after the expiration moved ahead"
    );
    let out = c.kubectl(
        &[
            "delete",
            "secret",
            "bootstrap-token-kb0001",
            "-n",
            "kube-system",
        ],
        "",
    );
    assert_ok(&out);
    let (_, out) = c.join("worker-4", ROTATED, None);
    assert_fails(
        &out,
        "there is no JWS signed token in the cluster-info ConfigMap",
    );
    assert_eq!(kubelet_config_status(&bearer), 401);
}

#[test]
fn a_token_without_the_signing_usage_or_with_an_unparsable_expiration_does_not_sign() {
    let c = cluster();
    let no_signing = token_secret(ROTATED, &in_hours(2), "")
        .replace("  usage-bootstrap-signing: \"true\"\n", "");
    assert_ok(&c.kubectl(&["create", "-f", "-"], &no_signing));
    let garbled = token_secret("kb0003.fedcba9876543210", "tomorrow", "");
    assert_ok(&c.kubectl(&["create", "-f", "-"], &garbled));
    let (_, out) = c.join("worker-1", ROTATED, None);
    assert_fails(
        &out,
        "there is no JWS signed token in the cluster-info ConfigMap",
    );
    // The garbled expiration counts as passed: the API server refuses the bearer (401).
    assert_eq!(
        kubelet_config_status(&c.bearer_client("kb0003.fedcba9876543210")),
        401
    );
    let tokens = c.state().bootstrap_tokens().unwrap();
    let find = |id: &str| tokens.iter().find(|t| t.id == id).unwrap().clone();
    let t = find("kb0001");
    assert!(t.authenticates && !t.signs, "{t:?}");
    assert_eq!(t.usages, ["authentication"]);
    let t = find("kb0003");
    assert!(!t.authenticates && !t.signs, "{t:?}");
}
