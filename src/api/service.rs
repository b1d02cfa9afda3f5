//! Carries out operator requests against an [`Engine`]: by the command line directly when the
//! daemon is not running, or by the daemon for a request that came through its control socket
//! (sled allows one process at a time). The reads are in [`super::queries`]; every change of
//! state is one call of an engine part (import, link, forget, rename, renew, force renewal,
//! resolve). A billable request beyond the ordinary is refused with [`ErrorKind::Confirm`] and
//! what it would bill, until it is asked again with `yes`.

use sectigo_core::config::Config;
use sectigo_core::names::{CertId, CertRef, ProfileName};
use sectigo_core::text::{count, ts};
use sectigo_engine::policy::{self, Decision};
use sectigo_engine::{Engine, EngineError, Finding, Mode, Reason, RenewOutcome};
use sectigo_model::CertState;

use super::queries::{self, is_due};
use super::{ApiError, DaemonInfo, DueChangeReport, ErrorKind, Reply, Request, Response};

/// The kind of failure an engine error is, for the operator.
pub fn engine_error(e: EngineError) -> ApiError {
    let kind = if e.is_temporary() {
        ErrorKind::TempFail
    } else if e.is_usage() {
        ErrorKind::Usage
    } else if matches!(e, EngineError::Client(_)) {
        ErrorKind::Config
    } else {
        ErrorKind::Failed
    };
    ApiError::new(kind, e)
}

/// Checks what a request names that its types do not (ids, keys and names were checked as
/// the request was decoded): whatever reaches the daemon through its socket is validated here,
/// not only by the command line.
pub fn validate(req: &Request) -> Result<(), ApiError> {
    match req {
        Request::Renew { ids, .. } if ids.is_empty() => Err(ApiError::new(
            ErrorKind::Usage,
            "renew: give at least one certificate id or name",
        )),
        _ => Ok(()),
    }
}

/// The certificate an operator named (its id, or the CN or `--name` of a live certificate):
/// resolved once, here, before anything is done with it.
pub async fn resolve(engine: &Engine, cert: &CertRef) -> Result<CertId, ApiError> {
    queries::find(engine, cert)
        .await
        .map(|r| r.id)
        .map_err(engine_error)
}

/// Carries out `req`. `Reload` is the daemon's own; here it is refused.
pub async fn execute(
    req: Request,
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
) -> Reply {
    validate(&req)?;
    match req {
        Request::Renew { ids, yes } => {
            // Every name resolved before anything is billed: a typo renews nothing.
            let mut resolved = Vec::with_capacity(ids.len());
            for r in &ids {
                resolved.push(resolve(engine, r).await?);
            }
            renew_all(engine, resolved, yes).await
        }
        Request::CertsExport { id, key } => {
            let id = resolve(engine, &id).await?;
            export(engine, id, key).await.map_err(engine_error)
        }
        Request::CertsDeploy { id } => {
            let id = resolve(engine, &id).await?;
            let deployed = engine
                .deployer()
                .redeploy(&id)
                .await
                .map_err(engine_error)?;
            Ok(Response::Deployed { id, deployed })
        }
        Request::ForceRenew { profile, yes } => force_renew(engine, profile, yes).await,
        Request::CertsForget { id, yes } => forget(engine, id, yes).await,
        Request::CertsPlan => super::declared::plan(engine).await,
        Request::CertsApply { yes } => super::declared::apply(engine, yes).await,
        Request::CertsRevoke { id, reason, yes } => {
            let id = resolve(engine, &id).await?;
            super::declared::revoke(engine, id, reason, yes).await
        }
        Request::Reload => Err(ApiError::new(
            ErrorKind::TempFail,
            "the daemon is not running: nothing to reload (the next start reads the configuration)",
        )),
        Request::RunOnce => Err(ApiError::new(
            ErrorKind::TempFail,
            "the daemon is not running: `run --once` runs the cycle itself",
        )),
        other => plain(other, engine, config, daemon)
            .await
            .map_err(engine_error),
    }
}

