//! `check-config --online`: each profile's token endpoint (and its `[admin]` account's), and
//! Jira's authentication, asked as a person waits for them.
//!
//! The clients are interactive ([`sectigo_scm::ClientSettings::interactive`]): an endpoint
//! that cannot be reached is reported within `[scm] timeout_secs` plus a few seconds, not
//! retried for the daemon's `retry_max_secs`. A wait over two seconds on a terminal says what
//! it waits for. Exit 78 when credentials are refused (the message names the profile's file
//! and the keys to fix), else 75 when an endpoint cannot be reached, else 1 when the
//! transitions cannot be checked against `--issue`.

use std::future::Future;
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use sectigo_core::config::{Config, SecretFrom};
use sectigo_core::names::IssueKey;
use sectigo_engine::ScmClients;
use sectigo_scm::admin::{AdminClient, AdminCreds};
use sectigo_scm::ScmError;

use super::output::write_out;
use super::runtime;
use crate::exit::{CliError, Exit};

/// How long a wait goes unannounced on a terminal.
const QUIET_WAIT: Duration = Duration::from_secs(2);

/// What one endpoint said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Ok,
    /// `--issue KEY` could not be checked.
    Failed,
    /// The endpoint could not be reached (or answered nonsense): try again later.
    Unreachable,
    /// The credentials were refused: the configuration must change.
    Refused,
}

impl Verdict {
    fn exit(self) -> i32 {
        match self {
            Verdict::Ok => Exit::Ok,
            Verdict::Failed => Exit::Failed,
            Verdict::Unreachable => Exit::TempFail,
            Verdict::Refused => Exit::Config,
        }
        .code()
    }
}

/// `fut`, announced on standard error (when it is a terminal) if it takes longer than
/// [`QUIET_WAIT`], and given up after `limit` (`None`: it did not answer in time).
async fn waited<F: Future>(what: &str, limit: Duration, fut: F) -> Option<F::Output> {
    let fut = tokio::time::timeout(limit, fut);
    tokio::pin!(fut);
    tokio::select! {
        r = &mut fut => return r.ok(),
        () = tokio::time::sleep(QUIET_WAIT) => {}
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "waiting for {what} (at most {}s more)...",
            limit.saturating_sub(QUIET_WAIT).as_secs()
        );
    }
    fut.await.ok()
}

/// What to fix when a token endpoint refuses an account: the keys, and the file they are in.
fn refused_fix(file: &Path, prefix: &str, from: &SecretFrom) -> String {
    let id = format!("`{prefix}client_id`");
    let secret = from.describe(&format!("{prefix}client_secret"));
    format!("fix {id} or {secret} in {}", file.display())
}

/// An SCM token request's verdict and the line that reports it.
fn token_verdict(
    who: &str,
    (token_url, key, file): (&str, &str, &Path),
    answer: Option<Result<(), ScmError>>,
    fix: &str,
    limit: Duration,
) -> (Verdict, String) {
    match answer {
        Some(Ok(())) => (
            Verdict::Ok,
            format!("online: {who}: the token endpoint {token_url} gave a token"),
        ),
        Some(Err(e @ ScmError::Auth(_))) => (
            Verdict::Refused,
            format!("online: {who}: REFUSED by {token_url}: {e}; {fix}"),
        ),
        Some(Err(e)) => (
            Verdict::Unreachable,
            format!(
                "online: {who}: UNREACHABLE: {e}; check `{key}` in {} and the network (exit 75: try again later)",
                file.display()
            ),
        ),
        None => (
            Verdict::Unreachable,
            format!(
                "online: {who}: UNREACHABLE: the token endpoint {token_url} did not answer within {}s",
                limit.as_secs()
            ),
        ),
    }
}

/// What `check-config --online` found so far: each line printed as it comes, and the worst
/// verdict (the exit code).
struct Report {
    worst: Verdict,
}

impl Report {
    fn say(&mut self, v: Verdict, line: String) {
        self.worst = self.worst.max(v);
        write_out(&format!("{line}\n"));
    }
}

/// `check-config --online`: each profile's token endpoints, and Jira's authentication.
pub fn check_online(cfg: &Config, issue: Option<&IssueKey>) -> Result<i32, CliError> {
    let worst = runtime()?.block_on(async {
        let mut report = Report { worst: Verdict::Ok };
        let clock = sectigo_core::clock::system();
        scm_endpoints(cfg, clock.clone(), &mut report).await?;
        if let Some(jc) = &cfg.connector.jira {
            let client = sectigo_jira::JiraClient::new(jc, clock)
                .map_err(|e| CliError::new(Exit::Config, anyhow::anyhow!("[jira]: {e}")))?;
            jira(cfg, jc, &client, issue, &mut report).await;
        }
        Ok::<Verdict, CliError>(report.worst)
    })?;
    Ok(worst.exit())
}

