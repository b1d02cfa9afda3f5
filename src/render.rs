//! How replies look: text for a person at a terminal, or, with `--json`, the serialization of
//! the reply's own type. Pure functions of the reply (and `now`, for ages).
//!
//! Text that comes from SCM or Jira (a certificate's CN and SANs, its serial, error messages,
//! history entries, which quote them) is shown through [`E`] (`Escaped`): a control character
//! in it can neither start a line of its own nor reach the terminal as an escape sequence.
//! (`--json` escapes them as JSON does.)

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use sectigo_core::text::Escaped;
use sectigo_model::CertState;

use crate::api::{
    CertDetail, CertList, DueChangeReport, ProfileRow, ReloadReport, Response, StatusReport,
};
use sectigo_core::names::ProfileName;
use sectigo_engine::policy::DueChange;

pub use sectigo_core::text::ts;
use sectigo_core::text::Escaped as E;

/// `n thing` or `n things`.
pub use sectigo_core::text::count as plural;

fn pretty<T: Serialize + ?Sized>(v: &T) -> String {
    // Serializing these plain data types cannot fail (string keys, no foreign Serialize).
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": {e:?}}}"));
    s.push('\n');
    s
}

/// The reply as JSON: the payload's own serialization (`certs list`: the records).
pub fn json(r: &Response) -> String {
    match r {
        Response::Status(s) => pretty(s),
        Response::Certs(l) => pretty(&l.records),
        Response::Cert(c) => pretty(c),
        Response::Imported(s) => pretty(s),
        Response::Profiles(p) => pretty(p),
        Response::Plan(p) => pretty(p),
        Response::Applied(r) => pretty(r),
        Response::Renamed(r) => pretty(r),
        Response::Reloaded(r) => pretty(r),
        other => pretty(other),
    }
}

/// The reply as text: (standard output, standard error).
pub fn text(r: &Response, now: DateTime<Utc>) -> (String, String) {
    let out = match r {
        Response::Status(s) => status(s, now),
        Response::Certs(l) => certs_list(l, now),
        Response::Cert(c) => cert(c),
        Response::Imported(s) => {
            let mut err = String::new();
            for (id, e) in &s.failed {
                writeln!(err, "failed: {id}: {}", E(e)).ok();
            }
            return (
                format!(
                    "imported {}, skipped {} (already tracked), failed {}\n",
                    s.imported.len(),
                    s.skipped.len(),
                    s.failed.len()
                ),
                err,
            );
        }
        Response::Exported {
            id,
            name,
            private_key,
            ..
        } => format!(
            "certificate {id} exported: {name}/cert.pem, chain.pem, fullchain.pem{}\n",
            if private_key.is_some() { ", privkey.pem" } else { "" }
        ),
        Response::Linked { id, key, was } => match was {
            Some(b) => format!("certificate {id} linked to {key} (was {b})\n"),
            None => format!("certificate {id} linked to {key}\n"),
        },
        Response::Resolved(r) => format!("{}: {}\n", r.target, E(&r.outcome.to_string())),
        Response::Deployed { id, deployed } => {
            use sectigo_engine::deploy::Redeploy;
            let dir = deployed.dir.display();
            match &deployed.outcome {
                Redeploy::Done if deployed.hook => {
                    format!("certificate {id} deployed to {dir}; its hook succeeded\n")
                }
                Redeploy::Done => format!("certificate {id} deployed to {dir} (no hook)\n"),
                Redeploy::HookWithHelper => format!(
                    "certificate {id} deployed to {dir}; its hook was handed to the root helper (sectigo-connector-hooks.path): the log and `status` tell its result\n"
                ),
                Redeploy::Failed { error, retry_at } => {
                    return (
                        String::new(),
                        format!(
                            "certificate {id}: deploy to {dir} failed: {error}; {}\n",
                            retry_at.map_or("it is tried again".to_string(), |t| format!(
                                "it is tried again at {}",
                                ts(t)
                            ))
                        ),
                    )
                }
            }
        }
        Response::Plan(items) => crate::api::declared::plan_text(items),
        Response::Applied(r) => crate::api::declared::applied_text(r),
        Response::Revoked { id, subject_cn } => format!(
            "revoked certificate {id} ({}) in SCM; it is no longer renewed\n",
            Escaped(subject_cn)
        ),
        Response::Forgotten { id, subject_cn } => format!(
            "stopped tracking certificate {id} ({}); its history was written to the log\n",
            E(subject_cn)
        ),
        Response::Renewed { id, new_id, issued } => format!(
            "certificate {id} renewed: new certificate {new_id} ({})\n",
            if *issued {
                "issued and recorded"
            } else {
                "not issued yet; it is collected on the next cycle"
            }
        ),
        Response::RenewedMany { renewed, failed } => {
            let mut out = String::new();
            for (id, new_id) in renewed {
                writeln!(out, "certificate {id} renewed: new certificate {new_id}").ok();
            }
            let mut err = String::new();
            for (id, e) in failed {
                writeln!(err, "certificate {id}: {}", E(e)).ok();
            }
            return (out, err);
        }
        Response::ForceRenewStarted { profile, deadline } => format!(
            "force renewal of profile {profile:?} started: every certificate will be renewed by {}\n",
            ts(*deadline)
        ),
        Response::Profiles(rows) => profiles(rows),
        Response::Renamed(r) => {
            let n = &r.renamed;
            let mut out = format!(
                "profile {:?} renamed to {:?} ({} -> {}); {} moved\n",
                n.old,
                n.new,
                n.from.display(),
                n.to.display(),
                plural(n.moved as u64, "certificate", "certificates")
            );
            if let Some(rl) = &r.reload {
                out.push_str(&reload(rl));
            }
            out
        }
        Response::Reloaded(r) => reload(r),
        Response::DryRun(d) => dry_run(d),
        Response::DueChange(d) => due_change(d),
        Response::Cycle(c) => return cycle_run(c),
        Response::StateExported { counts, bytes, .. } => format!("{}\n", exported(counts, *bytes)),
        Response::Tracked(ids) => ids.iter().map(|i| format!("{i}\n")).collect(),
    };
    (out, String::new())
}

