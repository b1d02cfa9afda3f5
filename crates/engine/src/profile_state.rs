//! The profiles as the state remembers them: their identity (to recognise a file renamed by
//! hand), their force renewals, and the renewal policy each one gives its certificates now.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use sectigo_core::config::Profile;
use sectigo_core::names::ProfileName;
use sectigo_core::text::ts;
use sectigo_model::{CertRecord, ForceRun};

use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::policy::{self, Decision, RenewPolicy};
use crate::settings::Profiles;

/// Whether a policy is for a real cycle, or for a dry run (which also counts the force run a
/// configuration change would start, without starting it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    DryRun,
}

#[derive(Clone)]
pub struct ProfileBook {
    pub(crate) ledger: Ledger,
    pub(crate) profiles: Profiles,
}

impl ProfileBook {
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// Brings the remembered profiles in line with the configured ones: renames recognised
    /// ([`policy::profile_changes`]: a profile of the last applied configuration gone, one
    /// with its client_id and scm_url new), renames that cannot be told apart reported (with
    /// the `profiles rename` to run), orphans reported, force renewals started on off → on;
    /// then remembers which profiles this configuration has. Returns true when a force
    /// renewal started (the daemon then runs a cycle at once).
    pub async fn sync(&self) -> Result<bool, EngineError> {
        let now = self.ledger.now();
        let remembered = self.ledger.read(|s| s.profile_states()).await?;
        let configured = self
            .profiles
            .iter()
            .map(|(n, p)| (n.clone(), p.identity()))
            .collect();
        let ch = policy::profile_changes(&configured, &remembered);
        for (old, new) in &ch.renamed {
            let (o, n) = (old.clone(), new.clone());
            let moved = self.ledger.read(move |s| s.rename_profile(&o, &n)).await?;
            info!(profile = %new, "profile file renamed by hand: {old:?} is now {new:?} (same client_id and scm_url); moved its {moved} certificates");
        }
        let live_of = |old: &ProfileName| {
            let o = old.clone();
            async move {
                let n = self
                    .ledger
                    .read(move |s| s.by_profile(&o))
                    .await?
                    .iter()
                    .filter(|c| c.state.is_live())
                    .count();
                Ok::<usize, EngineError>(n)
            }
        };
        let mut candidates: BTreeMap<&ProfileName, &Vec<ProfileName>> = BTreeMap::new();
        for (old, cands) in &ch.ambiguous {
            candidates.insert(old, cands);
            let n = live_of(old).await?;
            let list = cands
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(" or ");
            warn!(profile = %old, "profile {old:?} is no longer configured while {list} appeared with its client_id and scm_url: which one is its file renamed cannot be told, so its {n} certificates are not moved; run `sectigo-connector profiles rename {old} NEW` with NEW its new name");
        }
        for old in ch.vanished.iter().filter(|o| !candidates.contains_key(o)) {
            let n = live_of(old).await?;
            if n > 0 {
                warn!(profile = %old, "profile {old:?} is no longer configured: its {n} certificates are orphaned and will not be renewed; restore its file, or `certs forget` them");
            }
        }
        let mut states = self.ledger.read(|s| s.profile_states()).await?;
        let mut force_started = false;
        for p in self.profiles.values() {
            let mut st = states.remove(&p.name).unwrap_or_default();
            let before = st.clone();
            st.client_id = p.client_id.clone();
            st.scm_url = p.identity().1;
            if let Some(run) = policy::force_run_to_start(p.force_renewal, &st, now) {
                info!(profile = %p.name, "force renewal started: every certificate of profile {:?} will be renewed by {}", p.name, ts(run.deadline));
                st.force = Some(run);
                force_started = true;
            }
            st.force_setting_seen = p.force_renewal;
            st.configured = true;
            st.rename_candidates.clear();
            if st != before {
                let name = p.name.clone();
                self.ledger
                    .read(move |s| s.put_profile_state(&name, &st))
                    .await?;
            }
        }
        // The profiles this configuration does not have: not taken for a rename again.
        for (name, mut st) in states {
            let before = st.clone();
            st.configured = false;
            if let Some(c) = candidates.get(&name) {
                st.rename_candidates = (*c).clone();
            }
            if st != before {
                self.ledger
                    .read(move |s| s.put_profile_state(&name, &st))
                    .await?;
            }
        }
        self.ledger.flush().await?;
        Ok(force_started)
    }

