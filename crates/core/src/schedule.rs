//! The cron dialect of `[schedule] cron` and `[jira.workflow] poll_cron`: tokio-cron-scheduler's
//! own (croner with six fields, seconds required, day-of-month and day-of-week both honoured).
//! The daemon's scheduler (tokio-cron-scheduler) fires the jobs; this module validates an
//! expression when the configuration loads, and tells fire times for `status` and `check-config`.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// An expression that is not valid in the dialect, with croner's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses `expr` exactly as tokio-cron-scheduler's `Job::new_async` does.
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expr)
            .map(Schedule)
            .map_err(|e| CronError(e.to_string()))
    }

    /// The first fire time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&now, false).ok()
    }
}

pub fn validate_cron(expr: &str) -> Result<(), CronError> {
    Schedule::parse(expr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hourly_and_invalid() {
        let c = Schedule::parse("0 0 * * * *").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 6, 30, 0).unwrap();
        assert_eq!(
            c.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 0).unwrap())
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 0).unwrap();
        assert_eq!(
            c.next_after(at),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap())
        );
        for bad in ["* * * *", "0 * * * *", "61 * * * * *", "hourly", ""] {
            assert!(validate_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn day_of_month_and_day_of_week_both_apply() {
        // The 13th of the month that is also a Friday: 2026-11-13.
        let c = Schedule::parse("0 0 12 13 * FRI").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        assert_eq!(
            c.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 11, 13, 12, 0, 0).unwrap())
        );
    }
}
