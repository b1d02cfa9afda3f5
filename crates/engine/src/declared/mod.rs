//! Certificates declared in `certificates.d/`: reconciled against what the state tracks, each
//! cycle and for `certs plan` / `certs apply` (the decision is the pure [`plan`]). A missing
//! certificate is enrolled, a changed one replaced, through the one enrollment path
//! ([`Enroller`]: key stored, intent journaled, billable call, answer recorded, collected,
//! deployed). With `enroll = "confirm"` only the operator's `certs apply` takes billable steps;
//! with `"auto"` the daemon does, within the profile's daily budget. A removed file's
//! certificate is no longer renewed and never revoked.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use sectigo_core::config::{Declared, EnrollMode};
use sectigo_core::names::{CertId, CertName};
use sectigo_model::{
    CertRecord, CertState, DeclaredOp, DeclaredRecord, EnrollState, Event, Notification,
};
use sectigo_scm::ScmError;

use crate::budget::{Budget, Ticket};
use crate::clients::ScmClients;
use crate::enroll::{Call, Collection, Enrolled, Enroller};
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::profile_state::{Mode, ProfileBook};
use crate::settings::{DeclaredSet, Profiles};
use crate::shared::{ClaimKey, Claims};
pub use plan::{cert_names, Action, PlanItem};

/// Who takes the billable steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The daemon's cycle: only `enroll = "auto"` declarations, within the daily budget.
    Daemon,
    /// `certs apply --yes`: every declaration, counted in the budget but not held by it.
    Operator,
}

/// What reconciling did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Enrollments SCM accepted: the declaration and its certificate id.
    pub enrolled: Vec<(CertName, CertId)>,
    /// Replacements SCM accepted.
    pub replaced: Vec<(CertName, CertId)>,
    /// Certificates collected (issued, tracked, deployed) now.
    pub issued: u64,
    /// Billable steps that wait for `certs apply` (`enroll = "confirm"`).
    pub waiting_consent: Vec<CertName>,
    /// Billable steps the daily budget holds (`enroll = "auto"`).
    pub held: Vec<CertName>,
    /// Refused by SCM (nothing billed), or not sent: why.
    pub failed: Vec<(CertName, String)>,
    /// The answer was lost: never sent again.
    pub unknown: Vec<CertName>,
}

/// What the state holds for the declarations: their records, and each name's current
/// certificate (the live one carrying the name, its renewals followed).
struct Gathered {
    records: BTreeMap<CertName, DeclaredRecord>,
    certs: BTreeMap<CertName, CertRecord>,
}

/// Which of two certificates with one name is the current one: live before revoked before
/// superseded, then the latest expiry.
fn rank(c: &CertRecord) -> (u8, chrono::DateTime<chrono::Utc>) {
    let class = match c.state {
        CertState::Superseded { .. } => 0,
        CertState::Revoked { .. } => 1,
        _ => 2,
    };
    (class, c.not_after)
}

/// The certificates the cycle must not renew: undeclared ones, and those whose replacement is
/// journaled (a renewal beside it would bill twice for one declaration).
fn held_back(records: &BTreeMap<CertName, DeclaredRecord>, items: &[PlanItem]) -> BTreeSet<CertId> {
    let mut out: BTreeSet<CertId> = items
        .iter()
        .filter(|i| i.action == Action::Undeclared)
        .filter_map(|i| i.cert_id.clone())
        .collect();
    for r in records.values() {
        let pending = r.in_flight() || matches!(r.enroll, Some(EnrollState::OutcomeUnknown { .. }));
        if let (true, Some(DeclaredOp::Replace { old })) = (pending, &r.op) {
            out.insert(old.clone());
        }
    }
    out
}

#[derive(Clone)]
pub struct DeclaredBook {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) profiles: Profiles,
    pub(crate) declared: DeclaredSet,
    pub(crate) enroller: Enroller,
    pub(crate) budget: Budget,
    pub(crate) book: ProfileBook,
    pub(crate) claims: Claims,
}

impl DeclaredBook {
    /// The declarations of the configuration.
    pub fn declarations(&self) -> &BTreeMap<CertName, Declared> {
        &self.declared
    }

