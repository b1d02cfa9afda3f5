//! Logging: journald natively under systemd (structured fields PROFILE, CERT_ID, JIRA_KEY), human
//! text on a terminal, JSON on request, and optionally daily rolling files. `[log] level` applies
//! to the `sectigo` target (this crate), like the Jira app's `com.sectigo` logger; other crates
//! log warnings and errors only. The level can change on reload (SIGHUP).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type BoxedLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// Keeps the file writer flushing, and lets the daemon change the level on reload.
pub struct Logging {
    _file_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    filter: reload::Handle<EnvFilter, Registry>,
}

impl Logging {
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let f = EnvFilter::try_new(parse_level(level)?).map_err(|e| e.to_string())?;
        self.filter
            .modify(|cur| *cur = f)
            .map_err(|e| e.to_string())
    }
}

/// Turns `[log] level` into a filter directive: a plain level applies to `sectigo`; anything
/// else is taken as a full `tracing` directive (e.g. `"info,sectigo::scm=trace"`).
pub fn parse_level(level: &str) -> Result<String, String> {
    let l = level.trim().to_ascii_lowercase();
    let directive = match l.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" | "off" => format!("warn,sectigo={l}"),
        _ if l.contains('=') => level.to_string(),
        _ => {
            return Err(format!(
                "{level:?} is not a level: use trace, debug, info, warn, error or off, or a filter directive such as \"info,sectigo::scm=debug\""
            ))
        }
    };
    EnvFilter::try_new(&directive).map_err(|e| {
        format!("{level:?} is not a level (trace, debug, info, warn, error, off) nor a filter directive: {e}")
    })?;
    Ok(directive)
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
    // SAFETY: fstat on fd 2 with a zeroed stat buffer we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(2, &mut st) != 0 {
            return false;
        }
        st.st_dev as u64 == dev && st.st_ino as u64 == ino
    }
}

/// Installs the global subscriber. Call once per process.
pub fn init(cfg: &LogConfig) -> Result<Logging, String> {
    let filter = EnvFilter::try_new(parse_level(&cfg.level)?).map_err(|e| e.to_string())?;
    let (filter, handle) = reload::Layer::new(filter);
    let mut layers: Vec<BoxedLayer> = Vec::new();

    let format = match cfg.format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    match format {
        LogFormat::Journald => {
            match tracing_journald::layer() {
                Ok(l) => layers.push(Box::new(
                    l.with_field_prefix(None)
                        .with_syslog_identifier("sectigo-connector".into()),
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
    if let Some(dir) = &cfg.file {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("[log] file: cannot create {}: {e}", dir.display()))?;
        let appender = tracing_appender::rolling::daily(dir, "sectigo-connector.log");
        let (writer, g) = tracing_appender::non_blocking(appender);
        guard = Some(g);
        let l: BoxedLayer = if format == LogFormat::Json {
            Box::new(tracing_subscriber::fmt::layer().json().with_writer(writer))
        } else {
            Box::new(
                tracing_subscriber::fmt::layer()
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
        .map_err(|e| e.to_string())?;
    Ok(Logging {
        _file_guard: guard,
        filter: handle,
    })
}

fn text_layer() -> BoxedLayer {
    Box::new(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("info").unwrap(), "warn,sectigo=info");
        assert_eq!(parse_level("DEBUG").unwrap(), "warn,sectigo=debug");
        assert!(parse_level("info,sectigo::scm=trace").is_ok());
        assert!(parse_level("loud").is_err());
    }
}
