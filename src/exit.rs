//! Process exit codes, as documented for operators (sysexits.h values where one fits), and the
//! one place where every typed error of the layers below is mapped to one.

use crate::api::{ErrorKind, Response};
use crate::daemon::DaemonError;
use sectigo_core::config::ConfigErrors;
use sectigo_engine::EngineError;
use sectigo_state::StoreError;

/// What a command's failure means to the shell script or systemd unit that ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Ok,
    /// 1: the work failed (e.g. a renewal in `run --once` failed).
    Failed,
    /// 2: usage error (clap uses this too).
    Usage,
    /// 75 (EX_TEMPFAIL): temporary failure, e.g. state locked or SCM unreachable.
    TempFail,
    /// 78 (EX_CONFIG): configuration error; the message names the file and the key.
    Config,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::TempFail => 75,
            Exit::Config => 78,
        }
    }
}

impl From<ErrorKind> for Exit {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::Usage | ErrorKind::Confirm => Exit::Usage,
            ErrorKind::TempFail => Exit::TempFail,
            ErrorKind::Config => Exit::Config,
            ErrorKind::Failed => Exit::Failed,
        }
    }
}

/// The exit code of a reply that is not an error: some replies report failed work.
pub fn for_response(r: &Response) -> Exit {
    match r {
        Response::Imported(s) if !s.failed.is_empty() && s.temporary == s.failed.len() => {
            Exit::TempFail
        }
        Response::Imported(s) if !s.failed.is_empty() => Exit::Failed,
        Response::RenewedMany { failed, .. } if !failed.is_empty() => Exit::Failed,
        Response::Applied(r) if !r.failed.is_empty() || !r.unknown.is_empty() => Exit::Failed,
        Response::Reloaded(r) if !r.applied() => Exit::Config,
        Response::Deployed { deployed, .. }
            if matches!(
                deployed.outcome,
                sectigo_engine::deploy::Redeploy::Failed { .. }
            ) =>
        {
            Exit::Failed
        }
        Response::Renamed(r) if r.reload.as_ref().is_some_and(|r| !r.applied()) => Exit::Config,
        Response::DryRun(d) if d.credentials.iter().any(|(_, e)| e.is_some()) => Exit::Failed,
        _ => Exit::Ok,
    }
}

/// An error that reached the command line, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        CliError {
            exit,
            error: error.into(),
        }
    }
    pub fn usage(msg: impl std::fmt::Display) -> Self {
        CliError::new(Exit::Usage, anyhow::anyhow!("{msg}"))
    }
    pub fn failed(msg: impl std::fmt::Display) -> Self {
        CliError::new(Exit::Failed, anyhow::anyhow!("{msg}"))
    }
    pub fn temp(msg: impl std::fmt::Display) -> Self {
        CliError::new(Exit::TempFail, anyhow::anyhow!("{msg}"))
    }
}

impl From<ConfigErrors> for CliError {
    fn from(e: ConfigErrors) -> Self {
        CliError::new(Exit::Config, e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let exit = if e.is_temporary() {
            Exit::TempFail
        } else {
            Exit::Failed
        };
        CliError::new(exit, e)
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        let kind = crate::api::service::engine_error(e);
        CliError::new(kind.kind.into(), kind)
    }
}

impl From<crate::logging::LogError> for CliError {
    fn from(e: crate::logging::LogError) -> Self {
        CliError::new(Exit::Config, e)
    }
}

impl From<sectigo_jira::ClientError> for CliError {
    fn from(e: sectigo_jira::ClientError) -> Self {
        CliError::new(Exit::Config, e)
    }
}

impl From<crate::api::client::ClientError> for CliError {
    fn from(e: crate::api::client::ClientError) -> Self {
        use crate::api::client::ClientError as C;
        let exit = match &e {
            // The daemon may come back, or answer next time.
            C::Io { .. } => Exit::TempFail,
            // The configuration names a socket another configuration's daemon serves.
            C::OtherState { .. } => Exit::Config,
            C::Untrusted { .. } | C::Malformed { .. } => Exit::Failed,
        };
        CliError::new(exit, e)
    }
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> Self {
        let exit = match &e {
            DaemonError::Engine(EngineError::Client(_)) => Exit::Config,
            DaemonError::Engine(EngineError::Store(s)) | DaemonError::Store(s)
                if s.is_temporary() =>
            {
                Exit::TempFail
            }
            _ => Exit::Failed,
        };
        CliError::new(exit, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_codes() {
        assert_eq!(Exit::from(ErrorKind::Usage).code(), 2);
        assert_eq!(Exit::from(ErrorKind::TempFail).code(), 75);
        assert_eq!(Exit::from(ErrorKind::Config).code(), 78);
        assert_eq!(Exit::from(ErrorKind::Failed).code(), 1);
        let e: CliError = EngineError::UnknownCert("9".parse().unwrap()).into();
        assert_eq!(e.exit, Exit::Usage);
    }
}
