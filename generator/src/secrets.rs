//! Cluster secrets: generated once, stored, reused by every later render (so a re-render never
//! changes the CA a running cluster trusts), replaced only on `--rotate`.
//!
//! Key algorithm: the three CAs and the service-account key are ECDSA P-256, so kubeadm must run
//! with `encryptionAlgorithm: ECDSA-P256` for the certificates it signs. The SSH key is RSA 3072,
//! which Azure accepts for scale sets (it refuses ECDSA keys there).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine;
use kubeboot_nodeconfig::{check_token, fsx, KeyPair, Secret, SharedPki, ENCRYPTION_KEY_BYTES};
use rand::rngs::OsRng;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::SecretStoreKind;
use crate::validate::ValidSpec;

/// kubeadm's CA lifetime.
const CA_VALIDITY_DAYS: i64 = 3650;
const SSH_RSA_BITS: usize = 3072;

/// Everything secret about one cluster. Serialisable so a store can keep it as one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSecrets {
    /// kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub bootstrap_token: Secret,
    /// Cluster CA (certificate PEM, PKCS#8 private key PEM).
    pub ca: KeyPair,
    #[serde(rename = "frontProxyCA")]
    pub front_proxy_ca: KeyPair,
    #[serde(rename = "etcdCA")]
    pub etcd_ca: KeyPair,
    /// Service-account signing key (public key PEM, private key PEM).
    pub service_account: KeyPair,
    /// Admin SSH key of every scale set (authorized_keys line, OpenSSH private key).
    pub ssh: KeyPair,
    /// base64 of the key that encrypts Secrets at rest in etcd (masters only).
    pub encryption_key: Secret,
}

/// Where cluster secrets live between renders. `LocalStore` keeps them beside the output; a
/// Vault store implements the same trait.
pub trait SecretStore {
    /// The stored secrets, or `None` when nothing has been stored yet.
    fn load(&self) -> Result<Option<ClusterSecrets>>;
    fn save(&self, secrets: &ClusterSecrets) -> Result<()>;
}

impl ClusterSecrets {
    /// Fresh secrets from the OS CSPRNG.
    pub fn generate() -> Result<Self> {
        Ok(Self {
            bootstrap_token: Secret::new(generate_token()),
            ca: generate_ca("kubernetes")?,
            front_proxy_ca: generate_ca("front-proxy-ca")?,
            etcd_ca: generate_ca("etcd-ca")?,
            service_account: generate_service_account_key()?,
            ssh: generate_ssh_key()?,
            encryption_key: Secret::new(generate_encryption_key()),
        })
    }

    /// The PKI every master gets (extra masters join with the same CAs).
    pub fn shared_pki(&self) -> SharedPki {
        SharedPki {
            ca: self.ca.clone(),
            front_proxy_ca: self.front_proxy_ca.clone(),
            etcd_ca: self.etcd_ca.clone(),
            service_account: self.service_account.clone(),
            encryption_key: Some(self.encryption_key.clone()),
        }
    }

    /// `sha256:<hex>` of the cluster CA's DER SubjectPublicKeyInfo, as kubeadm pins it.
    pub fn ca_cert_hash(&self) -> Result<String> {
        ca_cert_hash(&self.ca.public)
    }

    /// Catches a damaged store before its contents reach a node.
    pub fn check(&self) -> Result<()> {
        check_token(self.bootstrap_token.expose())
            .map_err(|m| anyhow::anyhow!("bootstrap token {m}"))?;
        // The NodeConfig's rules for the PKI masters get (certificates, keys, encryption key).
        self.shared_pki()
            .validate("secrets")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ssh_key::PrivateKey::from_openssh(self.ssh.private.expose())
            .context("SSH private key is not an OpenSSH private key")?;
        Ok(())
    }
}

/// `sha256:<hex>` of the DER SubjectPublicKeyInfo of a PEM certificate.
pub fn ca_cert_hash(cert_pem: &str) -> Result<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(cert.public_key().raw))
    ))
}

fn generate_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[OsRng.gen_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}.{}", pick(6), pick(16))
}

