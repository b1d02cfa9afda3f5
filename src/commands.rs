//! The operator commands that read or change the state. Each is a [`Request`] executed against
//! an [`Engine`]: by the CLI directly when the daemon is not running, or by the daemon when the
//! CLI reaches it through the control socket (sled allows one process at a time).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use crate::config::{check_name, Config, PROFILES_DIR};
use crate::engine::policy::{self, Decision};
use crate::engine::{explain, is_issue_key, Engine, EngineError, ImportLine, RenewOutcome};
use crate::exit::Exit;
use crate::state::{blocking, CertRecord, CertState};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status {
        json: bool,
    },
    CertsList {
        profile: Option<String>,
        due: bool,
        json: bool,
    },
    CertsShow {
        id: String,
        json: bool,
    },
    CertsImport {
        profile: String,
        lines: Vec<(String, Option<String>)>,
    },
    CertsLink {
        id: String,
        key: String,
    },
    CertsForget {
        id: String,
    },
    Renew {
        id: String,
    },
    ForceRenew {
        profile: String,
    },
    ProfilesList,
    ProfilesRename {
        old: String,
        new: String,
    },
}

/// What a command prints and how it exits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub exit: i32,
    /// The configuration changed on disk (a profile was renamed): the daemon reloads.
    #[serde(default)]
    pub reload: bool,
    /// Work was queued (a force renewal): the daemon runs a cycle now.
    #[serde(default)]
    pub run_now: bool,
}

impl Reply {
    fn ok(stdout: String) -> Self {
        Reply {
            stdout,
            ..Default::default()
        }
    }
    fn err(exit: Exit, msg: impl std::fmt::Display) -> Self {
        Reply {
            stderr: format!("error: {msg}\n"),
            exit: exit.code(),
            ..Default::default()
        }
    }
}

