//! The CSR reader on arbitrary text (what a person pastes into a Jira issue).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(csr) = sectigo_core::x509::csr::parse(&text) {
        assert_eq!(csr.sha256.len(), 64);
        assert!(!csr.domain().is_empty());
        // What is sent to SCM reads back as the same request.
        assert_eq!(sectigo_core::x509::csr::parse(&csr.base64).as_ref(), Ok(&csr));
    }
});