/// The requests that need no confirmation.
async fn plain(
    req: Request,
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
) -> Result<Response, EngineError> {
    match req {
        Request::Status => queries::status(engine, config, daemon)
            .await
            .map(|s| Response::Status(Box::new(s))),
        Request::CertsList {
            profile,
            due,
            state,
            all,
        } => queries::certs_list(engine, profile, due, state, all).await,
        Request::CertsShow { id } => queries::certs_show(engine, &id).await,
        Request::ProfilesList => queries::profiles_list(engine, config).await,
        Request::DryRun => queries::dry_run(engine).await,
        Request::DueChange => {
            // The files as they are now (the daemon's own directory), against the state.
            let dir = config.dir.clone();
            let next = tokio::task::spawn_blocking(move || Config::load(&dir))
                .await
                .map_err(|e| EngineError::Invalid(e.to_string()))?
                .map_err(|e| EngineError::Invalid(format!("the configuration is invalid: {e}")))?;
            let against_running = daemon.is_some();
            Ok(Response::DueChange(DueChangeReport {
                against_running,
                due: engine.due_change(&next, against_running).await?,
            }))
        }
        Request::CertsImport {
            profile,
            lines,
            scm_auto_renew,
        } => engine
            .importer()
            .import_flagged(&profile, lines, &scm_auto_renew)
            .await
            .map(Response::Imported),
        Request::CertsTracked { ids } => engine.tracked(ids).await.map(Response::Tracked),
        Request::CertsLink { id, key } => engine
            .operator()
            .link(&id, &key)
            .await
            .map(|was| Response::Linked { id, key, was }),
        Request::StateExport { keys } => {
            let s = engine.operator().export_state(keys).await?;
            Ok(Response::StateExported {
                counts: s.counts,
                bytes: s.bytes,
                spool: super::Spool(Some(std::sync::Arc::new(s.file))),
            })
        }
        Request::CertsResolve { target, renewed_as } => {
            // A declared certificate's lost enroll or replace (`certs resolve NAME`).
            if let Some(r) = super::declared::resolve(engine, &target, renewed_as.as_ref()).await? {
                return Ok(r);
            }
            let finding = renewed_as.map_or(Finding::NotRenewed, Finding::RenewedAs);
            engine
                .settler()
                .resolve(&target, finding)
                .await
                .map(Response::Resolved)
        }
        Request::ProfilesRename { old, new } => engine
            .operator()
            .rename_profile(config, &old, &new)
            .await
            .map(|renamed| {
                Response::Renamed(super::RenameReport {
                    renamed,
                    reload: None,
                })
            }),
        Request::Renew { .. }
        | Request::CertsExport { .. }
        | Request::CertsDeploy { .. }
        | Request::ForceRenew { .. }
        | Request::CertsForget { .. }
        | Request::CertsPlan
        | Request::CertsApply { .. }
        | Request::CertsRevoke { .. }
        | Request::RunOnce
        | Request::Reload => Err(EngineError::Invalid(
            "this request needs the operator's consent".into(),
        )),
    }
}