    async fn gather(&self) -> Result<Gathered, EngineError> {
        let declared = self.declared.clone();
        self.ledger
            .read(move |s| {
                let records: BTreeMap<CertName, DeclaredRecord> = s
                    .declared_records()?
                    .into_iter()
                    .map(|r| (r.name.clone(), r))
                    .collect();
                let mut certs: BTreeMap<CertName, CertRecord> = BTreeMap::new();
                if records.is_empty() && declared.is_empty() {
                    return Ok(Gathered { records, certs });
                }
                s.scan(&mut |c| {
                    let Some(n) = c.name.clone() else {
                        return true;
                    };
                    let profile = declared
                        .get(&n)
                        .map(|d| &d.profile)
                        .or_else(|| records.get(&n).map(|r| &r.profile));
                    if profile != Some(&c.profile) {
                        return true;
                    }
                    if certs.get(&n).is_none_or(|prev| rank(&c) > rank(prev)) {
                        certs.insert(n, c);
                    }
                    true
                })?;
                Ok(Gathered { records, certs })
            })
            .await
    }

    /// Brings the records in step with the state: a certificate carrying a declaration's name
    /// (its renewals, or one imported with `--name`) is its certificate; a record whose file is
    /// gone and whose certificate was forgotten is dropped.
    async fn sync(&self, mut g: Gathered) -> Result<Gathered, EngineError> {
        let now = self.ledger.now();
        let mut changed = Vec::new();
        let mut drop = Vec::new();
        for (name, cert) in &g.certs {
            let declared = self.declared.get(name);
            let rec = match g.records.get(name) {
                Some(r) => r.clone(),
                None => match declared {
                    Some(d) => {
                        let mut r = DeclaredRecord::new(name, &d.profile);
                        r.names = cert_names(cert);
                        r.log(
                            now,
                            format!("adopted tracked certificate {} (named {name})", cert.id),
                        );
                        info!(profile = %d.profile, cert_id = %cert.id, "declared certificate {name}: adopted tracked certificate {} carrying its name", cert.id);
                        r
                    }
                    None => continue,
                },
            };
            if rec.in_flight()
                || (rec.cert_id.as_ref() == Some(&cert.id) && g.records.contains_key(name))
            {
                continue;
            }
            let mut rec = rec;
            if matches!(rec.enroll, Some(EnrollState::OutcomeUnknown { .. })) {
                rec.enroll = Some(EnrollState::Issued {
                    cert_id: cert.id.clone(),
                    at: now,
                });
                rec.op = None;
                rec.log(
                    now,
                    format!(
                        "the lost enrollment settled: certificate {} carries its name",
                        cert.id
                    ),
                );
            }
            if rec.names.is_empty() {
                rec.names = cert_names(cert);
            }
            rec.cert_id = Some(cert.id.clone());
            changed.push(rec);
        }
        for (name, rec) in &g.records {
            if !self.declared.contains_key(name) && !g.certs.contains_key(name) && !rec.in_flight()
            {
                drop.push(name.clone());
            }
        }
        if changed.is_empty() && drop.is_empty() {
            return Ok(g);
        }
        for r in &changed {
            g.records.insert(r.name.clone(), r.clone());
        }
        for n in &drop {
            g.records.remove(n);
        }
        self.ledger
            .commit_declared(vec![], changed, drop, Default::default())
            .await?;
        Ok(g)
    }

    /// What each declared certificate needs now (`certs plan`). Writes nothing.
    pub async fn plan(&self) -> Result<Vec<PlanItem>, EngineError> {
        let g = self.gather().await?;
        self.plan_of(&g).await
    }

    async fn plan_of(&self, g: &Gathered) -> Result<Vec<PlanItem>, EngineError> {
        let now = self.ledger.now();
        let pols = self.book.policies(Mode::Live, now).await?;
        Ok(plan::plan(&self.declared, &g.records, &g.certs, &pols, now))
    }

    /// The certificates the cycle must not renew: those whose declaration was removed, and
    /// those a replacement is under way for (or whose replacement's outcome is unknown).
    pub async fn not_renewed(&self) -> Result<BTreeSet<CertId>, EngineError> {
        if self.declared.is_empty() && self.ledger.read(|s| s.declared_records()).await?.is_empty()
        {
            return Ok(BTreeSet::new());
        }
        let g = self.gather().await?;
        let items = self.plan_of(&g).await?;
        Ok(held_back(&g.records, &items))
    }

