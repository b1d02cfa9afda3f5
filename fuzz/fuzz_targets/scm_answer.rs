//! SCM's answers: the first two bytes are the HTTP status, the rest the body. Classification
//! for every call, the certId of renew/enroll answers, token answers (a token and a bounded
//! lifetime, never a panic), Retry-After and WWW-Authenticate parsing, the Admin API's list
//! and details (and its dates).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sectigo_scm::Call;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let body = &data[2..];
    for call in [
        Call::Token,
        Call::Renew,
        Call::Enroll,
        Call::Replace,
        Call::Download,
        Call::Status,
        Call::Revoke,
        Call::AdminList,
        Call::AdminDetails,
    ] {
        if let Err(e) = sectigo_scm::check_answer(call, status, body, None) {
            // Nothing the token endpoint answers can make a billed call's outcome unknown.
            assert!(call != Call::Token || !e.maybe_billed(), "{call:?}: {e}");
        }
    }
    if let Ok(id) = sectigo_scm::parse_cert_id(status, body) {
        assert!(!id.is_empty());
    }
    if let Ok((_, life)) = sectigo_scm::parse_token(status, body) {
        assert!(life <= sectigo_scm::MAX_TOKEN_LIFE);
        assert!(std::time::Instant::now().checked_add(life).is_some());
    }
    // The Admin API's answers: a list, details (dates in every form SCM uses), the total.
    let _ = sectigo_scm::admin::parse_list(status, body);
    if let Ok(d) = sectigo_scm::admin::parse_details(status, body) {
        let _ = (d.request_ids(), d.auto_renew_on(), d.ssl_type_id());
    }
    let text = String::from_utf8_lossy(body);
    let _ = sectigo_scm::admin::parse_total(Some(&text));
    let _ = sectigo_scm::admin::parse_scm_date(&text);
    let _ = sectigo_scm::classify::parse_retry_after(&text, chrono::DateTime::UNIX_EPOCH);
    let _ = sectigo_scm::classify::authorization_uri(&text);
});
