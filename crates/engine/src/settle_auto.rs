//! Unknown outcomes settled by the daemon, for profiles with `[admin]` (SCM's Admin API).
//!
//! A renewal or enrollment whose billable call's answer was lost carries a request marker in
//! the `comments` SCM keeps on the certificate it issues. Each cycle, before anything is
//! decided, the daemon looks for it:
//!
//! - exactly one certificate carries the marker: it is the request's, with certainty. Issued,
//!   it is adopted as `certs resolve --renewed-as` adopts it (history and Jira link kept, Jira
//!   told, deployed); not issued yet, it is collected like any accepted renewal.
//! - none, `[renewal] settle_after_minutes` after the call, while SCM does not mark the old
//!   certificate renewed: SCM did not act on the call. The renewal is declared not renewed and
//!   is due again (the same cycle renews it when due); the enrollment is declared not
//!   enrolled (the issue may ask again).
//! - anything else (two certificates with the marker, the old one marked renewed with no
//!   marked certificate, no request id on record): a person settles it (`certs resolve`); the
//!   record's last error says what was found and what to do. Never adopted on a guess.
//!
//! Reads only: nothing here bills. Admin API errors leave the outcome as it is for the next
//! cycle.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use sectigo_core::names::{CertId, ProfileName};
use sectigo_core::text::ts;
use sectigo_model::{CertRecord, CertState, EnrollState, IssueRecord};
use sectigo_scm::admin::{ssl_id_of, AdminClient, CertDetails, CertStatus};
use sectigo_scm::ScmError;

use crate::clients::ScmClients;
use crate::error::EngineError;
use crate::inventory::SETTLING;
use crate::ledger::Ledger;
use crate::settle::{By, Finding, Settler};
use crate::shared::{ClaimKey, Claims};

/// What the daemon made of one unknown outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Adopted (or collected) the certificate carrying the request's marker.
    pub adopted: u64,
    /// Declared not renewed (due again) or not enrolled.
    pub declared: u64,
    /// Still waiting for SCM, or left to a person.
    pub waiting: u64,
}

/// What SCM shows for a request marker, decided from what was found (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly one certificate carries it.
    Found { ssl_id: i64, issued: bool },
    /// None carries it, the wait is over, and the old certificate is not marked renewed.
    NotMade,
    /// None yet; decided at this time.
    Wait { until: DateTime<Utc> },
    /// A person must look: why.
    Person(String),
}

