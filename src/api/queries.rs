//! The requests that read: `status`, `certs list`, `certs show`, `profiles list` and the dry
//! run. Nothing here writes to the state or SCM (the dry run asks each profile's token endpoint
//! for a token, which is free).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use sectigo_core::config::Config;
use sectigo_core::names::{CertRef, ProfileName};
use sectigo_core::schedule::Schedule;
use sectigo_engine::policy::{self, Decision};
use sectigo_engine::{explain, Engine, EngineError, Mode};
use sectigo_model::{CertRecord, CertState, EnrollState};

use super::{
    CertDetail, CertList, DaemonInfo, DryRunReport, JiraStatus, PlannedRow, ProfileRow,
    ProfileSettings, Response, StatusReport, WorkflowStatus,
};

pub(super) async fn dry_run(engine: &Engine) -> Result<Response, EngineError> {
    let report = engine
        .cycle()
        .run(Mode::DryRun, &tokio_util::sync::CancellationToken::new())
        .await?;
    // Every profile's credentials, not only those with work planned: a dry run with nothing
    // due still proves that the next renewal would be taken.
    let mut credentials = Vec::new();
    for p in engine.profiles().values() {
        let refused = engine.check_token(&p.name).await.err().map(|e| match e {
            EngineError::Scm(e @ sectigo_scm::ScmError::Auth(_)) => format!(
                "{e}; fix `client_id` or {} in {}",
                p.client_secret_from.describe("client_secret"),
                p.file.display()
            ),
            e => e.to_string(),
        });
        credentials.push((p.name.clone(), refused));
    }
    Ok(Response::DryRun(DryRunReport {
        planned: report.planned.iter().map(PlannedRow::of).collect(),
        would_renew: report.summary.requested,
        due_no_auto_renew: report.summary.skipped_no_auto_renew,
        credentials,
    }))
}

/// The Jira workflow's side of `status`.
async fn workflow_status(engine: &Engine, config: &Config) -> Result<WorkflowStatus, EngineError> {
    let issues = sectigo_state::blocking(engine.store(), |s| s.issues()).await?;
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
    Ok(WorkflowStatus {
        enabled: config
            .connector
            .jira
            .as_ref()
            .is_some_and(|j| j.workflow.is_some()),
        issues: issues.len(),
        enrollments,
        revocations_pending: revoking,
        enrollment_outcome_unknown: enroll_unknown,
    })
}

pub(super) async fn status(
    engine: &Engine,
    config: &Config,
    daemon: Option<&DaemonInfo>,
) -> Result<StatusReport, EngineError> {
    let now = engine.clock().now();
    let store = engine.store();
    let last = sectigo_state::blocking(store, |s| s.last_cycle()).await?;
    let states = sectigo_state::blocking(store, |s| s.profile_states()).await?;
    let (inv, ()) = engine.inventory(()).await?;
    let (pending, oldest, dead) = sectigo_state::blocking(store, |s| s.outbox_stats()).await?;
    let next_cycle = daemon.and_then(|d| d.next_cycle).or_else(|| {
        Schedule::parse(&config.connector.schedule.cron)
            .ok()
            .and_then(|c| c.next_after(now))
    });
    // Live when the daemon answers (its clients know the hosts); else what the last cycle saw.
    let outages = match (daemon, &last) {
        (Some(_), l) => sectigo_engine::cycle::outages(
            engine.shared(),
            engine.book(),
            &l.clone().unwrap_or_default(),
        ),
        (None, Some(l)) => l.outages.clone(),
        (None, None) => Vec::new(),
    };
    let mut budgets = BTreeMap::new();
    for p in engine.profiles().keys() {
        budgets.insert(p.clone(), engine.budget().usage(p).await?);
    }
    Ok(StatusReport {
        daemon: daemon.cloned(),
        last_cycle: last,
        next_cycle,
        inventory: inv,
        unsettled_renames: engine.book().unresolved_renames().await?,
        force_renewals: states
            .into_iter()
            .filter_map(|(n, s)| s.force.map(|f| (n, f)))
            .collect(),
        budgets,
        outages,
        jira: JiraStatus {
            configured: config.connector.jira.is_some(),
            pending,
            oldest,
            undeliverable: dead,
        },
        workflow: workflow_status(engine, config).await?,
        last_reload: daemon.and_then(|d| d.last_reload.clone()),
        declared: engine
            .declared()
            .plan()
            .await?
            .into_iter()
            .filter(|i| !super::declared::needs_a_person(std::slice::from_ref(i)).is_empty())
            .collect(),
    })
}

