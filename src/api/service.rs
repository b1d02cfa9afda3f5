//! Carries out operator requests against an [`Engine`]: by the command line directly when the
//! daemon is not running, or by the daemon for a request that came through its control socket
//! (sled allows one process at a time). Reading is done here; every change of state is one
//! engine call (`import`, `link`, `forget`, `rename_profile`, `renew`, `start_force_renewal`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use sectigo_core::config::Config;
use sectigo_core::schedule::Schedule;
use sectigo_engine::policy::{self, Decision};
use sectigo_engine::{explain, Engine, EngineError, Finding, RenewOutcome};
use sectigo_state::{blocking, EnrollState};

use super::{
    ApiError, CertDetail, CertList, DaemonInfo, ErrorKind, JiraStatus, ProfileRow, ProfileSettings,
    Reply, Request, Response, StatusReport, WorkflowStatus,
};

/// The kind of failure an engine error is, for the operator.
pub fn engine_error(e: EngineError) -> ApiError {
    let kind = match &e {
        EngineError::Store(s) if s.is_temporary() => ErrorKind::TempFail,
        EngineError::UnknownCert(_) | EngineError::UnknownProfile(_) | EngineError::Invalid(_) => {
            ErrorKind::Usage
        }
        EngineError::Scm(s) if s.is_transient() => ErrorKind::TempFail,
        EngineError::Client(_) => ErrorKind::Config,
        _ => ErrorKind::Failed,
    };
    ApiError::new(kind, e)
}

/// A certificate id as SCM gives them (digits, in practice): short, no separators.
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Usage,
            format!(
                "{:?} is not a certificate id (SCM's certId: digits)",
                sectigo_core::text::bounded(&sectigo_core::text::Escaped(id).to_string(), 64)
            ),
        ))
    }
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if sectigo_engine::is_issue_key(key) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Usage,
            format!(
                "{:?} is not a Jira issue key (like CERT-123)",
                sectigo_core::text::bounded(&sectigo_core::text::Escaped(key).to_string(), 64)
            ),
        ))
    }
}

/// Checks what a request names before anything reads or writes the state: whatever reaches
/// the daemon through its socket is validated here, not only by the command line.
pub fn validate(req: &Request) -> Result<(), ApiError> {
    match req {
        Request::CertsShow { id } => check_id(id).or_else(|e| {
            // or a name (a CN, `*.example.com`, or an import --name)
            let name_like = !id.is_empty()
                && id.len() <= 253
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'));
            if name_like {
                Ok(())
            } else {
                Err(e)
            }
        }),
        Request::CertsForget { id, .. } | Request::CertsExport { id, .. } => check_id(id),
        Request::Renew { ids, .. } if ids.is_empty() => Err(ApiError::new(
            ErrorKind::Usage,
            "renew: give at least one certificate id",
        )),
        Request::Renew { ids, .. } => ids.iter().try_for_each(|i| check_id(i)),
        Request::CertsLink { id, key } => check_id(id).and_then(|()| check_key(key)),
        Request::CertsResolve { target, renewed_as } => check_id(target)
            .or_else(|_| check_key(target))
            .and_then(|()| renewed_as.as_deref().map_or(Ok(()), check_id)),
        Request::CertsImport { lines, .. } => lines.iter().try_for_each(|l| {
            check_id(&l.cert_id).and_then(|()| l.issue.as_deref().map_or(Ok(()), check_key))
        }),
        _ => Ok(()),
    }
}

