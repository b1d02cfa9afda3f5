//! Reading the CSR a person pasted into a Jira issue. Pure; the messages are written for the
//! person who reads them in the comments.

use base64::Engine as _;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Largest CSR text accepted (a CSR is 1-4 KiB).
pub const MAX_CSR_TEXT: usize = 64 * 1024;

/// A checked CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr {
    /// Single-line Base64 of the DER, as SCM's enroll call takes it.
    pub base64: String,
    /// SHA-256 of the DER, hex: the same CSR pasted as PEM or Base64 has the same hash.
    pub sha256: String,
    pub subject_cn: String,
    /// DNS names of the subjectAltName extension.
    pub sans: Vec<String>,
}

impl Csr {
    /// The domain the certificate is for: the CN, else the first DNS name.
    pub fn domain(&self) -> &str {
        if self.subject_cn.is_empty() {
            self.sans.first().map(String::as_str).unwrap_or("")
        } else {
            &self.subject_cn
        }
    }
}

/// What is wrong with a CSR, in words for the person who pasted it (these go into Jira
/// comments: no parser internals, and pasted text only bounded and escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR field is empty: paste the certificate signing request (PEM, or its Base64) into it")]
    Empty,
    #[error("the CSR field holds {0} bytes; a CSR is a few kilobytes at most")]
    TooLong(usize),
    #[error("the CSR field holds a PRIVATE KEY, not a certificate signing request. Nothing was sent. Remove the key from this issue (and its history) and treat it as compromised: generate a new key and CSR")]
    PrivateKey,
    #[error("the CSR field holds a PEM block {0:?}, not a certificate signing request (expected -----BEGIN CERTIFICATE REQUEST-----)")]
    NotACsrBlock(String),
    #[error("the CSR's PEM block ends with {0:?}")]
    BadEnd(String),
    #[error("the CSR's PEM block has no END line (was it cut off when pasted?)")]
    NoEnd,
    #[error("the CSR is neither PEM nor valid Base64")]
    NotBase64,
    #[error(
        "the CSR cannot be decoded as a PKCS#10 certificate signing request (is it complete?)"
    )]
    NotPkcs10,
    #[error("the CSR has {0} bytes of trailing data after the request")]
    Trailing(usize),
    #[error("the CSR's signature does not verify: it was altered, or is not signed by its key")]
    BadSignature,
    #[error("the CSR names no domain: it has neither a common name (CN) nor DNS names")]
    NoDomain,
    #[error("the CSR names {0:?}, which is not a domain name")]
    BadName(String),
}

/// A line of pasted text, fit for an error message: escaped and at most 80 characters.
fn quoted(line: &str) -> String {
    crate::text::bounded(&crate::text::Escaped(line).to_string(), 80)
}

/// Parses a CSR given as PEM (`BEGIN CERTIFICATE REQUEST` or `BEGIN NEW CERTIFICATE
/// REQUEST`) or as Base64 of the DER (line breaks and spaces ignored), and checks its
/// signature. The error says what is wrong, in words for the reporter.
pub fn parse(text: &str) -> Result<Csr, CsrError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CsrError::Empty);
    }
    if text.len() > MAX_CSR_TEXT {
        return Err(CsrError::TooLong(text.len()));
    }
    if text.contains("PRIVATE KEY-----") {
        return Err(CsrError::PrivateKey);
    }
    let body = if text.contains("-----BEGIN") {
        pem_body(text)?
    } else {
        text.to_string()
    };
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .map_err(|_| CsrError::NotBase64)?;
    let (rest, req) = X509CertificationRequest::from_der(&der).map_err(|_| CsrError::NotPkcs10)?;
    if !rest.is_empty() {
        return Err(CsrError::Trailing(rest.len()));
    }
    req.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let (subject_cn, sans) = names(&req);
    if subject_cn.is_empty() && sans.is_empty() {
        return Err(CsrError::NoDomain);
    }
    // Names go into logs, comments and SCM: none may carry control characters.
    if let Some(bad) = std::iter::once(&subject_cn)
        .chain(&sans)
        .find(|n| n.len() > 253 || n.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(CsrError::BadName(quoted(bad)));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(Csr {
        base64: base64::engine::general_purpose::STANDARD.encode(&der),
        sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        subject_cn,
        sans,
    })
}