/// Whether `certs list --due` lists a certificate with this decision: due now, waiting out a
/// retry, or due without auto-renew.
fn listed_as_due(d: Option<Decision>) -> bool {
    matches!(
        d,
        Some(
            Decision::Renew { .. }
                | Decision::Backoff { .. }
                | Decision::ReportNoAutoRenew { .. }
                | Decision::Reported
        )
    )
}

pub(super) async fn certs_list(
    engine: &Engine,
    profile: Option<ProfileName>,
    due_only: bool,
    state: Option<String>,
    all: bool,
) -> Result<Response, EngineError> {
    if let Some(st) = &state {
        if !CertState::NAMES.contains(&st.as_str()) {
            return Err(EngineError::Invalid(format!(
                "--state {st:?}: use one of {}",
                CertState::NAMES.join(", ")
            )));
        }
    }
    let mut records = match &profile {
        Some(p) => {
            let name = p.clone();
            let r = sectigo_state::blocking(engine.store(), move |s| s.by_profile(&name)).await?;
            // A profile neither configured nor in the state is a typo, not an empty list.
            if r.is_empty() && !engine.profiles().contains_key(p) {
                return Err(EngineError::unknown_profile(p));
            }
            r
        }
        None => engine.operator().certificates().await?,
    };
    match &state {
        Some(st) => records.retain(|r| r.state.name() == st),
        None if !all => records.retain(|r| r.state.is_live()),
        None => {}
    }
    if due_only {
        let now = engine.clock().now();
        let policies = engine.book().policies(Mode::Live, now).await?;
        records
            .retain(|r| listed_as_due(policies.get(&r.profile).map(|p| policy::decide(r, p, now))));
    }
    records.sort_by(|a, b| (a.not_after, &a.id).cmp(&(b.not_after, &b.id)));
    Ok(Response::Certs(CertList {
        records,
        configured: engine.profiles().keys().cloned().collect(),
    }))
}

/// The certificate `id` names: its SCM id, else the CN or `--name` of one live certificate.
pub(super) async fn find(engine: &Engine, id: &CertRef) -> Result<CertRecord, EngineError> {
    if let Some(cert_id) = id.as_id() {
        match engine.operator().certificate(&cert_id).await {
            Err(EngineError::UnknownCert(_)) if !id.chars().all(|c| c.is_ascii_digit()) => {}
            r => return r,
        }
    }
    let mut found = engine.operator().by_name(id).await?;
    match found.len() {
        0 => Err(EngineError::Invalid(format!(
            "no certificate with id or name {id:?} (names: the CN or --name of a live certificate; see `certs list`)"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(EngineError::Invalid(format!(
            "{id:?} names {n} certificates: {}; give the id",
            found
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(super) async fn certs_show(engine: &Engine, id: &CertRef) -> Result<Response, EngineError> {
    let record = find(engine, id).await?;
    let next_action = match engine.book().explain(&record).await? {
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

pub(super) async fn profiles_list(
    engine: &Engine,
    config: &Config,
) -> Result<Response, EngineError> {
    let (inv, ()) = engine.inventory(()).await?;
    let mut counts = inv.by_profile;
    let mut rows: Vec<ProfileRow> = Vec::new();
    for p in config.profiles.values() {
        let c = counts.remove(&p.name).unwrap_or_default();
        rows.push(ProfileRow {
            name: p.name.clone(),
            settings: Some(ProfileSettings {
                force_renewal: p.force_renewal,
                expiry_window_days: p.expiry_window_days,
                auto_renew: p.auto_renew,
                scm_url: p.scm_url.clone(),
            }),
            live: c.live,
            past: c.past,
            budget: Some(engine.budget().usage(&p.name).await?),
        });
    }
    rows.extend(counts.into_iter().map(|(name, c)| ProfileRow {
        name,
        settings: None,
        live: c.live,
        past: c.past,
        budget: None,
    }));
    Ok(Response::Profiles(rows))
}

/// Whether `rec` is due by the cycle's own rule ([`policy::due`]) at `now`: inside its window
/// or covered by its profile's force renewal. An orphan is never due.
pub(super) async fn is_due(
    engine: &Engine,
    rec: &CertRecord,
    now: DateTime<Utc>,
) -> Result<bool, EngineError> {
    let policies = engine.book().policies(Mode::Live, now).await?;
    Ok(policies
        .get(&rec.profile)
        .is_some_and(|p| !matches!(policy::due(rec, p, now), policy::Due::NotBefore(_))))
}
