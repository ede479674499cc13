//! Certificates: loading the cluster CA kubeboot pre-writes, issuing serving/client certificates from it,
//! signing CSRs, and the CA public-key pin kubeadm's discovery checks.
use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::fsx;

pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Loads `ca.crt`/`ca.key`; the key must be private (0600, owned by the caller).
    pub fn load(cert: &Path, key: &Path) -> Result<Ca> {
        fsx::check_private(key, "CA key")?;
        let cert_pem = fsx::read(cert)?;
        let key_pair = KeyPair::from_pem(&fsx::read(key)?)
            .with_context(|| format!("parsing {}", key.display()))?;
        let der =
            first_cert_der(&cert_pem).with_context(|| format!("parsing {}", cert.display()))?;
        check_key_matches(&der, &key_pair)
            .with_context(|| format!("{} and {}", cert.display(), key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key_pair)
            .with_context(|| format!("{} is not a usable CA", cert.display()))?;
        Ok(Ca { cert_pem, issuer })
    }

    /// Issues `leaf` with a new key for ClusterConfiguration's `encryptionAlgorithm`.
    pub fn issue(&self, leaf: &Leaf, encryption_algorithm: &str) -> Result<(String, String)> {
        let key = leaf_key(encryption_algorithm)?;
        let cert = leaf.params()?.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a PEM CSR as a client certificate, keeping the subject the requester asked for.
    pub fn sign_client_csr(&self, csr_pem: &str) -> Result<String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| anyhow!("invalid CSR: {e}"))?;
        let (not_before, not_after) = validity();
        csr.params.not_before = not_before;
        csr.params.not_after = not_after;
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.subject_alt_names.clear();
        Ok(csr.signed_by(&self.issuer)?.pem())
    }
}

/// The key kubeadm makes for a certificate under `encryptionAlgorithm`. The stand-in makes ECDSA
/// keys only, so a config that leaves kubeadm at its RSA-2048 default fails here rather than
/// passing unnoticed.
fn leaf_key(encryption_algorithm: &str) -> Result<KeyPair> {
    let algorithm = match encryption_algorithm {
        "ECDSA-P256" => &rcgen::PKCS_ECDSA_P256_SHA256,
        "ECDSA-P384" => &rcgen::PKCS_ECDSA_P384_SHA384,
        "" => bail!("encryptionAlgorithm is unset, so kubeadm would make RSA-2048 keys (its default); this stand-in makes ECDSA keys only"),
        other => bail!("encryptionAlgorithm {other}: this stand-in makes ECDSA keys only (ECDSA-P256, ECDSA-P384)"),
    };
    Ok(KeyPair::generate_for(algorithm)?)
}

fn validity() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(365))
}

/// What to put in an issued certificate.
pub struct Leaf {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub server: bool,
    pub client: bool,
}

impl Leaf {
    pub fn client(common_name: &str, organizations: &[&str]) -> Leaf {
        Leaf {
            common_name: common_name.into(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            dns_names: vec![],
            ips: vec![],
            server: false,
            client: true,
        }
    }

    fn params(&self) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        let (not_before, not_after) = validity();
        p.not_before = not_before;
        p.not_after = not_after;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, self.common_name.as_str());
        for o in &self.organizations {
            p.distinguished_name
                .push(DnType::OrganizationName, o.as_str());
        }
        for d in &self.dns_names {
            p.subject_alt_names
                .push(SanType::DnsName(d.as_str().try_into()?));
        }
        p.subject_alt_names
            .extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if self.server {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        p.use_authority_key_identifier_extension = true;
        Ok(p)
    }
}

/// A self-signed CA (cert PEM, key PEM), as kubeboot's generator makes them; used by tests and `init`
/// for CAs kubeadm would create itself.
pub fn generate_ca(common_name: &str) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub fn first_cert_der(pem_text: &str) -> Result<Vec<u8>> {
    let block = pem_blocks(pem_text)?
        .into_iter()
        .find(|(tag, _)| tag == "CERTIFICATE")
        .ok_or_else(|| anyhow!("no CERTIFICATE block"))?;
    Ok(block.1)
}

