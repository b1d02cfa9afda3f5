//! What an enrollment is journaled in: the Jira issue that asked for it ([`IssueRecord`]) or
//! the declaration in `certificates.d/` ([`DeclaredRecord`]). Below the ledger (which commits
//! a journal) and the enroller (which writes one): it imports neither.

use chrono::{DateTime, Utc};

use sectigo_core::names::{CertId, IssueKey};
use sectigo_model::{CertRecord, DeclaredOp, DeclaredRecord, EnrollState, IssueRecord};

/// What an enrollment is journaled in: the Jira issue that asked for it, or the declaration
/// in `certificates.d/`.
pub(crate) trait Journal: Clone + Send + Sync + 'static {
    /// Who asked, for the log: the issue key, or `declared NAME`.
    fn who(&self) -> String;
    fn enroll_state(&self) -> Option<&EnrollState>;
    fn set_enroll(&mut self, s: Option<EnrollState>);
    fn set_csr(&mut self, sha256: &str);
    fn log(&mut self, at: DateTime<Utc>, event: String);
    fn stall_reported(&self) -> Option<DateTime<Utc>>;
    fn set_stall_reported(&mut self, at: DateTime<Utc>);
    /// Nothing reached SCM: the attempt is forgotten (the next poll or cycle tries again).
    fn not_sent(&mut self) {}
    /// The Jira issue told of it, if any.
    fn issue(&self) -> Option<&IssueKey>;
    /// The certificate the call replaces (SCM's replace), if it is one.
    fn replaces(&self) -> Option<&CertId>;
    /// The issued certificate is this journal's: linked to the issue, or named.
    fn adopt(&mut self, cert: &mut CertRecord);
    fn into_entry(self) -> Journaled;
}

/// A journal as the ledger commits it.
pub(crate) enum Journaled {
    Issue(IssueRecord),
    Declared(DeclaredRecord),
}

impl Journal for IssueRecord {
    fn who(&self) -> String {
        self.key.to_string()
    }
    fn enroll_state(&self) -> Option<&EnrollState> {
        self.enroll.as_ref()
    }
    fn set_enroll(&mut self, s: Option<EnrollState>) {
        self.enroll = s;
    }
    fn set_csr(&mut self, sha256: &str) {
        self.csr_sha256 = Some(sha256.to_string());
    }
    fn log(&mut self, at: DateTime<Utc>, event: String) {
        IssueRecord::log(self, at, event);
    }
    fn stall_reported(&self) -> Option<DateTime<Utc>> {
        self.stall_reported
    }
    fn set_stall_reported(&mut self, at: DateTime<Utc>) {
        self.stall_reported = Some(at);
    }
    fn not_sent(&mut self) {
        self.set_handled("enroll", None);
    }
    fn issue(&self) -> Option<&IssueKey> {
        Some(&self.key)
    }
    fn replaces(&self) -> Option<&CertId> {
        None
    }
    fn adopt(&mut self, cert: &mut CertRecord) {
        cert.jira_issue = Some(self.key.clone());
    }
    fn into_entry(self) -> Journaled {
        Journaled::Issue(self)
    }
}

impl Journal for DeclaredRecord {
    fn who(&self) -> String {
        format!("declared {}", self.name)
    }
    fn enroll_state(&self) -> Option<&EnrollState> {
        self.enroll.as_ref()
    }
    fn set_enroll(&mut self, s: Option<EnrollState>) {
        self.enroll = s;
    }
    fn set_csr(&mut self, sha256: &str) {
        self.csr_sha256 = Some(sha256.to_string());
    }
    fn log(&mut self, at: DateTime<Utc>, event: String) {
        DeclaredRecord::log(self, at, event);
    }
    fn stall_reported(&self) -> Option<DateTime<Utc>> {
        self.stall_reported
    }
    fn set_stall_reported(&mut self, at: DateTime<Utc>) {
        self.stall_reported = Some(at);
    }
    fn not_sent(&mut self) {
        self.op = None;
    }
    fn issue(&self) -> Option<&IssueKey> {
        None
    }
    fn replaces(&self) -> Option<&CertId> {
        match &self.op {
            Some(DeclaredOp::Replace { old }) => Some(old),
            _ => None,
        }
    }
    fn adopt(&mut self, cert: &mut CertRecord) {
        cert.name = Some(self.name.clone());
        self.cert_id = Some(cert.id.clone());
        self.op = None;
        self.consent_told = None;
        if !self.asked_names.is_empty() {
            self.names = std::mem::take(&mut self.asked_names);
            self.key_type = std::mem::take(&mut self.asked_key_type);
        }
    }
    fn into_entry(self) -> Journaled {
        Journaled::Declared(self)
    }
}
