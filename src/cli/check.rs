//! `check-config` (and `--online`, in `online.rs`): every file checked as the daemon reads
//! them, and run as root, as the service user the daemon runs as will find them (a file it
//! cannot read is an error naming the file, the user and the fix); what they say (secrets
//! masked), the warnings, and with `--online` whether SCM and Jira take the credentials.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sectigo_core::config::access::{self, Account, ServiceUser};
use sectigo_core::config::{Config, ConfigErrors};
use sectigo_core::names::IssueKey;
use sectigo_engine::{Engine, Shared};

use super::output::write_out;
use super::runtime;
use crate::api::{DueChangeReport, Request, Response};
use crate::exit::CliError;

/// What `check-config` says of `connector.toml`; `service`: who the files were checked for.
fn describe_connector(dir: &Path, cfg: &Config, service: Option<&ServiceUser>) -> String {
    let mut o = String::new();
    macro_rules! say {
        ($($t:tt)*) => {{
            let _ = writeln!(o, $($t)*);
        }};
    }
    let c = &cfg.connector;
    say!("configuration in {}: OK", dir.display());
    if let Some(s) = service {
        say!(
            "  read as:   user {} ({}): every file the daemon reads is readable to it",
            s.account.name,
            s.why
        );
    }
    say!(
        "  state:     {} (cache {} MiB)",
        c.state.dir.display(),
        c.state.cache_mb
    );
    say!(
        "  schedule:  {:?}{}",
        c.schedule.cron,
        if c.schedule.run_at_start {
            ", and at start"
        } else {
            ""
        }
    );
    say!(
        "  log:       level {:?}, format {}{}",
        c.log.level,
        format!("{:?}", c.log.format).to_lowercase(),
        c.log
            .file
            .as_ref()
            .map(|f| format!(", files in {}", f.display()))
            .unwrap_or_default()
    );
    say!(
        "  scm:       timeout {}s, at most {} concurrent and {}/s per host, retries for up to {}s",
        c.scm.timeout_secs,
        c.scm.max_concurrent,
        c.scm.max_requests_per_second,
        c.scm.retry_max_secs
    );
    match &c.jira {
        Some(j) => say!(
            "  jira:      {} at {} (token {})",
            format!("{:?}", j.flavor).to_lowercase(),
            j.url,
            j.token
        ),
        None => say!("  jira:      off (no [jira] section)"),
    }
    match c.jira.as_ref().and_then(|j| j.workflow.as_ref()) {
        Some(w) => {
            say!(
                "  workflow:  requests from Jira polled on {:?}",
                w.poll_cron
            );
            say!("    enroll:  {}", w.enroll_jql);
            say!("    renew:   {}", w.renew_jql);
            say!("    revoke:  {}", w.revoke_jql);
            say!(
                "    fields:  CSR {:?}, profile {:?}, certificate id {:?}, revocation reason {}",
                w.csr_field,
                w.profile_field,
                w.cert_id_field,
                w.revoke_reason_field
                    .as_deref()
                    .map(|f| format!("{f:?}"))
                    .unwrap_or_else(|| format!("- (code {})", w.revoke_reason_code))
            );
            say!(
                "    then:    {:?} / {:?} / on failure {:?}",
                w.enrolled_transition,
                w.revoked_transition,
                w.failed_transition
            );
            say!(
                "    limits:  profiles {}; at most {} enrollments in 24 h; a renewal at most every {} h",
                match &w.profiles {
                    Some(p) => p.join(", "),
                    None => "all".into(),
                },
                w.max_enrollments_per_day,
                w.min_renewal_interval_hours
            );
        }
        None if c.jira.is_some() => say!("  workflow:  off ([jira.workflow] enabled = false)"),
        None => {}
    }
    say!("  control:   {}", c.control.socket.display());
    o
}

