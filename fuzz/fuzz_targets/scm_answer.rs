//! SCM's answers: the first two bytes are the HTTP status, the rest the body. Classification,
//! the certId of renew/enroll answers, Retry-After and WWW-Authenticate parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let body = &data[2..];
    let _ = sectigo_scm::check_answer(status, body, None);
    if let Ok(id) = sectigo_scm::parse_cert_id(status, body) {
        assert!(!id.is_empty());
    }
    let text = String::from_utf8_lossy(body);
    let _ = sectigo_scm::classify::parse_retry_after(&text, chrono::DateTime::UNIX_EPOCH);
    let _ = sectigo_scm::classify::authorization_uri(&text);
});
