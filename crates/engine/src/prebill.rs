//! The check before a billable renewal, with a profile's `[admin]` (SCM's Admin API): SCM's
//! own record of the certificate is read first (free), and what it says can stop the call.
//!
//! - Renewed already (outside the daemon: the web UI, SCM's auto-renewal, another tool, or the
//!   daemon itself before a stale backup was restored): no call. The successor is adopted when
//!   it can be told without doubt ([`successor`]: same CN, same certificate type, issued on or
//!   after SCM's `renewedDate`, exactly one); one not issued yet is waited for; anything else
//!   is left to a person (`certs resolve ID --renewed-as NEW_ID`). Never adopted on a guess.
//! - Revoked in SCM: no call, no longer renewed, reported. Expired in SCM: no call, reported;
//!   only `renew ID` (a person's consent) renews it.
//! - SCM's own auto-renewal on: a warning kept on the record (`status`, `certs show`), the
//!   renewal goes on (the daemon is what the profile configures).
//! - The Admin API cannot be reached (or refuses the admin account, or answers nonsense): the
//!   renewal is deferred like an outage (nothing sent, nothing billed, no backoff, the next
//!   cycle tries again). It never bills unchecked.
//!
//! Without `[admin]` nothing is checked here.

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use sectigo_core::names::CertId;
use sectigo_model::{CertRecord, CertState, Event, Notification};
use sectigo_scm::admin::{ssl_id_of, AdminClient, CertDetails, CertStatus, ListFilter};
use sectigo_scm::ScmError;

use crate::clients::ScmClients;
use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy::Reason;
use crate::settle::{By, Settler};
use sectigo_core::text::Escaped;

/// Why the pre-bill check sent nothing (the renewal maps it to its outcome).
#[derive(Debug, Clone)]
pub enum Stopped {
    /// The Admin API could not be asked: deferred like an outage.
    Deferred(ScmError),
    /// Revoked in SCM: no longer renewed.
    Revoked,
    /// Renewed already, expired, or a person must decide: what SCM's records said.
    InScm(String),
}

/// What the pre-bill check found about a renewed certificate's successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Successor {
    /// Exactly one issued certificate fits, and none is pending.
    One(i64),
    /// None issued yet; these are requested and not issued.
    Pending(Vec<i64>),
    /// None fits, or more than one: a person decides.
    Doubt { issued: Vec<i64>, pending: Vec<i64> },
}

/// Which of `candidates` (certificates with the old one's CN) can be `old`'s successor: not
/// `old`, same CN (any case), same certificate type, requested or issued on or after SCM's
/// `renewedDate` of `old` (whole days compared generously). Pure.
pub fn successor(old: &CertDetails, candidates: &[CertDetails]) -> Successor {
    let after = old.renewed_date.map(|d| d.earliest());
    let fits = |c: &&CertDetails| {
        c.ssl_id != old.ssl_id
            && c.common_name.eq_ignore_ascii_case(&old.common_name)
            && c.ssl_type_id() == old.ssl_type_id()
            && match (after, c.issued.or(c.requested)) {
                (Some(a), Some(d)) => d.latest() >= a,
                // No renewedDate, or a candidate without dates: cannot be told.
                _ => false,
            }
    };
    let mut issued = Vec::new();
    let mut pending = Vec::new();
    for c in candidates.iter().filter(fits) {
        match c.status {
            CertStatus::Issued => issued.push(c.ssl_id),
            CertStatus::Requested
            | CertStatus::Approved
            | CertStatus::Applied
            | CertStatus::SaApproved
            | CertStatus::Init => pending.push(c.ssl_id),
            _ => {}
        }
    }
    match (issued.as_slice(), pending.as_slice()) {
        ([one], []) => Successor::One(*one),
        ([], [_, ..]) => Successor::Pending(pending),
        _ => Successor::Doubt { issued, pending },
    }
}

#[derive(Clone)]
pub struct PreBill {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) settler: Settler,
}

