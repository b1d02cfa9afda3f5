//! Text from outside (Jira fields, CSR subjects, SCM messages) made safe for where it goes:
//! a log line (no control characters, so no forged lines or terminal escapes) or a comment
//! (bounded length).

use std::fmt;

/// Displays `s` with every control character escaped (`\n`, `\u{1b}`, ...), so that it can
/// never start a new log line or reach a terminal as an escape sequence.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_fmt(format_args!("{c}"))?;
            }
        }
        Ok(())
    }
}

/// `s` cut to at most `max` characters, with `…` where it was cut.
pub fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let forged = "web\n2026-12-01T00:00:00Z  INFO sectigo: renewed\x1b[31m";
        let out = Escaped(forged).to_string();
        assert!(!out.contains('\n') && !out.contains('\x1b'), "{out}");
        assert!(out.starts_with("web\\n2026"), "{out}");
        assert_eq!(Escaped("plain é").to_string(), "plain é");
    }

    #[test]
    fn bounded_counts_characters() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("ééééé", 3), "ééé…");
    }
}
