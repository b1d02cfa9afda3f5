//! Whether an SCM host (an API host or a token endpoint's) can be reached, shared by every
//! client of that host (beside its request limiter), so that an outage costs a bounded probe
//! instead of every certificate's retries.
//!
//! - Up: calls go ahead.
//! - A call that finds the host unreachable (no connection, a timeout, 5xx) marks it down and
//!   becomes its **probe**: it goes on retrying within `retry_max`; every other call waits
//!   for the probe's verdict instead of sending.
//! - The probe gets an answer: the host is up again and the waiting calls go ahead. The probe
//!   gives up: the host stays down and every call fails at once, without sending anything,
//!   until the next probe is due (`retry_max` later), when the first call to come probes.
//!
//! A cycle over any number of certificates therefore ends about `retry_max` after an outage
//! begins, having sent the probe's requests only. Every change is reported once (the log, and
//! the observer the engine sets for `[notify]`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ScmError;

/// A change of a host's reachability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    Down {
        host: String,
        since: DateTime<Utc>,
        error: String,
    },
    Up {
        host: String,
        since: DateTime<Utc>,
        back: DateTime<Utc>,
    },
}

/// Told of every [`HostEvent`] (the engine's `[notify]` and metrics).
pub type Observer = Arc<dyn Fn(&HostEvent) + Send + Sync>;

/// A host's reachability, as `status` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub host: String,
    /// `None`: up (or never tried).
    pub down_since: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
enum State {
    Up,
    Down {
        since: DateTime<Utc>,
        error: String,
        /// A call is probing the host now.
        probing: bool,
        /// When no call probes: when the next may.
        next_probe: Instant,
    },
}

/// One host's reachability.
#[derive(Debug)]
pub struct Health {
    host: String,
    state: Mutex<State>,
    /// Bumped at every change, so waiting calls look again.
    changed: watch::Sender<u64>,
}

/// What a call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The host was up when the call started.
    Pass,
    /// The call probes the down host.
    Probe,
}

/// A call's admission to a host: held for the whole call (its retries included).
pub struct Admission {
    health: Arc<Health>,
    role: Role,
    /// How long after a failed probe the next one may go.
    probe_every: Duration,
    /// When this call became the probe.
    probing_since: Instant,
}

