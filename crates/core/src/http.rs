//! Small helpers shared by the HTTP clients (SCM, Jira).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// An error with its whole chain of causes, for messages (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Percent-encodes one URL path segment (ids and issue keys come from files and servers).
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (relative to `now`). Capped at one hour.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap();
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 06:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 05:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
