//! Certificates managed from Jira issues (`[jira.workflow]`). A person moves a Certificate
//! issue into a "requested" status (enroll, renew, revoke); the daemon finds it by JQL on its
//! own schedule, does what it asks through the engine, and reports back on the issue.
//!
//! A request is handled once: it is recorded as handled (durably) before anything is sent, and
//! handled again only after the issue has left the requested status (missing from two complete
//! searches in a row) and come back.

use std::collections::BTreeSet;

use tracing::{error, info, warn};

use sectigo_core::clock::SharedClock;
use sectigo_core::config::{JiraConfig, WorkflowConfig};
use sectigo_core::names::{CertId, IssueKey};
use sectigo_core::text::{bounded, count, Escaped};
use sectigo_core::x509::csr;
use sectigo_core::x509::revocation::reason_code;
use sectigo_engine::{Engine, EngineError, IssueOutcome};
use sectigo_jira::{FieldCache, FoundIssue, JiraClient, JiraError};
use sectigo_model::IssueRecord;
use sectigo_state::blocking;

/// Complete searches in a row that must miss an issue before its request counts as withdrawn
/// (search indexes lag behind transitions; one miss is not enough to act on).
pub const MISSES_TO_CLEAR: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Enroll,
    Renew,
    Revoke,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Enroll, Action::Renew, Action::Revoke];

    pub fn name(self) -> &'static str {
        match self {
            Action::Enroll => "enroll",
            Action::Renew => "renew",
            Action::Revoke => "revoke",
        }
    }

    fn jql(self, cfg: &WorkflowConfig) -> &str {
        match self {
            Action::Enroll => &cfg.enroll_jql,
            Action::Renew => &cfg.renew_jql,
            Action::Revoke => &cfg.revoke_jql,
        }
    }
}

/// What an issue in a requested status asks for, as read from its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub key: IssueKey,
    pub csr: Option<String>,
    pub profile: Option<String>,
    pub cert_id: Option<String>,
    pub reason: Option<String>,
}

/// What to do with a request. Pure data, decided by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Handled already: nothing to do until the issue leaves the status and comes back.
    Skip,
    Enroll {
        profile: String,
        csr: csr::Csr,
    },
    Renew {
        cert_id: Option<CertId>,
    },
    Revoke {
        cert_id: Option<CertId>,
        message: String,
        reason_code: i32,
    },
    /// Refused before anything is sent: the issue is told why.
    Reject {
        reason: String,
    },
}

/// Decides what to do with a request. Pure.
pub fn plan(
    action: Action,
    req: &Request,
    rec: Option<&IssueRecord>,
    cfg: &WorkflowConfig,
) -> Plan {
    if rec.is_some_and(|r| r.is_handled(action.name())) {
        return Plan::Skip;
    }
    let profile = req.profile.clone().unwrap_or_default();
    match action {
        Action::Enroll => {
            let Some(text) = &req.csr else {
                return Plan::Reject {
                    reason: format!(
                        "the field {:?} is empty: paste the certificate signing request (PEM) into it",
                        cfg.csr_field
                    ),
                };
            };
            let csr = match csr::parse(text) {
                Ok(c) => c,
                Err(why) => {
                    return Plan::Reject {
                        reason: format!("invalid CSR: {why}. Nothing was sent to SCM"),
                    }
                }
            };
            if profile.is_empty() {
                return Plan::Reject {
                    reason: format!(
                        "the field {:?} is empty: name the connector profile to enroll with",
                        cfg.profile_field
                    ),
                };
            }
            Plan::Enroll { profile, csr }
        }
        Action::Renew | Action::Revoke if cert_id(req).is_err() => Plan::Reject {
            reason: format!(
                "the field {:?} holds {}; Nothing was sent to SCM",
                cfg.cert_id_field,
                cert_id(req).err().unwrap_or_default()
            ),
        },
        Action::Renew => Plan::Renew {
            cert_id: cert_id(req).unwrap_or_default(),
        },
        Action::Revoke => {
            let given = req.reason.clone().unwrap_or_default();
            let code = reason_code(&given).unwrap_or(cfg.revoke_reason_code);
            let message = if given.is_empty() {
                format!("Revocation requested in Jira issue {}", req.key)
            } else {
                format!("{given} (Jira issue {})", req.key)
            };
            Plan::Revoke {
                cert_id: cert_id(req).unwrap_or_default(),
                message: message.chars().take(512).collect(),
                reason_code: code,
            }
        }
    }
}

/// The certificate id the issue's field names, if any; `Err`: the field holds something else
/// (the reason, for the issue).
fn cert_id(req: &Request) -> Result<Option<CertId>, String> {
    match req
        .cert_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Ok(None),
        Some(t) => CertId::parse(t).map(Some).map_err(|e| e.to_string()),
    }
}