/// A cycle that ran (`run --once`): the certificates it acted on, its summary line; the
/// failures on standard error.
pub fn cycle_run(c: &crate::api::CycleRun) -> (String, String) {
    let mut o = String::new();
    for p in &c.planned {
        writeln!(
            o,
            "{:<12} {:<16} {:<30} expires {}  {}",
            p.id,
            p.profile,
            Escaped(&p.subject_cn),
            ts(p.not_after),
            E(&p.action)
        )
        .ok();
    }
    let s = &c.summary;
    writeln!(o, "cycle: {} renewed, {} renewal requests, {} failed, {} still pending collection, {} due without auto-renew", s.renewed, s.requested, s.failed, s.pending, s.skipped_no_auto_renew).ok();
    let mut err = String::new();
    for e in &s.errors {
        writeln!(err, "failed: {}", Escaped(e)).ok();
    }
    (o, err)
}

fn dry_run(d: &crate::api::DryRunReport) -> String {
    let mut o = String::new();
    for p in &d.planned {
        writeln!(
            o,
            "{:<12} {:<16} {:<30} expires {}  {}",
            p.id,
            p.profile,
            E(&p.subject_cn).to_string(),
            ts(p.not_after),
            E(&p.action)
        )
        .ok();
    }
    for (p, refused) in &d.credentials {
        match refused {
            None => writeln!(
                o,
                "dry run: profile {p}: credentials taken (a token was issued)"
            ),
            Some(e) => writeln!(
                o,
                "dry run: profile {p}: credentials REFUSED: {}; its renewals would fail",
                E(e)
            ),
        }
        .ok();
    }
    writeln!(
        o,
        "dry run: {} would be renewed, {} due without auto-renew; nothing billable was sent, nothing written",
        d.would_renew, d.due_no_auto_renew
    )
    .ok();
    o
}

/// What a state export or import holds, in a line.
pub fn exported(c: &sectigo_state::Counts, bytes: u64) -> String {
    format!(
        "{}, {} (with {}), {}, {} and {} ({bytes} bytes)",
        plural(c.certificates, "certificate", "certificates"),
        plural(c.issues, "Jira issue record", "Jira issue records"),
        plural(c.csrs, "CSR", "CSRs"),
        plural(c.outbox, "queued Jira update", "queued Jira updates"),
        plural(c.profiles, "profile", "profiles"),
        plural(c.keys, "private key", "private keys"),
    )
}

