//! Jira's answers: the first two bytes are the HTTP status, the rest the body. Classification,
//! transitions lists, and the text of Atlassian Document Format comments.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let body = &data[2..];
    let _ = sectigo_jira::classify(status, body, None, "fuzzing", "FUZZ-1");
    let _ = sectigo_jira::parse_transitions(body);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = sectigo_jira::adf::text(&v);
    }
});
