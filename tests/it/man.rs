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

/// The shipped alert rules use only metrics the daemon serves (promtool, in CI, tests the
/// rules themselves).
#[test]
fn the_alert_rules_use_served_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        std::fs::read_to_string(root.join("packaging/prometheus/sectigo-connector.rules.yml"))
            .unwrap();
    let served = std::fs::read_to_string(root.join("src/daemon/metrics.rs")).unwrap();
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sectigo_"))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for n in names {
        assert!(
            served.contains(&format!("{n} ")) || served.contains(&format!("{n}{{")),
            "the rules use {n}, which /metrics does not serve"
        );
    }
}
