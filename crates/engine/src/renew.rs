//! Renewing one certificate: the billable call, journaled before it is sent and after it is
//! answered. A crash between the two leaves `renew-requested` in the state, which the next
//! start reads as an unknown outcome (never renewed again automatically).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use sectigo_core::config::Profile;
use sectigo_core::names::CertId;
use sectigo_core::text::ts;
use sectigo_model::{CertRecord, CertState, Event, Notification};
use sectigo_scm::{RenewRequest, ScmClient, ScmError};
use sectigo_state::KeyStore;

use crate::budget::{Budget, Ticket, Usage};
use crate::clients::ScmClients;
use crate::error::EngineError;
use crate::ledger::{Announcement, Ledger};
use crate::policy::{self, Reason, RenewPolicy};
use crate::prebill::Stopped;
use crate::settings::{Profiles, Tuning};
use crate::shared::{bump, ClaimKey, Claims, Counters, Refusals};

/// What became of one renewal attempt.
#[derive(Debug, Clone)]
pub enum RenewOutcome {
    /// SCM accepted the renewal as `new_id` (billed); it is collected once issued.
    Requested { new_id: CertId },
    /// Nothing was sent.
    Skipped(Skip),
    /// Refused or failed with nothing billed; retried on the backoff unless it says otherwise.
    Failed(RenewFailure),
    /// The billable call may have reached SCM and its answer was lost: SCM may have renewed
    /// (and billed) it. Never renewed again automatically.
    Unknown(ScmError),
    /// Not sent, nothing billed, and not the certificate's failure: SCM (or its token
    /// endpoint) could not be reached, or refused the profile's credentials. The next cycle
    /// (or `renew`) tries again at once: no backoff.
    Deferred(ScmError),
    /// A scheduled renewal waiting for the profile's daily budget (nothing sent).
    Held(Usage),
}

/// Why nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("a renewal of it is already under way")]
    Busy,
    #[error("state is {0}")]
    State(&'static str),
    #[error("shutting down")]
    ShuttingDown,
    /// SCM's records (`[admin]`), read before billing, say not to: renewed already, expired,
    /// or a person must decide. Nothing was sent.
    #[error("SCM's records: {0}")]
    InScm(String),
}

/// Why a renewal failed with nothing billed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenewFailure {
    #[error(transparent)]
    Scm(ScmError),
    #[error("revoked in SCM")]
    RevokedInScm,
    #[error("no new key: {0}")]
    NoKey(String),
    #[error("cannot store the new key in the state directory: {0}")]
    KeyNotStored(String),
    /// The attempt could not be made (the state, an unknown profile): nothing was sent.
    #[error("{0}")]
    NotAttempted(String),
}

impl std::fmt::Display for RenewOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenewOutcome::Requested { new_id } => write!(f, "requested as {new_id}"),
            RenewOutcome::Skipped(s) => write!(f, "not renewed: {s}"),
            RenewOutcome::Failed(e) => write!(f, "{e}"),
            RenewOutcome::Unknown(e) => write!(f, "{e}"),
            RenewOutcome::Deferred(e) => write!(f, "deferred: {e}"),
            RenewOutcome::Held(u) => write!(
                f,
                "waiting for the daily budget ({} of {} renewals in 24 h)",
                u.used,
                u.limit.unwrap_or_default()
            ),
        }
    }
}

/// How a reason is written in the billing log.
fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::Window => "window",
        Reason::Forced => "forced",
        Reason::Requested => "requested",
        Reason::Operator => "operator",
    }
}

/// The history line of a renewal deferred for `e` (the same line is not written twice in a
/// row).
fn deferral_note(e: &ScmError) -> String {
    match e {
        ScmError::Auth(_) => "deferred: SCM refuses the profile's credentials".to_string(),
        _ => "deferred: SCM unreachable".to_string(),
    }
}

