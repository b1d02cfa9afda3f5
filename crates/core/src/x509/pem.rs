//! Reading the PEM that SCM's download returns: the leaf and its chain.

use chrono::{DateTime, Utc};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// What the daemon needs to know about an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject_cn: String,
    pub sans: Vec<String>,
    /// Hex, upper case, no separators.
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// How many certificates the bundle held (leaf + chain).
    pub chain_len: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("the response holds no PEM certificate (it starts with {0:?})")]
    NoCertificate(String),
    #[error("malformed PEM: {0}")]
    Malformed(String),
    #[error("the certificate cannot be parsed as X.509: {0}")]
    X509(String),
}

fn ts(t: x509_parser::time::ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether the first certificate of a PEM text is a CA (basic constraints `CA:TRUE`).
pub fn is_ca(data: &[u8]) -> bool {
    Pem::iter_from_buffer(data)
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .and_then(|p| {
            let (_, c) = x509_parser::parse_x509_certificate(&p.contents).ok()?;
            Some(
                c.basic_constraints()
                    .ok()
                    .flatten()
                    .is_some_and(|b| b.value.ca),
            )
        })
        .unwrap_or(false)
}

/// How many X.509 certificates a PEM file holds (a CA bundle); an error names the first block
/// that is not one.
pub fn count_certificates(data: &[u8]) -> Result<usize, PemError> {
    let mut n = 0;
    for pem in Pem::iter_from_buffer(data) {
        let pem = pem.map_err(|e| PemError::Malformed(e.to_string()))?;
        if pem.label == "CERTIFICATE" {
            x509_parser::parse_x509_certificate(&pem.contents)
                .map_err(|e| PemError::X509(format!("certificate {}: {e}", n + 1)))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Parses a PEM bundle (CRLF or LF line endings, text around the blocks ignored). The leaf is
/// the first certificate that is not a CA, or the first one when all are CAs.
pub fn parse_bundle(data: &[u8]) -> Result<CertInfo, PemError> {
    if !data
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        let start: String = String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned();
        return Err(PemError::NoCertificate(start));
    }
    let mut ders = Vec::new();
    for pem in Pem::iter_from_buffer(data) {
        let pem = pem.map_err(|e| PemError::Malformed(e.to_string()))?;
        if pem.label == "CERTIFICATE" {
            ders.push(pem);
        }
    }
    if ders.is_empty() {
        return Err(PemError::Malformed(
            "no CERTIFICATE block could be decoded".into(),
        ));
    }
    let mut parsed = Vec::new();
    for p in &ders {
        let (_, c) = x509_parser::parse_x509_certificate(&p.contents)
            .map_err(|e| PemError::X509(e.to_string()))?;
        parsed.push(c);
    }
    let leaf = parsed
        .iter()
        .find(|c| {
            !c.basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|b| b.value.ca)
        })
        .unwrap_or(&parsed[0]);
    let subject_cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = leaf.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(ip) => sans.push(match ip.len() {
                    4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                    16 => {
                        let a: [u8; 16] = (*ip).try_into().unwrap_or([0; 16]);
                        std::net::Ipv6Addr::from(a).to_string()
                    }
                    _ => continue,
                }),
                GeneralName::RFC822Name(e) => sans.push(e.to_string()),
                _ => {}
            }
        }
    }
    let serial = leaf
        .tbs_certificate
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok(CertInfo {
        subject_cn,
        sans,
        serial,
        not_before: ts(leaf.validity().not_before),
        not_after: ts(leaf.validity().not_after),
        chain_len: parsed.len(),
    })
}

/// One certificate block in PEM (base64 in lines of 64, LF endings).
fn pem_block(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A download split for deploying: the leaf (the first certificate that is not a CA, or the
/// first one) and the rest of the chain in the order given, each block written anew in plain
/// PEM (whatever line endings or text surrounded them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub leaf: String,
    pub chain: String,
}

pub fn split_bundle(data: &[u8]) -> Result<Split, PemError> {
    let mut blocks = Vec::new();
    for pem in Pem::iter_from_buffer(data) {
        let pem = pem.map_err(|e| PemError::Malformed(e.to_string()))?;
        if pem.label == "CERTIFICATE" {
            let (_, c) = x509_parser::parse_x509_certificate(&pem.contents)
                .map_err(|e| PemError::X509(format!("certificate {}: {e}", blocks.len() + 1)))?;
            let ca = c
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|b| b.value.ca);
            blocks.push((ca, pem_block(&pem.contents)));
        }
    }
    if blocks.is_empty() {
        let start: String = String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned();
        return Err(PemError::NoCertificate(start));
    }
    let leaf = blocks.iter().position(|(ca, _)| !ca).unwrap_or(0);
    let (_, leaf) = blocks.remove(leaf);
    Ok(Split {
        leaf,
        chain: blocks.into_iter().map(|(_, b)| b).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_and_leaf() -> (String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["a.example.com".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (ca.pem(), leaf.pem())
    }

    #[test]
    fn the_leaf_is_found_in_any_order_and_line_ending() {
        let (ca, leaf) = ca_and_leaf();
        for bundle in [
            format!("{leaf}{ca}"),
            format!("{ca}{leaf}"),
            format!("junk\r\n{}\r\n{}", leaf.replace('\n', "\r\n"), ca),
        ] {
            let s = split_bundle(bundle.as_bytes()).unwrap();
            assert_eq!(s.leaf.replace('\r', ""), leaf.replace('\r', ""));
            assert_eq!(s.chain, ca);
            assert!(!s.leaf.contains('\r') && !s.chain.contains("junk"));
        }
        assert!(matches!(
            split_bundle(b"<html>error</html>"),
            Err(PemError::NoCertificate(_))
        ));
    }
}