    /// Reconciles: collects what SCM accepted, takes the billable steps `consent` allows,
    /// collects again. Returns what it did, and the certificates the cycle must not renew
    /// ([`DeclaredBook::not_renewed`]).
    pub async fn run(
        &self,
        consent: Consent,
    ) -> Result<(ApplyReport, BTreeSet<CertId>), EngineError> {
        let mut report = ApplyReport::default();
        if self.declared.is_empty() && self.ledger.read(|s| s.declared_records()).await?.is_empty()
        {
            return Ok((report, BTreeSet::new()));
        }
        report.issued += self.collect().await?;
        let g = self.gather().await?;
        let g = self.sync(g).await?;
        let items = self.plan_of(&g).await?;
        for item in items.iter().filter(|i| i.action.billable()) {
            let Some(d) = self.declared.get(&item.name) else {
                continue;
            };
            if consent == Consent::Daemon && d.enroll != EnrollMode::Auto {
                report.waiting_consent.push(item.name.clone());
                continue;
            }
            let ticket = match consent {
                Consent::Operator => self.budget.take_consented(&d.profile).await?,
                Consent::Daemon => match self.budget.try_take(&d.profile).await? {
                    Some(t) => t,
                    None => {
                        warn!(profile = %d.profile, "declared certificate {} waits: profile {}'s daily budget is spent ({})", d.name, d.profile, self.budget.key_of(&d.profile));
                        report.held.push(item.name.clone());
                        continue;
                    }
                },
            };
            let old = match item.action {
                Action::Replace => g.certs.get(&item.name).map(|c| c.id.clone()),
                _ => None,
            };
            match self.obtain(d, old.clone(), ticket).await? {
                Some(Enrolled::Accepted(id)) => match old {
                    Some(_) => report.replaced.push((item.name.clone(), id)),
                    None => report.enrolled.push((item.name.clone(), id)),
                },
                Some(Enrolled::Unknown(_)) => report.unknown.push(item.name.clone()),
                Some(Enrolled::Refused(why)) => report.failed.push((item.name.clone(), why)),
                Some(Enrolled::NotSent(e)) => report.failed.push((
                    item.name.clone(),
                    format!("not sent (nothing billed), tried again later: {e}"),
                )),
                None => {}
            }
        }
        if consent == Consent::Daemon {
            self.tell_waiting(&report.waiting_consent).await?;
        }
        report.issued += self.collect().await?;
        let records = self.ledger.read(|s| s.declared_records()).await?;
        let records = records.into_iter().map(|r| (r.name.clone(), r)).collect();
        Ok((report, held_back(&records, &items)))
    }

    /// `[notify]`, once per declaration, of a billable step waiting for `certs apply`.
    async fn tell_waiting(&self, names: &[CertName]) -> Result<(), EngineError> {
        if names.is_empty() {
            return Ok(());
        }
        let now = self.ledger.now();
        let mut told = Vec::new();
        for name in names {
            let Some(d) = self.declared.get(name) else {
                continue;
            };
            let n = name.clone();
            let rec = self.ledger.read(move |s| s.declared_record(&n)).await?;
            if rec.as_ref().is_some_and(|r| r.consent_told.is_some()) {
                continue;
            }
            let mut rec = rec.unwrap_or_else(|| DeclaredRecord::new(name, &d.profile));
            let msg = format!(
                "Needs a human: {} declares a certificate ({}) that needs a billable step in SCM (enroll = \"confirm\"): run `sectigo-connector certs plan`, then `sectigo-connector certs apply`.",
                d.file.display(),
                d.names.join(", ")
            );
            warn!(profile = %d.profile, "{msg}");
            self.ledger.tell(Notification {
                event: "declared_waiting",
                cert_id: String::new(),
                profile: d.profile.to_string(),
                message: msg,
            });
            rec.consent_told = Some(now);
            told.push(rec);
        }
        if !told.is_empty() {
            self.ledger
                .commit_declared(vec![], told, vec![], Default::default())
                .await?;
        }
        Ok(())
    }

