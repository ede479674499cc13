//! PEM blocks parsed, not only framed: a certificate must be X.509, a public key a
//! SubjectPublicKeyInfo, a private key PKCS#8 that loads (what `kubeboot-gen` writes). A block
//! with a garbage body would otherwise reach kubeadm or the API server and fail there, on the node.

use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Every block of `text`, which must be PEM and nothing else.
fn blocks(text: &str) -> Result<Vec<Pem>, String> {
    let trimmed = text.trim();
    if !trimmed.starts_with("-----BEGIN ") || !trimmed.ends_with("-----") {
        return Err("is not a PEM block".into());
    }
    Pem::iter_from_buffer(trimmed.as_bytes())
        .map(|block| block.map_err(|e| format!("is not a valid PEM block ({e})")))
        .collect()
}

fn one_block(text: &str, label: &str) -> Result<Pem, String> {
    let mut blocks = blocks(text)?;
    match (blocks.pop(), blocks.is_empty()) {
        (Some(block), true) if block.label == label => Ok(block),
        (Some(block), true) => Err(format!(
            "must be a PEM {label} block, found {}",
            block.label
        )),
        _ => Err(format!("must be exactly one PEM {label} block")),
    }
}

fn certificate(block: &Pem) -> Result<(), String> {
    block
        .parse_x509()
        .map(drop)
        .map_err(|e| format!("is not an X.509 certificate ({e})"))
}

/// One PEM certificate (a CA's).
pub fn check_certificate(text: &str) -> Result<(), String> {
    certificate(&one_block(text, "CERTIFICATE")?)
}

/// One or more PEM certificates (a CA bundle).
pub fn check_certificate_bundle(text: &str) -> Result<(), String> {
    for block in blocks(text)? {
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "must hold PEM CERTIFICATE blocks only, found {}",
                block.label
            ));
        }
        certificate(&block)?;
    }
    Ok(())
}

/// One PEM public key (SubjectPublicKeyInfo).
pub fn check_public_key(text: &str) -> Result<(), String> {
    let block = one_block(text, "PUBLIC KEY")?;
    SubjectPublicKeyInfo::from_der(&block.contents)
        .map_err(|e| e.to_string())
        .and_then(|(_, key)| key.parsed().map(drop).map_err(|e| e.to_string()))
        .map_err(|e| format!("is not a public key ({e})"))
}

/// One PEM PKCS#8 private key (ECDSA, Ed25519 or RSA).
pub fn check_private_key(text: &str) -> Result<(), String> {
    let block = one_block(text, "PRIVATE KEY")?;
    rcgen::KeyPair::try_from(block.contents.as_slice())
        .map(drop)
        .map_err(|e| format!("is not a PKCS#8 private key ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../tests/pki/ca.crt");
    const KEY: &str = include_str!("../tests/pki/ca.key");
    const PUBLIC: &str = include_str!("../tests/pki/ca.pub");

    /// The same framing with a body that is base64 but not the structure it claims to be.
    fn garbage(pem: &str) -> String {
        let lines: Vec<&str> = pem.trim().lines().collect();
        format!("{}\nAAAAAAAA\n{}\n", lines[0], lines[lines.len() - 1])
    }

    #[test]
    fn real_blocks_pass_and_garbage_bodies_do_not() {
        check_certificate(CERT).unwrap();
        check_certificate_bundle(&format!("{CERT}{CERT}")).unwrap();
        check_private_key(KEY).unwrap();
        check_public_key(PUBLIC).unwrap();
        assert!(check_certificate(&garbage(CERT))
            .unwrap_err()
            .contains("not an X.509 certificate"));
        assert!(check_certificate_bundle(&format!("{CERT}{}", garbage(CERT))).is_err());
        assert!(check_private_key(&garbage(KEY))
            .unwrap_err()
            .contains("not a PKCS#8 private key"));
        assert!(check_public_key(&garbage(PUBLIC))
            .unwrap_err()
            .contains("not a public key"));
        assert!(check_certificate(KEY)
            .unwrap_err()
            .contains("found PRIVATE KEY"));
        assert!(check_certificate_bundle(KEY).is_err());
        assert!(check_private_key("not a key")
            .unwrap_err()
            .contains("not a PEM block"));
        assert!(check_certificate(&format!("{CERT}{CERT}"))
            .unwrap_err()
            .contains("exactly one"));
        assert!(
            check_certificate("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----")
                .unwrap_err()
                .contains("not a valid PEM block")
        );
    }
}
