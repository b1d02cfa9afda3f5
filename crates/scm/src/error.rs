//! SCM errors, classified once.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ScmError {
    /// The CA is still working on it (download before issuance, "being processed").
    #[error("not issued yet (SCM code {code}: {description})")]
    Pending { code: i64, description: String },
    /// Worth retrying later: timeouts, connection errors, 5xx, 429.
    #[error("{what}")]
    Transient {
        what: String,
        retry_after: Option<Duration>,
        /// The request may have reached SCM and been acted on (a timeout after sending, a
        /// dropped connection, a gateway timeout). A billable call must not be repeated blindly.
        maybe_processed: bool,
    },
    /// SCM refused, and will refuse again: a human must act.
    #[error("SCM refused: HTTP {status}{}: {description}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Permanent {
        status: u16,
        code: Option<i64>,
        description: String,
    },
    /// SCM refused for a reason a person can fix in SCM (`action`); the caller retries on its
    /// persisted backoff, so the fix is picked up.
    #[error("SCM refused the {call} (code {code}: {description}); to do: {action}")]
    Refused {
        call: &'static str,
        code: i64,
        description: String,
        action: &'static str,
    },
    /// A download found the certificate revoked in SCM.
    #[error("the certificate was revoked in SCM ({description})")]
    Revoked { description: String },
    /// A revoke found the certificate revoked already.
    #[error("the certificate is revoked already ({description})")]
    AlreadyRevoked { description: String },
    /// No access token could be had (the token endpoint is unreachable, failing or answering
    /// nonsense). Nothing was sent to SCM: never a billed call.
    #[error("no access token: {what}")]
    TokenUnavailable {
        what: String,
        retry_after: Option<Duration>,
    },
    /// The host (SCM's, or its token endpoint's) cannot be reached: another call found it down
    /// and no probe is due. Nothing was sent.
    #[error("{host} cannot be reached (down since {since}: {error}); nothing was sent, the next cycle tries again")]
    HostDown {
        host: String,
        since: String,
        error: String,
    },
    /// The credentials were refused (token endpoint, or 401 again after re-authenticating).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A success status with a body that could not be understood.
    #[error("SCM answered HTTP {status} with a body that cannot be read: {what}")]
    Malformed { status: u16, what: String },
}

impl ScmError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ScmError::Transient { .. }
                | ScmError::TokenUnavailable { .. }
                | ScmError::HostDown { .. }
        )
    }

    /// Whether SCM (or its token endpoint) cannot be reached, with certainty that nothing was
    /// acted on: no connection, a timeout before sending, a 5xx or 429 after the call's
    /// retries, no token, a host found down. The certificate is not to blame: its renewal is
    /// deferred, not failed.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ScmError::Transient {
                maybe_processed, ..
            } => !maybe_processed,
            ScmError::TokenUnavailable { .. } | ScmError::HostDown { .. } => true,
            _ => false,
        }
    }

    /// For a billable call (renew, enroll): could SCM have acted on the request even though we
    /// got an error? If so the outcome is unknown and the call must not be sent again. Only
    /// the billable request itself can: a token failure, a refusal or a connection never made
    /// cannot.
    pub fn maybe_billed(&self) -> bool {
        match self {
            ScmError::Transient {
                maybe_processed, ..
            } => *maybe_processed,
            // A 2xx whose body we could not read: SCM did it, we do not know the new id.
            ScmError::Malformed { status, .. } => (200..300).contains(status),
            _ => false,
        }
    }

    /// The SCM error code, when SCM gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ScmError::Pending { code, .. } | ScmError::Refused { code, .. } => Some(*code),
            ScmError::Permanent { code, .. } => *code,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_billable_request_itself_can_be_maybe_billed() {
        let token = ScmError::TokenUnavailable {
            what: "connection dropped".into(),
            retry_after: None,
        };
        assert!(!token.maybe_billed() && token.is_transient());
        let refused = ScmError::Refused {
            call: "renew",
            code: -107,
            description: "DCV".into(),
            action: "complete DCV",
        };
        assert!(!refused.maybe_billed() && !refused.is_transient());
        assert_eq!(refused.code(), Some(-107));
        let dropped = ScmError::Transient {
            what: "dropped".into(),
            retry_after: None,
            maybe_processed: true,
        };
        assert!(dropped.maybe_billed());
    }
}