/// One profile's [`DueChange`] in words: `against_running` compares with the running
/// configuration ("more"), else with nothing (what a first start renews).
pub fn due_change_line(profile: &ProfileName, d: &DueChange, against_running: bool) -> String {
    let what = if against_running {
        format!(
            "{} due now that the running configuration does not renew yet",
            plural(d.newly_due, "more certificate", "more certificates")
        )
    } else {
        format!(
            "{} due now",
            plural(d.newly_due, "certificate", "certificates")
        )
    };
    let budget = match d.limit {
        None => "no daily budget: all go at the next cycle".to_string(),
        Some(limit) => {
            let wait = d.newly_due - d.through_today;
            format!(
                "the daily budget ({} of {limit} used in 24 h) lets {} through today{}",
                d.used,
                d.through_today,
                if wait > 0 {
                    format!(", {wait} wait")
                } else {
                    String::new()
                }
            )
        }
    };
    format!("profile {profile}: {what}; {budget}; each renewal is billed")
}

fn due_change(r: &DueChangeReport) -> String {
    let mut o = String::new();
    let against = if r.against_running {
        "against the running daemon's state"
    } else {
        "against the state (no daemon runs)"
    };
    if r.due.is_empty() {
        let _ = writeln!(
            o,
            "due: {against}, these files make no {}certificate due",
            if r.against_running { "more " } else { "" }
        );
    }
    for (p, d) in &r.due {
        let _ = writeln!(
            o,
            "due: {against}: {}",
            due_change_line(p, d, r.against_running)
        );
    }
    o
}

fn reload(r: &ReloadReport) -> String {
    if r.applied() {
        let mut o = format!(
            "configuration reloaded from {}: {}\n",
            r.config_dir.display(),
            plural(r.profiles as u64, "profile", "profiles")
        );
        for (p, d) in &r.due {
            let _ = writeln!(o, "  {}", due_change_line(p, d, true));
        }
        o
    } else {
        let mut o = format!(
            "configuration in {} refused; the running configuration stays:\n",
            r.config_dir.display()
        );
        for e in &r.errors {
            writeln!(o, "  {}", E(e)).ok();
        }
        o
    }
}

fn status(s: &StatusReport, now: DateTime<Utc>) -> String {
    let mut o = status_daemon(s);
    o.push_str(&status_certificates(s));
    o.push_str(&status_jira(s, now));
    o
}

/// `status`: the daemon, its last reload, the last and next cycle.
fn status_daemon(s: &StatusReport) -> String {
    let mut o = String::new();
    match &s.daemon {
        Some(d) => writeln!(
            o,
            "daemon:        running (pid {}, since {})",
            d.pid,
            d.started.map(ts).unwrap_or_default()
        ),
        None => writeln!(o, "daemon:        not running"),
    }
    .ok();
    if let Some(r) = &s.last_reload {
        let verdict = if r.applied() {
            "applied".to_string()
        } else {
            format!("refused: {}", E(&r.errors.join("; ")))
        };
        writeln!(o, "last reload:   {} ({}): {verdict}", ts(r.at), r.cause).ok();
    }
    match &s.last_cycle {
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
        s.next_cycle.map(ts).unwrap_or_else(|| "-".into())
    )
    .ok();
    o
}

