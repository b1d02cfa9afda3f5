//! Process exit codes, as documented for operators (sysexits.h values where one fits).

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
}

impl From<crate::config::ConfigErrors> for CliError {
    fn from(e: crate::config::ConfigErrors) -> Self {
        CliError::new(Exit::Config, e)
    }
}

impl From<crate::state::StoreError> for CliError {
    fn from(e: crate::state::StoreError) -> Self {
        let exit = if e.is_temporary() {
            Exit::TempFail
        } else {
            Exit::Failed
        };
        CliError::new(exit, e)
    }
}