/// Whether a cycle now would renew one of `ids` (just imported): the daemon then runs one at
/// once, so that what `certs show` says ("renew now") is true.
pub async fn any_renewed_now(engine: &Engine, ids: &[CertId]) -> Result<bool, EngineError> {
    let now = engine.clock().now();
    let policies = engine.book().policies(Mode::Live, now).await?;
    for id in ids {
        let r = engine.operator().certificate(id).await?;
        if policies
            .get(&r.profile)
            .is_some_and(|p| matches!(policy::decide(&r, p, now), Decision::Renew { .. }))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn export(engine: &Engine, id: CertId, key: bool) -> Result<Response, EngineError> {
    let (rec, set, mode) = engine.deployer().export(&id).await?;
    Ok(Response::Exported {
        id,
        name: rec.dir_name(),
        cert: set.cert,
        chain: set.chain,
        // An export's copies are never more open than 0644 (the command refuses a reply that
        // says otherwise); a group-writable [deploy] mode stays the deploy directory's.
        mode: mode & crate::api::client::MAX_EXPORT_MODE,
        private_key: set.key.filter(|_| key).map(|k| k.expose().to_string()),
    })
}

async fn forget(engine: &Engine, id: CertId, yes: bool) -> Reply {
    if !yes {
        let r = engine
            .operator()
            .certificate(&id)
            .await
            .map_err(engine_error)?;
        if r.state.is_live() {
            return Err(ApiError::new(
                ErrorKind::Confirm,
                format!(
                    "{id} ({}, {}, expires {}) is still tracked and renewed; forgotten, it is never renewed again and its Jira issue is no longer updated (its history goes to the log); run it again with --yes",
                    sectigo_core::text::Escaped(&r.subject_cn),
                    r.state.name(),
                    ts(r.not_after)
                ),
            ));
        }
    }
    let r = engine.operator().forget(&id).await.map_err(engine_error)?;
    Ok(Response::Forgotten {
        id,
        subject_cn: r.subject_cn,
    })
}

async fn force_renew(engine: &Engine, profile: ProfileName, yes: bool) -> Reply {
    if !yes {
        if !engine.profiles().contains_key(&profile) {
            return Err(engine_error(EngineError::unknown_profile(&profile)));
        }
        // The profile's records only (its index), not the whole inventory.
        let p = profile.clone();
        let n = sectigo_state::blocking(engine.store(), move |s| s.by_profile(&p))
            .await
            .map_err(|e| engine_error(e.into()))?
            .iter()
            .filter(|r| r.state == CertState::Active)
            .count();
        return Err(ApiError::new(
            ErrorKind::Confirm,
            format!(
                "force-renew {profile} starts {} within 24 hours (every active certificate of the profile); run it again with --yes",
                count(n as u64, "billable renewal", "billable renewals")
            ),
        ));
    }
    let deadline = engine
        .book()
        .start_force_renewal(&profile)
        .await
        .map_err(engine_error)?;
    Ok(Response::ForceRenewStarted { profile, deadline })
}

async fn renew_all(engine: &Engine, ids: Vec<CertId>, yes: bool) -> Reply {
    if !yes {
        confirm_renew(engine, &ids).await?;
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

/// `renew` without `--yes`: one certificate due by the cycle's own rule goes ahead; anything
/// more (several, or one not due) is refused with what it would bill.
async fn confirm_renew(engine: &Engine, ids: &[CertId]) -> Result<(), ApiError> {
    let now = engine.clock().now();
    let mut lines = Vec::new();
    let mut outside = false;
    for id in ids {
        let rec = engine
            .operator()
            .certificate(id)
            .await
            .map_err(engine_error)?;
        let due = is_due(engine, &rec, now).await.map_err(engine_error)?;
        outside |= !due;
        let days = (rec.not_after - now).num_days();
        lines.push(format!(
            "  {id}  CN={}  expires in {days} days{}",
            sectigo_core::text::Escaped(&rec.subject_cn),
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
            "renew would bill {}:\n{}\nrun it again with --yes",
            count(ids.len() as u64, "renewal", "renewals"),
            lines.join("\n")
        ),
    ))
}

async fn renew(engine: &Engine, id: CertId) -> Reply {
    let outcome = engine
        .renewer()
        .renew(&id, Reason::Operator)
        .await
        .map_err(engine_error)?;
    match outcome {
        RenewOutcome::Requested { new_id } => {
            let c = engine
                .collector()
                .collect_pending()
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
            format!("renewal failed: {id}: {e}"),
        )),
        RenewOutcome::Deferred(e) => Err(match e {
            sectigo_scm::ScmError::Auth(_) => ApiError::new(
                ErrorKind::Config,
                format!("renewal not made, SCM refused the profile's credentials (nothing was billed): {id}: {e}"),
            ),
            _ => ApiError::new(
                ErrorKind::TempFail,
                format!("renewal not made, try again later (nothing was billed): {id}: {e}"),
            ),
        }),
        RenewOutcome::Held(u) => Err(ApiError::new(
            ErrorKind::TempFail,
            format!(
                "renewal not made, the profile's daily budget is spent ({} in 24 h; nothing was billed): {id}",
                u.used
            ),
        )),
        RenewOutcome::Unknown(e) => Err(ApiError::new(
            ErrorKind::Failed,
            format!("renewal outcome unknown: {id}: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_before_they_touch_the_state() {
        let e = validate(&Request::Renew {
            ids: vec![],
            yes: true,
        })
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(!e.message.contains('\n'), "{}", e.message);
        // What the types refuse never decodes: an id with a newline, a bad key, a name that
        // is a path.
        for bad in [
            r#"{"cmd":"renew","ids":["1\n2026 INFO forged"],"yes":true}"#,
            r#"{"cmd":"certs-link","id":"1","key":"not a key"}"#,
            r#"{"cmd":"certs-forget","id":"../1"}"#,
            r#"{"cmd":"certs-show","id":""}"#,
            r#"{"cmd":"certs-show","id":"../../etc/passwd"}"#,
            r#"{"cmd":"certs-deploy","id":"a b"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        let ok: Request =
            serde_json::from_str(r#"{"cmd":"certs-link","id":"12345","key":"CERT-7"}"#).unwrap();
        assert!(validate(&ok).is_ok());
        let ok: Request =
            serde_json::from_str(r#"{"cmd":"certs-export","id":"*.example.com"}"#).unwrap();
        assert!(validate(&ok).is_ok());
    }
}
