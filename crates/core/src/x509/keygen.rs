//! `key_rotation = "new"`: a fresh private key for each renewal, and the CSR that asks SCM to
//! certify it for the old certificate's subject and SANs. EC keys come from ring (through
//! rcgen); RSA keys from the `rsa` crate, handed to ring as PKCS#8 for the CSR's signature.

use crate::secret::Secret;

/// `key_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyType {
    #[serde(rename = "ec-p256")]
    EcP256,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
}

impl KeyType {
    pub const NAMES: [&'static str; 3] = ["ec-p256", "rsa-2048", "rsa-3072"];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
        }
    }

    pub fn parse(s: &str) -> Option<KeyType> {
        match s {
            "ec-p256" => Some(KeyType::EcP256),
            "rsa-2048" => Some(KeyType::Rsa2048),
            "rsa-3072" => Some(KeyType::Rsa3072),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating the key: {0}")]
    Generate(String),
    #[error("making the CSR for {cn:?}: {error}")]
    Csr { cn: String, error: String },
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new key (PKCS#8 PEM, kept secret) and a CSR for `cn` and `sans` (Base64 DER, as SCM's
/// `csr` field takes it).
pub fn key_and_csr(kind: KeyType, cn: &str, sans: &[String]) -> Result<(Secret, String), KeyError> {
    let key = match kind {
        KeyType::EcP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?,
        KeyType::Rsa2048 | KeyType::Rsa3072 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let bits = if kind == KeyType::Rsa2048 { 2048 } else { 3072 };
            let k = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let der = k
                .to_pkcs8_der()
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let pem = pem_block("PRIVATE KEY", der.as_bytes());
            rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| KeyError::Generate(e.to_string()))?
        }
    };
    let csr_err = |e: rcgen::Error| KeyError::Csr {
        cn: cn.to_string(),
        error: e.to_string(),
    };
    let mut names: Vec<String> = sans.to_vec();
    if names.is_empty() {
        names.push(cn.to_string());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(csr_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).map_err(csr_err)?;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(csr.der());
    Ok((Secret::new(key.serialize_pem()), b64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_type_makes_a_csr_our_reader_accepts() {
        for kind in [KeyType::EcP256, KeyType::Rsa2048] {
            let (key, csr) = key_and_csr(
                kind,
                "www.example.com",
                &["www.example.com".into(), "example.com".into()],
            )
            .unwrap();
            assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
            let parsed = crate::x509::csr::parse(&csr).unwrap();
            assert_eq!(parsed.subject_cn, "www.example.com");
            assert_eq!(parsed.sans, vec!["www.example.com", "example.com"]);
            assert!(format!("{key:?}").contains("***"), "the key is masked");
        }
    }
}
