//! Logging: journald natively under systemd (structured fields PROFILE, CERT_ID, JIRA_KEY), human
//! text on a terminal, JSON on request, and optionally daily rolling files. `[log] level` applies
//! to the `sectigo` target prefix (every crate of the project: `sectigo`, `sectigo_engine`, ...),
//! like the Jira app's `com.sectigo` logger; other crates log warnings and errors only. The level
//! can change on reload.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use sectigo_core::config::{log_directive, LevelError, LogConfig, LogFormat};

type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type BoxedLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// Keeps the file writer flushing, and lets the daemon change the level on reload.
pub struct Logging {
    _file_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    filter: reload::Handle<EnvFilter, Registry>,
}

/// Logging could not be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("[log] level: {0}")]
    Level(#[from] LevelError),
    #[error("[log] level: {0}")]
    Filter(String),
    #[error("[log] file: cannot create {dir}: {source}")]
    FileDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("a logger is already installed in this process")]
    AlreadyInstalled,
}

fn filter(level: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(log_directive(level)?).map_err(|e| LogError::Filter(e.to_string()))
}

impl Logging {
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        let f = filter(level)?;
        self.filter
            .modify(|cur| *cur = f)
            .map_err(|e| LogError::Filter(e.to_string()))
    }
}

/// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM to its dev:inode).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // fstat(2) of standard error, through a duplicate of its descriptor.
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

/// Whether this process may append to the daily files in `dir`: any user but root may (it can
/// write only where it is allowed to); root only into a directory of its own, not a link and
/// writable by nobody else (or one it makes). The daemon's log directory belongs to the
/// service user, who could plant a link at the next day's file name: root's commands (a
/// `certs list` while the daemon is stopped, say) then log to standard error only.
fn root_may_write(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if !rustix::process::geteuid().is_root() {
        return true;
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) => m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Installs the global subscriber. Call once per process.
pub fn init(cfg: &LogConfig) -> Result<Logging, LogError> {
    init_with(cfg, true)
}

/// [`init`]; without `stderr`, only `[log] file` gets the lines (the demo, when quiet).
pub fn init_with(cfg: &LogConfig, stderr: bool) -> Result<Logging, LogError> {
    let (filter, handle) = reload::Layer::new(filter(&cfg.level)?);
    let mut layers: Vec<BoxedLayer> = Vec::new();

    let format = match cfg.format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    match format {
        _ if !stderr => {}
        LogFormat::Journald => {
            match tracing_journald::layer() {
                Ok(l) => layers.push(Box::new(
                    l.with_field_prefix(None)
                        .with_syslog_identifier("sectigo-connector".into())
                        .with_priority_mappings(syslog_priorities()),
                )),
                Err(e) => {
                    eprintln!("sectigo-connector: journald is not reachable ({e}); logging text to stderr");
                    layers.push(text_layer());
                }
            }
        }
        LogFormat::Json => layers.push(Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        )),
        _ => layers.push(text_layer()),
    }

    let mut guard = None;
    let mut skipped = None;
    if let Some(dir) = cfg.file.as_ref().filter(|d| {
        let ok = root_may_write(d);
        if !ok {
            skipped = Some(d.to_path_buf());
        }
        ok
    }) {
        std::fs::create_dir_all(dir).map_err(|source| LogError::FileDir {
            dir: dir.clone(),
            source,
        })?;
        let appender = tracing_appender::rolling::daily(dir, "sectigo-connector.log");
        let (writer, g) = tracing_appender::non_blocking(appender);
        guard = Some(g);
        let l: BoxedLayer = if format == LogFormat::Json {
            Box::new(tracing_subscriber::fmt::layer().json().with_writer(writer))
        } else {
            Box::new(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(escaped_fields())
                    .with_ansi(false)
                    .with_writer(writer),
            )
        };
        layers.push(l);
    }

    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()
        .map_err(|_| LogError::AlreadyInstalled)?;
    if let Some(d) = skipped {
        tracing::debug!(
            "[log] file {}: not written by this command, run as root: the directory is not root's own",
            d.display()
        );
    }
    Ok(Logging {
        _file_guard: guard,
        filter: handle,
    })
}

/// syslog's meaning of each level, so that `journalctl -p info` shows INFO and up and no
/// DEBUG (tracing-journald's default maps INFO to notice and DEBUG to info).
fn syslog_priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

fn text_layer() -> BoxedLayer {
    Box::new(
        tracing_subscriber::fmt::layer()
            .fmt_fields(escaped_fields())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal()),
    )
}

/// The fields of a text line (the message too), `name=value` as tracing-subscriber writes them,
/// with every control character escaped: a certificate's CN, an SCM or Jira message or a
/// hook's output logged anywhere can neither start a forged line nor reach the terminal as an
/// escape sequence. (JSON escapes them itself; the journal keeps fields apart.)
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static
{
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let name = field.name();
        if name.starts_with("log.") {
            // The log crate's target, file and line, as the default leaves them out.
            return Ok(());
        }
        let text = format!("{value:?}");
        let text = sectigo_core::text::Escaped(&text);
        if name == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{name}={text}")
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_journal_only_when_the_stream_matches() {
        std::env::remove_var("JOURNAL_STREAM");
        assert!(!stderr_is_journal());
        std::env::set_var("JOURNAL_STREAM", "1:2");
        assert!(!stderr_is_journal());
        std::env::set_var("JOURNAL_STREAM", "not-a-stream");
        assert!(!stderr_is_journal());
        std::env::remove_var("JOURNAL_STREAM");
    }
}
