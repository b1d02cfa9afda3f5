//! The engine's errors: what went wrong with an operation, classified once, so the operator
//! API can tell a usage error from a temporary one from a real failure.

use std::path::PathBuf;

use sectigo_core::names::{CertId, ProfileName};
use sectigo_scm::ScmError;
use sectigo_state::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no certificate with id {0:?} is tracked (see `certs list`)")]
    UnknownCert(CertId),
    #[error("no profile named {0:?} is configured (see `profiles list`)")]
    UnknownProfile(String),
    /// Another task holds the certificate (a renewal, a collection, a deploy): try again.
    #[error("certificate {0} is being renewed right now; try again in a minute")]
    Busy(CertId),
    /// The request cannot be, as asked (a usage error): the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("SCM client: {0}")]
    Client(#[from] sectigo_scm::ClientError),
    #[error("SCM: {0}")]
    Scm(#[from] ScmError),
    #[error("state export: {0}")]
    Export(#[from] sectigo_state::ExportError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The private key the daemon made for a certificate cannot be read or stored.
    #[error("the private key of {id} in the state directory: {error}")]
    Key { id: String, error: std::io::Error },
    /// A file the operation must change (a profile file being renamed).
    #[error("cannot rename {from} to {to}: {error}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        error: std::io::Error,
    },
    /// A blocking task of the engine ended abnormally.
    #[error("{what}: the task ended abnormally: {error}")]
    Task {
        what: &'static str,
        error: tokio::task::JoinError,
    },
}

impl EngineError {
    pub fn unknown_profile(p: &ProfileName) -> EngineError {
        EngineError::UnknownProfile(p.to_string())
    }

    /// Whether trying again later may succeed (exit 75): the state is locked, SCM is
    /// unreachable, another task holds the certificate.
    pub fn is_temporary(&self) -> bool {
        match self {
            EngineError::Store(s) => s.is_temporary(),
            EngineError::Scm(s) => s.is_transient(),
            EngineError::Busy(_) => true,
            _ => false,
        }
    }

    /// Whether the request itself was wrong (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            EngineError::UnknownCert(_) | EngineError::UnknownProfile(_) | EngineError::Invalid(_)
        )
    }
}

/// Why a deploy failed (it is retried; the certificate stays renewed).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{what} {}: {error}{hint}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
        /// What the operator can do about it, when that is known (starts with a space).
        hint: String,
    },
    #[error("[deploy] owner or group: no {name:?} in {file}")]
    NoAccount { name: String, file: &'static str },
    #[error("the download cannot be split into certificate and chain: {0}")]
    Pem(#[from] sectigo_core::x509::pem::PemError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Helper(#[from] HelperError),
    #[error("{what}: the task ended abnormally")]
    Task { what: &'static str },
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("the hook is empty")]
    Empty,
    #[error("the hook {prog:?} cannot start: {error}")]
    Start { prog: String, error: std::io::Error },
    #[error("the hook {prog:?}: {error}")]
    Wait { prog: String, error: std::io::Error },
    #[error("the hook {prog:?} did not finish within {secs} s and was killed")]
    Timeout { prog: String, secs: u64 },
    #[error("the hook {prog:?} exited with {code}")]
    Exit { prog: String, code: i32 },
    #[error("the hook {prog:?} was killed by a signal")]
    Signal { prog: String },
}

/// Why a hook handed to the helper failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not an answer of the hook helper: {error}")]
    BadAnswer {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// The helper ran the hook and it failed.
    #[error("{0}")]
    Failed(String),
    #[error("the hook helper did not answer within 10 min: is sectigo-connector-hooks.path enabled (`systemctl enable --now sectigo-connector-hooks.path`)?")]
    NoAnswer,
}