/// A short id for one billable request, unique per subject and instant: `r-` and 10 hex
/// digits of SHA-256(subject, time). Journaled before the call and sent in its `comments`.
pub fn request_id(subject: &str, at: DateTime<Utc>) -> String {
    let seed = format!(
        "{subject}\n{}",
        at.timestamp_nanos_opt().unwrap_or_default()
    );
    let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let hex: String = d.as_ref()[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("r-{hex}")
}

/// A renewal ready to be sent: the record, its client and what the call says.
struct Prepared {
    rec: CertRecord,
    client: Arc<ScmClient>,
    req: RenewRequest,
    request: String,
    /// The new key (`key_rotation = "new"`), made before anything is reserved or sent.
    key: Option<sectigo_core::secret::Secret>,
    /// The budget's ticket for the call.
    ticket: Ticket,
    reason: Reason,
}

#[derive(Clone)]
pub struct Renewer {
    pub(crate) ledger: Ledger,
    pub(crate) scm: ScmClients,
    pub(crate) claims: Claims,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) profiles: Profiles,
    pub(crate) tuning: Tuning,
    pub(crate) counters: Arc<Counters>,
    pub(crate) budget: Budget,
    pub(crate) refused: Refusals,
    /// SCM's records read before the billable call (with `[admin]`).
    pub(crate) prebill: crate::prebill::PreBill,
    /// Declared certificates rotate to their own `key_type` (`certificates.d/`).
    pub(crate) declared: crate::settings::DeclaredSet,
}

impl Renewer {
    /// Renews one certificate, journaling the billable call. [`Reason::Operator`] (`renew
    /// ID`) bypasses the backoff, the window, and a failed or unknown outcome.
    pub async fn renew(&self, id: &CertId, reason: Reason) -> Result<RenewOutcome, EngineError> {
        self.renew_with(id, reason, None).await
    }

    /// [`Renewer::renew`] with the budget's ticket taken already (the cycle takes them in
    /// expiry order). Without one, a scheduled renewal takes it here, or waits when the budget
    /// is spent; any other is consented, and counted.
    pub async fn renew_with(
        &self,
        id: &CertId,
        reason: Reason,
        ticket: Option<Ticket>,
    ) -> Result<RenewOutcome, EngineError> {
        let Some(_claim) = self.claims.claim(ClaimKey::Cert(id.clone())) else {
            return Ok(RenewOutcome::Skipped(Skip::Busy));
        };
        let mut rec = self.ledger.cert(id).await?;
        let profile = self
            .profiles
            .get(&rec.profile)
            .cloned()
            .ok_or_else(|| EngineError::unknown_profile(&rec.profile))?;
        let renewable = match rec.state {
            CertState::Active => true,
            CertState::Failed { .. } | CertState::OutcomeUnknown { .. } => {
                reason == Reason::Operator
            }
            _ => false,
        };
        if !renewable {
            return Ok(RenewOutcome::Skipped(Skip::State(rec.state.name())));
        }
        let ticket = match ticket {
            Some(t) => t,
            None if reason == Reason::Window => match self.budget.try_take(&rec.profile).await? {
                Some(t) => t,
                None => return Ok(RenewOutcome::Held(self.budget.usage(&rec.profile).await?)),
            },
            None => self.budget.take_consented(&rec.profile).await?,
        };
        // SCM's own record first (with `[admin]`): renewed already, revoked or expired there
        // is never billed again. The ticket goes back unspent when nothing is sent.
        if let Some(stopped) = self.prebill.check(&mut rec, reason).await? {
            return Ok(match stopped {
                Stopped::Deferred(e) => RenewOutcome::Deferred(e),
                Stopped::Revoked => RenewOutcome::Failed(RenewFailure::RevokedInScm),
                Stopped::InScm(why) => RenewOutcome::Skipped(Skip::InScm(why)),
            });
        }
        let pol = self.policy(&rec, &profile).await?;
        let p = match self.prepare(rec, &profile, ticket, reason).await? {
            Ok(p) => p,
            Err(failure) => return Ok(RenewOutcome::Failed(failure)),
        };
        self.send(p, &pol).await
    }

