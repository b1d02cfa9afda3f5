//! What outlives one configuration: a reload builds a new [`crate::Engine`] but keeps these, so
//! the per-host request limits hold across it, two engines never work on one certificate at
//! once, and the counters and the `[notify]` commands under way carry on.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use sectigo_core::config::Config;
use sectigo_core::names::{CertId, IssueKey, ProfileName};
use sectigo_model::Notification;
use sectigo_scm::{HostEvent, Limits};

use crate::notify::Notifier;

#[derive(Clone)]
pub struct Shared {
    pub(crate) limits: Arc<Limits>,
    /// Woken when a Jira update is queued.
    pub outbox: Arc<tokio::sync::Notify>,
    pub counters: Arc<Counters>,
    pub(crate) claims: Claims,
    /// Held for a whole Jira workflow poll: a poller started by a reload waits for the old
    /// one's poll to finish, so no two polls ever handle the same request.
    workflow: Arc<tokio::sync::Mutex<()>>,
    /// `run --hooks-via DIR`: deploy hooks are run by the root helper unit through DIR, not
    /// by this (sandboxed) process.
    pub(crate) hook_helper: Option<PathBuf>,
    /// `[notify] command`, shared across reloads (its commands under way are waited for at
    /// shutdown).
    pub notifier: Notifier,
    /// The daily budget's counts (see [`crate::budget`]).
    pub(crate) budget: crate::budget::Windows,
    /// Profiles whose credentials the token endpoint refuses, since when and why.
    pub(crate) refused: Refusals,
}

impl Shared {
    pub fn new(cfg: &Config) -> Self {
        let limits = Arc::new(Limits::new(
            cfg.connector.scm.max_concurrent,
            cfg.connector.scm.max_requests_per_second,
        ));
        let notifier = Notifier::new(cfg.connector.notify.clone());
        // A host going down or coming back: one `[notify]` event each.
        let n = notifier.clone();
        limits.observe(Arc::new(move |ev: &HostEvent| {
            n.send(host_notification(ev))
        }));
        Shared {
            limits,
            outbox: Arc::default(),
            counters: Arc::default(),
            claims: Claims::default(),
            workflow: Arc::default(),
            hook_helper: None,
            notifier,
            budget: Default::default(),
            refused: Refusals::default(),
        }
    }

    /// Every SCM host the clients talked to, and whether it can be reached.
    pub fn hosts(&self) -> Vec<sectigo_scm::HostStatus> {
        self.limits.hosts()
    }

    /// The profiles whose credentials are refused now: since when, and why.
    pub fn refused_credentials(&self) -> Refused {
        self.refused.lock().clone()
    }

    /// Hands `[deploy] hook`s to the root helper through `dir` (the helper protocol of the
    /// deploy module).
    pub fn with_hook_helper(mut self, dir: PathBuf) -> Self {
        self.hook_helper = Some(dir);
        self
    }

    /// Held for a whole Jira workflow poll (see the field).
    pub async fn workflow_poll(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.workflow.clone().lock_owned().await
    }
}

/// The `[notify]` event of a host going down or coming back.
fn host_notification(ev: &HostEvent) -> Notification {
    let (event, message) = match ev {
        HostEvent::Down { host, since, error } => (
            "scm_unreachable",
            format!(
                "Needs a human: {host} (SCM or its token endpoint) cannot be reached since {} ({error}). Renewals wait; the connector probes it and tells when it answers again.",
                sectigo_core::text::ts(*since)
            ),
        ),
        HostEvent::Up { host, since, back } => (
            "scm_reachable",
            format!(
                "{host} answers again at {} (unreachable since {}); waiting renewals go at the next cycle.",
                sectigo_core::text::ts(*back),
                sectigo_core::text::ts(*since)
            ),
        ),
    };
    Notification {
        event,
        cert_id: String::new(),
        profile: String::new(),
        message,
    }
}

/// Each refused profile: since when, and the token endpoint's answer.
type Refused = BTreeMap<ProfileName, (DateTime<Utc>, String)>;

/// Profiles whose credentials are refused: one problem each, however many certificates wait.
#[derive(Clone, Default)]
pub(crate) struct Refusals(Arc<Mutex<Refused>>);

impl Refusals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Refused> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a refusal; `true` when it is new (the first since the credentials worked).
    pub(crate) fn refused(&self, p: &ProfileName, at: DateTime<Utc>, why: &str) -> bool {
        let mut m = self.lock();
        let new = !m.contains_key(p);
        m.entry(p.clone())
            .and_modify(|e| e.1 = why.to_string())
            .or_insert((at, why.to_string()));
        new
    }

    /// The credentials worked; `Some(since)` when that ends a refusal.
    pub(crate) fn accepted(&self, p: &ProfileName) -> Option<DateTime<Utc>> {
        self.lock().remove(p).map(|(since, _)| since)
    }
}

/// Outcomes since the daemon started (for metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub requested: AtomicU64,
    pub renewed: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    /// Refused by SCM for a reason a person must fix there (retried on the backoff).
    pub refused: AtomicU64,
    /// Accepted but not issued within `[renewal] collect_timeout_hours`.
    pub stalled: AtomicU64,
    /// Deploys (files or hook) that failed, each attempt.
    pub deploy_failed: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a task may hold alone: a certificate (renewing, collecting, settling, revoking it), its
/// deploy, or one issue's request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClaimKey {
    Cert(CertId),
    Deploy(CertId),
    Request(IssueKey),
    /// A certificate declared in `certificates.d/`, by name.
    Declared(sectigo_core::names::CertName),
}

/// The claims held at this moment, shared by every task and across reloads.
#[derive(Clone, Default)]
pub(crate) struct Claims(Arc<Mutex<HashSet<ClaimKey>>>);

impl Claims {
    /// Claims `key`; `None` when another task holds it.
    pub(crate) fn claim(&self, key: ClaimKey) -> Option<Claim> {
        self.lock().insert(key.clone()).then(|| Claim {
            claims: self.clone(),
            key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ClaimKey>> {
        // A set of keys stays valid whatever panicked while holding it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Holds a [`ClaimKey`]; released on drop.
pub(crate) struct Claim {
    claims: Claims,
    key: ClaimKey,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.key);
    }
}
