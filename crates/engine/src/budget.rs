//! The daily budget: billing's safety net. Per profile, in a rolling 24 hours, at most
//! `max_renewals_per_day` (else `[renewal] max_per_day`, 100; 0: no limit) scheduled renewals
//! are sent; the others wait, most urgent first (the cycle takes tickets in expiry order).
//! Force renewals, `renew`, and renewals asked for from Jira are someone's consent: never held,
//! but counted. So a typo in `expiry_window_days`, or a clock set a year ahead, bills at most
//! the budget a day, and a person is told.
//!
//! What was billed is the billing log in the state (one entry per billable call that may have
//! been billed); the count of the last 24 hours is kept in memory per profile (read from the
//! log once), shared across reloads. A ticket is taken before the call, so concurrent renewals
//! never overshoot; a ticket not spent (nothing was billed) is given back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use sectigo_core::names::ProfileName;
use sectigo_model::BillingEntry;

use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::settings::Profiles;

/// The last 24 hours of one profile.
#[derive(Debug, Default)]
struct Window {
    loaded: bool,
    /// When its billable calls went, oldest first.
    times: VecDeque<DateTime<Utc>>,
    /// Tickets taken and not yet spent or given back.
    reserved: u32,
}

impl Window {
    fn prune(&mut self, now: DateTime<Utc>) {
        let since = now - Duration::hours(24);
        while self.times.front().is_some_and(|t| *t <= since) {
            self.times.pop_front();
        }
    }

    fn used(&self) -> u32 {
        self.times.len() as u32 + self.reserved
    }
}

/// The counts of every profile, shared across reloads (in [`crate::Shared`]).
#[derive(Clone, Default)]
pub(crate) struct Windows(Arc<Mutex<BTreeMap<ProfileName, Window>>>);

impl Windows {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ProfileName, Window>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A profile's budget now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Billable calls in the last 24 hours (and tickets held now).
    pub used: u32,
    /// `None`: no limit.
    pub limit: Option<u32>,
}

/// The right to send one billable call; counted until given back (dropped unspent).
pub struct Ticket {
    windows: Windows,
    profile: ProfileName,
    spent: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.spent {
            if let Some(w) = self.windows.lock().get_mut(&self.profile) {
                w.reserved = w.reserved.saturating_sub(1);
            }
        }
    }
}

#[derive(Clone)]
pub struct Budget {
    pub(crate) ledger: Ledger,
    pub(crate) profiles: Profiles,
    /// `[renewal] max_per_day`.
    pub(crate) default_limit: u32,
    pub(crate) windows: Windows,
}

impl Budget {
    /// The profile's limit; `None`: no limit.
    pub fn limit(&self, profile: &ProfileName) -> Option<u32> {
        let n = self
            .profiles
            .get(profile)
            .and_then(|p| p.max_renewals_per_day)
            .unwrap_or(self.default_limit);
        (n > 0).then_some(n)
    }

    /// The key an operator changes to raise the profile's limit.
    pub fn key_of(&self, profile: &ProfileName) -> String {
        match self.profiles.get(profile) {
            Some(p) if p.max_renewals_per_day.is_some() => format!(
                "max_renewals_per_day in {}",
                p.file.display()
            ),
            _ => "[renewal] max_per_day in connector.toml (or max_renewals_per_day in the profile's file)".into(),
        }
    }

    /// Reads the profile's last 24 hours from the billing log, once.
    async fn load(&self, profile: &ProfileName, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.windows.lock().get(profile).is_some_and(|w| w.loaded) {
            return Ok(());
        }
        let p = profile.clone();
        let since = now - Duration::hours(24);
        let times = self
            .ledger
            .read(move |s| s.billing_since(&p, since))
            .await?;
        let mut all = self.windows.lock();
        let w = all.entry(profile.clone()).or_default();
        if !w.loaded {
            w.times.extend(times);
            w.times.make_contiguous().sort();
            w.loaded = true;
        }
        Ok(())
    }

    /// The profile's budget now.
    pub async fn usage(&self, profile: &ProfileName) -> Result<Usage, EngineError> {
        let now = self.ledger.now();
        self.load(profile, now).await?;
        let mut all = self.windows.lock();
        let w = all.entry(profile.clone()).or_default();
        w.prune(now);
        Ok(Usage {
            used: w.used(),
            limit: self.limit(profile),
        })
    }

    /// A ticket for a scheduled renewal, when the budget has room; `None` when it is spent.
    pub async fn try_take(&self, profile: &ProfileName) -> Result<Option<Ticket>, EngineError> {
        self.take(profile, false).await
    }

    /// A ticket for a consented renewal (force, `renew`, Jira): always, and counted.
    pub async fn take_consented(&self, profile: &ProfileName) -> Result<Ticket, EngineError> {
        Ok(self
            .take(profile, true)
            .await?
            .expect("a consented ticket is always given"))
    }

    async fn take(
        &self,
        profile: &ProfileName,
        consented: bool,
    ) -> Result<Option<Ticket>, EngineError> {
        let now = self.ledger.now();
        self.load(profile, now).await?;
        let limit = self.limit(profile);
        let mut all = self.windows.lock();
        let w = all.entry(profile.clone()).or_default();
        w.prune(now);
        if !consented && limit.is_some_and(|l| w.used() >= l) {
            return Ok(None);
        }
        w.reserved += 1;
        Ok(Some(Ticket {
            windows: self.windows.clone(),
            profile: profile.clone(),
            spent: false,
        }))
    }

    /// Spends a ticket: the call may have been billed. Written to the billing log.
    pub async fn spend(&self, mut ticket: Ticket, entry: BillingEntry) -> Result<(), EngineError> {
        ticket.spent = true;
        {
            let mut all = self.windows.lock();
            let w = all.entry(entry.profile.clone()).or_default();
            w.reserved = w.reserved.saturating_sub(1);
            w.times.push_back(entry.at);
        }
        self.record(entry).await
    }

    /// Writes a billable call to the billing log (one that needed no ticket: found in the
    /// journal after a crash).
    pub async fn record(&self, entry: BillingEntry) -> Result<(), EngineError> {
        self.ledger.read(move |s| s.record_billing(&entry)).await
    }

    /// The billing log keeps a month (the budget reads 24 hours; the rest is for people).
    pub async fn prune(&self) -> Result<usize, EngineError> {
        let before = self.ledger.now() - Duration::days(30);
        self.ledger.read(move |s| s.prune_billing(before)).await
    }
}