fn generate_encryption_key() -> String {
    let mut key = [0u8; ENCRYPTION_KEY_BYTES];
    OsRng.fill(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn generate_ca(common_name: &str) -> Result<KeyPair> {
    let key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    let cert = params
        .self_signed(&key)
        .with_context(|| format!("signing the {common_name} CA"))?;
    Ok(KeyPair {
        public: cert.pem(),
        private: Secret::new(key.serialize_pem()),
    })
}

fn generate_service_account_key() -> Result<KeyPair> {
    let key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    Ok(KeyPair {
        public: key.public_key_pem(),
        private: Secret::new(key.serialize_pem()),
    })
}

fn generate_ssh_key() -> Result<KeyPair> {
    let rsa = ssh_key::private::RsaKeypair::random(&mut OsRng, SSH_RSA_BITS)
        .context("generating the SSH key")?;
    let key = ssh_key::PrivateKey::new(rsa.into(), "kubeboot")?;
    Ok(KeyPair {
        public: key.public_key().to_openssh()?,
        private: Secret::new(key.to_openssh(ssh_key::LineEnding::LF)?.to_string()),
    })
}

/// The store the spec asks for; the local one lives in `out/secrets/`.
pub fn store_for(spec: &ValidSpec, out: &Path) -> Result<Box<dyn SecretStore>> {
    match spec.cluster.spec.secrets.store {
        SecretStoreKind::Local => Ok(Box::new(LocalStore::new(out))),
        SecretStoreKind::Vault => {
            let vault = spec
                .cluster
                .spec
                .secrets
                .vault
                .as_ref()
                .context("spec.secrets.vault: required with store: vault")?;
            Ok(Box::new(crate::vault::VaultStore::from_spec(vault)?))
        }
    }
}

/// Secrets as files under `DIR/secrets/` (directory 0700, files 0600, each written atomically).
pub struct LocalStore {
    dir: PathBuf,
}

/// File name of each secret in a `LocalStore` (kubeadm's names where it has one).
const FILES: &[&str] = &[
    "bootstrap-token",
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd-ca.crt",
    "etcd-ca.key",
    "sa.pub",
    "sa.key",
    "id_rsa.pub",
    "id_rsa",
    "encryption-key",
];
/// Written for convenience (`kubeadm join --discovery-token-ca-cert-hash`); never read back.
pub const CA_HASH_FILE: &str = "ca-cert-hash";
pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

impl LocalStore {
    /// The store of the render output directory `out`.
    pub fn new(out: &Path) -> Self {
        Self {
            dir: out.join("secrets"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn contents(secrets: &ClusterSecrets) -> [&str; 12] {
        let s = secrets;
        [
            s.bootstrap_token.expose(),
            &s.ca.public,
            s.ca.private.expose(),
            &s.front_proxy_ca.public,
            s.front_proxy_ca.private.expose(),
            &s.etcd_ca.public,
            s.etcd_ca.private.expose(),
            &s.service_account.public,
            s.service_account.private.expose(),
            &s.ssh.public,
            s.ssh.private.expose(),
            s.encryption_key.expose(),
        ]
    }
}

impl SecretStore for LocalStore {
    fn load(&self) -> Result<Option<ClusterSecrets>> {
        let mut texts = Vec::with_capacity(FILES.len());
        let mut missing = Vec::new();
        for name in FILES {
            match fs::read_to_string(self.dir.join(name)) {
                Ok(text) => texts.push(text),
                Err(e) if e.kind() == ErrorKind::NotFound => missing.push(*name),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("reading {}", self.dir.join(name).display()))
                }
            }
        }
        if missing.len() == FILES.len() {
            return Ok(None);
        }
        if !missing.is_empty() {
            bail!(
                "{} is incomplete (missing {}); restore it, or render with --rotate to replace all secrets",
                self.dir.display(),
                missing.join(", ")
            );
        }
        let mut it = texts.into_iter();
        let mut next = || it.next().expect("one text per file");
        let pair = |public: String, private: String| KeyPair {
            public,
            private: Secret::new(private),
        };
        let token = Secret::new(next().trim().to_string());
        let secrets = ClusterSecrets {
            bootstrap_token: token,
            ca: pair(next(), next()),
            front_proxy_ca: pair(next(), next()),
            etcd_ca: pair(next(), next()),
            service_account: pair(next(), next()),
            ssh: pair(next().trim_end().to_string(), next()),
            encryption_key: Secret::new(next().trim().to_string()),
        };
        secrets
            .check()
            .with_context(|| format!("secrets in {}", self.dir.display()))?;
        Ok(Some(secrets))
    }

    fn save(&self, secrets: &ClusterSecrets) -> Result<()> {
        fsx::create_dir_with_mode(&self.dir, DIR_MODE)?;
        for (name, text) in FILES.iter().zip(Self::contents(secrets)) {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            fsx::write_atomic(&self.dir.join(name), &bytes, FILE_MODE)?;
        }
        let hash = secrets.ca_cert_hash()?;
        fsx::write_atomic(
            &self.dir.join(CA_HASH_FILE),
            format!("{hash}\n").as_bytes(),
            FILE_MODE,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_kubeadm_format_and_differ() {
        let a = generate_token();
        assert!(check_token(&a).is_ok(), "{a}");
        assert_ne!(a, generate_token());
    }
}