    /// Profiles whose file went away while others with their client_id and scm_url appeared,
    /// that could not be told apart: (old, the candidates still configured), for the ones
    /// that still hold live certificates. What `status` asks the operator to settle with
    /// `profiles rename OLD NEW`.
    pub async fn unresolved_renames(
        &self,
    ) -> Result<BTreeMap<ProfileName, Vec<ProfileName>>, EngineError> {
        let states = self.ledger.read(|s| s.profile_states()).await?;
        let mut out = BTreeMap::new();
        for (name, st) in states {
            if self.profiles.contains_key(&name) {
                continue;
            }
            let cands: Vec<ProfileName> = st
                .rename_candidates
                .into_iter()
                .filter(|c| self.profiles.contains_key(c))
                .collect();
            if cands.is_empty() {
                continue;
            }
            let n = name.clone();
            let live = self
                .ledger
                .read(move |s| s.by_profile(&n))
                .await?
                .iter()
                .any(|c| c.state.is_live());
            if live {
                out.insert(name, cands);
            }
        }
        Ok(out)
    }

    /// Starts a force renewal of one profile now (the `force-renew` command).
    pub async fn start_force_renewal(
        &self,
        profile: &ProfileName,
    ) -> Result<DateTime<Utc>, EngineError> {
        let Some(p) = self.profiles.get(profile) else {
            return Err(EngineError::unknown_profile(profile));
        };
        let name = profile.clone();
        let mut st = self
            .ledger
            .read(move |s| s.profile_state(&name))
            .await?
            .unwrap_or_default();
        st.client_id = p.client_id.clone();
        st.scm_url = p.identity().1;
        st.force_setting_seen = p.force_renewal;
        st.configured = true;
        let run = policy::new_force_run(self.ledger.now(), "command");
        let deadline = run.deadline;
        st.force = Some(run);
        let name = profile.clone();
        self.ledger
            .read(move |s| {
                s.put_profile_state(&name, &st)?;
                s.flush()
            })
            .await?;
        info!(profile = %profile, "force renewal started by command: every certificate will be renewed by {}", ts(deadline));
        Ok(deadline)
    }

    /// Every configured profile's renewal policy at `now`, with its force run if one is under
    /// way.
    pub async fn policies(
        &self,
        mode: Mode,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<ProfileName, RenewPolicy>, EngineError> {
        self.policies_of(self.profiles.values(), mode, now).await
    }

    /// The renewal policies `profiles` (the running ones, or another configuration's) give
    /// at `now`, with the force runs the state holds.
    pub(crate) async fn policies_of<'a>(
        &self,
        profiles: impl Iterator<Item = &'a Profile>,
        mode: Mode,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<ProfileName, RenewPolicy>, EngineError> {
        let states = self.ledger.read(|s| s.profile_states()).await?;
        Ok(profiles
            .map(|p| {
                let st = states.get(&p.name).cloned().unwrap_or_default();
                let mut force = st.force.clone().filter(|r| r.completed.is_none());
                if mode == Mode::DryRun && force.is_none() {
                    force = policy::force_run_to_start(p.force_renewal, &st, now);
                }
                let pol = RenewPolicy {
                    expiry_window_days: p.expiry_window_days,
                    auto_renew: p.auto_renew,
                    force,
                };
                (p.name.clone(), pol)
            })
            .collect())
    }

    /// The decision for one certificate under the current configuration (for `certs show`);
    /// `None`: its profile is not configured.
    pub async fn explain(&self, rec: &CertRecord) -> Result<Option<Decision>, EngineError> {
        let now = self.ledger.now();
        let pols = self.policies(Mode::Live, now).await?;
        Ok(pols.get(&rec.profile).map(|p| policy::decide(rec, p, now)))
    }

    /// Marks the force runs that have renewed everything they cover as complete.
    pub async fn finish_force_runs(&self) -> Result<(), EngineError> {
        let now = self.ledger.now();
        let states = self.ledger.read(|s| s.profile_states()).await?;
        for (name, mut st) in states {
            let Some(run) = st.force.clone().filter(|r| r.completed.is_none()) else {
                continue;
            };
            if !self.profiles.contains_key(&name) {
                continue;
            }
            let n = name.clone();
            let certs = self.ledger.read(move |s| s.by_profile(&n)).await?;
            if policy::force_complete(&certs, &run) {
                let renewed = certs
                    .iter()
                    .filter(|c| c.renewed_at().is_some_and(|a| a >= run.started))
                    .count();
                info!(profile = %name, "force renewal of profile {name:?} complete: {renewed} certificates renewed since {}", ts(run.started));
                st.force = Some(ForceRun {
                    completed: Some(now),
                    ..run
                });
                self.ledger
                    .read(move |s| s.put_profile_state(&name, &st))
                    .await?;
            } else if now > run.deadline {
                warn!(profile = %name, "force renewal of profile {name:?} is past its deadline {} and not complete", ts(run.deadline));
            }
        }
        Ok(())
    }
}
