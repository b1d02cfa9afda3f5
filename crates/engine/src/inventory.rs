//! The inventory summary: one pass over the tracked certificates, under the current policies,
//! that `status`, `/metrics` and `profiles list` all read, so they can never disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use sectigo_core::names::{CertId, ProfileName};
use sectigo_model::{CertRecord, CertState};

use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy::{self, Decision};
use crate::profile_state::{Mode, ProfileBook};

/// Certificates of one profile (configured or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileCounts {
    /// Active, being renewed or needing a person: still the profile's concern.
    pub live: u64,
    /// Superseded or revoked: kept for their history.
    pub past: u64,
}

/// A certificate that needs attention: it failed, its outcome is unknown, or its last
/// attempts failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub id: CertId,
    pub profile: ProfileName,
    pub state: String,
    pub failures: u32,
    pub last_error: Option<String>,
}

/// The summary of the whole inventory at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub certificates: u64,
    pub by_state: BTreeMap<String, u64>,
    /// Due now: the next cycle renews them.
    pub due: u64,
    /// Inside the window but waiting out a retry after a failure (`certs list --due` lists
    /// them with the due ones).
    #[serde(default)]
    pub retry_waiting: u64,
    /// Inside the window with `auto_renew = false`: reported, renewed only by hand.
    #[serde(default)]
    pub due_no_auto_renew: u64,
    /// Renewals accepted by SCM but not issued within `[renewal] collect_timeout_hours`.
    #[serde(default)]
    pub stalled: u64,
    /// Issued certificates whose files or deploy hook failed (retried on a backoff).
    #[serde(default)]
    pub deploy_failed: u64,
    pub by_profile: BTreeMap<ProfileName, ProfileCounts>,
    /// Live certificates of profiles that are no longer configured, by profile.
    pub orphaned: BTreeMap<ProfileName, u64>,
    pub problems: Vec<Problem>,
}

impl Inventory {
    /// Adds one certificate; `decision` is its policy's verdict, `None` when its profile is
    /// not configured.
    pub fn add(&mut self, r: &CertRecord, decision: Option<&Decision>) {
        self.certificates += 1;
        *self.by_state.entry(r.state.name().to_string()).or_default() += 1;
        let live = r.state.is_live();
        let c = self.by_profile.entry(r.profile.clone()).or_default();
        if live {
            c.live += 1;
        } else {
            c.past += 1;
        }
        let Some(decision) = decision else {
            if live {
                *self.orphaned.entry(r.profile.clone()).or_default() += 1;
            }
            return;
        };
        match decision {
            Decision::Renew { .. } => self.due += 1,
            Decision::Backoff { .. } => self.retry_waiting += 1,
            Decision::ReportNoAutoRenew { .. } | Decision::Reported => self.due_no_auto_renew += 1,
            _ => {}
        }
        if let Some(job) = r.deploy.as_ref().filter(|j| j.attempts > 0) {
            self.deploy_failed += 1;
            self.problems.push(Problem {
                id: r.id.clone(),
                profile: r.profile.clone(),
                state: "deploy-failed".to_string(),
                failures: job.attempts,
                last_error: job.last_error.clone(),
            });
        }
        if r.scm_auto_renew && live {
            self.problems.push(Problem {
                id: r.id.clone(),
                profile: r.profile.clone(),
                state: "scm-auto-renew".to_string(),
                failures: 0,
                last_error: Some(SCM_AUTO_RENEW.to_string()),
            });
        }
        let stalled = matches!(r.state, CertState::Collecting { .. }) && r.stall_reported.is_some();
        self.stalled += u64::from(stalled);
        if stalled
            || matches!(
                r.state,
                CertState::Failed { .. } | CertState::OutcomeUnknown { .. }
            )
            || r.failures > 0
        {
            let settling = matches!(r.state, CertState::OutcomeUnknown { .. })
                && r.last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(SETTLING));
            self.problems.push(Problem {
                id: r.id.clone(),
                profile: r.profile.clone(),
                state: if settling {
                    "settling".to_string()
                } else {
                    r.state.name().to_string()
                },
                failures: r.failures,
                last_error: r.last_error.clone(),
            });
        }
    }
}