/// What the daemon knows that the state does not.
#[derive(Debug, Clone, Default)]
pub struct DaemonInfo {
    pub pid: u32,
    pub started: Option<DateTime<Utc>>,
    pub next_cycle: Option<DateTime<Utc>>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn engine_error(e: EngineError) -> Reply {
    let exit = match &e {
        EngineError::Store(s) if s.is_temporary() => Exit::TempFail,
        EngineError::UnknownCert(_) | EngineError::UnknownProfile(_) => Exit::Usage,
        EngineError::Scm(s) if s.is_transient() => Exit::TempFail,
        _ => Exit::Failed,
    };
    Reply::err(exit, e)
}

pub async fn execute(
    req: Request,
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
    now: DateTime<Utc>,
) -> Reply {
    let r = match req {
        Request::Status { json } => status(engine, config, daemon, now, json).await,
        Request::CertsList { profile, due, json } => certs_list(engine, profile, due, json, now).await,
        Request::CertsShow { id, json } => certs_show(engine, &id, json, now).await,
        Request::CertsImport { profile, lines } => certs_import(engine, &profile, lines, now).await,
        Request::CertsLink { id, key } => certs_link(engine, &id, &key, now).await,
        Request::CertsForget { id } => certs_forget(engine, &id).await,
        Request::Renew { id } => renew(engine, &id).await,
        Request::ForceRenew { profile } => engine
            .start_force_renewal(&profile, now)
            .await
            .map(|d| Reply {
                stdout: format!("force renewal of profile {profile:?} started: every certificate will be renewed by {}\n", ts(d)),
                run_now: true,
                ..Default::default()
            }),
        Request::ProfilesList => profiles_list(engine, config).await,
        Request::ProfilesRename { old, new } => profiles_rename(engine, config, &old, &new).await,
    };
    r.unwrap_or_else(engine_error)
}

async fn all_records(engine: &Engine) -> Result<Vec<CertRecord>, EngineError> {
    Ok(blocking(engine.store(), |s| {
        let mut v = Vec::new();
        s.scan(&mut |r| {
            v.push(r);
            true
        })?;
        Ok(v)
    })
    .await?)
}

async fn status(
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
    now: DateTime<Utc>,
    as_json: bool,
) -> Result<Reply, EngineError> {
    let last = blocking(engine.store(), |s| s.last_cycle()).await?;
    let states = blocking(engine.store(), |s| s.profile_states()).await?;
    let recs = all_records(engine).await?;
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut orphaned: BTreeMap<String, u64> = BTreeMap::new();
    let mut due = 0u64;
    let mut problems = Vec::new();
    let policies = engine.policies(false, now).await?;
    let (pending, oldest, dead) = blocking(engine.store(), |s| s.outbox_stats()).await?;
    let issues = blocking(engine.store(), |s| s.issues()).await?;
    let workflow_on = config
        .connector
        .jira
        .as_ref()
        .is_some_and(|j| j.workflow.is_some());
    let mut enrollments: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut revoking = 0u64;
    let mut enroll_unknown = Vec::new();
    for i in &issues {
        if let Some(e) = &i.enroll {
            *enrollments.entry(e.name()).or_default() += 1;
            if matches!(e, crate::state::EnrollState::OutcomeUnknown { .. }) {
                enroll_unknown.push(i.key.clone());
            }
        }
        revoking += u64::from(i.revoking.is_some());
    }
    for r in &recs {
        *by_state.entry(r.state.name()).or_default() += 1;
        if !config.profiles.contains_key(&r.profile) {
            if r.state.is_live() {
                *orphaned.entry(r.profile.clone()).or_default() += 1;
            }
            continue;
        }
        if let Some(Decision::Renew { .. }) =
            policies.get(&r.profile).map(|p| policy::decide(r, p, now))
        {
            due += 1;
        }
        if matches!(
            r.state,
            CertState::Failed { .. } | CertState::OutcomeUnknown { .. }
        ) || r.failures > 0
        {
            problems.push(r);
        }
    }
    let next_cycle = daemon.and_then(|d| d.next_cycle).or_else(|| {
        crate::daemon::schedule::parse(&config.connector.schedule.cron)
            .ok()
            .and_then(|c| crate::daemon::schedule::next_after(&c, now))
    });
    if as_json {
        let v = json!({
            "daemon": daemon.map(|d| json!({"pid": d.pid, "started": d.started})),
            "last_cycle": last,
            "next_cycle": next_cycle,
            "certificates": recs.len(),
            "by_state": by_state,
            "due": due,
            "orphaned": orphaned,
            "force_renewals": states.iter().filter_map(|(n, s)| s.force.as_ref().map(|f| (n.clone(), f.clone()))).collect::<BTreeMap<_, _>>(),
            "problems": problems.iter().map(|r| json!({"id": r.id, "profile": r.profile, "state": r.state.name(), "failures": r.failures, "last_error": r.last_error})).collect::<Vec<_>>(),
            "jira": {"configured": config.connector.jira.is_some(), "pending": pending, "oldest": oldest, "undeliverable": dead},
            "workflow": {"enabled": workflow_on, "issues": issues.len(), "enrollments": enrollments, "revocations_pending": revoking, "enrollment_outcome_unknown": enroll_unknown},
        });
        return Ok(Reply::ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&v).expect("json")
        )));
    }
    let mut o = String::new();
    match daemon {
        Some(d) => writeln!(
            o,
            "daemon:        running (pid {}, since {})",
            d.pid,
            d.started.map(ts).unwrap_or_default()
        ),
        None => writeln!(o, "daemon:        not running"),
    }
    .ok();
    match &last {
        Some(c) => writeln!(
            o,
            "last cycle:    {} -> {}: {} renewed, {} requested, {} failed, {} pending collection{}",
            c.started.map(ts).unwrap_or_default(),
            c.finished.map(ts).unwrap_or_else(|| "(unfinished)".into()),
            c.renewed,
            c.requested,
            c.failed,
            c.pending,
            if c.skipped_no_auto_renew > 0 {
                format!(", {} due without auto-renew", c.skipped_no_auto_renew)
            } else {
                String::new()
            }
        ),
        None => writeln!(o, "last cycle:    none yet"),
    }
    .ok();
    writeln!(
        o,
        "next cycle:    {}",
        next_cycle.map(ts).unwrap_or_else(|| "-".into())
    )
    .ok();
    let counts: Vec<String> = by_state.iter().map(|(k, v)| format!("{v} {k}")).collect();
    writeln!(
        o,
        "certificates:  {} tracked ({})",
        recs.len(),
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    )
    .ok();
    writeln!(o, "due now:       {due}").ok();
    for (p, n) in &orphaned {
        writeln!(o, "orphaned:      {n} certificates of profile {p:?}, which is no longer configured (restore profiles.d/{p}.toml, or `certs forget` them)").ok();
    }
    for (name, st) in &states {
        if let Some(f) = &st.force {
            match f.completed {
                Some(c) => writeln!(
                    o,
                    "force renewal: {name}: complete at {} (started {})",
                    ts(c),
                    ts(f.started)
                ),
                None => writeln!(
                    o,
                    "force renewal: {name}: under way since {}, deadline {}",
                    ts(f.started),
                    ts(f.deadline)
                ),
            }
            .ok();
        }
    }
    for r in problems.iter().take(20) {
        writeln!(
            o,
            "problem:       {} ({}, {}): {}",
            r.id,
            r.profile,
            r.state.name(),
            r.last_error.as_deref().unwrap_or("-")
        )
        .ok();
    }
    if problems.len() > 20 {
        writeln!(
            o,
            "problem:       ... and {} more (certs list --json)",
            problems.len() - 20
        )
        .ok();
    }
    let jira = match (&config.connector.jira, oldest) {
        (None, _) if pending == 0 => "off (no [jira] section)".to_string(),
        (None, _) => format!("off (no [jira] section); {pending} updates queued from before"),
        (Some(_), None) => "all updates delivered".to_string(),
        (Some(_), Some(o)) => format!(
            "{pending} updates pending, the oldest from {} ({} min ago)",
            ts(o),
            (now - o).num_minutes()
        ),
    };
    writeln!(
        o,
        "jira:          {jira}{}",
        if dead > 0 {
            format!("; {dead} undeliverable (see the log)")
        } else {
            String::new()
        }
    )
    .ok();
    if workflow_on || !issues.is_empty() {
        let counts: Vec<String> = enrollments
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(
            o,
            "jira workflow: {}; {} issues handled, enrollments: {}{}",
            if workflow_on { "on" } else { "off" },
            issues.len(),
            if counts.is_empty() {
                "none".into()
            } else {
                counts.join(", ")
            },
            if revoking > 0 {
                format!(", {revoking} revocations pending")
            } else {
                String::new()
            }
        )
        .ok();
        for k in &enroll_unknown {
            writeln!(o, "problem:       {k}: enrollment outcome unknown (SCM may have enrolled and billed it; see the issue's comment)").ok();
        }
    }
    Ok(Reply::ok(o))
}