/// What `check-config` says of each profile (secrets masked).
fn describe_profiles(cfg: &Config) -> String {
    let mut o = String::new();
    macro_rules! say {
        ($($t:tt)*) => {{
            let _ = writeln!(o, $($t)*);
        }};
    }
    say!("profiles ({}):", cfg.profiles.len());
    for p in cfg.profiles.values() {
        say!("  {}  ({})", p.name, p.file.display());
        say!("    client_id:          {}", p.client_id);
        say!("    client_secret:      {}", p.client_secret);
        say!("    scm_url:            {}", p.scm_url);
        say!("    token_url:          {}", p.token_url);
        say!(
            "    expiry_window_days: {}{}",
            p.expiry_window_days,
            if p.force_renewal {
                " (irrelevant: force_renewal)"
            } else {
                ""
            }
        );
        say!(
            "    auto_renew:         {}{}",
            p.auto_renew,
            if p.force_renewal {
                " (irrelevant: force_renewal)"
            } else {
                ""
            }
        );
        say!("    force_renewal:      {}", p.force_renewal);
        say!("    ssl_cert_comments:  {:?}", p.ssl_cert_comments);
        say!(
            "    scm_profile_id:     {}",
            p.scm_profile_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into())
        );
        if !p.custom_fields.is_empty() {
            say!("    custom_fields:      {:?}", p.custom_fields);
        }
        if let Some(d) = &p.allowed_domains {
            say!(
                "    allowed_domains:    {} (enrollments from Jira)",
                d.join(", ")
            );
        }
        if let Some(d) = &p.deploy {
            say!(
                "    deploy:             {}/NAME/, mode {:04o}{}{}",
                d.dir.display(),
                d.mode,
                d.hook
                    .as_ref()
                    .map(|h| format!(", then {h:?}"))
                    .unwrap_or_default(),
                match (&d.owner, &d.group) {
                    (None, None) => String::new(),
                    (o, g) => format!(
                        ", owned by {}:{}",
                        o.as_deref().unwrap_or("-"),
                        g.as_deref().unwrap_or("-")
                    ),
                }
            );
        }
    }
    o
}

/// `check-config`: every file checked as the daemon reads them, what they say, the
/// warnings; with `--online`, the credentials asked.
pub fn check_config(dir: &Path, online: bool, issue: Option<&IssueKey>) -> Result<i32, CliError> {
    let cfg = Config::load(dir)?;
    // Run as root, the files are checked as the daemon's user will find them: root reads
    // everything, the daemon does not. (Run as another user, the load above read as that user.)
    let service = Account::current()
        .filter(Account::is_root)
        .and_then(|_| access::service_user(&cfg.connector.state.dir))
        .filter(|s| !s.account.is_root());
    if let Some(s) = &service {
        let errors = cfg.unreadable_by(s);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors).into());
        }
    }
    let mut o = describe_connector(dir, &cfg, service.as_ref());
    o.push_str(&describe_profiles(&cfg));
    macro_rules! say {
        ($($t:tt)*) => {{
            let _ = writeln!(o, $($t)*);
        }};
    }
    for w in &cfg.warnings {
        say!("warning: {w}");
    }
    for w in deploy_sandbox_warnings(&cfg, &unit_writable_paths()) {
        say!("warning: {w}");
    }
    write_out(&o);
    write_out(&due_change(dir, &cfg));
    if online {
        return super::online::check_online(&cfg, issue);
    }
    Ok(0)
}