/// How the last error of an unknown outcome the daemon settles itself (`[admin]`) begins: the
/// inventory shows its state as `settling`, not `outcome-unknown`.
pub const SETTLING: &str = "settling from SCM's records: ";

/// The warning for a certificate SCM also renews by itself (`[admin]` saw it).
pub const SCM_AUTO_RENEW: &str = "SCM's own auto-renewal is on for it: SCM and the daemon would both renew (and bill) it; turn auto-renewal off for it in SCM";

/// Sees every certificate, with its decision, in the inventory's pass.
pub trait Visit: Send + 'static {
    fn visit(&mut self, r: &CertRecord, decision: Option<&Decision>);
}

/// Sees nothing: the summary alone.
impl Visit for () {
    fn visit(&mut self, _: &CertRecord, _: Option<&Decision>) {}
}

/// The inventory summary at the ledger's now, in one pass over the store. `visit` sees every
/// certificate with its decision in the same pass (the metrics' per-certificate gauges) and is
/// handed back.
pub(crate) async fn summarize<V: Visit>(
    ledger: &Ledger,
    book: &ProfileBook,
    mut visit: V,
) -> Result<(Inventory, V), EngineError> {
    let now = ledger.now();
    let policies = book.policies(Mode::Live, now).await?;
    ledger
        .read(move |s| {
            let mut inv = Inventory::default();
            s.scan(&mut |r| {
                let d = policies.get(&r.profile).map(|p| policy::decide(&r, p, now));
                inv.add(&r, d.as_ref());
                visit.visit(&r, d.as_ref());
                true
            })?;
            Ok((inv, visit))
        })
        .await
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use sectigo_model::CertOrigin;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    }

    fn rec(id: &str, profile: &str, state: CertState, failures: u32) -> CertRecord {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        CertRecord {
            id: id.parse().unwrap(),
            profile: profile.parse().unwrap(),
            subject_cn: "a.example.com".into(),
            sans: vec![],
            serial: "01".into(),
            not_before: now,
            not_after: now + chrono::Duration::days(90),
            state,
            jira_issue: None,
            origin: CertOrigin::Imported { at: now },
            failures,
            next_attempt: None,
            last_error: None,
            reported_no_auto_renew: None,
            stall_reported: None,
            history: vec![],
            name: None,
            deploy: None,
            scm_auto_renew: false,
        }
    }

    #[test]
    fn one_pass_counts_states_profiles_orphans_due_and_problems() {
        let mut inv = Inventory::default();
        let due = Decision::Renew {
            reason: policy::Reason::Window,
            due: t0(),
        };
        let idle = Decision::Idle { why: "x" };
        inv.add(&rec("1", "web", CertState::Active, 0), Some(&due));
        inv.add(&rec("2", "web", CertState::Active, 2), Some(&idle));
        inv.add(
            &rec(
                "3",
                "web",
                CertState::Superseded {
                    by: "4".parse().unwrap(),
                    at: t0(),
                },
                0,
            ),
            Some(&idle),
        );
        inv.add(&rec("5", "gone", CertState::Active, 0), None);
        assert_eq!(inv.certificates, 4);
        assert_eq!(inv.due, 1);
        assert_eq!(inv.by_state["active"], 3);
        assert_eq!(inv.by_profile["web"], ProfileCounts { live: 2, past: 1 });
        assert_eq!(inv.orphaned["gone"], 1);
        assert_eq!(inv.problems.len(), 1);
        assert_eq!(inv.problems[0].id, "2");
        // What `certs list --due` also lists is counted apart, not as due.
        let waiting = Decision::Backoff { until: t0() };
        let manual = Decision::ReportNoAutoRenew { due: t0() };
        inv.add(&rec("6", "web", CertState::Active, 1), Some(&waiting));
        inv.add(&rec("7", "web", CertState::Active, 0), Some(&manual));
        assert_eq!(
            (inv.due, inv.retry_waiting, inv.due_no_auto_renew),
            (1, 1, 1)
        );
    }
}
