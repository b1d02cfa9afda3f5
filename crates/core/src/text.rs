//! Text from outside (Jira fields, CSR subjects, SCM messages, certificates' CNs) made safe for
//! where it goes: a log line or a terminal (no control characters, so no forged lines or
//! terminal escapes), a message of several lines ([`EscapedLines`]), or a comment (bounded
//! length).

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

/// Displays `s` with every control character escaped but newlines and tabs: text of several
/// lines (a message, a command's output) that keeps its lines but can carry no terminal escape,
/// carriage return or NUL.
pub struct EscapedLines<'a>(pub &'a str);

impl fmt::Display for EscapedLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() && c != '\n' && c != '\t' {
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

/// The one timestamp style of every output (logs, commands, Jira comments): RFC 3339 in UTC, to
/// the second: `2026-12-01T16:57:21Z`.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `n` and its noun, singular or plural: `1 key`, `2 keys`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_right_noun() {
        assert_eq!(count(1u64, "key", "keys"), "1 key");
        assert_eq!(count(0u64, "key", "keys"), "0 keys");
        assert_eq!(count(2u32, "key", "keys"), "2 keys");
    }

    #[test]
    fn control_characters_are_escaped() {
        let forged = "web\n2026-12-01T00:00:00Z  INFO sectigo: renewed\x1b[31m";
        let out = Escaped(forged).to_string();
        assert!(!out.contains('\n') && !out.contains('\x1b'), "{out}");
        assert!(out.starts_with("web\\n2026"), "{out}");
        assert_eq!(Escaped("plain é").to_string(), "plain é");
    }

    #[test]
    fn lines_keep_their_newlines_only() {
        let out = EscapedLines("a\nb\tc\r\u{1b}[2J\0").to_string();
        assert_eq!(out, "a\nb\tc\\r\\u{1b}[2J\\u{0}");
    }

    #[test]
    fn bounded_counts_characters() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("ééééé", 3), "ééé…");
    }
}
