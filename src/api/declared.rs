//! `certs plan`, `certs apply` and `certs revoke`: the declared certificates
//! (`certificates.d/`) reconciled at the operator's word. Billable steps and revocations are
//! refused with [`ErrorKind::Confirm`] and what they would do, until asked again with `yes`.

use sectigo_core::names::CertId;
use sectigo_core::text::{count, ts, Escaped};
use sectigo_engine::{Action, Consent, Engine, PlanItem};

use super::service::engine_error;
use super::{ApiError, ErrorKind, Reply, Response};

/// The revocation reasons `certs revoke --reason` takes (RFC 5280 names).
pub const REVOKE_REASONS: [&str; 5] = [
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
];

/// `certs plan`.
pub async fn plan(engine: &Engine) -> Reply {
    let items = engine.declared().plan().await.map_err(engine_error)?;
    Ok(Response::Plan(items))
}

/// The billable steps of a plan, one line each, and their count by kind.
pub fn billable_lines(items: &[PlanItem]) -> (Vec<String>, u64, u64) {
    let (mut enroll, mut replace) = (0, 0);
    let lines = items
        .iter()
        .filter(|i| i.action.billable())
        .map(|i| {
            if i.action == Action::Enroll {
                enroll += 1;
            } else {
                replace += 1;
            }
            format!(
                "  {:<8} {}  (profile {}): {}",
                i.action.name(),
                i.name,
                i.profile,
                Escaped(&i.detail)
            )
        })
        .collect();
    (lines, enroll, replace)
}

/// `certs apply`: without `yes`, the billable steps are listed (with their count) and
/// refused; with it, done (within SCM's limits, counted in the daily budget).
pub async fn apply(engine: &Engine, yes: bool) -> Reply {
    if !yes {
        let items = engine.declared().plan().await.map_err(engine_error)?;
        let (lines, enroll, replace) = billable_lines(&items);
        if !lines.is_empty() {
            return Err(ApiError::new(
                ErrorKind::Confirm,
                format!(
                    "certs apply would bill {} ({} enroll, {} replace):\n{}\nrun it again with --yes",
                    count(enroll + replace, "step", "steps"),
                    enroll,
                    replace,
                    lines.join("\n")
                ),
            ));
        }
    }
    let (report, _) = engine
        .declared()
        .run(Consent::Operator)
        .await
        .map_err(engine_error)?;
    Ok(Response::Applied(report))
}

/// `certs revoke`: without `yes`, refused with what it does; with it, SCM's revoke.
pub async fn revoke(engine: &Engine, id: CertId, reason: String, yes: bool) -> Reply {
    let Some(code) = sectigo_core::x509::revocation::reason_code(&reason) else {
        return Err(ApiError::new(
            ErrorKind::Usage,
            format!(
                "{:?} is not a revocation reason; valid: {}",
                sectigo_core::text::bounded(&Escaped(&reason).to_string(), 40),
                REVOKE_REASONS.join(", ")
            ),
        ));
    };
    let rec = engine
        .operator()
        .certificate(&id)
        .await
        .map_err(engine_error)?;
    if !yes {
        return Err(ApiError::new(
            ErrorKind::Confirm,
            format!(
                "revoke {id} (CN={}, {}, expires {}) in SCM with reason {reason}: it cannot be undone, and it is no longer renewed; run it again with --yes",
                Escaped(&rec.subject_cn),
                rec.state.name(),
                ts(rec.not_after)
            ),
        ));
    }
    let rec = engine
        .declared()
        .revoke(&id, code, &reason)
        .await
        .map_err(engine_error)?;
    Ok(Response::Revoked {
        id,
        subject_cn: rec.subject_cn,
    })
}

/// `certs resolve NAME` for a declaration whose enroll or replace answer was lost (and no
/// tracked certificate has that id). `None`: not a declaration's; the settler decides.
pub async fn resolve(
    engine: &Engine,
    target: &sectigo_engine::Target,
    renewed_as: Option<&CertId>,
) -> Result<Option<Response>, sectigo_engine::EngineError> {
    let sectigo_engine::Target::Cert(id) = target else {
        return Ok(None);
    };
    let Ok(name) = sectigo_core::names::CertName::parse(id.as_str()) else {
        return Ok(None);
    };
    if !engine.declared().declarations().contains_key(&name)
        || engine.operator().certificate(id).await.is_ok()
    {
        return Ok(None);
    }
    if let Some(new) = renewed_as {
        let profile = &engine.declared().declarations()[&name].profile;
        return Err(sectigo_engine::EngineError::Invalid(format!(
            "to adopt the certificate SCM issued for declared certificate {name}, import it under the declaration's name: `sectigo-connector certs import --profile {profile} --cert-id {new} --name {name}`"
        )));
    }
    Ok(engine
        .declared()
        .resolve_not_done(&name)
        .await?
        .map(|outcome| {
            Response::Resolved(sectigo_engine::Resolved {
                target: name.to_string(),
                outcome,
            })
        }))
}

/// `certs plan` as text: one line per declaration.
pub fn plan_text(items: &[PlanItem]) -> String {
    use std::fmt::Write as _;
    if items.is_empty() {
        return "no certificates are declared (certificates.d/ holds no NAME.toml)\n".into();
    }
    let mut o = String::new();
    let w = items
        .iter()
        .map(|i| i.name.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        o,
        "{:<w$}  {:<10}  {:<7}  DETAIL",
        "NAME", "ACTION", "ENROLL"
    )
    .ok();
    for i in items {
        writeln!(
            o,
            "{:<w$}  {:<10}  {:<7}  {}",
            i.name.as_str(),
            i.action.name(),
            i.enroll.map_or("-", |e| e.as_str()),
            Escaped(&i.detail)
        )
        .ok();
    }
    let (lines, enroll, replace) = billable_lines(items);
    if !lines.is_empty() {
        writeln!(
            o,
            "{} ({enroll} enroll, {replace} replace): `certs apply` does them",
            count(enroll + replace, "billable step", "billable steps")
        )
        .ok();
    }
    o
}

/// `certs apply` as text.
pub fn applied_text(r: &sectigo_engine::ApplyReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for (n, id) in &r.enrolled {
        writeln!(o, "enrolled {n}: SCM certificate {id}").ok();
    }
    for (n, id) in &r.replaced {
        writeln!(o, "replaced {n}: SCM certificate {id}").ok();
    }
    for (n, why) in &r.failed {
        writeln!(o, "not done {n}: {}", Escaped(why)).ok();
    }
    for n in &r.unknown {
        writeln!(
            o,
            "outcome unknown {n}: not sent again; check SCM (`certs plan` says how)"
        )
        .ok();
    }
    writeln!(
        o,
        "{} enrolled, {} replaced, {} issued and deployed now, {} not done, {} unknown",
        r.enrolled.len(),
        r.replaced.len(),
        r.issued,
        r.failed.len(),
        r.unknown.len()
    )
    .ok();
    o
}

/// `status --check` lines for the declared certificates that need a person.
pub fn needs_a_person(items: &[PlanItem]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| {
            let what = match i.action {
                Action::Enroll | Action::Replace
                    if i.enroll == Some(sectigo_core::config::EnrollMode::Confirm) =>
                {
                    format!("{} waits for `certs apply` (billable)", i.action.name())
                }
                Action::Conflict | Action::Unknown | Action::Failed => i.action.name().to_string(),
                _ => return None,
            };
            Some(format!(
                "declared {} ({}): {what}: {}",
                i.name,
                i.profile,
                Escaped(&i.detail)
            ))
        })
        .collect()
}