async fn certs_list(
    engine: &Engine,
    profile: Option<String>,
    due_only: bool,
    as_json: bool,
    now: DateTime<Utc>,
) -> Result<Reply, EngineError> {
    let mut recs = match &profile {
        Some(p) => {
            let p = p.clone();
            blocking(engine.store(), move |s| s.by_profile(&p)).await?
        }
        None => all_records(engine).await?,
    };
    if due_only {
        let policies = engine.policies(false, now).await?;
        recs.retain(|r| {
            matches!(
                policies.get(&r.profile).map(|p| policy::decide(r, p, now)),
                Some(
                    Decision::Renew { .. }
                        | Decision::Backoff { .. }
                        | Decision::ReportNoAutoRenew { .. }
                        | Decision::Reported
                )
            )
        });
    }
    recs.sort_by(|a, b| (a.not_after, &a.id).cmp(&(b.not_after, &b.id)));
    if as_json {
        return Ok(Reply::ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&recs).expect("json")
        )));
    }
    let mut o = String::new();
    writeln!(
        o,
        "{:<12} {:<16} {:<16} {:<20} {:<10} SUBJECT",
        "ID", "PROFILE", "STATE", "NOT AFTER", "JIRA"
    )
    .ok();
    for r in &recs {
        let orphan = if engine.profiles().contains_key(&r.profile) {
            ""
        } else {
            " (orphaned)"
        };
        writeln!(
            o,
            "{:<12} {:<16} {:<16} {:<20} {:<10} {}{orphan}",
            r.id,
            r.profile,
            r.state.name(),
            ts(r.not_after),
            r.jira_issue.as_deref().unwrap_or("-"),
            r.subject_cn
        )
        .ok();
    }
    writeln!(
        o,
        "{} certificate{}",
        recs.len(),
        if recs.len() == 1 { "" } else { "s" }
    )
    .ok();
    Ok(Reply::ok(o))
}

async fn get(engine: &Engine, id: &str) -> Result<CertRecord, EngineError> {
    let i = id.to_string();
    blocking(engine.store(), move |s| s.get(&i))
        .await?
        .ok_or_else(|| EngineError::UnknownCert(id.into()))
}

