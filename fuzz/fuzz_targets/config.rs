//! The configuration loader on arbitrary files: connector.toml, then (after a NUL byte) a
//! profile. It must answer with a configuration or errors, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("profiles.d")).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let (connector, profile) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let d = dir().path();
    std::fs::write(d.join("connector.toml"), connector).unwrap();
    std::fs::write(d.join("profiles.d/p.toml"), profile).unwrap();
    if let Err(errors) = sectigo_core::config::Config::load(d) {
        // Every error names where it came from.
        for e in &errors.0 {
            assert!(!e.to_string().is_empty());
        }
    }
});
