//! Reading the CSR a person pasted into a Jira issue. Pure; the messages are written for the
//! person who reads them in the comments.

use base64::Engine as _;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry;
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
    #[error("the CSR's subject has {0} common names (CN); it may have one: put the other names in the subjectAltName extension, as DNS names")]
    ManyCns(usize),
    #[error("the CSR's common name (CN) is not a plain string (UTF8String, PrintableString or IA5String), so the connector cannot check it: generate the CSR again with an ordinary CN")]
    CnNotPlain,
    #[error("the CSR's subjectAltName extension holds {0}; only DNS names can be requested here: generate the CSR again with DNS names only")]
    SanNotDns(&'static str),
    #[error("the CSR's subjectAltName extension cannot be read, so the connector cannot check the names it holds")]
    BadSan,
    #[error("the CSR requests extensions more than once, or in Microsoft's legacy form; generate it again with a standard tool (openssl req, certreq)")]
    ManyExtensionRequests,
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
    let (subject_cn, sans) = checked_names(&req)?;
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

/// A request's subject CN ("" when none) and the DNS names of its subjectAltName extension,
/// provided these are all the names a certificate issued for it could carry: the profile's
/// `allowed_domains` is checked against them, so a name the connector cannot read (a second
/// CN, a CN in BMPString, an IP or e-mail SAN, a second extension request) refuses the CSR
/// rather than slipping past the check.
fn checked_names(req: &X509CertificationRequest<'_>) -> Result<(String, Vec<String>), CsrError> {
    let info = &req.certification_request_info;
    let cns: Vec<_> = info
        .subject
        .iter_by_oid(&oid_registry::OID_X509_COMMON_NAME)
        .collect();
    let cn = match cns.as_slice() {
        [] => String::new(),
        [one] => match one.attr_value().tag() {
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                one.as_str().map_err(|_| CsrError::CnNotPlain)?.to_string()
            }
            _ => return Err(CsrError::CnNotPlain),
        },
        many => return Err(CsrError::ManyCns(many.len())),
    };
    // Extensions are requested in one extensionRequest attribute (PKCS#9); any other place
    // (a second one, Microsoft's legacy msExtReq) could hold names a CA reads and we do not.
    const MS_EXT_REQ: &str = "1.3.6.1.4.1.311.2.1.14";
    let mut requests = 0;
    let mut sans = Vec::new();
    for attr in info.iter_attributes() {
        let exts = match attr.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(r) => &r.extensions,
            _ if attr.oid.to_id_string() == MS_EXT_REQ => {
                return Err(CsrError::ManyExtensionRequests)
            }
            _ => continue,
        };
        requests += 1;
        if requests > 1 || !one_value(attr.value) {
            return Err(CsrError::ManyExtensionRequests);
        }
        for e in exts {
            if e.oid != oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME {
                continue;
            }
            let ParsedExtension::SubjectAlternativeName(s) = e.parsed_extension() else {
                return Err(CsrError::BadSan);
            };
            for n in &s.general_names {
                match n {
                    GeneralName::DNSName(d) => sans.push(d.to_string()),
                    other => return Err(CsrError::SanNotDns(kind(other))),
                }
            }
        }
    }
    Ok((cn, sans))
}

/// The attribute's SET holds its first value and nothing after it. The parser reads only the
/// first value of an extensionRequest's SET; a second one could hold names a CA reads and we
/// would not check. `value` is the SET's header and the value read.
fn one_value(value: &[u8]) -> bool {
    use x509_parser::der_parser::asn1_rs::{FromDer as _, Header, Length};
    match Header::from_der(value) {
        Ok((first, h)) => h.length() == Length::Definite(first.len()),
        Err(_) => false,
    }
}