    /// The renewal policy the certificate's profile gives it now (its force run included):
    /// what decides when it is due, and what the log says of its next attempt.
    async fn policy(
        &self,
        rec: &CertRecord,
        profile: &Profile,
    ) -> Result<RenewPolicy, EngineError> {
        let name = rec.profile.clone();
        let st = self.ledger.read(move |s| s.profile_state(&name)).await?;
        Ok(RenewPolicy {
            expiry_window_days: profile.expiry_window_days,
            auto_renew: profile.auto_renew,
            force: st.and_then(|s| s.force).filter(|r| r.completed.is_none()),
        })
    }

    /// The request: a request id, the profile's fields, and a new key when the profile
    /// rotates keys.
    async fn prepare(
        &self,
        rec: CertRecord,
        profile: &Profile,
        ticket: Ticket,
        reason: Reason,
    ) -> Result<Result<Prepared, RenewFailure>, EngineError> {
        let client = self.scm.get(&rec.profile)?;
        let request = request_id(&rec.id, self.ledger.now());
        // A declared certificate's new key is of its declared type.
        let declared_type = rec
            .name
            .as_ref()
            .and_then(|n| self.declared.get(n))
            .filter(|d| d.profile == rec.profile)
            .map(|d| d.key_type);
        let (key, csr) = match profile.new_key.map(|k| declared_type.unwrap_or(k)) {
            None => (None, None),
            Some(kind) => {
                let (cn, sans) = (rec.subject_cn.clone(), rec.sans.clone());
                let made = tokio::task::spawn_blocking(move || {
                    sectigo_core::x509::keygen::key_and_csr(kind, &cn, &sans)
                })
                .await;
                match made {
                    Ok(Ok((key, csr))) => (Some(key), Some(csr)),
                    Ok(Err(e)) => return Ok(Err(RenewFailure::NoKey(e.to_string()))),
                    Err(e) => return Ok(Err(RenewFailure::NoKey(e.to_string()))),
                }
            }
        };
        let req = RenewRequest {
            csr,
            profile_id: profile.scm_profile_id,
            custom_fields: profile
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
            comments: sectigo_scm::comments_with_request(&profile.ssl_cert_comments, &request),
        };
        Ok(Ok(Prepared {
            rec,
            client,
            req,
            request,
            key,
            ticket,
            reason,
        }))
    }

    /// Waits for the rate limit and a token, journals, sends, records the answer.
    async fn send(&self, p: Prepared, pol: &RenewPolicy) -> Result<RenewOutcome, EngineError> {
        let Prepared {
            mut rec,
            client,
            req,
            request,
            key,
            ticket,
            reason,
        } = p;
        let due = rec.not_after;
        // Asked for by hand before the certificate is due: a failure with nothing billed is
        // the asker's answer, not the certificate's state (its scheduled renewal decides).
        let by_hand_early = match policy::due(&rec, pol, self.ledger.now()) {
            policy::Due::NotBefore(at) if reason == Reason::Operator => {
                Some((at, rec.state.clone()))
            }
            _ => None,
        };
        // The slot and the token before journaling: a crash while waiting then leaves nothing
        // unknown behind. Failing to get them defers the renewal: nothing sent or journaled.
        let reserved = match client.reserve().await {
            Ok(r) => r,
            Err(e) => return self.deferred(rec, e).await,
        };
        self.credentials_work(&rec.profile);
        // The new key, durably, before the billable call: a certificate SCM issues for it is
        // never without it.
        if let Some(k) = &key {
            if let Err(e) = self.store_key(&request, k).await {
                return Ok(RenewOutcome::Failed(RenewFailure::KeyNotStored(e)));
            }
        }
        self.journal(&mut rec, reason, &request).await?;
        let result = client.renew_reserved(Some(reserved), &rec.id, &req).await;
        let at = self.ledger.now();
        let billed = |what: &CertRecord| sectigo_model::BillingEntry {
            profile: what.profile.clone(),
            at,
            what: what.id.to_string(),
            request: request.clone(),
            reason: reason_name(reason).into(),
        };
        let outcome = match result {
            Ok(new_id) => {
                if key.is_some() {
                    self.move_key(&rec, &request, &new_id).await;
                }
                self.budget.spend(ticket, billed(&rec)).await?;
                self.accepted(&mut rec, new_id, at)
            }
            Err(e) if e.maybe_billed() => {
                self.budget.spend(ticket, billed(&rec)).await?;
                self.unknown(&mut rec, e, &request, due, at)
            }
            // SCM's outage (its host found down), not this renewal's own error.
            Err(e) if e.is_unreachable() && client.host_down() => self.not_sent(&mut rec, e, at),
            Err(e @ ScmError::Refused { code: -130, .. }) if matches!(client.status(&rec.id).await, Ok(s) if s.eq_ignore_ascii_case("revoked")) => {
                self.revoked_in_scm(&mut rec, &e, at)
            }
            Err(e) => match by_hand_early {
                Some((due_at, before)) => self.refused_by_hand(&mut rec, e, before, due_at, at),
                None => self.failed(&mut rec, e, at, pol),
            },
        };
        let (outcome, news) = outcome;
        self.ledger.commit(vec![rec], news).await?;
        Ok(outcome)
    }

