//! The cycle schedule: `[schedule] cron`, in tokio-cron-scheduler's dialect (croner, six fields
//! with seconds, day-of-month and day-of-week both honoured). The daemon sleeps until the next
//! fire time instead of polling, so it uses no CPU between cycles.

use chrono::{DateTime, Utc};
use croner::Cron;

pub fn parse(expr: &str) -> Result<Cron, String> {
    Cron::new(expr)
        .with_seconds_required()
        .with_dom_and_dow()
        .parse()
        .map_err(|e| e.to_string())
}

pub fn validate_cron(expr: &str) -> Result<(), String> {
    parse(expr).map(|_| ())
}

/// The first fire time strictly after `now`.
pub fn next_after(cron: &Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&now, false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hourly_and_invalid() {
        let c = parse("0 0 * * * *").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 6, 30, 0).unwrap();
        assert_eq!(
            next_after(&c, now),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 0).unwrap())
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 0).unwrap();
        assert_eq!(
            next_after(&c, at),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap())
        );
        for bad in ["* * * *", "61 * * * * *", "hourly", ""] {
            assert!(validate_cron(bad).is_err(), "{bad}");
        }
    }
}
