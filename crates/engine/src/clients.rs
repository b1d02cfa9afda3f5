//! One SCM client per profile, sharing one HTTP client and the per-host request limits; and,
//! for each profile with `[admin]`, its Admin API client (SCM's own records: reads only, free).

use std::collections::BTreeMap;
use std::sync::Arc;

use sectigo_core::clock::SharedClock;
use sectigo_core::config::Config;
use sectigo_core::names::ProfileName;
use sectigo_scm::admin::{AdminClient, AdminCreds};
use sectigo_scm::{ClientSettings, Limits, ProfileCreds, ScmClient};

use crate::error::EngineError;

#[derive(Clone, Default)]
pub struct ScmClients(
    Arc<BTreeMap<ProfileName, Arc<ScmClient>>>,
    Arc<BTreeMap<ProfileName, Arc<AdminClient>>>,
);

impl ScmClients {
    /// The clients of `cfg`'s profiles; `limits` is shared per host (across reloads too).
    pub fn new(
        cfg: &Config,
        limits: Arc<Limits>,
        clock: SharedClock,
    ) -> Result<ScmClients, EngineError> {
        ScmClients::with_settings(cfg, limits, ScmClients::settings(cfg, clock))
    }

    /// The daemon's client settings under `cfg`'s `[scm]` (a command a person waits on takes
    /// [`ClientSettings::interactive`] of them).
    pub fn settings(cfg: &Config, clock: SharedClock) -> ClientSettings {
        ClientSettings {
            timeout: std::time::Duration::from_secs(cfg.connector.scm.timeout_secs),
            retry_max: std::time::Duration::from_secs(cfg.connector.scm.retry_max_secs),
            ca_bundle: cfg.connector.scm.ca_bundle.clone(),
            clock,
            interactive: false,
        }
    }

    /// The clients of `cfg`'s profiles, with these settings.
    pub fn with_settings(
        cfg: &Config,
        limits: Arc<Limits>,
        settings: ClientSettings,
    ) -> Result<ScmClients, EngineError> {
        let http = sectigo_scm::http_client(&settings)?;
        let clients = cfg
            .profiles
            .values()
            .map(|p| {
                let creds = ProfileCreds {
                    profile: p.name.to_string(),
                    scm_url: p.scm_url.clone(),
                    token_url: p.token_url.clone(),
                    client_id: p.client_id.clone(),
                    client_secret: p.client_secret.clone(),
                    client_secret_file: p.client_secret_from.file().map(Into::into),
                };
                let c = ScmClient::new(http.clone(), creds, settings.clone(), limits.clone());
                (p.name.clone(), Arc::new(c))
            })
            .collect();
        let admins = cfg
            .profiles
            .values()
            .filter_map(|p| {
                let creds = AdminCreds::from_profile(p)?;
                let c = AdminClient::new(http.clone(), creds, settings.clone(), limits.clone());
                Some((p.name.clone(), Arc::new(c)))
            })
            .collect();
        Ok(ScmClients(Arc::new(clients), Arc::new(admins)))
    }

    /// The client of a configured profile.
    pub fn get(&self, profile: &ProfileName) -> Result<Arc<ScmClient>, EngineError> {
        self.0
            .get(profile)
            .cloned()
            .ok_or_else(|| EngineError::unknown_profile(profile))
    }

    /// The Admin API client of a profile with `[admin]`; `None` without.
    pub fn admin(&self, profile: &ProfileName) -> Option<Arc<AdminClient>> {
        self.1.get(profile).cloned()
    }

    /// The configured profiles' names.
    pub fn names(&self) -> impl Iterator<Item = &ProfileName> {
        self.0.keys()
    }

    /// Whether the profile is configured (its certificates are not orphaned).
    pub fn has(&self, profile: &ProfileName) -> bool {
        self.0.contains_key(profile)
    }
}
