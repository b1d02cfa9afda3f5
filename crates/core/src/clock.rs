//! Time as an input. Nothing below the binary reads the wall clock itself (`clippy.toml` bans
//! `Utc::now` and `SystemTime::now` in the workspace): the daemon hands a [`Clock`] to whatever
//! stamps a record or decides by the date, and the tests (and the simulators) hand a
//! [`ManualClock`] that they move forward instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by the parts that read it.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock: the one place the workspace reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told: for tests and simulators. It starts at the wall clock's
/// time (so certificates made against it look current), or at the time given.
#[derive(Debug, Clone)]
pub struct ManualClock {
    at: Arc<Mutex<DateTime<Utc>>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// Starts at the wall clock's current second.
    pub fn new() -> ManualClock {
        let now = SystemClock.now();
        ManualClock::at(now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos())))
    }

    pub fn at(t: DateTime<Utc>) -> ManualClock {
        ManualClock {
            at: Arc::new(Mutex::new(t)),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        *self.lock() += by;
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.lock() = t;
    }

    /// This clock, shared.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A poisoned lock still holds a valid time.
        self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::hours(25));
        assert_eq!(c.now(), t0 + Duration::hours(25));
        let shared = c.shared();
        c.advance(Duration::seconds(1));
        assert_eq!(
            shared.now(),
            t0 + Duration::hours(25) + Duration::seconds(1)
        );
    }
}
