//! The PEM/X.509 reader on arbitrary bytes (what SCM's download returns).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = sectigo_scm::parse_bundle(data) {
        assert!(info.chain_len >= 1);
    }
});