/// `status`: the certificates by state, what is due, and what needs a look.
fn status_certificates(s: &StatusReport) -> String {
    let mut o = String::new();
    for l in outage_lines(s) {
        writeln!(o, "problem:       {l}").ok();
    }
    // The declared certificates that need a person (`certs plan` lists them all).
    for l in crate::api::declared::needs_a_person(&s.declared) {
        writeln!(o, "problem:       {l}").ok();
    }
    let budgets: Vec<String> = s
        .budgets
        .iter()
        .filter(|(_, u)| u.used > 0 || u.limit.is_some())
        .map(|(p, u)| format!("{p} {}", usage(*u)))
        .collect();
    if !budgets.is_empty() {
        writeln!(o, "billed (24 h): {}", budgets.join(", ")).ok();
    }
    let counts: Vec<String> = s
        .inventory
        .by_state
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    writeln!(
        o,
        "certificates:  {} tracked ({})",
        s.inventory.certificates,
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    )
    .ok();
    // The same certificates as `certs list --due`, told apart.
    let mut also = Vec::new();
    if s.inventory.retry_waiting > 0 {
        also.push(format!("{} waiting out a retry", s.inventory.retry_waiting));
    }
    if s.inventory.due_no_auto_renew > 0 {
        also.push(format!(
            "{} due with auto_renew off",
            s.inventory.due_no_auto_renew
        ));
    }
    if also.is_empty() {
        writeln!(o, "due now:       {}", s.inventory.due).ok();
    } else {
        writeln!(
            o,
            "due now:       {} (and {}; `certs list --due` lists all)",
            s.inventory.due,
            also.join(", ")
        )
        .ok();
    }
    if s.inventory.stalled > 0 {
        writeln!(
            o,
            "stalled:       {} accepted by SCM and not issued in time (approve them in SCM?)",
            plural(s.inventory.stalled, "renewal", "renewals")
        )
        .ok();
    }
    for (p, n) in &s.inventory.orphaned {
        match s.unsettled_renames.get(p) {
            Some(c) => writeln!(o, "orphaned:      {} of profile {p:?}, {}", plural(*n, "certificate", "certificates"), rename_hint(p, c)).ok(),
            None => writeln!(o, "orphaned:      {} of profile {p:?}, which is no longer configured (restore profiles.d/{p}.toml, or `certs forget` them)", plural(*n, "certificate", "certificates")).ok(),
        };
    }
    for (name, f) in &s.force_renewals {
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
    for p in s.inventory.problems.iter().take(20) {
        writeln!(
            o,
            "problem:       {} ({}, {}): {}",
            p.id,
            p.profile,
            p.state,
            E(p.last_error.as_deref().unwrap_or("-"))
        )
        .ok();
    }
    if s.inventory.problems.len() > 20 {
        writeln!(
            o,
            "problem:       ... and {} more (certs list --json)",
            s.inventory.problems.len() - 20
        )
        .ok();
    }
    o
}

/// `status`: the Jira updates and the Jira workflow.
fn status_jira(s: &StatusReport, now: DateTime<Utc>) -> String {
    let mut o = String::new();
    let j = &s.jira;
    let jira = match (j.configured, j.oldest) {
        (false, _) if j.pending == 0 => "off (no [jira] section)".to_string(),
        (false, _) => format!(
            "off (no [jira] section); {} queued from before",
            plural(j.pending as u64, "update", "updates")
        ),
        (true, None) => "all updates delivered".to_string(),
        (true, Some(oldest)) => format!(
            "{} pending, the oldest from {} ({} min ago)",
            plural(j.pending as u64, "update", "updates"),
            ts(oldest),
            (now - oldest).num_minutes()
        ),
    };
    writeln!(
        o,
        "jira:          {jira}{}",
        if j.undeliverable > 0 {
            format!("; {} undeliverable (see the log)", j.undeliverable)
        } else {
            String::new()
        }
    )
    .ok();
    let w = &s.workflow;
    if w.enabled || w.issues > 0 {
        let counts: Vec<String> = w
            .enrollments
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(
            o,
            "jira workflow: {}; {} handled, enrollments: {}{}",
            if w.enabled { "on" } else { "off" },
            plural(w.issues as u64, "issue", "issues"),
            if counts.is_empty() {
                "none".into()
            } else {
                counts.join(", ")
            },
            if w.revocations_pending > 0 {
                format!(
                    ", {} pending",
                    plural(w.revocations_pending, "revocation", "revocations")
                )
            } else {
                String::new()
            }
        )
        .ok();
        for k in &w.enrollment_outcome_unknown {
            writeln!(o, "problem:       {k}: enrollment outcome unknown (SCM may have enrolled and billed it; see the issue's comment)").ok();
        }
    }
    o
}

fn certs_list(l: &CertList, now: DateTime<Utc>) -> String {
    let mut o = String::new();
    writeln!(
        o,
        "{:<12} {:<16} {:<16} {:<20} {:>5} {:<10} SUBJECT",
        "ID", "PROFILE", "STATE", "NOT AFTER", "DAYS", "JIRA"
    )
    .ok();
    for r in &l.records {
        let orphan = if l.configured.contains(&r.profile) {
            ""
        } else {
            " (orphaned)"
        };
        writeln!(
            o,
            "{:<12} {:<16} {:<16} {:<20} {:>5} {:<10} {}{orphan}",
            r.id,
            r.profile,
            r.state.name(),
            ts(r.not_after),
            (r.not_after - now).num_days(),
            r.jira_issue.as_deref().unwrap_or("-"),
            E(&r.subject_cn)
        )
        .ok();
    }
    writeln!(
        o,
        "{}",
        plural(l.records.len() as u64, "certificate", "certificates")
    )
    .ok();
    o
}

/// `status --check`: one line per thing that needs a person (empty: nothing does).
/// What to run when a profile's file went away while several with its client_id and scm_url
/// appeared (or several went for one): the exact `profiles rename` for each candidate.
fn rename_hint(old: &ProfileName, cands: &[ProfileName]) -> String {
    let runs = cands
        .iter()
        .map(|c| format!("`sectigo-connector profiles rename {old} {c}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    format!(
        "whose file is gone while profiles.d/ gained {} with its client_id and scm_url: if one is its file renamed, run {runs} (nothing was moved: which one could not be told)",
        cands
            .iter()
            .map(|c| format!("{c}.toml"))
            .collect::<Vec<_>>()
            .join(" and ")
    )
}

pub fn needs_a_person(s: &StatusReport) -> Vec<String> {
    let mut out = Vec::new();
    if s.daemon.is_none() {
        out.push("daemon: not running".to_string());
    }
    if let Some(r) = s.last_reload.as_ref().filter(|r| !r.applied()) {
        out.push(format!(
            "configuration: the last reload ({}, {}) was refused: {}",
            E(&r.cause),
            ts(r.at),
            E(&r.errors.join("; "))
        ));
    }
    for p in &s.inventory.problems {
        let what = match p.state.as_str() {
            "outcome-unknown" => {
                "outcome unknown: check SCM, then `renew` it or `certs resolve` it".to_string()
            }
            "settling" => "outcome unknown, being settled by the daemon".to_string(),
            "failed" => "failed: a person must fix it in SCM or here".to_string(),
            "deploy-failed" => format!("not deployed ({} attempts)", p.failures),
            _ if p.failures > 0 => format!(
                "{} ({})",
                plural(u64::from(p.failures), "failed attempt", "failed attempts"),
                E(&p.state)
            ),
            other => E(other).to_string(),
        };
        out.push(format!(
            "certificate {} ({}): {what}: {}",
            p.id,
            p.profile,
            E(p.last_error.as_deref().unwrap_or("-"))
        ));
    }
    if s.inventory.stalled > 0 {
        out.push(format!(
            "stalled: {} accepted by SCM and not issued in time (approve them in SCM?)",
            plural(s.inventory.stalled, "renewal", "renewals")
        ));
    }
    if let Some(c) = &s.last_cycle {
        if c.skipped_no_auto_renew > 0 {
            out.push(format!(
                "expiring: {} inside the window with auto_renew = false: renew by hand",
                plural(c.skipped_no_auto_renew, "certificate", "certificates")
            ));
        }
    }
    for (p, n) in &s.inventory.orphaned {
        out.push(match s.unsettled_renames.get(p) {
            Some(c) => format!(
                "orphaned: {} of profile {p:?}, {}",
                plural(*n, "certificate", "certificates"),
                rename_hint(p, c)
            ),
            None => format!(
                "orphaned: {} of profile {p:?}, which is no longer configured",
                plural(*n, "certificate", "certificates")
            ),
        });
    }
    if s.jira.undeliverable > 0 {
        out.push(format!(
            "jira: {} Jira will not take (issue gone or no permission)",
            plural(s.jira.undeliverable as u64, "update", "updates")
        ));
    }
    for k in &s.workflow.enrollment_outcome_unknown {
        out.push(format!(
            "enrollment {k}: outcome unknown: check SCM, then `certs resolve {k}`"
        ));
    }
    out.extend(crate::api::declared::needs_a_person(&s.declared));
    out.extend(outage_lines(s));
    out
}

fn cert(c: &CertDetail) -> String {
    let r = &c.record;
    let mut o = String::new();
    writeln!(o, "certificate:  {}", r.id).ok();
    writeln!(o, "profile:      {}", r.profile).ok();
    writeln!(o, "subject:      CN={}", E(&r.subject_cn)).ok();
    writeln!(
        o,
        "SANs:         {}",
        if r.sans.is_empty() {
            "-".into()
        } else {
            E(&r.sans.join(", ")).to_string()
        }
    )
    .ok();
    writeln!(o, "serial:       {}", E(&r.serial)).ok();
    writeln!(
        o,
        "valid:        {} .. {}",
        ts(r.not_before),
        ts(r.not_after)
    )
    .ok();
    if let Some(n) = &r.name {
        writeln!(o, "name:         {n} (its [deploy] directory)").ok();
    }
    if let Some(j) = &r.deploy {
        let what = if j.files_done {
            "the hook"
        } else {
            "the files"
        };
        match (&j.last_error, j.next_attempt) {
            (Some(e), Some(t)) => writeln!(
                o,
                "deploy:       {what} failed {} {} ({}); next try at {}",
                j.attempts,
                if j.attempts == 1 { "time" } else { "times" },
                E(e),
                ts(t)
            ),
            _ => writeln!(o, "deploy:       {what} owed since {}", ts(j.since)),
        }
        .ok();
    }
    let state = match &r.state {
        CertState::Collecting { new_id, at } => format!(
            "collecting (renewed as {new_id} at {}, waiting for issuance)",
            ts(*at)
        ),
        CertState::Superseded { by, at } => format!("superseded by {by} at {}", ts(*at)),
        CertState::Failed { reason, at } => format!("failed at {}: {}", ts(*at), E(reason)),
        CertState::OutcomeUnknown { at, request, .. } => {
            let find = match request {
                Some(r) => format!("in SCM, search the certificates' comments for \"{r}\""),
                None => format!(
                    "in SCM, look for a certificate for CN={} issued after {}",
                    E(&r.subject_cn),
                    ts(*at)
                ),
            };
            format!(
                "outcome unknown since {} (a renew call's answer was lost; SCM may have renewed, and billed, it)\n              to settle it: {find}; then `sectigo-connector certs resolve {} --renewed-as NEW_ID`, or `--not-renewed` if SCM holds no such request",
                ts(*at),
                r.id
            )
        }
        s => s.name().to_string(),
    };
    writeln!(o, "state:        {state}").ok();
    if let (CertState::OutcomeUnknown { .. }, Some(e)) = (&r.state, &r.last_error) {
        writeln!(o, "found:        {e}").ok();
    }
    if r.scm_auto_renew {
        writeln!(
            o,
            "warning:      {}",
            sectigo_engine::inventory::SCM_AUTO_RENEW
        )
        .ok();
    }
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
            E(r.last_error.as_deref().unwrap_or("-"))
        )
        .ok();
    }
    writeln!(o, "next action:  {}", E(&c.next_action)).ok();
    writeln!(o, "history:").ok();
    for h in &r.history {
        writeln!(o, "  {}  {}", ts(h.at), E(&h.event)).ok();
    }
    o
}

