//! `[log] level`: a plain level for the `sectigo` target (every layer's log target starts with
//! `sectigo`), or a full `tracing` filter directive.

use tracing_subscriber::EnvFilter;

/// A `[log] level` that is neither a level nor a directive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("{0:?} is not a level: use trace, debug, info, warn, error or off, or a filter directive such as \"info,sectigo_scm=debug\"")]
    NotALevel(String),
    #[error(
        "{0:?} is not a level (trace, debug, info, warn, error, off) nor a filter directive: {1}"
    )]
    BadDirective(String, String),
}

/// sled logs at debug and trace from destructors that run as a thread exits, when the log
/// formatter's own thread-local buffer is already gone: the process then aborts on exit. Its
/// records at those levels describe pages and segments, of no use to an operator, so they are
/// always off, whatever the directive says.
const SLED_CAP: &str = "sled=info";

/// Turns `[log] level` into a filter directive: a plain level applies to `sectigo`; anything
/// else is taken as a full `tracing` directive (e.g. `"info,sectigo_scm=trace"`). Either way
/// sled is capped at info ([`SLED_CAP`]).
pub fn log_directive(level: &str) -> Result<String, LevelError> {
    let l = level.trim().to_ascii_lowercase();
    let directive = match l.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" | "off" => {
            format!("warn,sectigo={l},{SLED_CAP}")
        }
        _ if l.contains('=') => format!("{},{SLED_CAP}", level.trim()),
        _ => return Err(LevelError::NotALevel(level.to_string())),
    };
    EnvFilter::try_new(&directive)
        .map_err(|e| LevelError::BadDirective(level.to_string(), e.to_string()))?;
    Ok(directive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives() {
        assert_eq!(
            log_directive("INFO").unwrap(),
            "warn,sectigo=info,sled=info"
        );
        assert_eq!(
            log_directive("info,sectigo_scm=trace").unwrap(),
            "info,sectigo_scm=trace,sled=info"
        );
        assert!(matches!(
            log_directive("loud"),
            Err(LevelError::NotALevel(_))
        ));
        assert!(matches!(
            log_directive("sectigo=nonsense[x"),
            Err(LevelError::BadDirective(..))
        ));
    }
}