    /// Makes the key and CSR and sends the enroll (or, with `old`, the replace) of `d`, once:
    /// under the declaration's claim, after reading its record again. `None`: another task has
    /// it, or it is in flight already.
    async fn obtain(
        &self,
        d: &Declared,
        old: Option<CertId>,
        ticket: Ticket,
    ) -> Result<Option<Enrolled>, EngineError> {
        let Some(_claim) = self.claims.claim(ClaimKey::Declared(d.name.clone())) else {
            return Ok(None);
        };
        let _old_claim = match &old {
            Some(id) => match self.claims.claim(ClaimKey::Cert(id.clone())) {
                Some(c) => Some(c),
                None => return Ok(None),
            },
            None => None,
        };
        let n = d.name.clone();
        let rec = self.ledger.read(move |s| s.declared_record(&n)).await?;
        if rec.as_ref().is_some_and(|r| {
            r.in_flight() || matches!(r.enroll, Some(EnrollState::OutcomeUnknown { .. }))
        }) {
            return Ok(None);
        }
        let mut rec = rec.unwrap_or_else(|| DeclaredRecord::new(&d.name, &d.profile));
        let profile = self
            .profiles
            .get(&d.profile)
            .ok_or_else(|| EngineError::unknown_profile(&d.profile))?
            .clone();
        let client = self.scm.get(&d.profile)?;
        let (kind, cn, names) = (d.key_type, d.names[0].clone(), d.names.clone());
        let (key, csr) = tokio::task::spawn_blocking(move || {
            sectigo_core::x509::keygen::key_and_csr(kind, &cn, &names)
        })
        .await
        .map_err(|e| EngineError::Invalid(format!("making the key of {}: {e}", d.name)))?
        .map_err(|e| EngineError::Invalid(format!("making the key of {}: {e}", d.name)))?;
        let csr = sectigo_core::x509::csr::parse(&csr)
            .map_err(|e| EngineError::Invalid(format!("the CSR made for {}: {e}", d.name)))?;
        let call = match &old {
            Some(o) => Call::Replace(o),
            None => match client.reserve().await {
                Ok(r) => Call::Enroll(r),
                Err(e) => return Ok(Some(Enrolled::NotSent(e))),
            },
        };
        rec.profile = d.profile.clone();
        rec.asked_names = d.names.clone();
        rec.asked_key_type = d.key_type.name().to_string();
        rec.op = Some(match &old {
            Some(o) => DeclaredOp::Replace { old: o.clone() },
            None => DeclaredOp::Enroll,
        });
        rec.stall_reported = None;
        let enrolled = self
            .enroller
            .enroll(&mut rec, &profile, &csr, &client, call, Some(&key), ticket)
            .await?;
        self.ledger
            .commit_declared(vec![], vec![rec], vec![], Default::default())
            .await?;
        Ok(Some(enrolled))
    }

    /// Collects the declared certificates SCM accepted. Returns how many were issued.
    async fn collect(&self) -> Result<u64, EngineError> {
        let recs = self.ledger.read(|s| s.declared_records()).await?;
        let mut n = 0;
        for rec in recs {
            let Some(EnrollState::Collecting {
                profile,
                cert_id,
                at,
            }) = rec.enroll.clone()
            else {
                continue;
            };
            let Some(_claim) = self.claims.claim(ClaimKey::Declared(rec.name.clone())) else {
                continue;
            };
            match self
                .enroller
                .collect(rec.clone(), &profile, &cert_id, at)
                .await?
            {
                Collection::Issued => n += 1,
                Collection::Pending => {}
                Collection::Failed(why) => {
                    let mut rec = rec;
                    rec.enroll = Some(EnrollState::Failed {
                        cert_id: cert_id.clone(),
                        reason: why.clone(),
                        at: self.ledger.now(),
                    });
                    rec.log(self.ledger.now(), why);
                    self.ledger
                        .commit_declared(vec![], vec![rec], vec![], Default::default())
                        .await?;
                }
            }
        }
        Ok(n)
    }