    /// Nothing was sent (no token, a host found down, credentials refused): not the
    /// certificate's failure. Its history says so (once in a row); its backoff is untouched.
    async fn deferred(
        &self,
        mut rec: CertRecord,
        e: ScmError,
    ) -> Result<RenewOutcome, EngineError> {
        if let ScmError::Auth(why) = &e {
            let now = self.ledger.now();
            if self.refused.refused(&rec.profile, now, why) {
                let file = self
                    .profiles
                    .get(&rec.profile)
                    .map(|p| p.file.display().to_string())
                    .unwrap_or_else(|| "its profile file".into());
                let msg = format!("Needs a human: the token endpoint refuses the credentials of profile {} ({why}). Its renewals wait, and nothing else is sent for it until they work: fix client_id / client_secret in {file}, then reload.", rec.profile);
                error!(profile = %rec.profile, "{msg}");
                self.ledger.tell(Notification {
                    event: "credentials_refused",
                    cert_id: String::new(),
                    profile: rec.profile.to_string(),
                    message: msg,
                });
            }
        }
        let note = deferral_note(&e);
        if rec.history.last().is_none_or(|h| h.event != note) {
            rec.log(self.ledger.now(), note);
            self.ledger.commit(vec![rec], Default::default()).await?;
        }
        Ok(RenewOutcome::Deferred(e))
    }

    /// The token endpoint gave a token: a refusal of the profile's credentials is over.
    fn credentials_work(&self, profile: &sectigo_core::names::ProfileName) {
        if let Some(since) = self.refused.accepted(profile) {
            let msg = format!(
                "the token endpoint accepts the credentials of profile {profile} again (refused since {}); its waiting renewals go now",
                ts(since)
            );
            info!(profile = %profile, "{msg}");
            self.ledger.tell(Notification {
                event: "credentials_accepted",
                cert_id: String::new(),
                profile: profile.to_string(),
                message: msg,
            });
        }
    }

    /// SCM could not be reached for the renew call itself, and cannot have acted on it (no
    /// connection, a 5xx): not billed, not the certificate's failure. Back to active, no
    /// backoff; the next cycle tries again.
    fn not_sent(
        &self,
        rec: &mut CertRecord,
        e: ScmError,
        at: DateTime<Utc>,
    ) -> (RenewOutcome, Announcement) {
        rec.state = CertState::Active;
        rec.last_error = Some(e.to_string());
        rec.log(at, deferral_note(&e));
        warn!(profile = %rec.profile, cert_id = %rec.id, "renewal of {} not made: {e}; SCM cannot be reached, nothing was billed; the next cycle tries again", rec.subject_cn);
        (RenewOutcome::Deferred(e), Announcement::default())
    }