/// Carries out `req`. `Reload` is the daemon's own; here it is refused.
pub async fn execute(
    req: Request,
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
    now: DateTime<Utc>,
) -> Reply {
    validate(&req)?;
    let r = match req {
        Request::Status => status(engine, config, daemon, now)
            .await
            .map(|s| Response::Status(Box::new(s))),
        Request::CertsList {
            profile,
            due,
            state,
            all,
        } => certs_list(engine, profile, due, state, all, now).await,
        Request::CertsShow { id } => certs_show(engine, &id, now).await,
        Request::CertsImport { profile, lines } => engine
            .import(&profile, lines, now)
            .await
            .map(Response::Imported),
        Request::CertsLink { id, key } => engine
            .link(&id, &key, now)
            .await
            .map(|was| Response::Linked { id, key, was }),
        Request::CertsExport { id, key } => {
            engine
                .export(&id)
                .await
                .map(|(rec, set, mode)| Response::Exported {
                    id,
                    name: sectigo_engine::deploy::dir_name(&rec),
                    cert: set.cert,
                    chain: set.chain,
                    mode,
                    private_key: set.key.filter(|_| key).map(|k| k.expose().to_string()),
                })
        }
        Request::CertsForget { id, yes } => {
            if !yes {
                let r = engine.certificate(&id).await.map_err(engine_error)?;
                if r.state.is_live() {
                    return Err(ApiError::new(
                        ErrorKind::Confirm,
                        format!(
                            "{id} ({}, {}, expires {}) is still tracked and renewed; forgotten, it is never renewed again and its Jira issue is no longer updated (its history goes to the log); run it again with --yes",
                            r.subject_cn,
                            r.state.name(),
                            sectigo_core::text::ts(r.not_after)
                        ),
                    ));
                }
            }
            engine.forget(&id).await.map(|r| Response::Forgotten {
                id,
                subject_cn: r.subject_cn,
            })
        }
        Request::DryRun => dry_run(engine, now).await,
        Request::StateExport { keys } => {
            engine
                .export_state(keys, now)
                .await
                .map(|s| Response::StateExported {
                    counts: s.counts,
                    bytes: s.bytes,
                    spool: crate::api::Spool(Some(std::sync::Arc::new(s.file))),
                })
        }
        Request::CertsResolve { target, renewed_as } => engine
            .resolve(
                &target,
                match renewed_as {
                    Some(n) => Finding::RenewedAs(n),
                    None => Finding::NotRenewed,
                },
                now,
            )
            .await
            .map(Response::Resolved),
        Request::Renew { ids, yes } => {
            if !yes {
                confirm_renew(engine, config, &ids, now).await?;
            }
            if let [id] = ids.as_slice() {
                return renew(engine, id.clone()).await;
            }
            let (mut renewed, mut failed) = (Vec::new(), Vec::new());
            for id in ids {
                match renew(engine, id.clone()).await {
                    Ok(Response::Renewed { new_id, .. }) => renewed.push((id, new_id)),
                    Ok(_) => {}
                    Err(e) => failed.push((id, e.message)),
                }
            }
            Ok(Response::RenewedMany { renewed, failed })
        }
        Request::ForceRenew { profile, yes } => {
            if !yes {
                if !config.profiles.contains_key(&profile) {
                    return Err(engine_error(EngineError::UnknownProfile(profile)));
                }
                // The profile's records only (its index), not the whole inventory.
                let p = profile.clone();
                let n = blocking(engine.store(), move |s| s.by_profile(&p))
                    .await
                    .map_err(|e| engine_error(e.into()))?
                    .iter()
                    .filter(|r| r.state == sectigo_state::CertState::Active)
                    .count();
                return Err(ApiError::new(
                    ErrorKind::Confirm,
                    format!("force-renew {profile} starts {n} billable {} within 24 hours (every active certificate of the profile); run it again with --yes", if n == 1 { "renewal" } else { "renewals" }),
                ));
            }
            engine
                .start_force_renewal(&profile, now)
                .await
                .map(|deadline| Response::ForceRenewStarted { profile, deadline })
        }
        Request::ProfilesList => profiles_list(engine, config, now).await,
        Request::ProfilesRename { old, new } => engine
            .rename_profile(config, &old, &new)
            .await
            .map(Response::Renamed),
        Request::Reload => return Err(ApiError::new(
            ErrorKind::TempFail,
            "the daemon is not running: nothing to reload (the next start reads the configuration)",
        )),
    };
    r.map_err(engine_error)
}

async fn dry_run(engine: &Engine, now: DateTime<Utc>) -> Result<Response, EngineError> {
    let report = engine
        .run_cycle(now, true, &tokio_util::sync::CancellationToken::new())
        .await?;
    let mut profiles: Vec<&str> = report.planned.iter().map(|p| p.profile.as_str()).collect();
    profiles.sort();
    profiles.dedup();
    let mut credentials = Vec::new();
    for p in profiles {
        let refused = engine.check_token(p).await.err().map(|e| e.to_string());
        credentials.push((p.to_string(), refused));
    }
    Ok(Response::DryRun(crate::api::DryRunReport {
        planned: report
            .planned
            .iter()
            .map(|p| crate::api::PlannedRow {
                id: p.id.clone(),
                profile: p.profile.clone(),
                subject_cn: p.subject_cn.clone(),
                not_after: p.not_after,
                action: explain(&p.decision),
            })
            .collect(),
        would_renew: report.summary.requested,
        due_no_auto_renew: report.summary.skipped_no_auto_renew,
        credentials,
    }))
}