/// A subjectAltName entry's kind, in words.
fn kind(n: &GeneralName<'_>) -> &'static str {
    match n {
        GeneralName::OtherName(..) => "an otherName",
        GeneralName::RFC822Name(_) => "an e-mail address",
        GeneralName::DNSName(_) => "a DNS name",
        GeneralName::X400Address(_) => "an X.400 address",
        GeneralName::DirectoryName(_) => "a directory name",
        GeneralName::EDIPartyName(_) => "an EDI party name",
        GeneralName::URI(_) => "a URI",
        GeneralName::IPAddress(_) => "an IP address",
        GeneralName::RegisteredID(_) => "a registered ID",
    }
}

/// A request's first subject CN ("" when none, or not a plain string) and the DNS names of its
/// subjectAltName extension, as a CA reads them leniently (the SCM simulator); a CSR from a
/// person is read by [`parse`], which refuses names it cannot check.
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

    /// A signed CSR for the key from `params`, with extra PKCS#10 attributes.
    fn request(params: &rcgen::CertificateParams, attrs: Vec<rcgen::Attribute>) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        params
            .serialize_request_with_attributes(&key, attrs)
            .unwrap()
            .pem()
            .unwrap()
    }

    /// Parameters with these subject attributes and SANs.
    fn params(
        dn: Vec<(rcgen::DnType, rcgen::DnValue)>,
        sans: Vec<rcgen::SanType>,
    ) -> rcgen::CertificateParams {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t, v);
        }
        p.subject_alt_names = sans;
        p
    }

    fn dns(n: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(n.try_into().unwrap())
    }

    fn cn(v: &str) -> (rcgen::DnType, rcgen::DnValue) {
        (rcgen::DnType::CommonName, v.into())
    }

    /// DER: a tag, its length, its content.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n @ 0..=127 => out.push(n as u8),
            n @ 128..=255 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    /// The DER of a subjectAltName extension holding one dNSName.
    fn san_extension(name: &str) -> Vec<u8> {
        let oid = [0x06, 0x03, 0x55, 0x1d, 0x11]; // 2.5.29.17
        let names = tlv(0x30, &tlv(0x82, name.as_bytes()));
        tlv(0x30, &[&oid[..], &tlv(0x04, &names)].concat())
    }

    /// Every name a certificate issued for the CSR would carry is one the connector reads and
    /// checks against `allowed_domains`; a CSR with a name it cannot check is refused.
    #[test]
    fn names_that_cannot_be_checked_are_refused() {
        use rcgen::{DnType, DnValue, SanType};
        let good = params(vec![cn("www.example.com")], vec![dns("www.example.com")]);
        assert!(parse(&request(&good, vec![])).is_ok());
        // Each plain string type is read.
        for v in [
            DnValue::PrintableString("www.example.com".try_into().unwrap()),
            DnValue::Ia5String("www.example.com".try_into().unwrap()),
            DnValue::Utf8String("www.example.com".into()),
        ] {
            let c = parse(&request(
                &params(vec![(DnType::CommonName, v)], vec![]),
                vec![],
            ))
            .unwrap();
            assert_eq!(c.subject_cn, "www.example.com");
        }
        // Other subject attributes are no names: an O and an OU are fine.
        let org = params(
            vec![
                (DnType::OrganizationName, "Example Ltd".into()),
                (DnType::OrganizationalUnitName, "Web".into()),
                cn("www.example.com"),
            ],
            vec![],
        );
        assert_eq!(
            parse(&request(&org, vec![])).unwrap().subject_cn,
            "www.example.com"
        );

        let email = "evil@attacker.com".try_into().unwrap();
        let uri = "https://evil.attacker.com/".try_into().unwrap();
        let other = (
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            rcgen::OtherNameValue::Utf8String("admin@attacker.com".into()),
        );
        let cases: Vec<(
            &str,
            rcgen::CertificateParams,
            Vec<rcgen::Attribute>,
            CsrError,
        )> = vec![
            (
                "a BMPString CN",
                params(
                    vec![(
                        DnType::CommonName,
                        DnValue::BmpString("evil.attacker.com".try_into().unwrap()),
                    )],
                    vec![dns("www.example.com")],
                ),
                vec![],
                CsrError::CnNotPlain,
            ),
            (
                "a TeletexString CN",
                params(
                    vec![(
                        DnType::CommonName,
                        DnValue::TeletexString("evil.attacker.com".try_into().unwrap()),
                    )],
                    vec![],
                ),
                vec![],
                CsrError::CnNotPlain,
            ),
            (
                "two CNs",
                params(
                    vec![
                        cn("www.example.com"),
                        (
                            DnType::CustomDnType(vec![2, 5, 4, 3]),
                            "evil.attacker.com".into(),
                        ),
                    ],
                    vec![],
                ),
                vec![],
                CsrError::ManyCns(2),
            ),
            (
                "an IP SAN",
                params(
                    vec![cn("www.example.com")],
                    vec![SanType::IpAddress([203, 0, 113, 7].into())],
                ),
                vec![],
                CsrError::SanNotDns("an IP address"),
            ),
            (
                "an e-mail SAN",
                params(
                    vec![cn("www.example.com")],
                    vec![dns("www.example.com"), SanType::Rfc822Name(email)],
                ),
                vec![],
                CsrError::SanNotDns("an e-mail address"),
            ),
            (
                "a URI SAN",
                params(vec![], vec![dns("www.example.com"), SanType::URI(uri)]),
                vec![],
                CsrError::SanNotDns("a URI"),
            ),
            (
                "an otherName SAN",
                params(
                    vec![],
                    vec![dns("www.example.com"), SanType::OtherName(other)],
                ),
                vec![],
                CsrError::SanNotDns("an otherName"),
            ),
            (
                "a second extension request",
                good.clone(),
                vec![rcgen::Attribute {
                    oid: &[1, 2, 840, 113549, 1, 9, 14],
                    values: tlv(0x31, &tlv(0x30, &san_extension("evil.attacker.com"))),
                }],
                CsrError::ManyExtensionRequests,
            ),
            (
                "a second value in the extension request's SET",
                params(vec![], vec![]),
                vec![rcgen::Attribute {
                    oid: &[1, 2, 840, 113549, 1, 9, 14],
                    values: tlv(
                        0x31,
                        &[
                            tlv(0x30, &san_extension("www.example.com")),
                            tlv(0x30, &san_extension("evil.attacker.com")),
                        ]
                        .concat(),
                    ),
                }],
                CsrError::ManyExtensionRequests,
            ),
            (
                "Microsoft's legacy extension request",
                good.clone(),
                vec![rcgen::Attribute {
                    oid: &[1, 3, 6, 1, 4, 1, 311, 2, 1, 14],
                    values: tlv(0x31, &tlv(0x30, &san_extension("evil.attacker.com"))),
                }],
                CsrError::ManyExtensionRequests,
            ),
        ];
        let mut wrong = Vec::new();
        for (what, p, attrs, want) in cases {
            let got = parse(&request(&p, attrs));
            if got != Err(want.clone()) {
                wrong.push(format!("{what}: {got:?}"));
            }
            // The message is for the person who pasted it: no parser internals.
            let msg = want.to_string();
            assert!(msg.starts_with("the CSR"), "{what}: {msg}");
        }
        assert!(
            wrong.is_empty(),
            "accepted or refused for another reason:\n{}",
            wrong.join("\n")
        );
        // An unreadable subjectAltName extension hides what it names.
        let mut bad = good.clone();
        bad.subject_alt_names.clear();
        bad.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 17],
                vec![0x30, 0x03, 0x82, 0x05, 0x41],
            ));
        assert_eq!(parse(&request(&bad, vec![])), Err(CsrError::BadSan));
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