impl PreBill {
    /// Reads SCM's record of `rec` (the caller holds its claim) before a billable renewal:
    /// `None` to go on and bill, or the outcome that replaces the call (`rec` committed as it
    /// then stands). `rec` may be updated (the auto-renewal warning), and the caller goes on
    /// with it.
    pub(crate) async fn check(
        &self,
        rec: &mut CertRecord,
        reason: Reason,
    ) -> Result<Option<Stopped>, EngineError> {
        let Some(admin) = self.scm.admin(&rec.profile) else {
            return Ok(None);
        };
        let Some(ssl_id) = ssl_id_of(&rec.id) else {
            return self
                .person(
                    rec,
                    format!("certificate id {} is not an SCM id: SCM's records cannot be checked before billing; renew it by hand (`renew {} --yes`) if it should be", rec.id, rec.id),
                )
                .await
                .map(Some);
        };
        let d = match admin.details(ssl_id).await {
            Ok(d) => d,
            Err(e @ ScmError::Permanent { .. }) => {
                return self
                    .person(
                        rec,
                        format!("SCM's Admin API does not know certificate {} ({e}): nothing billed; check that [admin] reaches the same SCM account, or `certs forget {}`", rec.id, rec.id),
                    )
                    .await
                    .map(Some)
            }
            Err(e) => return self.unchecked(rec, e).await.map(Some),
        };
        self.note_auto_renew(rec, &d);
        let now = self.ledger.now();
        if d.status == CertStatus::Revoked {
            return self.revoked(rec, &d, now).await.map(Some);
        }
        if d.renewed || d.status == CertStatus::Replaced {
            return self.renewed_outside(rec, &admin, &d, now).await.map(Some);
        }
        let expired =
            d.status == CertStatus::Expired || d.expires.is_some_and(|e| e.latest() <= now);
        if expired && reason != Reason::Operator {
            return self.expired(rec, &d, now).await.map(Some);
        }
        Ok(None)
    }

    /// Keeps SCM's auto-renewal on the record (a warning), or clears it.
    fn note_auto_renew(&self, rec: &mut CertRecord, d: &CertDetails) {
        let on = d.auto_renew_on();
        if on == rec.scm_auto_renew {
            return;
        }
        rec.scm_auto_renew = on;
        let now = self.ledger.now();
        if on {
            warn!(profile = %rec.profile, cert_id = %rec.id, "SCM's own auto-renewal is on for {} ({}): SCM and the daemon would both renew (and bill) it; turn SCM's auto-renewal off for it", rec.id, rec.subject_cn);
            rec.log(now, "SCM's own auto-renewal is on for it: both would renew (and bill); turn it off in SCM");
        } else {
            rec.log(now, "SCM's own auto-renewal is off for it again");
        }
    }

    /// The Admin API could not be asked: deferred like an outage, nothing billed.
    async fn unchecked(&self, rec: &mut CertRecord, e: ScmError) -> Result<Stopped, EngineError> {
        let note = "deferred: SCM's Admin API cannot be reached; nothing is billed before SCM's records are checked";
        warn!(profile = %rec.profile, cert_id = %rec.id, "renewal of {} deferred: SCM's Admin API cannot be asked whether it was renewed already ({e}); nothing billed, the next cycle tries again", rec.subject_cn);
        if rec.history.last().is_none_or(|h| h.event != note) {
            rec.log(self.ledger.now(), note);
        }
        self.ledger
            .commit(vec![rec.clone()], Default::default())
            .await?;
        Ok(Stopped::Deferred(e))
    }