/// A budget as `used/limit` (`used/-` without a limit).
fn usage(u: sectigo_engine::Usage) -> String {
    match u.limit {
        Some(l) => format!("{}/{l}", u.used),
        None => format!("{}/-", u.used),
    }
}

/// The lines of what stops renewals SCM-side, and of renewals held by the budget: for
/// `status` and `status --check` alike.
fn outage_lines(s: &StatusReport) -> Vec<String> {
    let mut out = Vec::new();
    for o in &s.outages {
        let waiting = if o.waiting > 0 {
            format!("; {} wait", plural(o.waiting, "renewal", "renewals"))
        } else {
            String::new()
        };
        out.push(match o.kind {
            sectigo_model::OutageKind::Unreachable => format!(
                "SCM unreachable: {} since {} ({}){waiting}; the connector probes it, nothing else is sent",
                Escaped(&o.what),
                ts(o.since),
                Escaped(&o.error)
            ),
            sectigo_model::OutageKind::CredentialsRefused => format!(
                "credentials refused: profile {} since {} ({}){waiting}; fix client_id / client_secret (or client_secret_file) in profiles.d/{}.toml",
                o.what,
                ts(o.since),
                Escaped(&o.error),
                o.what
            ),
        });
    }
    if let Some(c) = &s.last_cycle {
        for (p, n) in &c.held {
            let u = s.budgets.get(p).copied();
            out.push(format!(
                "budget: {} of profile {p} wait for its daily budget ({} in 24 h); they go as it allows, most urgent first; if expected, raise [renewal] max_per_day (or max_renewals_per_day in profiles.d/{p}.toml)",
                plural(*n, "scheduled renewal", "scheduled renewals"),
                u.map(usage).unwrap_or_default()
            ));
        }
    }
    out
}