async fn status(
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
    now: DateTime<Utc>,
) -> Result<StatusReport, EngineError> {
    let last = blocking(engine.store(), |s| s.last_cycle()).await?;
    let states = blocking(engine.store(), |s| s.profile_states()).await?;
    let (inv, ()) = engine.inventory(now, ()).await?;
    let (pending, oldest, dead) = blocking(engine.store(), |s| s.outbox_stats()).await?;
    let issues = blocking(engine.store(), |s| s.issues()).await?;
    let mut enrollments: BTreeMap<String, u64> = BTreeMap::new();
    let mut revoking = 0u64;
    let mut enroll_unknown = Vec::new();
    for i in &issues {
        if let Some(e) = &i.enroll {
            *enrollments.entry(e.name().to_string()).or_default() += 1;
            if matches!(e, EnrollState::OutcomeUnknown { .. }) {
                enroll_unknown.push(i.key.clone());
            }
        }
        revoking += u64::from(i.revoking.is_some());
    }
    let next_cycle = daemon.and_then(|d| d.next_cycle).or_else(|| {
        Schedule::parse(&config.connector.schedule.cron)
            .ok()
            .and_then(|c| c.next_after(now))
    });
    Ok(StatusReport {
        daemon: daemon.cloned(),
        last_cycle: last,
        next_cycle,
        certificates: inv.certificates,
        by_state: inv.by_state,
        due: inv.due,
        retry_waiting: inv.retry_waiting,
        due_no_auto_renew: inv.due_no_auto_renew,
        stalled: inv.stalled,
        orphaned: inv.orphaned,
        force_renewals: states
            .into_iter()
            .filter_map(|(n, s)| s.force.map(|f| (n, f)))
            .collect(),
        problems: inv.problems,
        jira: JiraStatus {
            configured: config.connector.jira.is_some(),
            pending,
            oldest,
            undeliverable: dead,
        },
        workflow: WorkflowStatus {
            enabled: config
                .connector
                .jira
                .as_ref()
                .is_some_and(|j| j.workflow.is_some()),
            issues: issues.len(),
            enrollments,
            revocations_pending: revoking,
            enrollment_outcome_unknown: enroll_unknown,
        },
        last_reload: daemon.and_then(|d| d.last_reload.clone()),
    })
}

const STATES: [&str; 7] = [
    "active",
    "renew-requested",
    "collecting",
    "outcome-unknown",
    "failed",
    "superseded",
    "revoked",
];