impl Health {
    pub fn new(host: &str) -> Health {
        Health {
            host: host.to_string(),
            state: Mutex::new(State::Up),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn status(&self) -> HostStatus {
        let (down_since, error) = match &*self.lock() {
            State::Up => (None, None),
            State::Down { since, error, .. } => (Some(*since), Some(error.clone())),
        };
        HostStatus {
            host: self.host.clone(),
            down_since,
            error,
        }
    }

    /// Admits a call: at once when the host is up; as its probe when it is down and a probe
    /// is due; after the probe's verdict when one runs. `Err` when the host is down and no
    /// probe is due: nothing may be sent.
    pub async fn admit(self: &Arc<Self>, probe_every: Duration) -> Result<Admission, ScmError> {
        let mut changes = self.changed.subscribe();
        loop {
            {
                let mut st = self.lock();
                let role = match &mut *st {
                    State::Up => Some(Role::Pass),
                    State::Down { probing: true, .. } => None,
                    State::Down {
                        probing,
                        next_probe,
                        ..
                    } if Instant::now() >= *next_probe => {
                        *probing = true;
                        Some(Role::Probe)
                    }
                    State::Down { since, error, .. } => {
                        return Err(self.down_error(*since, error));
                    }
                };
                if let Some(role) = role {
                    return Ok(Admission {
                        health: self.clone(),
                        role,
                        probe_every,
                        probing_since: Instant::now(),
                    });
                }
                changes.borrow_and_update();
            }
            // A probe runs: its verdict decides. (Its admission always ends in a change.)
            if changes.changed().await.is_err() {
                return Err(ScmError::HostDown {
                    host: self.host.clone(),
                    since: String::new(),
                    error: "stopped".into(),
                });
            }
        }
    }

    fn down_error(&self, since: DateTime<Utc>, error: &str) -> ScmError {
        ScmError::HostDown {
            host: self.host.clone(),
            since: sectigo_core::text::ts(since),
            error: error.to_string(),
        }
    }
}

impl Admission {
    /// The host answered (whatever the answer): it is up. `Some` when that ends an outage.
    pub fn reached(&mut self, now: DateTime<Utc>) -> Option<HostEvent> {
        let h = &self.health;
        let mut st = h.lock();
        let was = std::mem::replace(&mut *st, State::Up);
        drop(st);
        self.role = Role::Pass;
        match was {
            State::Up => None,
            State::Down { since, .. } => {
                h.bump();
                Some(HostEvent::Up {
                    host: h.host.clone(),
                    since,
                    back: now,
                })
            }
        }
    }

    /// The host could not be reached. Marks it down (this call becomes its probe: `Ok(event)`)
    /// or, when another call probes it, `Err`: this call must stop and send nothing more.
    pub fn unreachable(
        &mut self,
        now: DateTime<Utc>,
        error: &str,
    ) -> Result<Option<HostEvent>, ScmError> {
        let h = self.health.clone();
        let mut st = h.lock();
        if let State::Down {
            since, error: e, ..
        } = &mut *st
        {
            return match self.role {
                Role::Probe => {
                    *e = error.to_string();
                    Ok(None)
                }
                Role::Pass => Err(h.down_error(*since, e)),
            };
        }
        *st = State::Down {
            since: now,
            error: error.to_string(),
            probing: true,
            next_probe: Instant::now(),
        };
        drop(st);
        self.role = Role::Probe;
        self.probing_since = Instant::now();
        h.bump();
        Ok(Some(HostEvent::Down {
            host: h.host.clone(),
            since: now,
            error: error.to_string(),
        }))
    }

    /// Whether the call may go on trying (between its retries): not when another call found
    /// the host down meanwhile (that call probes it).
    pub fn may_continue(&self) -> Result<(), ScmError> {
        match (&*self.health.lock(), self.role) {
            (State::Down { since, error, .. }, Role::Pass) => {
                Err(self.health.down_error(*since, error))
            }
            _ => Ok(()),
        }
    }

    pub fn host(&self) -> &str {
        &self.health.host
    }

    /// Whether this admission is to `health`'s host.
    pub fn is_for(&self, health: &Arc<Health>) -> bool {
        Arc::ptr_eq(&self.health, health)
    }
}

impl Drop for Admission {
    /// A probe that ends without an answer: the host stays down. When the probe tried for a
    /// good part of its budget, the next probe may go `probe_every` later and the waiting
    /// calls fail at once meanwhile; when it stopped at once (a billable call that cannot be
    /// repeated), the next call probes.
    fn drop(&mut self) {
        if self.role != Role::Probe {
            return;
        }
        let tried = self.probing_since.elapsed() >= self.probe_every / 2;
        if let State::Down {
            probing,
            next_probe,
            ..
        } = &mut *self.health.lock()
        {
            *probing = false;
            *next_probe = if tried {
                Instant::now() + self.probe_every
            } else {
                Instant::now()
            };
        }
        self.health.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_the_others_wait_then_fail_at_once() {
        let h = Arc::new(Health::new("scm:443"));
        let every = Duration::from_secs(300);
        let mut probe = h.admit(every).await.unwrap();
        let mut other = h.admit(every).await.unwrap();
        // The first to fail marks the host down and probes it.
        assert!(matches!(
            probe.unreachable(t0(), "connection refused"),
            Ok(Some(HostEvent::Down { .. }))
        ));
        // A call admitted before stops at its next try.
        assert!(other.may_continue().is_err());
        assert!(other.unreachable(t0(), "refused").is_err());
        // A new call waits for the probe's verdict...
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.admit(every).await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // ...which is "still down" after the probe tried for a while: it fails at once, as
        // every call until the next probe.
        tokio::time::advance(Duration::from_secs(200)).await;
        drop(probe);
        assert!(matches!(
            waiter.await.unwrap(),
            Err(ScmError::HostDown { .. })
        ));
        assert!(h.admit(every).await.is_err());
        assert_eq!(h.status().down_since, Some(t0()));
        // The next probe is due `every` later.
        tokio::time::advance(every).await;
        assert!(h.admit(every).await.is_ok());
    }

    #[tokio::test]
    async fn a_probe_that_stops_at_once_lets_the_next_call_probe() {
        let h = Arc::new(Health::new("scm:443"));
        let mut probe = h.admit(Duration::from_secs(300)).await.unwrap();
        probe
            .unreachable(t0(), "connection dropped mid-answer")
            .unwrap();
        drop(probe);
        let mut next = h.admit(Duration::from_secs(300)).await.unwrap();
        assert!(
            matches!(next.unreachable(t0(), "again"), Ok(None)),
            "the next call probes"
        );
    }

    #[tokio::test]
    async fn a_probe_that_gets_an_answer_ends_the_outage() {
        let h = Arc::new(Health::new("scm:443"));
        let mut probe = h.admit(Duration::ZERO).await.unwrap();
        probe.unreachable(t0(), "timeout").unwrap();
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.admit(Duration::ZERO).await.map(|_| ()) });
        tokio::task::yield_now().await;
        let back = probe.reached(t0() + chrono::Duration::minutes(3));
        assert!(matches!(back, Some(HostEvent::Up { .. })));
        assert!(waiter.await.unwrap().is_ok(), "the waiting call goes ahead");
        assert_eq!(h.status().down_since, None);
    }

    #[tokio::test]
    async fn after_a_failed_probe_the_next_one_is_due_later() {
        let h = Arc::new(Health::new("scm:443"));
        let mut probe = h.admit(Duration::ZERO).await.unwrap();
        probe.unreachable(t0(), "503").unwrap();
        drop(probe);
        // probe_every = 0: the next call probes at once.
        let mut next = h.admit(Duration::ZERO).await.unwrap();
        assert!(
            matches!(next.unreachable(t0(), "503"), Ok(None)),
            "it is the probe"
        );
    }
}