fn profiles(rows: &[ProfileRow]) -> String {
    let mut o = String::new();
    writeln!(
        o,
        "{:<20} {:>8} {:>8}  {:<8} {:<6} {:<9} SCM URL",
        "PROFILE", "LIVE", "PAST", "WINDOW", "AUTO", "24H/LIMIT"
    )
    .ok();
    for p in rows {
        match &p.settings {
            Some(s) => {
                let window = if s.force_renewal {
                    "force".to_string()
                } else {
                    format!("{}d", s.expiry_window_days)
                };
                writeln!(
                    o,
                    "{:<20} {:>8} {:>8}  {:<8} {:<6} {:<9} {}",
                    p.name,
                    p.live,
                    p.past,
                    window,
                    s.auto_renew,
                    p.budget.map(usage).unwrap_or_default(),
                    s.scm_url
                )
            }
            None => writeln!(
                o,
                "{:<20} {:>8} {:>8}  (orphaned: no profiles.d/{}.toml)",
                p.name, p.live, p.past, p.name
            ),
        }
        .ok();
    }
    o
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use sectigo_engine::Problem;

    use super::*;
    use crate::api::{JiraStatus, ProfileSettings, WorkflowStatus};

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn empty_status() -> StatusReport {
        StatusReport {
            daemon: None,
            last_cycle: None,
            next_cycle: Some(at(10)),
            inventory: Default::default(),
            unsettled_renames: BTreeMap::new(),
            force_renewals: BTreeMap::new(),
            budgets: BTreeMap::new(),
            outages: vec![],
            jira: JiraStatus {
                configured: false,
                pending: 0,
                oldest: None,
                undeliverable: 0,
            },
            workflow: WorkflowStatus {
                enabled: false,
                issues: 0,
                enrollments: BTreeMap::new(),
                revocations_pending: 0,
                enrollment_outcome_unknown: vec![],
            },
            last_reload: None,
            declared: vec![],
        }
    }

    #[test]
    fn status_text_names_problems_orphans_and_plurals() {
        let mut s = empty_status();
        s.inventory.certificates = 3;
        s.inventory.by_state.insert("active".into(), 3);
        s.inventory.orphaned.insert("old".parse().unwrap(), 1);
        s.inventory.problems.push(Problem {
            id: "42".parse().unwrap(),
            profile: "web".parse().unwrap(),
            state: "failed".into(),
            failures: 2,
            last_error: Some("SCM refused".into()),
        });
        s.jira.configured = true;
        s.jira.pending = 1;
        s.jira.oldest = Some(at(8));
        let out = status(&s, at(9));
        assert!(out.contains("daemon:        not running"), "{out}");
        assert!(out.contains("certificates:  3 tracked (3 active)"), "{out}");
        assert!(
            out.contains("orphaned:      1 certificate of profile \"old\""),
            "{out}"
        );
        assert!(
            out.contains("problem:       42 (web, failed): SCM refused"),
            "{out}"
        );
        assert!(
            out.contains("1 update pending, the oldest from 2026-12-01T08:00:00Z (60 min ago)"),
            "{out}"
        );
        assert!(out.contains("next cycle:    2026-12-01T10:00:00Z"), "{out}");
        assert!(!out.contains("jira workflow"), "{out}");
        assert!(out.contains("due now:       0\n"), "{out}");
        s.inventory.retry_waiting = 1;
        s.inventory.due_no_auto_renew = 2;
        let out = status(&s, at(9));
        assert!(
            out.contains("due now:       0 (and 1 waiting out a retry, 2 due with auto_renew off; `certs list --due` lists all)"),
            "{out}"
        );
    }

    #[test]
    fn check_lists_what_needs_a_person_and_nothing_else() {
        let mut s = empty_status();
        s.daemon = Some(crate::api::DaemonInfo {
            pid: 1,
            started: Some(at(1)),
            next_cycle: None,
            last_reload: None,
        });
        s.inventory.certificates = 5;
        assert!(needs_a_person(&s).is_empty(), "a healthy daemon: nothing");
        for (state, failures, want) in [
            ("outcome-unknown", 0, "outcome unknown"),
            ("failed", 0, "failed: a person must fix it"),
            ("deploy-failed", 3, "not deployed (3 attempts)"),
            ("active", 2, "2 failed attempts (active)"),
        ] {
            s.inventory.problems.push(Problem {
                id: "7".parse().unwrap(),
                profile: "web".parse().unwrap(),
                state: state.into(),
                failures,
                last_error: Some("boom".into()),
            });
            let lines = needs_a_person(&s);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(
                lines[0].contains(want) && lines[0].contains("boom"),
                "{lines:?}"
            );
            s.inventory.problems.clear();
        }
        s.inventory.stalled = 1;
        s.jira.undeliverable = 2;
        s.inventory.orphaned.insert("old".parse().unwrap(), 1);
        s.daemon = None;
        let lines = needs_a_person(&s).join("\n");
        for want in [
            "daemon: not running",
            "stalled: 1 renewal",
            "jira: 2 updates",
            "orphaned: 1 certificate of profile \"old\"",
        ] {
            assert!(lines.contains(want), "{want}: {lines}");
        }
        // A rename that could not be told apart names the commands that settle it.
        s.unsettled_renames.insert(
            "old".parse().unwrap(),
            vec!["x".parse().unwrap(), "y".parse().unwrap()],
        );
        let lines = needs_a_person(&s).join("\n");
        assert!(
            lines.contains("run `sectigo-connector profiles rename old x` or `sectigo-connector profiles rename old y`"),
            "{lines}"
        );
    }

    #[test]
    fn status_json_keeps_the_documented_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&json(&Response::Status(Box::new(empty_status())))).unwrap();
        for key in [
            "daemon",
            "last_cycle",
            "next_cycle",
            "certificates",
            "by_state",
            "due",
            "orphaned",
            "force_renewals",
            "problems",
            "jira",
            "workflow",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["jira"]["pending"], 0);
        assert_eq!(v["workflow"]["enabled"], false);
    }

    #[test]
    fn profiles_text_shows_force_window_and_orphans() {
        let rows = vec![
            ProfileRow {
                name: "web".parse().unwrap(),
                settings: Some(ProfileSettings {
                    force_renewal: true,
                    expiry_window_days: 30,
                    auto_renew: true,
                    scm_url: "https://cert-manager.com/api".into(),
                }),
                live: 2,
                past: 1,
                budget: Some(sectigo_engine::Usage {
                    used: 37,
                    limit: Some(100),
                }),
            },
            ProfileRow {
                name: "gone".parse().unwrap(),
                settings: None,
                live: 1,
                past: 0,
                budget: None,
            },
        ];
        let out = profiles(&rows);
        assert!(out.lines().nth(1).unwrap().contains("force"), "{out}");
        assert!(out.lines().nth(1).unwrap().contains("37/100"), "{out}");
        assert!(out.contains("(orphaned: no profiles.d/gone.toml)"), "{out}");
    }

    #[test]
    fn reload_verdicts() {
        let mut r = ReloadReport {
            at: at(9),
            cause: "reload command".into(),
            errors: vec![],
            profiles: 1,
            config_dir: "/etc/sectigo-connector".into(),
            due: BTreeMap::new(),
        };
        assert_eq!(
            reload(&r),
            "configuration reloaded from /etc/sectigo-connector: 1 profile\n"
        );
        // A wider window: what it makes due, and what the budget lets through, before it bills.
        r.due.insert(
            "web".parse().unwrap(),
            DueChange {
                newly_due: 40,
                through_today: 5,
                limit: Some(5),
                used: 0,
            },
        );
        assert_eq!(
            reload(&r),
            "configuration reloaded from /etc/sectigo-connector: 1 profile\n  profile web: 40 more certificates due now that the running configuration does not renew yet; the daily budget (0 of 5 used in 24 h) lets 5 through today, 35 wait; each renewal is billed\n"
        );
        r.due.clear();
        r.errors
            .push("profiles.d/web.toml: expiry_window_days: must be at least 1".into());
        let out = reload(&r);
        assert!(
            out.contains("refused; the running configuration stays"),
            "{out}"
        );
        assert!(
            out.contains("  profiles.d/web.toml: expiry_window_days"),
            "{out}"
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1u64, "comment", "comments"), "1 comment");
        assert_eq!(plural(0u64, "comment", "comments"), "0 comments");
    }
}
