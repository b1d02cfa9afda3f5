//! The packaged manual pages are the ones the code generates (regenerate with
//! `packaging/build.sh --man`, or `sectigo-connector man 8 > packaging/man/sectigo-connector.8`).

use std::path::Path;

fn check(file: &str, generated: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/man")
        .join(file);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with `packaging/build.sh --man`",
        path.display()
    );
}

#[test]
fn page8_is_current() {
    let page = sectigo::manpage::page8(<sectigo::cli::Cli as clap::CommandFactory>::command());
    for want in [
        "COMMAND: RUN",
        "COMMAND: CERTS IMPORT",
        "COMMAND: PROFILES RENAME",
        "EXIT STATUS",
        "SIGHUP",
        "78 configuration error",
    ] {
        assert!(page.contains(want), "page 8 lacks {want}");
    }
    check("sectigo-connector.8", page);
}

#[test]
fn page5_is_current() {
    let page = sectigo::manpage::page5();
    for want in [
        "expiry_window_days = 30",
        "max_requests_per_second",
        "[jira.transitions]",
        "SECTIGO_CONNECTOR_",
    ] {
        assert!(page.contains(want), "page 5 lacks {want}");
    }
    check("sectigo-connector.toml.5", page);
}