    async fn store_key(
        &self,
        request: &str,
        key: &sectigo_core::secret::Secret,
    ) -> Result<(), String> {
        let (ks, r, k) = (self.keys.clone(), request.to_string(), key.clone());
        match tokio::task::spawn_blocking(move || ks.put(&r, &k)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The key follows the certificate SCM named, before that is recorded.
    async fn move_key(&self, rec: &CertRecord, request: &str, new_id: &CertId) {
        let (ks, r, n) = (self.keys.clone(), request.to_string(), new_id.clone());
        let moved = tokio::task::spawn_blocking(move || ks.rename(&r, &n)).await;
        let err = match moved {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        error!(profile = %rec.profile, cert_id = %rec.id, "the new key of renewal {new_id} stays under request {request}: {err}");
    }

    /// The intent, durably, before the billable call.
    async fn journal(
        &self,
        rec: &mut CertRecord,
        reason: Reason,
        request: &str,
    ) -> Result<(), EngineError> {
        let now = self.ledger.now();
        let forced = reason == Reason::Forced;
        rec.state = CertState::RenewRequested {
            due: rec.not_after,
            at: now,
            forced,
            request: Some(request.to_string()),
        };
        rec.log(
            now,
            match reason {
                Reason::Window => "renewal started (inside the expiry window)",
                Reason::Forced => "renewal started (force renewal)",
                Reason::Requested => "renewal started (asked for from its Jira issue)",
                Reason::Operator => "renewal started (by operator)",
            },
        );
        let news = self
            .ledger
            .announce(Event::RenewalStarted { cert: rec, forced });
        self.ledger.commit(vec![rec.clone()], news).await?;
        info!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "renewing {} (expires {}{}), request {request}", rec.subject_cn, ts(rec.not_after), if forced { ", force renewal" } else { "" });
        Ok(())
    }

    fn accepted(
        &self,
        rec: &mut CertRecord,
        new_id: CertId,
        at: DateTime<Utc>,
    ) -> (RenewOutcome, Announcement) {
        rec.state = CertState::Collecting {
            new_id: new_id.clone(),
            at,
        };
        rec.failures = 0;
        rec.next_attempt = None;
        rec.last_error = None;
        rec.stall_reported = None;
        rec.log(at, format!("renewal requested: SCM certificate {new_id}"));
        info!(profile = %rec.profile, cert_id = %rec.id, new_cert_id = %new_id, "renewal of {} accepted by SCM as certificate {new_id}", rec.subject_cn);
        bump(&self.counters.requested);
        (RenewOutcome::Requested { new_id }, Announcement::default())
    }

    fn unknown(
        &self,
        rec: &mut CertRecord,
        e: ScmError,
        request: &str,
        due: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> (RenewOutcome, Announcement) {
        rec.state = CertState::OutcomeUnknown {
            due,
            at,
            request: Some(request.to_string()),
        };
        rec.last_error = Some(format!(
            "{} (the call: {e})",
            crate::settle_auto::unknown_note(
                Some(request),
                self.scm.admin(&rec.profile).is_some(),
                self.tuning.renewal.settle_after_minutes,
            )
        ));
        rec.log(at, format!("renewal outcome unknown: {e}"));
        let news = self.ledger.announce(Event::OutcomeUnknown {
            cert: rec,
            reason: &e.to_string(),
        });
        error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "renewal outcome unknown for {}: {e}; SCM may have renewed (and billed) it, so it will not be retried automatically: check SCM, then `certs resolve {}`", rec.subject_cn, rec.id);
        bump(&self.counters.unknown);
        (RenewOutcome::Unknown(e), news)
    }

    /// SCM says the certificate is not Issued because it was revoked there: stop renewing it.
    fn revoked_in_scm(
        &self,
        rec: &mut CertRecord,
        e: &ScmError,
        at: DateTime<Utc>,
    ) -> (RenewOutcome, Announcement) {
        rec.state = CertState::Revoked { at };
        rec.next_attempt = None;
        rec.last_error = Some(e.to_string());
        rec.log(at, "found revoked in SCM: no longer renewed");
        let news = self.ledger.announce(Event::RevokedInScm {
            cert: rec,
            detail: "its renewal was refused: state not Issued; SCM's status: Revoked",
        });
        error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
            "{} ({}) was revoked in SCM, not by the connector: it is no longer renewed", rec.id, rec.subject_cn);
        bump(&self.counters.failed);
        (RenewOutcome::Failed(RenewFailure::RevokedInScm), news)
    }

    /// A renewal asked for by hand (`renew ID --yes`) of a certificate not due yet failed,
    /// with nothing billed: the person who asked hears it (the command fails) and its history
    /// keeps it; the certificate stays as it was (no backoff, no problem for `status
    /// --check`): its scheduled renewal, when due, decides.
    fn refused_by_hand(
        &self,
        rec: &mut CertRecord,
        e: ScmError,
        before: CertState,
        due_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> (RenewOutcome, Announcement) {
        rec.state = before;
        rec.log(
            at,
            format!(
                "renewal asked for by hand not made: {e}; not due before {}, when the scheduled renewal decides",
                ts(due_at)
            ),
        );
        warn!(profile = %rec.profile, cert_id = %rec.id, "renewal of {} asked for by hand not made: {e}; nothing changes for it: it is not due before {}, when the scheduled renewal decides", rec.subject_cn, ts(due_at));
        let outcome = if e.is_transient() {
            RenewOutcome::Deferred(e)
        } else {
            RenewOutcome::Failed(RenewFailure::Scm(e))
        };
        (outcome, Announcement::default())
    }

    /// A failure with nothing billed: refused for good, or retried on the backoff.
    fn failed(
        &self,
        rec: &mut CertRecord,
        e: ScmError,
        at: DateTime<Utc>,
        pol: &RenewPolicy,
    ) -> (RenewOutcome, Announcement) {
        if let ScmError::Permanent { .. } = e {
            rec.state = CertState::Failed {
                reason: e.to_string(),
                at,
            };
            rec.last_error = Some(e.to_string());
            rec.log(at, format!("renewal refused: {e}"));
            let news = self.ledger.announce(Event::RenewalFailed {
                cert: rec,
                reason: &e.to_string(),
                will_retry: None,
            });
            error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                "renewal of {} refused by SCM, not retrying automatically: {e}", rec.subject_cn);
            bump(&self.counters.failed);
            return (RenewOutcome::Failed(RenewFailure::Scm(e)), news);
        }
        let (_, news) = self.retry_later(rec, at, &e);
        let attempt = rec.failures;
        let refused = matches!(e, ScmError::Refused { .. });
        // What happens next, as `certs show` says it: one source, the record and the policy.
        let next = crate::explain(&policy::decide(rec, pol, at));
        // A refusal needs a person in SCM; a failure that repeats needs one too (ERROR). Once
        // is a blip (WARN).
        if refused || attempt >= 2 {
            error!(profile = %rec.profile, cert_id = %rec.id, jira_key = rec.jira_issue.as_deref(),
                "renewal of {} {} (attempt {attempt}): {e}; next action: {next}", rec.subject_cn,
                if refused { "refused by SCM" } else { "failed again" });
        } else {
            warn!(profile = %rec.profile, cert_id = %rec.id, "renewal of {} failed (attempt {attempt}): {e}; next action: {next}", rec.subject_cn);
        }
        if refused {
            bump(&self.counters.refused);
        } else {
            bump(&self.counters.failed);
        }
        (RenewOutcome::Failed(RenewFailure::Scm(e)), news)
    }

    /// A failed attempt with nothing billed: back to active, the next attempt on the persisted
    /// backoff. Returns when that is, and the Jira update (the first failure in a row only).
    fn retry_later(
        &self,
        rec: &mut CertRecord,
        at: DateTime<Utc>,
        e: &ScmError,
    ) -> (DateTime<Utc>, Announcement) {
        rec.state = CertState::Active;
        rec.failures += 1;
        let r = &self.tuning.renewal;
        let next = policy::next_attempt(
            rec.failures,
            at,
            rec.not_after,
            chrono::Duration::minutes(r.retry_initial_mins as i64),
            chrono::Duration::hours(r.retry_max_hours as i64),
        );
        rec.next_attempt = Some(next);
        rec.last_error = Some(e.to_string());
        rec.log(
            at,
            format!(
                "renewal attempt {} failed: {e}; next attempt {}",
                rec.failures,
                ts(next)
            ),
        );
        let news = if rec.failures == 1 {
            self.ledger.announce(Event::RenewalFailed {
                cert: rec,
                reason: &e.to_string(),
                will_retry: Some(next),
            })
        } else {
            Announcement::default()
        };
        (next, news)
    }
}
