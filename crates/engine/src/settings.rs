//! The configuration the engine's parts read, taken from one [`Config`] (a reload makes a new
//! engine with new settings).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;

use sectigo_core::config::{Config, Profile};
use sectigo_core::names::ProfileName;

/// The configured profiles, by name.
pub type Profiles = Arc<BTreeMap<ProfileName, Profile>>;

/// The certificates declared in `certificates.d/`, by name.
pub type DeclaredSet = Arc<BTreeMap<sectigo_core::names::CertName, sectigo_core::config::Declared>>;

/// The limits on requests from Jira issues: who may trigger billable calls, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// The profiles issues may use; `None`: all configured.
    pub profiles: Option<Vec<String>>,
    pub max_enrollments_per_day: u32,
    pub min_renewal_interval: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            profiles: None,
            max_enrollments_per_day: 20,
            min_renewal_interval: Duration::hours(24),
        }
    }
}

impl RequestLimits {
    pub fn of(cfg: &Config) -> RequestLimits {
        cfg.connector
            .jira
            .as_ref()
            .and_then(|j| j.workflow.as_ref())
            .map(|w| RequestLimits {
                profiles: w.profiles.clone(),
                max_enrollments_per_day: w.max_enrollments_per_day,
                min_renewal_interval: Duration::hours(w.min_renewal_interval_hours as i64),
            })
            .unwrap_or_default()
    }

    /// Whether requests from Jira may use `profile`.
    pub fn allows(&self, profile: &str) -> bool {
        self.profiles
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p == profile))
    }
}

/// How hard the engine works at once and how it waits: `[renewal]` and `[scm]`.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub renewal: sectigo_core::config::RenewalConfig,
    /// Renewals (and downloads) in flight at once: twice `[scm] max_concurrent`, so the
    /// per-host limit, not this, is what binds.
    pub concurrency: usize,
}

impl Tuning {
    pub fn of(cfg: &Config) -> Tuning {
        Tuning {
            renewal: cfg.connector.renewal.clone(),
            concurrency: (cfg.connector.scm.max_concurrent * 2).max(1),
        }
    }

    pub fn collect_timeout(&self) -> Duration {
        Duration::hours(self.renewal.collect_timeout_hours as i64)
    }
}
