//! PEM/X.509 parsing of what SCM's download returns: real chains, line-ending variants, junk.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sectigo_scm::{parse_bundle, PemError};

/// Leaf, intermediate and root, as PEM texts.
fn chain() -> (String, String, String) {
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.distinguished_name
        .push(DnType::CommonName, "Test Root");
    let root = root.self_signed(&root_key).unwrap();

    let int_key = KeyPair::generate().unwrap();
    let mut int = CertificateParams::new(Vec::<String>::new()).unwrap();
    int.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int.distinguished_name
        .push(DnType::CommonName, "Test Intermediate");
    let int = int.signed_by(&int_key, &root, &root_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["www.example.org".into(), "example.org".into()]).unwrap();
    leaf.subject_alt_names
        .push(rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap()));
    leaf.distinguished_name
        .push(DnType::CommonName, "www.example.org");
    leaf.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0xbc, 0xde]));
    leaf.not_after = rcgen::date_time_ymd(2027, 3, 1);
    let leaf = leaf.signed_by(&leaf_key, &int, &int_key).unwrap();
    (leaf.pem(), int.pem(), root.pem())
}

#[test]
fn leaf_and_chain_in_every_shape() {
    let (leaf, int, root) = chain();
    let lf = format!("{leaf}{int}{root}");
    let shapes = vec![
        ("leaf first", lf.clone()),
        ("CRLF line endings", lf.replace('\n', "\r\n")),
        ("stray trailing newlines", format!("{lf}\n\n")),
        (
            "text around the blocks",
            format!("subject=/CN=www.example.org\n{leaf}issuer=x\n{int}{root}"),
        ),
        ("chain first (leaf last)", format!("{root}{int}{leaf}")),
        ("leaf only", leaf.clone()),
    ];
    for (name, text) in shapes {
        let info = parse_bundle(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.subject_cn, "www.example.org", "{name}");
        assert_eq!(
            info.sans,
            vec!["www.example.org", "example.org", "192.0.2.7"],
            "{name}"
        );
        assert_eq!(info.serial, "0ABCDE", "{name}");
        assert_eq!(
            info.not_after.format("%Y-%m-%d").to_string(),
            "2027-03-01",
            "{name}"
        );
    }
    assert_eq!(parse_bundle(lf.as_bytes()).unwrap().chain_len, 3);
}

#[test]
fn broken_input_is_an_error() {
    let (leaf, _, _) = chain();
    let truncated = &leaf[..leaf.len() / 2];
    assert!(matches!(
        parse_bundle(truncated.as_bytes()),
        Err(PemError::Malformed(_))
    ));
    assert!(
        matches!(parse_bundle(b"<html><body>502 Bad Gateway</body></html>"), Err(PemError::NoCertificate(s)) if s.contains("<html>"))
    );
    assert!(matches!(parse_bundle(b""), Err(PemError::NoCertificate(_))));
    let garbage =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        parse_bundle(garbage.as_bytes()),
        Err(PemError::X509(_))
    ));
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(parse_bundle(bad_base64.as_bytes()).is_err());
    let invalid_utf8: Vec<u8> = [
        b"-----BEGIN CERTIFICATE-----\n".as_slice(),
        &[0xff, 0xfe, 0x00],
        b"\n-----END CERTIFICATE-----\n",
    ]
    .concat();
    assert!(parse_bundle(&invalid_utf8).is_err());
}
