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
        "COMMAND: STATE EXPORT",
        "COMMAND: STATE IMPORT",
        ".SH EXAMPLES",
        "certs resolve 1234567 \\-\\-renewed\\-as",
    ] {
        assert!(page.contains(want), "page 8 lacks {want}");
    }
    // The packaged binary has no demo: the page says it is a source build's, and documents
    // no `demo` command (issue #27).
    assert!(!page.contains("COMMAND: DEMO"), "page 8 documents demo");
    assert!(
        !page.contains("sectigo\\-connector demo"),
        "page 8 lists demo among the commands"
    );
    assert!(
        page.contains("A build from source"),
        "page 8 lacks the demo note"
    );
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

/// The metric names a PromQL expression reads: identifiers that are not functions (followed by
/// `(`), keywords, label matchers, strings or durations.
fn metrics_read(expr: &str) -> Vec<String> {
    // Keywords and aggregations (`sum by (x) (m)`); those that take a list of label names.
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Label matchers and strings hold no metric name.
    let mut bare = String::new();
    let (mut braces, mut quoted) = (0, false);
    for c in expr.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => braces += 1,
            '}' if !quoted => braces -= 1,
            _ if quoted || braces > 0 => {}
            c => bare.push(c),
        }
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = bare.as_str();
    while let Some(start) = rest.find(word) {
        let tail = &rest[start..];
        let len = tail.find(|c| !word(c)).unwrap_or(tail.len());
        let (w, after) = tail.split_at(len);
        let function = after.trim_start().starts_with('(');
        let number = w.starts_with(|c: char| c.is_ascii_digit());
        if GROUPING.contains(&w) {
            // `by (a, b)`, `on (a)`, ...: label names, not metrics.
            rest = match after.trim_start().strip_prefix('(') {
                Some(list) => list.split_once(')').map_or("", |(_, r)| r),
                None => after,
            };
            continue;
        }
        if !function && !number && !KEYWORDS.contains(&w) {
            out.push(w.to_string());
        }
        rest = after;
    }
    out
}

/// The shipped alert rules read only metrics the daemon serves, and Prometheus's own `up` of
/// the daemon's job (to tell it is down, or not scraped at all: every other rule is silent
/// then); the job they name is the one the README's scrape configuration gives. (promtool, in
/// CI, tests the rules themselves.)
#[test]
fn the_alert_rules_use_served_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        std::fs::read_to_string(root.join("packaging/prometheus/sectigo-connector.rules.yml"))
            .unwrap();
    let served = std::fs::read_to_string(root.join("src/daemon/metrics.rs")).unwrap();
    // Prometheus's own series for a scrape target, not the daemon's.
    const PROMETHEUS_OWN: &[&str] = &["up"];
    let exprs: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect();
    assert!(
        exprs
            .iter()
            .all(|e| !e.trim().is_empty() && !e.trim().starts_with(['|', '>'])),
        "one expression a line, please (this test reads them so)"
    );
    let mut names: Vec<String> = exprs.iter().flat_map(|e| metrics_read(e)).collect();
    names.sort();
    names.dedup();
    assert!(
        names.iter().filter(|n| n.starts_with("sectigo_")).count() >= 6,
        "{names:?}"
    );
    for n in &names {
        assert!(
            served.contains(&format!("{n} "))
                || served.contains(&format!("{n}{{"))
                || PROMETHEUS_OWN.contains(&n.as_str()),
            "the rules use {n}, which /metrics does not serve"
        );
    }
    // Both the target down and no target at all are caught, for the job the README configures.
    let job = "up{job=\"sectigo-connector\"}";
    assert!(
        exprs.iter().any(|e| e.contains(&format!("{job} == 0")))
            && exprs.iter().any(|e| e.contains(&format!("absent({job})"))),
        "{exprs:?}"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("- job_name: sectigo-connector"));
    assert_eq!(
        metrics_read(
            "absent(up{job=\"x\"}) or rate(a_total[5m]) > 2 * b unless on (x) time() - sum by (y) (c)"
        ),
        ["up", "a_total", "b", "c"]
    );
}

/// The packaged completion scripts are current, and bash's completes commands, subcommands
/// and options.
#[test]
fn completions_are_current_and_complete() {
    let exe = env!("CARGO_BIN_EXE_sectigo-connector");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/completions");
    for (shell, file) in [
        ("bash", "sectigo-connector.bash"),
        ("zsh", "_sectigo-connector"),
        ("fish", "sectigo-connector.fish"),
    ] {
        let out = std::process::Command::new(exe)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let committed = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "packaging/completions/{file} is stale: regenerate it with `packaging/build.sh --man`"
        );
    }
    let complete = |words: &str| -> String {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; _sectigo__connector sectigo-connector \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.join("sectigo-connector.bash").display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = complete("sectigo-connector st");
    assert!(
        top.lines().any(|l| l == "state") && top.lines().any(|l| l == "status"),
        "{top}"
    );
    let state = complete("sectigo-connector state ''");
    assert!(
        state.lines().any(|l| l == "export") && state.lines().any(|l| l == "import"),
        "{state}"
    );
    let renew = complete("sectigo-connector renew 1234 --");
    assert!(renew.lines().any(|l| l == "--yes"), "{renew}");
    assert!(
        !top.contains("completions") && !top.contains("man"),
        "hidden commands stay hidden: {top}"
    );
}

/// `--help` documents every command and every argument (positional ones included).
#[test]
fn every_argument_is_documented() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let name = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_name() != "help" {
                missing.push(format!("{name}: the command"));
            }
            for a in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{name}: {id}"));
                }
            }
            walk(sub, &name, missing);
        }
    }
    let mut missing = Vec::new();
    walk(
        &<sectigo::cli::Cli as clap::CommandFactory>::command(),
        "sectigo-connector",
        &mut missing,
    );
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}