/// Updates a record's handled flag for `action` after a complete search: found, the miss count
/// resets; missing, it grows, and at [`MISSES_TO_CLEAR`] the flag is cleared. Returns whether
/// the record changed. Pure.
pub fn note_search(rec: &mut IssueRecord, action: Action, found: bool) -> bool {
    let Some(pos) = rec.handled.iter().position(|h| h.action == action.name()) else {
        return false;
    };
    let h = &mut rec.handled[pos];
    match (found, h.misses) {
        (true, 0) => false,
        (true, _) => {
            h.misses = 0;
            true
        }
        (false, m) if m + 1 >= MISSES_TO_CLEAR => {
            rec.handled.remove(pos);
            true
        }
        (false, _) => {
            h.misses += 1;
            true
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Issues found in a requested status.
    pub found: usize,
    /// Requests carried out (sent to SCM).
    pub done: usize,
    pub rejected: usize,
    pub deferred: usize,
    pub unknown: usize,
    /// Enrolled certificates collected.
    pub collected: usize,
    /// Searches that failed (the others still ran).
    pub errors: Vec<String>,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |n: usize| n as u64;
        write!(
            f,
            "{} found, {} sent to SCM, {} refused, {} deferred, {} unknown, {} collected",
            count(n(self.found), "request", "requests"),
            self.done,
            self.rejected,
            self.deferred,
            self.unknown,
            count(n(self.collected), "certificate", "certificates"),
        )
    }
}

/// Field ids for one poll.
struct Fields {
    csr: String,
    profile: String,
    cert_id: String,
    reason: Option<String>,
}

/// One action of a poll failed; the poll goes on with the other actions.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{error} (JQL {jql:?}, [jira.workflow] {key}_jql)")]
    Search {
        error: JiraError,
        jql: String,
        key: &'static str,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] sectigo_state::StoreError),
}

pub struct Poller {
    client: JiraClient,
    fields: FieldCache,
    cfg: WorkflowConfig,
    /// Issues already logged as unreadable (each is logged once, not every poll).
    logged: std::sync::Mutex<BTreeSet<String>>,
}

impl Poller {
    /// A poller for the configuration; `None` when `[jira.workflow]` is off.
    pub fn new(
        jc: &JiraConfig,
        clock: SharedClock,
    ) -> Result<Option<Poller>, sectigo_jira::ClientError> {
        let Some(cfg) = jc.workflow.clone() else {
            return Ok(None);
        };
        Ok(Some(Poller {
            client: JiraClient::new(jc, clock)?,
            fields: FieldCache::default(),
            cfg,
            logged: Default::default(),
        }))
    }

    pub fn config(&self) -> &WorkflowConfig {
        &self.cfg
    }

    async fn field_ids(&self) -> Result<Fields, JiraError> {
        let c = &self.client;
        Ok(Fields {
            csr: self.fields.id(c, &self.cfg.csr_field).await?,
            profile: self.fields.id(c, &self.cfg.profile_field).await?,
            cert_id: self.fields.id(c, &self.cfg.cert_id_field).await?,
            reason: match &self.cfg.revoke_reason_field {
                Some(n) => Some(self.fields.id(c, n).await?),
                None => None,
            },
        })
    }

    /// One poll: each action's search, its requests, then the collection of issued
    /// enrollments and unfinished revocations.
    pub async fn poll(&self, engine: &Engine) -> PollReport {
        let _one_at_a_time = engine.shared().workflow_poll().await;
        let mut report = PollReport::default();
        match self.field_ids().await {
            Err(e) => {
                error!("Jira workflow: {e}; requests from Jira wait");
                report.errors.push(e.to_string());
            }
            Ok(f) => {
                for action in Action::ALL {
                    if let Err(e) = self.poll_action(engine, action, &f, &mut report).await {
                        error!("Jira workflow, {} requests: {e}", action.name());
                        report.errors.push(e.to_string());
                    }
                }
            }
        }
        match engine.requests().issue_work().await {
            Ok(n) => report.collected = n,
            Err(e) => {
                error!("Jira workflow: collecting enrollments: {e}");
                report.errors.push(e.to_string());
            }
        }
        // Renewals asked for from issues are collected at the poll's pace, not the cycle's.
        if let Err(e) = engine.collector().collect_pending().await {
            error!("Jira workflow: collecting renewals: {e}");
            report.errors.push(e.to_string());
        }
        report
    }

    async fn poll_action(
        &self,
        engine: &Engine,
        action: Action,
        f: &Fields,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        // Only what decides a request is searched for; the CSR, the one large field, is read
        // per issue, so that no issue can make a search page too large for the others.
        let mut ids = vec![
            "summary".to_string(),
            "status".to_string(),
            f.profile.clone(),
            f.cert_id.clone(),
        ];
        ids.extend(f.reason.clone());
        let jql = action.jql(&self.cfg);
        let found = self
            .client
            .search(jql, &ids, self.cfg.max_issues)
            .await
            .map_err(|error| PollError::Search {
                error,
                jql: jql.to_string(),
                key: action.name(),
            })?;
        let complete = found.complete;
        for m in &found.malformed {
            self.log_once(m, || {
                format!(
                    "Jira workflow: skipped an issue of the {} search: {m}",
                    action.name()
                )
            });
        }
        if !complete {
            warn!(
                "Jira workflow: more than {} issues match {jql:?}; the rest wait for the next poll",
                self.cfg.max_issues
            );
        }
        report.found += found.issues.len() + found.too_large.len();
        let mut seen = BTreeSet::new();
        // Too large to read even alone: skipped, and still a match (its request, if handled,
        // is not taken for withdrawn).
        for key in &found.too_large {
            let k = bounded(&Escaped(key).to_string(), 64);
            self.log_once(&format!("too large\n{key}"), || {
                format!(
                    "Jira workflow: skipped issue {k} of the {} search: its fields are too large to read (over {} MiB even alone); it waits until they are shortened",
                    action.name(),
                    sectigo_jira::MAX_BODY >> 20
                )
            });
            if let Ok(key) = IssueKey::parse(key) {
                seen.insert(key);
            }
            report.deferred += 1;
        }
        for issue in &found.issues {
            let Ok(key) = IssueKey::parse(&issue.key) else {
                let k = Escaped(&issue.key).to_string();
                self.log_once(&k, || {
                    format!("Jira workflow: skipped an issue whose key {k:?} is not an issue key")
                });
                continue;
            };
            seen.insert(key.clone());
            let mut req = read_request(key, issue, f);
            let rec = engine.requests().issue_record(&req.key).await?;
            if action == Action::Enroll && !rec.as_ref().is_some_and(|r| r.is_handled("enroll")) {
                match self.client.issue_field(&issue.key, &f.csr).await {
                    Ok(csr) => req.csr = csr,
                    Err(e) => {
                        let k = issue.key.clone();
                        self.log_once(&k, || format!("Jira workflow: {k}: its CSR cannot be read ({e}); the issue is skipped"));
                        report.deferred += 1;
                        continue;
                    }
                }
            }
            let outcome = self.carry_out(engine, action, &req, rec.as_ref()).await?;
            match outcome {
                None => {}
                Some(IssueOutcome::Done(_)) => report.done += 1,
                Some(IssueOutcome::Rejected(_)) => report.rejected += 1,
                Some(IssueOutcome::Deferred(_)) => report.deferred += 1,
                Some(IssueOutcome::Unknown(_)) => report.unknown += 1,
            }
        }
        if complete {
            let name = action.name();
            let all = blocking(engine.store(), move |s| s.issues_handled(name)).await?;
            let changed: Vec<IssueRecord> = all
                .into_iter()
                .filter_map(|mut r| {
                    let found = seen.contains(&r.key);
                    note_search(&mut r, action, found).then_some(r)
                })
                .collect();
            if !changed.is_empty() {
                blocking(engine.store(), move |s| {
                    s.commit_all(&[], &changed, &[])?;
                    s.flush()
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Logs `what` once per `id` for the poller's life.
    fn log_once(&self, id: &str, what: impl FnOnce() -> String) {
        let first = self
            .logged
            .lock()
            .map(|mut l| l.insert(id.to_string()))
            .unwrap_or(true);
        if first {
            warn!("{}", what());
        }
    }

    async fn carry_out(
        &self,
        engine: &Engine,
        action: Action,
        req: &Request,
        rec: Option<&IssueRecord>,
    ) -> Result<Option<IssueOutcome>, EngineError> {
        let key = &req.key;
        let requests = engine.requests();
        let out = match plan(action, req, rec, &self.cfg) {
            Plan::Skip => return Ok(None),
            Plan::Reject { reason } => {
                let rec = rec.cloned().unwrap_or_else(|| IssueRecord::new(key));
                requests.reject(rec, action.name(), None, &reason).await?
            }
            Plan::Enroll { profile, csr } => requests.enroll_for_issue(key, &profile, &csr).await?,
            Plan::Renew { cert_id } => requests.renew_for_issue(key, cert_id.as_ref()).await?,
            Plan::Revoke {
                cert_id,
                message,
                reason_code,
            } => {
                requests
                    .revoke_for_issue(key, cert_id.as_ref(), &message, reason_code)
                    .await?
            }
        };
        info!(jira_key = %key, "{} request from {key}: {out:?}", action.name());
        Ok(Some(out))
    }
}

/// A request as read from a search hit (the CSR is read apart). What people typed is made
/// safe here, once: control characters escaped (no forged log lines, no terminal escapes),
/// lengths bounded (a profile name or certificate id is short; a reason goes to SCM and Jira).
fn read_request(key: IssueKey, issue: &FoundIssue, f: &Fields) -> Request {
    // Cut before escaping too: a field may be megabytes long.
    let clean = |v: Option<String>, max: usize| {
        v.map(|t| bounded(&Escaped(&bounded(&t, max)).to_string(), max))
    };
    Request {
        key,
        csr: None,
        profile: clean(issue.text(&f.profile), 64),
        cert_id: clean(issue.text(&f.cert_id), 64),
        reason: clean(f.reason.as_ref().and_then(|r| issue.text(r)), 400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn cfg() -> WorkflowConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("connector.toml"),
            "[jira]\nurl = \"http://127.0.0.1:1\"\nemail = \"a@b\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\n",
        )
        .unwrap();
        let c = sectigo_core::config::Config::load(dir.path()).unwrap();
        c.connector.jira.unwrap().workflow.unwrap()
    }

    fn csr() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["www.example.com".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "www.example.com");
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn key() -> IssueKey {
        IssueKey::parse("CERT-1").unwrap()
    }

    fn t0() -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, 0, 0, 0).unwrap()
    }

    fn req(csr: Option<String>, profile: Option<&str>) -> Request {
        Request {
            key: key(),
            csr,
            profile: profile.map(str::to_string),
            cert_id: None,
            reason: None,
        }
    }

    #[test]
    fn enroll_plans() {
        let c = cfg();
        assert_eq!(c.csr_field, "Certificate CSR text");
        let pem = csr();
        match plan(
            Action::Enroll,
            &req(Some(pem.clone()), Some("default")),
            None,
            &c,
        ) {
            Plan::Enroll { profile, csr } => {
                assert_eq!(profile, "default");
                assert_eq!(csr.subject_cn, "www.example.com");
            }
            other => panic!("{other:?}"),
        }
        let reject = |r: Request| match plan(Action::Enroll, &r, None, &c) {
            Plan::Reject { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert!(reject(req(None, Some("default"))).contains("\"Certificate CSR text\" is empty"));
        assert!(reject(req(Some("junk".into()), Some("default"))).contains("invalid CSR"));
        assert!(reject(req(Some(pem.clone()), None)).contains("\"Certificate profile\" is empty"));
        // Handled already: nothing, whatever the fields say.
        let mut rec = IssueRecord::new(&key());
        rec.set_handled("enroll", Some(t0()));
        assert_eq!(
            plan(Action::Enroll, &req(None, None), Some(&rec), &c),
            Plan::Skip
        );
        assert_ne!(
            plan(Action::Renew, &req(None, None), Some(&rec), &c),
            Plan::Skip
        );
    }

    #[test]
    fn revoke_reason_from_the_field_or_the_default() {
        let c = cfg();
        let mut r = req(None, None);
        r.cert_id = Some("42".into());
        r.reason = Some("Key Compromise".into());
        assert_eq!(
            plan(Action::Revoke, &r, None, &c),
            Plan::Revoke {
                cert_id: Some("42".parse().unwrap()),
                message: "Key Compromise (Jira issue CERT-1)".into(),
                reason_code: 1
            }
        );
        r.reason = None;
        assert_eq!(
            plan(Action::Revoke, &r, None, &c),
            Plan::Revoke {
                cert_id: Some("42".parse().unwrap()),
                message: "Revocation requested in Jira issue CERT-1".into(),
                reason_code: c.revoke_reason_code
            }
        );
    }

    #[test]
    fn a_request_is_withdrawn_after_two_missing_searches() {
        let mut rec = IssueRecord::new(&key());
        rec.set_handled("renew", Some(t0()));
        assert!(!note_search(&mut rec, Action::Renew, true));
        assert!(!note_search(&mut rec, Action::Enroll, false));
        assert!(note_search(&mut rec, Action::Renew, false));
        assert!(rec.is_handled("renew"), "one miss is not enough");
        assert!(note_search(&mut rec, Action::Renew, true));
        assert_eq!(rec.handled[0].misses, 0, "found again: the count restarts");
        assert!(note_search(&mut rec, Action::Renew, false));
        assert!(note_search(&mut rec, Action::Renew, false));
        assert!(!rec.is_handled("renew"));
    }
}