async fn certs_list(
    engine: &Engine,
    profile: Option<String>,
    due_only: bool,
    state: Option<String>,
    all: bool,
    now: DateTime<Utc>,
) -> Result<Response, EngineError> {
    if let Some(st) = &state {
        if !STATES.contains(&st.as_str()) {
            return Err(EngineError::Invalid(format!(
                "--state {st:?}: use one of {}",
                STATES.join(", ")
            )));
        }
    }
    let mut records = match &profile {
        Some(p) => {
            let name = p.clone();
            let r = blocking(engine.store(), move |s| s.by_profile(&name)).await?;
            // A profile neither configured nor in the state is a typo, not an empty list.
            if r.is_empty() && !engine.profiles().contains_key(p) {
                return Err(EngineError::UnknownProfile(p.clone()));
            }
            r
        }
        None => engine.certificates().await?,
    };
    match &state {
        Some(st) => records.retain(|r| r.state.name() == st),
        None if !all => records.retain(|r| r.state.is_live()),
        None => {}
    }
    if due_only {
        let policies = engine.policies(false, now).await?;
        records.retain(|r| {
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
    records.sort_by(|a, b| (a.not_after, &a.id).cmp(&(b.not_after, &b.id)));
    Ok(Response::Certs(CertList {
        records,
        configured: engine.profiles().keys().cloned().collect(),
    }))
}

async fn certs_show(
    engine: &Engine,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Response, EngineError> {
    let record = match engine.certificate(id).await {
        Err(EngineError::UnknownCert(_)) if !id.chars().all(|c| c.is_ascii_digit()) => {
            // A name: the CN or --name of a live certificate.
            let want = id.trim_end_matches('.').to_ascii_lowercase();
            let mut found: Vec<_> = engine
                .certificates()
                .await?
                .into_iter()
                .filter(|r| {
                    r.state.is_live()
                        && (r.subject_cn.to_ascii_lowercase() == want
                            || r.name
                                .as_deref()
                                .is_some_and(|n| n.eq_ignore_ascii_case(&want)))
                })
                .collect();
            match found.len() {
                0 => {
                    return Err(EngineError::Invalid(format!(
                        "no certificate with id or name {id:?} (names: the CN or --name of a live certificate; see `certs list`)"
                    )))
                }
                1 => found.remove(0),
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "{id:?} names {} certificates: {}; give the id",
                        found.len(),
                        found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
        r => r?,
    };
    let next_action = match engine.explain(&record, now).await? {
        Some(d) => explain(&d),
        None => format!(
            "none: profile {:?} is not configured (orphaned)",
            record.profile
        ),
    };
    Ok(Response::Cert(Box::new(CertDetail {
        record,
        next_action,
    })))
}

/// `renew` without `--yes`: one certificate inside its window goes ahead; anything more
/// (several, or one not due) is refused with what it would bill.
async fn confirm_renew(
    engine: &Engine,
    config: &Config,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let mut lines = Vec::new();
    let mut outside = false;
    for id in ids {
        let rec = engine.certificate(id).await.map_err(engine_error)?;
        // Inside its profile's expiry window (whatever the backoff says).
        let due = config
            .profiles
            .get(&rec.profile)
            .is_some_and(|p| rec.not_after - now <= chrono::Duration::days(p.expiry_window_days));
        outside |= !due;
        let days = (rec.not_after - now).num_days();
        lines.push(format!(
            "  {id}  CN={}  expires in {days} days{}",
            rec.subject_cn,
            if due {
                ""
            } else {
                ", not due (outside its expiry window)"
            }
        ));
    }
    if ids.len() == 1 && !outside {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::Confirm,
        format!(
            "renew would bill {} {}:\n{}\nrun it again with --yes",
            ids.len(),
            if ids.len() == 1 {
                "renewal"
            } else {
                "renewals"
            },
            lines.join("\n")
        ),
    ))
}

async fn renew(engine: &Engine, id: String) -> Reply {
    let outcome = engine.renew(&id, None).await.map_err(engine_error)?;
    match outcome {
        RenewOutcome::Requested { new_id } => {
            let c = engine
                .collect_pending(Utc::now())
                .await
                .map_err(engine_error)?;
            Ok(Response::Renewed {
                id,
                new_id,
                issued: c.renewed > 0,
            })
        }
        RenewOutcome::Skipped(why) => Err(ApiError::new(
            ErrorKind::Failed,
            format!("certificate {id} was not renewed: {why}"),
        )),
        RenewOutcome::Failed(e) => Err(ApiError::new(
            ErrorKind::Failed,
            format!("renewal failed: {e}"),
        )),
        RenewOutcome::Unreachable(e) => Err(ApiError::new(
            ErrorKind::TempFail,
            format!("renewal not made, try again later (nothing was billed): {e}"),
        )),
        RenewOutcome::Unknown(e) => Err(ApiError::new(
            ErrorKind::Failed,
            format!("renewal outcome unknown: {e}"),
        )),
    }
}

async fn profiles_list(
    engine: &Engine,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Response, EngineError> {
    let (inv, ()) = engine.inventory(now, ()).await?;
    let mut counts = inv.by_profile;
    let mut rows: Vec<ProfileRow> = config
        .profiles
        .values()
        .map(|p| {
            let c = counts.remove(&p.name).unwrap_or_default();
            ProfileRow {
                name: p.name.clone(),
                settings: Some(ProfileSettings {
                    force_renewal: p.force_renewal,
                    expiry_window_days: p.expiry_window_days,
                    auto_renew: p.auto_renew,
                    scm_url: p.scm_url.clone(),
                }),
                live: c.live,
                past: c.past,
            }
        })
        .collect();
    rows.extend(counts.into_iter().map(|(name, c)| ProfileRow {
        name,
        settings: None,
        live: c.live,
        past: c.past,
    }));
    Ok(Response::Profiles(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_before_they_touch_the_state() {
        let ok = Request::CertsLink {
            id: "12345".into(),
            key: "CERT-7".into(),
        };
        assert!(validate(&ok).is_ok());
        for bad in [
            Request::CertsShow { id: "".into() },
            Request::CertsShow {
                id: "../../etc/passwd".into(),
            },
            Request::Renew {
                ids: vec!["1\n2026 INFO forged".into()],
                yes: true,
            },
            Request::Renew {
                ids: vec![],
                yes: true,
            },
            Request::CertsLink {
                id: "1".into(),
                key: "not a key".into(),
            },
            Request::CertsResolve {
                target: "1".into(),
                renewed_as: Some("x".repeat(65)),
            },
        ] {
            let e = validate(&bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Usage, "{bad:?}");
            assert!(!e.message.contains('\n'), "{}", e.message);
        }
        assert!(validate(&Request::CertsResolve {
            target: "CERT-9".into(),
            renewed_as: None
        })
        .is_ok());
    }
}
