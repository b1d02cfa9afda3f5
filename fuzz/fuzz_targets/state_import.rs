//! `state import`'s reading of a file on arbitrary bytes: it must answer with the counts or a
//! refusal naming the line, never panic; and what it accepts is whole (counts that match).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match sectigo_state::export::verify(std::io::BufReader::new(data)) {
        Ok(counts) => {
            // Accepted: a header, one line per counted record, the end line.
            let lines = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
            assert_eq!(counts.total() + 2, lines);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