async fn certs_show(
    engine: &Engine,
    id: &str,
    as_json: bool,
    now: DateTime<Utc>,
) -> Result<Reply, EngineError> {
    let r = get(engine, id).await?;
    let next = match engine.explain(&r, now).await? {
        Some(d) => explain(&d),
        None => format!("none: profile {:?} is not configured (orphaned)", r.profile),
    };
    if as_json {
        let mut v = serde_json::to_value(&r).expect("json");
        v["next_action"] = json!(next);
        return Ok(Reply::ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&v).expect("json")
        )));
    }
    let mut o = String::new();
    writeln!(o, "certificate:  {}", r.id).ok();
    writeln!(o, "profile:      {}", r.profile).ok();
    writeln!(o, "subject:      CN={}", r.subject_cn).ok();
    writeln!(
        o,
        "SANs:         {}",
        if r.sans.is_empty() {
            "-".into()
        } else {
            r.sans.join(", ")
        }
    )
    .ok();
    writeln!(o, "serial:       {}", r.serial).ok();
    writeln!(
        o,
        "valid:        {} .. {}",
        ts(r.not_before),
        ts(r.not_after)
    )
    .ok();
    let state = match &r.state {
        CertState::Collecting { new_id, at } => format!(
            "collecting (renewed as {new_id} at {}, waiting for issuance)",
            ts(*at)
        ),
        CertState::Superseded { by, at } => format!("superseded by {by} at {}", ts(*at)),
        CertState::Failed { reason, at } => format!("failed at {}: {reason}", ts(*at)),
        CertState::OutcomeUnknown { at, .. } => format!(
            "outcome unknown since {} (a renew call's answer was lost; check SCM)",
            ts(*at)
        ),
        s => s.name().to_string(),
    };
    writeln!(o, "state:        {state}").ok();
    writeln!(
        o,
        "jira issue:   {}",
        r.jira_issue.as_deref().unwrap_or("-")
    )
    .ok();
    if r.failures > 0 {
        writeln!(
            o,
            "failures:     {} (last: {})",
            r.failures,
            r.last_error.as_deref().unwrap_or("-")
        )
        .ok();
    }
    writeln!(o, "next action:  {next}").ok();
    writeln!(o, "history:").ok();
    for h in &r.history {
        writeln!(o, "  {}  {}", ts(h.at), h.event).ok();
    }
    Ok(Reply::ok(o))
}

async fn certs_import(
    engine: &Engine,
    profile: &str,
    lines: Vec<(String, Option<String>)>,
    now: DateTime<Utc>,
) -> Result<Reply, EngineError> {
    let lines = lines
        .into_iter()
        .map(|(cert_id, issue)| ImportLine { cert_id, issue })
        .collect();
    let s = engine.import(profile, lines, now).await?;
    let mut o = String::new();
    writeln!(
        o,
        "imported {}, skipped {} (already tracked), failed {}",
        s.imported.len(),
        s.skipped.len(),
        s.failed.len()
    )
    .ok();
    let mut err = String::new();
    for (id, e) in &s.failed {
        writeln!(err, "failed: {id}: {e}").ok();
    }
    let exit = if s.failed.is_empty() {
        0
    } else {
        Exit::Failed.code()
    };
    Ok(Reply {
        stdout: o,
        stderr: err,
        exit,
        ..Default::default()
    })
}