/// `found`: the certificates carrying the marker; `old_renewed`: SCM marks the old certificate
/// renewed (`None` for an enrollment); `at`: when the answer was lost.
pub fn verdict(
    found: &[CertDetails],
    old_renewed: Option<bool>,
    at: DateTime<Utc>,
    settle_after: Duration,
    now: DateTime<Utc>,
) -> Verdict {
    match found {
        [one] => Verdict::Found {
            ssl_id: one.ssl_id,
            issued: one.status == CertStatus::Issued,
        },
        [] if old_renewed == Some(true) => Verdict::Person(
            "SCM marks the old certificate renewed, but no certificate carries this request's marker (renewed another way?)".into(),
        ),
        [] if now >= at + settle_after => Verdict::NotMade,
        [] => Verdict::Wait {
            until: at + settle_after,
        },
        many => Verdict::Person(format!(
            "{} certificates in SCM carry this request's marker ({})",
            many.len(),
            many.iter()
                .map(|d| d.ssl_id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The words `status` shows for an outcome-unknown renewal: what happened and what to do.
pub fn unknown_note(request: Option<&str>, admin: bool, settle_after_minutes: u64) -> String {
    match (request, admin) {
        (Some(r), true) => format!(
            "{SETTLING}the answer to renew request {r} was lost: SCM may have renewed (and billed) it. The daemon settles it from SCM's records: it adopts the certificate carrying {r}, or renews again if SCM shows none {settle_after_minutes} minutes after the call. Nothing to do unless this stays"
        ),
        (Some(r), false) => format!(
            "the answer to renew request {r} was lost: SCM may have renewed (and billed) it. Look in SCM for a certificate whose comments carry {r}, then `certs resolve ID --renewed-as NEW_ID`, or `--not-renewed` if there is none (add [admin] to have the daemon do this)"
        ),
        (None, _) => "the answer to a renew call was lost: SCM may have renewed (and billed) it. Check SCM, then `certs resolve ID --renewed-as NEW_ID`, or `--not-renewed`".into(),
    }
}

#[derive(Clone)]
pub struct AutoSettle {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) claims: Claims,
    pub(crate) settler: Settler,
    pub(crate) settle_after: Duration,
}

impl AutoSettle {
    /// Whether `profile` has `[admin]`.
    pub fn admin(&self, profile: &ProfileName) -> bool {
        self.scm.admin(profile).is_some()
    }

    /// Looks for every unknown outcome of a profile with `[admin]` in SCM's records, and
    /// settles those it can.
    pub async fn run(&self) -> Result<Settled, EngineError> {
        let mut out = Settled::default();
        let certs = self
            .ledger
            .read(|s| {
                let mut v = Vec::new();
                s.scan(&mut |r| {
                    if matches!(r.state, CertState::OutcomeUnknown { .. }) {
                        v.push(r);
                    }
                    true
                })?;
                Ok(v)
            })
            .await?;
        for rec in certs {
            let Some(admin) = self.scm.admin(&rec.profile) else {
                continue;
            };
            self.cert(&admin, rec, &mut out).await?;
        }
        let issues = self.ledger.read(|s| s.issues()).await?;
        for rec in issues {
            let Some(EnrollState::OutcomeUnknown { profile, .. }) = &rec.enroll else {
                continue;
            };
            let Some(admin) = self.scm.admin(profile) else {
                continue;
            };
            self.enrollment(&admin, rec, &mut out).await?;
        }
        Ok(out)
    }

    async fn cert(
        &self,
        admin: &AdminClient,
        rec: CertRecord,
        out: &mut Settled,
    ) -> Result<(), EngineError> {
        let CertState::OutcomeUnknown {
            at,
            request: Some(request),
            ..
        } = rec.state.clone()
        else {
            // No marker to look for (an older record, or a person was asked already).
            return Ok(());
        };
        let Some(_claim) = self.claims.claim(ClaimKey::Cert(rec.id.clone())) else {
            return Ok(());
        };
        // The record again, under the claim: another task may have settled it meanwhile.
        let rec = self.ledger.cert(&rec.id).await?;
        if !matches!(rec.state, CertState::OutcomeUnknown { request: Some(ref r), .. } if *r == request)
        {
            return Ok(());
        }
        let looked = async {
            let found = admin.find_by_marker(&request, &rec.subject_cn).await?;
            let renewed = match ssl_id_of(&rec.id) {
                Some(id) if found.is_empty() => Some(admin.details(id).await?.renewed),
                _ => None,
            };
            Ok::<_, ScmError>((found, renewed))
        }
        .await;
        let (found, renewed) = match looked {
            Ok(x) => x,
            Err(e) => {
                warn!(profile = %rec.profile, cert_id = %rec.id, "unknown outcome of {} (request {request}) not settled this cycle: SCM's Admin API: {e}", rec.id);
                out.waiting += 1;
                return Ok(());
            }
        };
        let now = self.ledger.now();
        // Without the old certificate's details (not an SCM id): never declared not renewed.
        let renewed = if ssl_id_of(&rec.id).is_none() && found.is_empty() {
            Some(true)
        } else {
            renewed
        };
        match verdict(&found, renewed, at, self.settle_after, now) {
            Verdict::Found { ssl_id, issued } => {
                let new_id = CertId::parse(&ssl_id.to_string())
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                if issued {
                    match self
                        .settler
                        .adopt_renewal(rec.clone(), &new_id, By::Daemon)
                        .await
                    {
                        Ok(_) => out.adopted += 1,
                        Err(e) => {
                            self.person(rec, &request, format!("SCM's certificate {new_id} carries its marker but cannot be adopted: {e}")).await?;
                            out.waiting += 1;
                        }
                    }
                } else {
                    self.collect(rec, new_id, &request).await?;
                    out.adopted += 1;
                }
            }
            Verdict::NotMade => {
                self.settler.declare_not_renewed(rec, By::Daemon).await?;
                out.declared += 1;
            }
            Verdict::Wait { until } => {
                let note = format!(
                    "{SETTLING}the answer to renew request {request} was lost: SCM may have renewed (and billed) it. SCM shows no certificate carrying {request} yet: the daemon adopts it when SCM shows it, or declares it not renewed (due again) at {} if SCM still shows none. Nothing to do unless this stays",
                    ts(until)
                );
                self.note(rec, note).await?;
                out.waiting += 1;
            }
            Verdict::Person(why) => {
                self.person(rec, &request, why).await?;
                out.waiting += 1;
            }
        }
        Ok(())
    }

    /// The marked certificate is not issued yet: collected as if SCM's answer had come.
    async fn collect(
        &self,
        mut rec: CertRecord,
        new_id: CertId,
        request: &str,
    ) -> Result<(), EngineError> {
        let now = self.ledger.now();
        info!(profile = %rec.profile, cert_id = %rec.id, new_cert_id = %new_id, "unknown outcome of {} settled from SCM's records: request {request} is SCM's certificate {new_id}, not issued yet; collected when it is", rec.id);
        rec.state = CertState::Collecting {
            new_id: new_id.clone(),
            at: now,
        };
        rec.last_error = None;
        rec.log(
            now,
            format!("outcome settled by the daemon from SCM's records: request {request} is SCM's certificate {new_id} (not issued yet)"),
        );
        self.ledger.commit(vec![rec], Default::default()).await
    }

    /// Left to a person: the record says what was found and what to do (once).
    async fn person(&self, rec: CertRecord, request: &str, why: String) -> Result<(), EngineError> {
        let msg = format!(
            "outcome of renew request {request} unknown, and SCM's records do not settle it: {why}. Check SCM, then `certs resolve {} --renewed-as NEW_ID` or `--not-renewed`",
            rec.id
        );
        if rec.last_error.as_deref() != Some(msg.as_str()) {
            warn!(profile = %rec.profile, cert_id = %rec.id, "Needs a human: {msg}");
        }
        self.note(rec, msg).await
    }

    async fn note(&self, mut rec: CertRecord, msg: String) -> Result<(), EngineError> {
        if rec.last_error.as_deref() == Some(msg.as_str()) {
            return Ok(());
        }
        rec.last_error = Some(msg);
        self.ledger.commit(vec![rec], Default::default()).await
    }

    async fn enrollment(
        &self,
        admin: &AdminClient,
        rec: IssueRecord,
        out: &mut Settled,
    ) -> Result<(), EngineError> {
        let Some(EnrollState::OutcomeUnknown {
            at,
            request: Some(request),
            ..
        }) = rec.enroll.clone()
        else {
            return Ok(());
        };
        let Some(_claim) = self.claims.claim(ClaimKey::Request(rec.key.clone())) else {
            return Ok(());
        };
        let key = rec.key.clone();
        let Some(cn) = enrolled_cn(&rec) else {
            return Ok(());
        };
        let found = match admin.find_by_marker(&request, &cn).await {
            Ok(f) => f,
            Err(e) => {
                warn!(jira_key = %rec.key, "unknown outcome of the enrollment of {} (request {request}) not settled this cycle: SCM's Admin API: {e}", rec.key);
                out.waiting += 1;
                return Ok(());
            }
        };
        let now = self.ledger.now();
        match verdict(&found, None, at, self.settle_after, now) {
            Verdict::Found {
                ssl_id,
                issued: true,
            } => {
                let id = CertId::parse(&ssl_id.to_string())
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                match self
                    .settler
                    .resolve_enrollment(rec, Finding::RenewedAs(id), By::Daemon)
                    .await
                {
                    Ok(_) => out.adopted += 1,
                    Err(e) => {
                        warn!(jira_key = %key, "Needs a human: the enrollment's certificate carries request {request} but cannot be adopted: {e}");
                        out.waiting += 1;
                    }
                }
            }
            Verdict::NotMade => {
                self.settler
                    .resolve_enrollment(rec, Finding::NotRenewed, By::Daemon)
                    .await?;
                out.declared += 1;
            }
            // Not issued yet, still waiting, or a person's: the next cycle looks again.
            _ => out.waiting += 1,
        }
        Ok(())
    }
}

/// The CN an enrollment asked for, as its history wrote it ("enrollment of CN started").
fn enrolled_cn(rec: &IssueRecord) -> Option<String> {
    rec.history.iter().rev().find_map(|h| {
        let rest = h.event.strip_prefix("enrollment of ")?;
        let (cn, _) = rest.split_once(" started")?;
        Some(cn.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use sectigo_scm::admin::parse_details;

    fn d(id: i64, status: &str) -> CertDetails {
        let v = serde_json::json!({"sslId": id, "commonName": "a.example.com", "status": status});
        parse_details(200, v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn one_marked_certificate_is_adopted_none_waits_then_is_declared() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let wait = Duration::minutes(30);
        assert_eq!(
            verdict(&[d(7, "Issued")], Some(false), t, wait, t),
            Verdict::Found {
                ssl_id: 7,
                issued: true
            }
        );
        assert_eq!(
            verdict(&[d(7, "Applied")], Some(true), t, wait, t),
            Verdict::Found {
                ssl_id: 7,
                issued: false
            }
        );
        assert_eq!(
            verdict(&[], Some(false), t, wait, t + Duration::minutes(29)),
            Verdict::Wait { until: t + wait }
        );
        assert_eq!(
            verdict(&[], Some(false), t, wait, t + wait),
            Verdict::NotMade
        );
        assert_eq!(verdict(&[], None, t, wait, t + wait), Verdict::NotMade);
        // Renewed another way, or two marked: never a guess.
        assert!(matches!(
            verdict(&[], Some(true), t, wait, t + wait),
            Verdict::Person(_)
        ));
        assert!(matches!(
            verdict(
                &[d(7, "Issued"), d(8, "Issued")],
                Some(false),
                t,
                wait,
                t + wait
            ),
            Verdict::Person(_)
        ));
    }
}
