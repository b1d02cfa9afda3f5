//! The state's memory of a certificate declared in `certificates.d/NAME.toml`: what the daemon
//! asked SCM for (names, key type), the certificate it holds for it, and the journal of the
//! billable call (enroll or replace) in flight. Kept after its file is removed (the
//! certificate is then `undeclared`: no longer renewed, never revoked) until `certs forget`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sectigo_core::names::{CertId, CertName, ProfileName};

use crate::records::{EnrollState, HistoryEntry};

/// What the journaled call of a declaration is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeclaredOp {
    /// SCM's enroll: a new certificate.
    Enroll,
    /// SCM's replace of `old`: its names or key type changed.
    Replace { old: CertId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredRecord {
    pub name: CertName,
    pub profile: ProfileName,
    /// The names the certificate was (or is being) obtained for.
    #[serde(default)]
    pub names: Vec<String>,
    /// The key type of the key the daemon made for it (`ec-p256`, ...).
    #[serde(default)]
    pub key_type: String,
    /// The certificate obtained for it (its renewals follow: `Superseded { by }`).
    #[serde(default)]
    pub cert_id: Option<CertId>,
    /// What the call in flight (or last refused) asks for: names and key type; they become
    /// `names` and `key_type` once its certificate is issued.
    #[serde(default)]
    pub asked_names: Vec<String>,
    #[serde(default)]
    pub asked_key_type: String,
    /// The call journaled, and its state (the same journal as an enrollment from Jira).
    #[serde(default)]
    pub op: Option<DeclaredOp>,
    #[serde(default)]
    pub enroll: Option<EnrollState>,
    /// SHA-256 (hex) of the CSR of the call in flight.
    #[serde(default)]
    pub csr_sha256: Option<String>,
    #[serde(default)]
    pub stall_reported: Option<DateTime<Utc>>,
    /// When the daemon last told (`[notify]`) that it waits for `certs apply`.
    #[serde(default)]
    pub consent_told: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl DeclaredRecord {
    pub fn new(name: &CertName, profile: &ProfileName) -> DeclaredRecord {
        DeclaredRecord {
            name: name.clone(),
            profile: profile.clone(),
            names: Vec::new(),
            key_type: String::new(),
            cert_id: None,
            asked_names: Vec::new(),
            asked_key_type: String::new(),
            op: None,
            enroll: None,
            csr_sha256: None,
            stall_reported: None,
            consent_told: None,
            history: Vec::new(),
        }
    }

    pub fn log(&mut self, at: DateTime<Utc>, event: impl Into<String>) {
        self.history.push(HistoryEntry {
            at,
            event: event.into(),
        });
    }

    /// A call is journaled and not settled: requested (answer not recorded) or accepted and
    /// not issued yet.
    pub fn in_flight(&self) -> bool {
        matches!(
            self.enroll,
            Some(EnrollState::Requested { .. } | EnrollState::Collecting { .. })
        )
    }
}