fn pem_blocks(pem_text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut lines = pem_text.lines();
    while let Some(line) = lines.next() {
        let Some(tag) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|t| t.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {tag}-----");
        let body: String = lines
            .by_ref()
            .take_while(|l| l.trim() != end)
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .context("bad PEM base64")?;
        out.push((tag.to_string(), der));
    }
    Ok(out)
}

fn check_key_matches(cert_der: &[u8], key: &KeyPair) -> Result<()> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow!("invalid certificate: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        bail!("the private key does not belong to the certificate");
    }
    Ok(())
}

/// kubeadm's CA pin: `sha256:` + hex of SHA-256 over the DER SubjectPublicKeyInfo.
pub fn ca_pin(cert_der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow!("invalid certificate: {e}"))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(cert.public_key().raw))
    ))
}

/// Subject common name and organizations of a PEM certificate.
pub fn subject(cert_pem: &str) -> Result<(String, Vec<String>)> {
    subject_der(&first_cert_der(cert_pem)?)
}

pub fn subject_der(der: &[u8]) -> Result<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow!("invalid certificate: {e}"))?;
    let name = cert.subject();
    let cn = name
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let orgs = name
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Ok((cn, orgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca_and_the_pin_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = generate_ca("kubernetes").unwrap();
        fsx::write(&dir.path().join("ca.crt"), &cert, 0o644).unwrap();
        fsx::write(&dir.path().join("ca.key"), &key, 0o600).unwrap();
        let ca = Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key")).unwrap();
        let (leaf, _) = ca
            .issue(
                &Leaf::client("system:node:n1", &["system:nodes"]),
                "ECDSA-P256",
            )
            .unwrap();
        assert_eq!(
            subject(&leaf).unwrap(),
            (
                "system:node:n1".to_string(),
                vec!["system:nodes".to_string()]
            )
        );
        let pin = ca_pin(&first_cert_der(&cert).unwrap()).unwrap();
        assert!(pin.starts_with("sha256:") && pin.len() == 71);
        assert_ne!(pin, ca_pin(&first_cert_der(&leaf).unwrap()).unwrap());
    }

    #[test]
    fn leaf_keys_follow_the_encryption_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = generate_ca("kubernetes").unwrap();
        fsx::write(&dir.path().join("ca.crt"), &cert, 0o644).unwrap();
        fsx::write(&dir.path().join("ca.key"), &key, 0o600).unwrap();
        let ca = Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key")).unwrap();
        let leaf = Leaf::client("admin", &[]);
        let (_, p384) = ca.issue(&leaf, "ECDSA-P384").unwrap();
        assert_eq!(
            KeyPair::from_pem(&p384).unwrap().algorithm(),
            &rcgen::PKCS_ECDSA_P384_SHA384
        );
        for refused in ["", "RSA-2048"] {
            let err = ca.issue(&leaf, refused).err().unwrap();
            assert!(format!("{err:#}").contains("ECDSA keys only"), "{err:#}");
        }
    }

    #[test]
    fn a_world_readable_ca_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = generate_ca("kubernetes").unwrap();
        fsx::write(&dir.path().join("ca.crt"), &cert, 0o644).unwrap();
        fsx::write(&dir.path().join("ca.key"), &key, 0o644).unwrap();
        let err = Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("must be 0600"), "{err:#}");
    }

    #[test]
    fn a_key_of_another_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = generate_ca("kubernetes").unwrap();
        let (_, other_key) = generate_ca("other").unwrap();
        fsx::write(&dir.path().join("ca.crt"), &cert, 0o644).unwrap();
        fsx::write(&dir.path().join("ca.key"), &other_key, 0o600).unwrap();
        let err = Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
    }
}