/// A request's subject CN ("" when none) and the DNS names of its subjectAltName extension.
pub fn names(req: &X509CertificationRequest<'_>) -> (String, Vec<String>) {
    let cn = req
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_string();
    let mut sans = Vec::new();
    for e in req.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(s) = e {
            for n in &s.general_names {
                if let GeneralName::DNSName(d) = n {
                    sans.push(d.to_string());
                }
            }
        }
    }
    (cn, sans)
}

/// The Base64 between the BEGIN and END lines of the (single) CSR block.
fn pem_body(text: &str) -> Result<String, CsrError> {
    let mut lines = text.lines().map(str::trim);
    let begin = lines
        .by_ref()
        .find(|l| l.starts_with("-----BEGIN"))
        .unwrap_or_default();
    if !(begin == "-----BEGIN CERTIFICATE REQUEST-----"
        || begin == "-----BEGIN NEW CERTIFICATE REQUEST-----")
    {
        return Err(CsrError::NotACsrBlock(quoted(begin)));
    }
    let mut body = String::new();
    for l in lines {
        if l.starts_with("-----END") {
            if !l.contains("CERTIFICATE REQUEST-----") {
                return Err(CsrError::BadEnd(quoted(l)));
            }
            return Ok(body);
        }
        body.push_str(l);
    }
    Err(CsrError::NoEnd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem(cn: &str, sans: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if !cn.is_empty() {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn pem_and_base64_are_the_same_csr() {
        let pem = csr_pem("www.example.com", &["www.example.com", "example.com"]);
        let a = parse(&pem).unwrap();
        assert_eq!(a.subject_cn, "www.example.com");
        assert_eq!(a.sans, vec!["www.example.com", "example.com"]);
        assert_eq!(a.domain(), "www.example.com");
        // The Base64 alone, on one line, and wrapped with CRLF: the same request.
        let b = parse(&a.base64).unwrap();
        let wrapped: String = a
            .base64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let c = parse(&wrapped).unwrap();
        let d = parse(&pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(a.sha256.len(), 64);
        assert_ne!(
            a.sha256,
            parse(&csr_pem("www.example.com", &[])).unwrap().sha256
        );
    }

    #[test]
    fn a_san_only_csr_takes_its_domain_from_the_first_name() {
        let c = parse(&csr_pem("", &["api.example.com"])).unwrap();
        assert_eq!(c.domain(), "api.example.com");
    }

    #[test]
    fn bad_input_says_why() {
        let pem = csr_pem("www.example.com", &[]);
        let cases: Vec<(String, &str)> = vec![
            ("  ".into(), "empty"),
            ("hello world".into(), "neither PEM nor valid Base64"),
            ("aGVsbG8gd29ybGQ=".into(), "cannot be decoded as a PKCS#10"),
            (
                pem.lines().take(4).collect::<Vec<_>>().join("\n"),
                "no END line",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"
                    .into(),
                "PRIVATE KEY",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into(),
                "not a certificate signing request",
            ),
            (csr_pem("", &[]), "names no domain"),
            ("A".repeat(MAX_CSR_TEXT + 1), "a few kilobytes"),
        ];
        for (input, want) in cases {
            let e = parse(&input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:.40}: {e}");
        }
    }

    #[test]
    fn openssl_requests_rsa_pem_and_ec_base64() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/csr");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let rsa = parse(&read("rsa_pem")).unwrap();
        assert_eq!(rsa.subject_cn, "www.example.com");
        assert_eq!(rsa.sans, vec!["www.example.com", "example.com"]);
        let ec = parse(&read("ec_san_only_base64")).unwrap();
        assert_eq!(
            (ec.subject_cn.as_str(), ec.domain()),
            ("", "api.example.com")
        );
        assert!(parse(&read("private_key"))
            .unwrap_err()
            .to_string()
            .contains("PRIVATE KEY"));
        assert!(parse(&read("truncated"))
            .unwrap_err()
            .to_string()
            .contains("no END line"));
    }

    #[test]
    fn an_altered_csr_fails_its_signature() {
        let good = parse(&csr_pem("www.example.com", &[])).unwrap();
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(&good.base64)
            .unwrap();
        // Change one byte of the subject's CN ("www" → "wwx").
        let pos = der.windows(3).position(|w| w == b"www").unwrap();
        der[pos + 2] = b'x';
        let e = parse(&base64::engine::general_purpose::STANDARD.encode(&der)).unwrap_err();
        assert_eq!(e, CsrError::BadSignature);
    }
}