/// What these files make due against the state: compared with the running configuration
/// through the daemon; when none runs, from the state itself (read only by its owner, so
/// that root never leaves files the service user cannot open), compared with nothing.
/// Informative: never changes the exit code.
fn due_change(dir: &Path, cfg: &Config) -> String {
    let ask = async {
        let daemon = crate::api::client::Endpoint::of(dir);
        match crate::api::client::send(&daemon, &Request::DueChange).await {
            Ok(Some(Ok(Response::DueChange(r)))) => return Ok(r),
            Ok(Some(Err(e))) => return Err(e.message),
            Ok(Some(Ok(_))) => return Err("the daemon gave another answer".into()),
            Err(e) => return Err(format!("cannot talk to the daemon: {e}")),
            Ok(None) => {}
        }
        let state = &cfg.connector.state.dir;
        let owner = std::fs::metadata(state)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .map_err(|_| format!("no state in {} yet", state.display()))?;
        if owner != rustix::process::geteuid().as_raw() {
            return Err(format!(
                "no daemon runs, and the state belongs to uid {owner}: run check-config as that user to count what these files make due"
            ));
        }
        let store = sectigo_state::open(&cfg.connector.state).map_err(|e| e.to_string())?;
        let engine = Engine::new(cfg, store, Shared::new(cfg), sectigo_core::clock::system())
            .map_err(|e| e.to_string())?;
        let due = engine
            .due_change(cfg, false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(DueChangeReport {
            against_running: false,
            due,
        })
    };
    let r = runtime()
        .map_err(|e| e.error.to_string())
        .and_then(|rt| rt.block_on(ask));
    match r {
        Ok(r) => crate::render::text(&Response::DueChange(r), super::now()).0,
        Err(why) => format!("due: not counted: {why}\n"),
    }
}
/// The paths the installed unit's sandbox may write: its `ReadWritePaths=` and its state
/// directory. `None` when no sectigo-connector unit is loaded (not under systemd).
fn unit_writable_paths() -> Option<Vec<PathBuf>> {
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            "-p",
            "LoadState",
            "-p",
            "ReadWritePaths",
            "-p",
            "StateDirectory",
            "sectigo-connector.service",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    if value("LoadState") != "loaded" {
        return None;
    }
    let mut paths: Vec<PathBuf> = value("ReadWritePaths")
        .split_whitespace()
        .map(|p| PathBuf::from(p.trim_start_matches(['-', '+'])))
        .collect();
    paths.extend(
        value("StateDirectory")
            .split_whitespace()
            .map(|d| Path::new("/var/lib").join(d)),
    );
    Some(paths)
}

/// A `[deploy] dir` the installed unit may not write: with the drop-in that fixes it.
fn deploy_sandbox_warnings(cfg: &Config, writable: &Option<Vec<PathBuf>>) -> Vec<String> {
    let Some(writable) = writable else {
        return Vec::new();
    };
    cfg.profiles
        .values()
        .filter_map(|p| {
            let d = p.deploy.as_ref()?;
            (!writable.iter().any(|w| d.dir.starts_with(w))).then(|| {
                format!(
                    "{}: [deploy] dir {} is read-only in the service's sandbox (ProtectSystem=strict): run `systemctl edit sectigo-connector` and add\n  [Service]\n  ReadWritePaths={}\n  or use a dir under /var/lib/sectigo-connector/",
                    p.file.display(),
                    d.dir.display(),
                    d.dir.display()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_dir_outside_the_sandbox_gets_the_drop_in() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("profiles.d")).unwrap();
        std::fs::write(
            d.path().join("profiles.d/web.toml"),
            "client_id = \"c\"\nclient_secret = \"s\"\nscm_url = \"https://x.enroll.enterprise.sectigo.com\"\n[deploy]\ndir = \"/etc/ssl/web\"\n",
        )
        .unwrap();
        let cfg = Config::load(d.path()).unwrap();
        let state = PathBuf::from("/var/lib/sectigo-connector");
        let w = deploy_sandbox_warnings(&cfg, &Some(vec![state.clone()]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("ReadWritePaths=/etc/ssl/web"), "{}", w[0]);
        assert!(w[0].contains("web.toml"));
        let covered = deploy_sandbox_warnings(&cfg, &Some(vec![state, "/etc/ssl".into()]));
        assert!(covered.is_empty(), "{covered:?}");
        assert!(
            deploy_sandbox_warnings(&cfg, &None).is_empty(),
            "not under systemd: nothing to say"
        );
    }
}
