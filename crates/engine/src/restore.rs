//! After `state import`: a backup does not know what the daemon renewed after it was taken.
//! A certificate due now (its due time passed since the backup, or before it and it was
//! still waiting) may have been renewed, and billed, after the backup; renewing it again
//! would bill twice.
//!
//! - With `[admin]`, nothing is held: the check before every bill (the module `prebill`) reads
//!   SCM's record and adopts the renewal SCM shows.
//! - Without, such a renewal is held as an unknown outcome (never renewed automatically) until
//!   a person confirms: `renew ID --yes` (it was not renewed), or `certs resolve ID
//!   --renewed-as NEW_ID` / `--not-renewed`. `status --check` lists each, with why.

use chrono::{DateTime, Utc};
use tracing::warn;

use sectigo_core::text::ts;
use sectigo_model::{CertRecord, CertState};

use crate::error::EngineError;
use crate::policy::{self, Decision};
use crate::profile_state::Mode;

/// Why a restored renewal waits, in the record's words (`status` shows them).
pub fn held_note(backup: DateTime<Utc>, expires: DateTime<Utc>) -> String {
    format!(
        "held after `state import`: it is due (expires {}) and the backup is from {}, so the daemon may have renewed (and billed) it after the backup. Check SCM: renewed there → `certs resolve ID --renewed-as NEW_ID`; not renewed → `renew ID --yes` (or `certs resolve ID --not-renewed`). [admin] makes the daemon check SCM itself",
        ts(expires),
        ts(backup)
    )
}

/// Whether a restored certificate is held: live and active, its profile without `[admin]`,
/// and due (or waiting out a retry) at `now`. Pure.
pub fn holds(rec: &CertRecord, d: &Decision) -> bool {
    rec.state == CertState::Active && matches!(d, Decision::Renew { .. } | Decision::Backoff { .. })
}

impl crate::Engine {
    /// Holds the renewals a restore of a backup taken at `backup` could bill twice (see the
    /// module). Returns the held certificates.
    pub async fn hold_after_restore(
        &self,
        backup: DateTime<Utc>,
    ) -> Result<Vec<sectigo_core::names::CertId>, EngineError> {
        let now = self.ledger.now();
        let policies = self.book.policies(Mode::Live, now).await?;
        let scm = self.scm.clone();
        let candidates = self
            .ledger
            .read(move |s| {
                let mut v = Vec::new();
                s.scan(&mut |r| {
                    if let Some(p) = policies.get(&r.profile) {
                        let d = policy::decide(&r, p, now);
                        if holds(&r, &d) && scm.admin(&r.profile).is_none() {
                            v.push(r);
                        }
                    }
                    true
                })?;
                Ok(v)
            })
            .await?;
        let mut held = Vec::new();
        for chunk in candidates.chunks(1000) {
            let mut batch = Vec::new();
            for r in chunk {
                let mut r = r.clone();
                let note = held_note(backup, r.not_after);
                r.state = CertState::OutcomeUnknown {
                    due: r.not_after,
                    at: now,
                    request: None,
                };
                r.last_error = Some(note.clone());
                r.log(now, note);
                warn!(profile = %r.profile, cert_id = %r.id, "Needs a human: renewal of {} ({}) held after `state import` (backup of {}): it may have been renewed after the backup; `certs show {}` says what to do", r.id, r.subject_cn, ts(backup), r.id);
                held.push(r.id.clone());
                batch.push(r);
            }
            self.ledger.put(batch).await?;
        }
        self.ledger.flush().await?;
        Ok(held)
    }
}