async fn certs_link(
    engine: &Engine,
    id: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Reply, EngineError> {
    if !is_issue_key(key) {
        return Ok(Reply::err(
            Exit::Usage,
            format!("{key:?} is not a Jira issue key (like CERT-123)"),
        ));
    }
    let mut r = get(engine, id).await?;
    let before = r.jira_issue.replace(key.to_string());
    r.log(now, format!("linked to Jira issue {key}"));
    info!(profile = %r.profile, cert_id = %r.id, jira_key = %key, "linked certificate {} to {key}", r.id);
    blocking(engine.store(), move |s| {
        s.put(&[r])?;
        s.flush()
    })
    .await?;
    Ok(Reply::ok(match before {
        Some(b) if b != key => format!("certificate {id} linked to {key} (was {b})\n"),
        _ => format!("certificate {id} linked to {key}\n"),
    }))
}

async fn certs_forget(engine: &Engine, id: &str) -> Result<Reply, EngineError> {
    let i = id.to_string();
    let Some(r) = blocking(engine.store(), move |s| {
        let r = s.remove(&i)?;
        s.flush()?;
        Ok(r)
    })
    .await?
    else {
        return Err(EngineError::UnknownCert(id.into()));
    };
    info!(profile = %r.profile, cert_id = %r.id, "stopped tracking {} ({}, state {}, expires {}); its history follows", r.id, r.subject_cn, r.state.name(), ts(r.not_after));
    for h in &r.history {
        info!(profile = %r.profile, cert_id = %r.id, "history of {}: {} {}", r.id, ts(h.at), h.event);
    }
    Ok(Reply::ok(format!(
        "stopped tracking certificate {id} ({}); its history was written to the log\n",
        r.subject_cn
    )))
}

async fn renew(engine: &Engine, id: &str) -> Result<Reply, EngineError> {
    match engine.renew(id, None).await? {
        RenewOutcome::Requested { new_id } => {
            let c = engine.collect_pending(Utc::now()).await?;
            let issued = if c.renewed > 0 {
                "issued and recorded"
            } else {
                "not issued yet; it is collected on the next cycle"
            };
            Ok(Reply::ok(format!(
                "certificate {id} renewed: new certificate {new_id} ({issued})\n"
            )))
        }
        RenewOutcome::Skipped(why) => Ok(Reply::err(
            Exit::Failed,
            format!("certificate {id} was not renewed: {why}"),
        )),
        RenewOutcome::Failed(e) => Ok(Reply::err(Exit::Failed, format!("renewal failed: {e}"))),
        RenewOutcome::Unknown(e) => Ok(Reply::err(
            Exit::Failed,
            format!("renewal outcome unknown: {e}"),
        )),
    }
}

async fn profiles_list(engine: &Engine, config: &Config) -> Result<Reply, EngineError> {
    let recs = all_records(engine).await?;
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &recs {
        let e = counts.entry(r.profile.clone()).or_default();
        if r.state.is_live() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let mut o = String::new();
    writeln!(
        o,
        "{:<20} {:>8} {:>8}  {:<8} {:<6} SCM URL",
        "PROFILE", "LIVE", "PAST", "WINDOW", "AUTO"
    )
    .ok();
    for p in config.profiles.values() {
        let (live, past) = counts.remove(&p.name).unwrap_or_default();
        let window = if p.force_renewal {
            "force".to_string()
        } else {
            format!("{}d", p.expiry_window_days)
        };
        writeln!(
            o,
            "{:<20} {:>8} {:>8}  {:<8} {:<6} {}",
            p.name, live, past, window, p.auto_renew, p.scm_url
        )
        .ok();
    }
    for (name, (live, past)) in counts {
        writeln!(
            o,
            "{:<20} {:>8} {:>8}  (orphaned: no profiles.d/{name}.toml)",
            name, live, past
        )
        .ok();
    }
    Ok(Reply::ok(o))
}

async fn profiles_rename(
    engine: &Engine,
    config: &Config,
    old: &str,
    new: &str,
) -> Result<Reply, EngineError> {
    if let Err(e) = check_name(new) {
        return Ok(Reply::err(Exit::Usage, e));
    }
    let Some(p) = config.profiles.get(old) else {
        return Err(EngineError::UnknownProfile(old.into()));
    };
    let dir = config.dir.join(PROFILES_DIR);
    let to = dir.join(format!("{new}.toml"));
    if to.exists()
        || config
            .profiles
            .keys()
            .any(|n| n.eq_ignore_ascii_case(new) && n != old)
    {
        return Ok(Reply::err(
            Exit::Usage,
            format!("{} already exists", to.display()),
        ));
    }
    // The file first, then the state: if we stop in between, the next start recognises the
    // rename by client_id and scm_url and moves the state then.
    if let Err(e) = std::fs::rename(&p.file, &to) {
        return Ok(Reply::err(
            Exit::Failed,
            format!(
                "cannot rename {} to {}: {e}",
                p.file.display(),
                to.display()
            ),
        ));
    }
    let (o, n) = (old.to_string(), new.to_string());
    let moved = blocking(engine.store(), move |s| {
        let m = s.rename_profile(&o, &n)?;
        s.flush()?;
        Ok(m)
    })
    .await?;
    info!(profile = %new, "profile {old:?} renamed to {new:?}; {moved} certificates moved");
    Ok(Reply {
        stdout: format!(
            "profile {old:?} renamed to {new:?} ({} -> {}); {moved} certificates moved\n",
            p.file.display(),
            to.display()
        ),
        reload: true,
        ..Default::default()
    })
}
