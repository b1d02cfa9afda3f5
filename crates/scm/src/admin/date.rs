//! SCM's dates. The Admin API's OpenAPI file (25.9.2) declares `format: date-time` for
//! `expires`, `renewedDate`, `requested`, ... while Sectigo's own example traffic (25.5) and
//! public clients show `"MM/dd/yyyy"` (`"05/21/2026"`), and ISO days (`2026-05-21`) are seen
//! too. One parser takes every form; anything else is an error (never a panic), which the
//! caller reports as an answer it cannot read.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// A date as SCM gave it: a whole day (no time of day, no zone) or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScmDate {
    /// `2026-05-21` or `05/21/2026`: a calendar day, zone unknown.
    Day(NaiveDate),
    /// `2026-05-21T14:15:22Z` (an offset, or none: then read as UTC).
    At(DateTime<Utc>),
}

impl ScmDate {
    /// The calendar day (in UTC for a moment).
    pub fn day(&self) -> NaiveDate {
        match self {
            ScmDate::Day(d) => *d,
            ScmDate::At(t) => t.date_naive(),
        }
    }

    /// The earliest moment it can mean: the day's start (UTC), or the moment. For an expiry,
    /// the cautious reading.
    pub fn earliest(&self) -> DateTime<Utc> {
        match self {
            ScmDate::Day(d) => d.and_time(NaiveTime::MIN).and_utc(),
            ScmDate::At(t) => *t,
        }
    }

    /// The latest moment it can mean: the day's end (the next day's start, UTC), or the moment.
    /// For "renewed after the call?", the generous reading.
    pub fn latest(&self) -> DateTime<Utc> {
        match self {
            ScmDate::Day(d) => d.and_time(NaiveTime::MIN).and_utc() + TimeDelta::days(1),
            ScmDate::At(t) => *t,
        }
    }
}

impl fmt::Display for ScmDate {
    /// ISO 8601: `2026-05-21`, or `2026-05-21T14:15:22Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScmDate::Day(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            ScmDate::At(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }
}

impl serde::Serialize for ScmDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A date in none of SCM's forms. Holds the text (bounded, escaped) for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a date (expected 2026-05-21, 2026-05-21T14:15:22Z or 05/21/2026)")]
pub struct DateError(pub String);

/// Parses any of SCM's date forms: `yyyy-MM-dd`, an ISO 8601 date-time with an offset
/// (`Z`, `+01:00`; `T` or a space; fractions of a second) or without one (read as UTC), and
/// `MM/dd/yyyy` (the example traffic's; month first, as Sectigo's US-locale UI writes it).
/// Surrounding spaces are ignored. Pure; never panics.
pub fn parse_scm_date(text: &str) -> Result<ScmDate, DateError> {
    let t = text.trim();
    let bad = || {
        DateError(sectigo_core::text::bounded(
            &sectigo_core::text::Escaped(text).to_string(),
            60,
        ))
    };
    // Every form is short, ASCII and starts with a digit; this also keeps chrono from seeing
    // anything long.
    if t.len() > 40 || !t.is_ascii() || !t.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    if t.contains('/') {
        return strict_day(t, "%m/%d/%Y").map(ScmDate::Day).ok_or_else(bad);
    }
    if t.len() == 10 {
        return strict_day(t, "%Y-%m-%d").map(ScmDate::Day).ok_or_else(bad);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(ScmDate::At(at.with_timezone(&Utc)));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(ScmDate::At(at.and_utc()));
        }
    }
    Err(bad())
}

/// A day in `format`, with four-digit years only (chrono would take `5/21/26` as year 26).
fn strict_day(t: &str, format: &str) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(t, format).ok()?;
    let year_digits = match format {
        "%Y-%m-%d" => t.split('-').next()?,
        _ => t.rsplit('/').next()?,
    };
    (year_digits.len() == 4).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(y: i32, m: u32, d: u32) -> ScmDate {
        ScmDate::Day(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> ScmDate {
        ScmDate::At(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    #[test]
    fn every_form_scm_uses() {
        let cases = [
            // The example traffic (25.5) and public clients.
            ("05/21/2026", day(2026, 5, 21)),
            ("02/16/2023", day(2023, 2, 16)),
            ("5/1/2026", day(2026, 5, 1)),
            // ISO days.
            ("2026-01-31", day(2026, 1, 31)),
            (" 2026-01-31 ", day(2026, 1, 31)),
            // The spec's date-time (Prism's placeholder, and its generated values).
            ("2019-08-24T14:15:22Z", at(2019, 8, 24, 14, 15, 22)),
            ("1964-02-16T23:04:15.0Z", at(1964, 2, 16, 23, 4, 15)),
            ("2026-05-21T14:15:22+02:00", at(2026, 5, 21, 12, 15, 22)),
            (
                "2026-05-21T14:15:22.123-05:00",
                ScmDate::At(
                    Utc.with_ymd_and_hms(2026, 5, 21, 19, 15, 22).unwrap()
                        + TimeDelta::milliseconds(123),
                ),
            ),
            ("2026-05-21 14:15:22Z", at(2026, 5, 21, 14, 15, 22)),
            // Without an offset: read as UTC.
            ("2026-05-21T14:15:22", at(2026, 5, 21, 14, 15, 22)),
            (
                "2026-05-21 14:15:22.5",
                ScmDate::At(
                    Utc.with_ymd_and_hms(2026, 5, 21, 14, 15, 22).unwrap()
                        + TimeDelta::milliseconds(500),
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_scm_date(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for text in [
            "",
            " ",
            "string",
            "21/05/2026",
            "13/01/2026",
            "02/30/2026",
            "05/21/26",
            "2026-13-01",
            "2026-02-30",
            "26-01-31",
            "2026/01/31",
            "2026-01-31T25:00:00Z",
            "2026-01-31T10:00:00+99:00",
            "05/21/2026 10:00",
            "-2026-01-01",
            "１２/01/2026",
            "9999999999-01-01",
            "2026-01-31T10:00:00Z and more text that goes on",
            "\u{0}\u{1}",
            "1720000000",
        ] {
            let e = parse_scm_date(text).unwrap_err();
            assert!(e.to_string().contains("is not a date"), "{text:?}: {e}");
        }
        // The message quotes the text, bounded and without control characters.
        let long = format!("{}\n", "9".repeat(10_000));
        let e = parse_scm_date(&long).unwrap_err().to_string();
        assert!(e.len() < 200 && !e.contains('\n'), "{e}");
    }

    #[test]
    fn a_day_spans_its_whole_day() {
        let d = day(2026, 5, 21);
        assert_eq!(
            d.earliest(),
            Utc.with_ymd_and_hms(2026, 5, 21, 0, 0, 0).unwrap()
        );
        assert_eq!(
            d.latest(),
            Utc.with_ymd_and_hms(2026, 5, 22, 0, 0, 0).unwrap()
        );
        let t = at(2026, 5, 21, 23, 30, 0);
        assert_eq!(t.earliest(), t.latest());
        assert_eq!(t.day(), NaiveDate::from_ymd_opt(2026, 5, 21).unwrap());
        assert_eq!(d.to_string(), "2026-05-21");
        assert_eq!(t.to_string(), "2026-05-21T23:30:00Z");
    }
}