    /// `certs resolve NAME --not-renewed` for a declaration whose enroll or replace call's
    /// answer was lost: the operator checked SCM, which holds nothing for its request. The
    /// journal is cleared; the declaration is enrolled (replaced) again when consented.
    /// `None`: no declaration of that name has an unknown outcome.
    pub async fn resolve_not_done(&self, name: &CertName) -> Result<Option<String>, EngineError> {
        let Some(_claim) = self.claims.claim(ClaimKey::Declared(name.clone())) else {
            return Err(EngineError::Invalid(format!(
                "declared certificate {name} is being worked on; try again in a minute"
            )));
        };
        let n = name.clone();
        let Some(mut rec) = self.ledger.read(move |s| s.declared_record(&n)).await? else {
            return Ok(None);
        };
        let Some(EnrollState::OutcomeUnknown { request, .. }) = rec.enroll.clone() else {
            return Ok(None);
        };
        let now = self.ledger.now();
        let request = request.unwrap_or_else(|| "?".into());
        rec.enroll = None;
        rec.op = None;
        rec.asked_names.clear();
        rec.asked_key_type.clear();
        rec.log(
            now,
            format!("resolved by the operator: SCM holds nothing for request {request}; asked for again when applied"),
        );
        info!(profile = %rec.profile, "declared certificate {name}: the lost request {request} resolved as not done by the operator");
        self.ledger
            .commit_declared(vec![], vec![rec], vec![], Default::default())
            .await?;
        Ok(Some(format!(
            "resolved as not done: `certs plan` shows what it needs again (request {request})"
        )))
    }

    /// Revokes a tracked certificate in SCM (`certs revoke`): it shows as revoked and is no
    /// longer renewed; its Jira issue, when linked, is told. Revoking is not billable; a
    /// certificate SCM already shows revoked counts as done.
    pub async fn revoke(
        &self,
        id: &CertId,
        reason_code: i32,
        reason: &str,
    ) -> Result<CertRecord, EngineError> {
        let Some(_claim) = self.claims.claim(ClaimKey::Cert(id.clone())) else {
            return Err(EngineError::Busy(id.clone()));
        };
        let mut cert = self.ledger.cert(id).await?;
        match &cert.state {
            CertState::Revoked { .. } => {
                return Err(EngineError::Invalid(format!("certificate {id} is revoked already")))
            }
            s if s.is_in_flight() => {
                return Err(EngineError::Invalid(format!(
                    "a renewal of certificate {id} is under way; revoke it once it is done (then revoke the new certificate)"
                )))
            }
            _ => {}
        }
        let client = self.scm.get(&cert.profile)?;
        let message = format!("revoked by the operator ({reason})");
        match client.revoke(id, &message, reason_code).await {
            Ok(()) | Err(ScmError::AlreadyRevoked { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let at = self.ledger.now();
        cert.state = CertState::Revoked { at };
        cert.next_attempt = None;
        cert.log(at, format!("revoked by the operator: {reason}"));
        info!(profile = %cert.profile, cert_id = %cert.id, jira_key = cert.jira_issue.as_deref(), "revoked {} ({}) at the operator's request: {reason}", cert.id, cert.subject_cn);
        let news = match cert.jira_issue.clone() {
            Some(issue) => self.ledger.announce(Event::Revoked {
                cert: &cert,
                issue: &issue,
                message: &message,
            }),
            None => Default::default(),
        };
        self.ledger.commit(vec![cert.clone()], news).await?;
        Ok(cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_under_way_holds_its_old_certificate_back_from_renewal() {
        let t = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let mut r = DeclaredRecord::new(&"w".parse().unwrap(), &"web".parse().unwrap());
        r.op = Some(DeclaredOp::Replace {
            old: "1".parse().unwrap(),
        });
        let recs = |r: &DeclaredRecord| BTreeMap::from([(r.name.clone(), r.clone())]);
        for (state, held) in [
            (
                EnrollState::Requested {
                    profile: "web".parse().unwrap(),
                    at: t,
                    request: None,
                },
                true,
            ),
            (
                EnrollState::OutcomeUnknown {
                    profile: "web".parse().unwrap(),
                    at: t,
                    request: None,
                },
                true,
            ),
            (
                EnrollState::Rejected {
                    reason: "no".into(),
                    at: t,
                },
                false,
            ),
        ] {
            r.enroll = Some(state);
            assert_eq!(
                held_back(&recs(&r), &[]).len(),
                usize::from(held),
                "{:?}",
                r.enroll
            );
        }
    }
}
