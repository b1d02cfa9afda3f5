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
