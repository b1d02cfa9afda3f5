//! Per-host request limits, shared by every profile that talks to the same SCM host: at most
//! `max_concurrent` requests in flight and at most `max_requests_per_second` started in any
//! one-second window.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::health::{Health, HostEvent, HostStatus, Observer};

#[derive(Debug)]
pub struct HostLimiter {
    slots: Arc<Semaphore>,
    window: Mutex<Window>,
    /// Whether the host can be reached (see [`crate::health`]).
    pub(crate) health: Arc<Health>,
}

#[derive(Debug)]
struct Window {
    /// Starts in the last second (for rates ≥ 1/s): at most `per_window` of them.
    starts: VecDeque<Instant>,
    per_window: usize,
    /// For rates below 1/s: the minimum spacing between starts.
    spacing: Option<Duration>,
    last: Option<Instant>,
}

const WINDOW: Duration = Duration::from_secs(1);
/// Slack so that requests spaced one window apart at the client still fall in different
/// windows at the server, whose clock sees them after network and scheduling jitter. 5 ms was
/// measured too little on a loaded 2-core machine (12 requests in a second for a limit of 10);
/// 50 ms costs about 5% of throughput at the limit.
const MARGIN: Duration = Duration::from_millis(50);

impl Window {
    /// When the next request may start, reserving that moment.
    fn reserve(&mut self, now: Instant) -> Instant {
        if let Some(sp) = self.spacing {
            let at = match self.last {
                Some(l) if l + sp > now => l + sp,
                _ => now,
            };
            self.last = Some(at);
            return at;
        }
        while self.starts.len() > self.per_window {
            self.starts.pop_front();
        }
        let at = if self.starts.len() < self.per_window {
            now
        } else {
            let oldest = self.starts.pop_front().expect("full window");
            (oldest + WINDOW + MARGIN).max(now)
        };
        let at = self.starts.back().map_or(at, |b| at.max(*b));
        self.starts.push_back(at);
        at
    }
}

/// Holds a concurrency slot for the duration of one request.
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl HostLimiter {
    pub fn new(max_concurrent: usize, max_per_second: f64) -> Self {
        HostLimiter::for_host("", max_concurrent, max_per_second)
    }

    fn for_host(host: &str, max_concurrent: usize, max_per_second: f64) -> Self {
        let (per_window, spacing) = if max_per_second >= 1.0 {
            (max_per_second.floor() as usize, None)
        } else {
            (
                1,
                Some(Duration::from_secs_f64(1.0 / max_per_second) + MARGIN),
            )
        };
        HostLimiter {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            window: Mutex::new(Window {
                starts: VecDeque::new(),
                per_window,
                spacing,
                last: None,
            }),
            health: Arc::new(Health::new(host)),
        }
    }

    /// Waits for a concurrency slot, then for the rate limit.
    pub async fn acquire(&self) -> Permit {
        let p = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let at = self
            .window
            .lock()
            .expect("limiter lock")
            .reserve(Instant::now());
        tokio::time::sleep_until(at).await;
        Permit(p)
    }
}

/// The limiters of every host, created on first use, and what is told of hosts going down
/// and coming back.
#[derive(Default)]
pub struct Limits {
    max_concurrent: usize,
    max_per_second: f64,
    hosts: Mutex<BTreeMap<String, Arc<HostLimiter>>>,
    observer: Mutex<Option<Observer>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_concurrent", &self.max_concurrent)
            .field("max_per_second", &self.max_per_second)
            .finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(max_concurrent: usize, max_per_second: f64) -> Self {
        Limits {
            max_concurrent,
            max_per_second,
            hosts: Mutex::new(BTreeMap::new()),
            observer: Mutex::new(None),
        }
    }

    pub fn for_host(&self, host: &str) -> Arc<HostLimiter> {
        let mut h = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        h.entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostLimiter::for_host(
                    host,
                    self.max_concurrent,
                    self.max_per_second,
                ))
            })
            .clone()
    }

    /// Tells `observer` of every host going down or coming back (the engine's `[notify]`).
    pub fn observe(&self, observer: Observer) {
        *self.observer.lock().unwrap_or_else(|e| e.into_inner()) = Some(observer);
    }

    pub(crate) fn tell(&self, event: &HostEvent) {
        let o = self
            .observer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(o) = o {
            o(event);
        }
    }

    /// Every host the clients have talked to, and whether it can be reached.
    pub fn hosts(&self) -> Vec<HostStatus> {
        let h = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        h.values().map(|l| l.health.status()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_never_allows_more_than_rate() {
        let mut w = Window {
            starts: VecDeque::new(),
            per_window: 3,
            spacing: None,
            last: None,
        };
        let t0 = Instant::now();
        let ats: Vec<Instant> = (0..10).map(|_| w.reserve(t0)).collect();
        for (i, a) in ats.iter().enumerate() {
            let in_window = ats
                .iter()
                .filter(|b| **b >= *a && **b < *a + WINDOW)
                .count();
            assert!(in_window <= 3, "start {i}: {in_window} in one window");
        }
        assert_eq!(ats[2], t0);
        assert!(ats[3] >= t0 + WINDOW);
    }

    #[test]
    fn slow_rates_space_requests() {
        let mut w = Window {
            starts: VecDeque::new(),
            per_window: 1,
            spacing: Some(Duration::from_secs(2)),
            last: None,
        };
        let t0 = Instant::now();
        let a = w.reserve(t0);
        let b = w.reserve(t0);
        assert_eq!(b - a, Duration::from_secs(2));
    }
}