/// Each profile's token endpoint, and its `[admin]` one.
async fn scm_endpoints(
    cfg: &Config,
    clock: sectigo_core::clock::SharedClock,
    report: &mut Report,
) -> Result<(), CliError> {
    let mut say = |v: Verdict, line: String| report.say(v, line);
    // SCM clients alone: the state (which a running daemon holds) is not opened.
    let limits = std::sync::Arc::new(sectigo_scm::Limits::new(
        cfg.connector.scm.max_concurrent,
        cfg.connector.scm.max_requests_per_second,
    ));
    let settings = ScmClients::settings(cfg, clock.clone()).interactive();
    // The request timeout, the retries of a transient answer, and a margin.
    let limit = settings.timeout + settings.retry_max + Duration::from_secs(2);
    let clients = ScmClients::with_settings(cfg, limits.clone(), settings.clone())?;
    let http = sectigo_scm::http_client(&settings)
        .map_err(|e| CliError::new(Exit::Config, anyhow::anyhow!("{e}")))?;
    for p in cfg.profiles.values() {
        let client = clients.get(&p.name)?;
        let what = format!("profile {}'s token endpoint {}", p.name, p.token_url);
        let answer = waited(&what, limit, client.reserve())
            .await
            .map(|r| r.map(|_| ()));
        let fix = refused_fix(&p.file, "", &p.client_secret_from);
        let (v, line) = token_verdict(
            &format!("profile {}", p.name),
            (&p.token_url, "token_url", &p.file),
            answer,
            &fix,
            limit,
        );
        say(v, line);
        let (Some(a), Some(creds)) = (&p.admin, AdminCreds::from_profile(p)) else {
            continue;
        };
        let admin = AdminClient::new(http.clone(), creds, settings.clone(), limits.clone());
        let what = format!(
            "profile {}'s [admin] token endpoint {}",
            p.name, a.token_url
        );
        let answer = waited(&what, limit, admin.check_token()).await;
        let fix = refused_fix(&p.file, "[admin] ", &a.client_secret_from);
        let (v, line) = token_verdict(
            &format!("profile {} [admin]", p.name),
            (&a.token_url, "[admin] token_url", &p.file),
            answer,
            &fix,
            limit,
        );
        say(v, line);
    }
    Ok(())
}

/// Jira's authentication, and the configured transitions against one issue.
async fn jira(
    cfg: &Config,
    jc: &sectigo_core::config::JiraConfig,
    client: &sectigo_jira::JiraClient,
    issue: Option<&IssueKey>,
    report: &mut Report,
) {
    let mut say = |v: Verdict, line: String| report.say(v, line);
    let file = cfg.dir.join(sectigo_core::config::CONNECTOR_FILE);
    let limit = Duration::from_secs(jc.timeout_secs) + Duration::from_secs(2);
    let what = format!("Jira at {}", jc.url);
    match waited(&what, limit, client.myself()).await {
        Some(Ok((name, account))) => say(
            Verdict::Ok,
            format!(
                "online: jira {}: credentials taken, for {name} ({account})",
                jc.url
            ),
        ),
        Some(Err(e @ sectigo_jira::JiraError::Auth)) => say(
            Verdict::Refused,
            format!(
                "online: jira {}: REFUSED: {e}; fix [jira] {}{} in {}",
                jc.url,
                if jc.email.is_some() {
                    "`email` or "
                } else {
                    ""
                },
                jc.token_from.describe("token"),
                file.display()
            ),
        ),
        Some(Err(e @ sectigo_jira::JiraError::Permanent { .. })) => say(
            Verdict::Refused,
            format!(
                "online: jira {}: REFUSED: {e}; check [jira] `url` and `flavor` in {}",
                jc.url,
                file.display()
            ),
        ),
        Some(Err(e)) => say(
            Verdict::Unreachable,
            format!(
                "online: jira {}: UNREACHABLE: {e} (exit 75: try again later)",
                jc.url
            ),
        ),
        None => say(
            Verdict::Unreachable,
            format!(
                "online: jira {}: UNREACHABLE: no answer within {}s",
                jc.url,
                limit.as_secs()
            ),
        ),
    }
    transitions(jc, client, issue, limit, &what, report).await;
}

/// Each configured transition name against what Jira offers on `issue`.
async fn transitions(
    jc: &sectigo_core::config::JiraConfig,
    client: &sectigo_jira::JiraClient,
    issue: Option<&IssueKey>,
    limit: Duration,
    what: &str,
    report: &mut Report,
) {
    let mut say = |v: Verdict, line: String| report.say(v, line);
    let mut configured: Vec<(String, String)> = jc
        .transitions
        .iter()
        .map(|(ev, name)| (format!("[jira.transitions] {ev}"), name.clone()))
        .collect();
    if let Some(w) = &jc.workflow {
        configured.extend(
            w.transitions()
                .iter()
                .map(|(ev, name)| (format!("[jira.workflow] {ev}"), name.to_string())),
        );
    }
    match issue {
        _ if configured.is_empty() => {}
        None => say(
            Verdict::Ok,
            format!(
                "online: jira: the {} configured transitions are not checked: which Jira offers depends on an issue's status; `--issue KEY` checks them against one issue",
                configured.len()
            ),
        ),
        Some(key) => match waited(what, limit, client.transitions(key)).await {
            Some(Ok(offered)) => {
                let names: Vec<String> = offered
                    .iter()
                    .map(|t| format!("{:?} (to {:?})", t.name, t.to))
                    .collect();
                say(
                    Verdict::Ok,
                    format!(
                        "online: jira: {key} offers {}",
                        if names.is_empty() {
                            "no transition".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
                for (what, name) in &configured {
                    let ok = offered.iter().any(|t| t.answers_to(name));
                    say(
                        Verdict::Ok,
                        format!(
                            "online: jira: {what} = {name:?}: {}",
                            if ok {
                                format!("offered on {key}")
                            } else {
                                format!("NOT offered on {key} in its status (a typo, or offered only from another status)")
                            }
                        ),
                    );
                }
            }
            Some(Err(e)) => say(
                Verdict::Failed,
                format!("online: jira: {key}: REFUSED: {e}"),
            ),
            None => say(
                Verdict::Unreachable,
                format!(
                    "online: jira: {key}: no answer within {}s",
                    limit.as_secs()
                ),
            ),
        },
    }
}