    async fn revoked(
        &self,
        rec: &mut CertRecord,
        d: &CertDetails,
        at: DateTime<Utc>,
    ) -> Result<Stopped, EngineError> {
        rec.state = CertState::Revoked { at };
        rec.next_attempt = None;
        let when = d.revoked.map(|r| format!(" on {r}")).unwrap_or_default();
        rec.last_error = Some(format!("revoked in SCM{when}"));
        rec.log(
            at,
            format!(
                "found revoked in SCM{when} before renewing: no longer renewed, nothing billed"
            ),
        );
        let news = self.ledger.announce(Event::RevokedInScm {
            cert: rec,
            detail: "SCM's records show it revoked: it was not renewed",
        });
        error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "{} ({}) is revoked in SCM{when}, not by the connector: not renewed, no longer renewed", rec.id, rec.subject_cn);
        self.ledger.commit(vec![rec.clone()], news).await?;
        Ok(Stopped::Revoked)
    }

    async fn expired(
        &self,
        rec: &mut CertRecord,
        d: &CertDetails,
        at: DateTime<Utc>,
    ) -> Result<Stopped, EngineError> {
        let when = d.expires.map(|e| format!(" on {e}")).unwrap_or_default();
        let msg = format!(
            "expired in SCM{when}: not renewed automatically, nothing billed; `renew {} --yes` renews it if it is still needed, `certs forget {}` if not",
            rec.id, rec.id
        );
        rec.state = CertState::Failed {
            reason: msg.clone(),
            at,
        };
        rec.last_error = Some(msg.clone());
        rec.log(at, msg.clone());
        let news = self.ledger.announce(Event::RenewalFailed {
            cert: rec,
            reason: &msg,
            will_retry: None,
        });
        error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(), "{} ({}) {msg}", rec.id, rec.subject_cn);
        self.ledger.commit(vec![rec.clone()], news).await?;
        Ok(Stopped::InScm(msg))
    }

    /// SCM marks it renewed (or replaced): no call. Its successor adopted, waited for, or left
    /// to a person.
    async fn renewed_outside(
        &self,
        rec: &mut CertRecord,
        admin: &AdminClient,
        d: &CertDetails,
        now: DateTime<Utc>,
    ) -> Result<Stopped, EngineError> {
        let when = d
            .renewed_date
            .map(|r| format!(" on {r}"))
            .unwrap_or_default();
        let what = if d.status == CertStatus::Replaced {
            "replaced in SCM".to_string()
        } else {
            format!("renewed in SCM{when}, not by this daemon's journal")
        };
        let filter = ListFilter {
            common_name: Some(d.common_name.clone()),
            ..ListFilter::default()
        };
        let found = match self.candidates(admin, &filter, d).await {
            Ok(c) => successor(d, &c),
            Err(e) => return self.unchecked(rec, e).await,
        };
        match found {
            Successor::One(id) => {
                let new_id = CertId::parse(&id.to_string())
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                info!(profile = %rec.profile, cert_id = %rec.id, new_cert_id = %new_id, "{} ({}) is {what}: not renewing it again; adopting SCM's certificate {new_id}", rec.id, rec.subject_cn);
                match self
                    .settler
                    .adopt_renewal(rec.clone(), &new_id, By::Outside)
                    .await
                {
                    Ok(_) => Ok(Stopped::InScm(format!(
                        "{what}: nothing billed; SCM's certificate {new_id} adopted as its renewal"
                    ))),
                    Err(e) => {
                        self.person(rec, format!("{what}, and SCM's certificate {new_id} looks like its renewal but cannot be adopted ({e}): nothing billed; check SCM, then `certs resolve {} --renewed-as NEW_ID`", rec.id)).await
                    }
                }
            }
            Successor::Pending(ids) => {
                let note = format!(
                    "{what}: its successor ({}) is not issued yet; not renewed again, nothing billed; waiting",
                    join(&ids)
                );
                info!(profile = %rec.profile, cert_id = %rec.id, "{} ({}) {note}", rec.id, rec.subject_cn);
                if rec.history.last().is_none_or(|h| h.event != note) {
                    rec.log(now, note.clone());
                }
                rec.last_error = Some(note.clone());
                self.ledger
                    .commit(vec![rec.clone()], Default::default())
                    .await?;
                Ok(Stopped::InScm(note))
            }
            Successor::Doubt { issued, pending } => {
                let seen = if issued.is_empty() && pending.is_empty() {
                    "no certificate in SCM can be told to be its successor".to_string()
                } else {
                    format!(
                        "several certificates in SCM could be its successor ({})",
                        join(&[issued, pending].concat())
                    )
                };
                self.person(rec, format!("{what}; {seen}: not renewed again, nothing billed. Check SCM, then `certs resolve {} --renewed-as NEW_ID` (or `--not-renewed` to have it renewed)", rec.id)).await
            }
        }
    }

    /// The details of every certificate listed under `filter` with `old`'s CN.
    async fn candidates(
        &self,
        admin: &AdminClient,
        filter: &ListFilter,
        old: &CertDetails,
    ) -> Result<Vec<CertDetails>, ScmError> {
        let mut out = Vec::new();
        for s in admin.list_all(filter).await? {
            if s.ssl_id == old.ssl_id || !s.common_name.eq_ignore_ascii_case(&old.common_name) {
                continue;
            }
            out.push(admin.details(s.ssl_id).await?);
        }
        Ok(out)
    }

    /// Nothing billed, and a person must decide: the renewal waits as an unknown outcome (never
    /// renewed automatically; `certs resolve` settles it), told to the log, Jira and
    /// `[notify]`.
    async fn person(&self, rec: &mut CertRecord, msg: String) -> Result<Stopped, EngineError> {
        let now = self.ledger.now();
        rec.state = CertState::OutcomeUnknown {
            due: rec.not_after,
            at: now,
            request: None,
        };
        rec.last_error = Some(msg.clone());
        rec.log(now, msg.clone());
        let news = self.ledger.announce(Event::OutcomeUnknown {
            cert: rec,
            reason: &msg,
        });
        error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(), "Needs a human: {} ({}): {}", rec.id, Escaped(&rec.subject_cn), msg);
        self.ledger.tell(Notification {
            event: "renewed_outside",
            cert_id: rec.id.to_string(),
            profile: rec.profile.to_string(),
            message: msg.clone(),
        });
        self.ledger.commit(vec![rec.clone()], news).await?;
        Ok(Stopped::InScm(msg))
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sectigo_scm::admin::parse_details;

    fn details(id: i64, cn: &str, status: &str, ty: i64, issued: Option<&str>) -> CertDetails {
        let mut v = serde_json::json!({
            "sslId": id, "commonName": cn, "status": status,
            "certType": {"id": ty, "name": "t"}, "requested": "2026-05-01",
        });
        if let Some(i) = issued {
            v["issued"] = serde_json::json!(i);
            v["requested"] = serde_json::json!(i);
        }
        parse_details(200, v.to_string().as_bytes()).unwrap()
    }

    fn old() -> CertDetails {
        let mut d = details(1, "a.example.com", "Issued", 5, Some("2026-01-01"));
        d.renewed = true;
        d.renewed_date = Some(sectigo_scm::admin::parse_scm_date("2026-05-10").unwrap());
        d
    }

    #[test]
    fn exactly_one_fitting_issued_certificate_is_the_successor() {
        let c = vec![
            details(2, "A.example.com", "Issued", 5, Some("2026-05-10")),
            // Older than the renewal, another type, another name, revoked: not candidates.
            details(3, "a.example.com", "Issued", 5, Some("2026-02-01")),
            details(4, "a.example.com", "Issued", 6, Some("2026-05-11")),
            details(5, "b.example.com", "Issued", 5, Some("2026-05-11")),
            details(6, "a.example.com", "Revoked", 5, Some("2026-05-11")),
        ];
        assert_eq!(successor(&old(), &c), Successor::One(2));
    }

    #[test]
    fn two_fitting_or_none_is_doubt_and_pending_waits() {
        let two = vec![
            details(2, "a.example.com", "Issued", 5, Some("2026-05-10")),
            details(3, "a.example.com", "Issued", 5, Some("2026-05-12")),
        ];
        assert!(matches!(successor(&old(), &two), Successor::Doubt { .. }));
        assert!(matches!(successor(&old(), &[]), Successor::Doubt { .. }));
        let pending = vec![details(
            2,
            "a.example.com",
            "Applied",
            5,
            Some("2026-05-10"),
        )];
        assert_eq!(successor(&old(), &pending), Successor::Pending(vec![2]));
        // No renewedDate: nothing can be told.
        let mut o = old();
        o.renewed_date = None;
        assert!(matches!(successor(&o, &two[..1]), Successor::Doubt { .. }));
    }
}
