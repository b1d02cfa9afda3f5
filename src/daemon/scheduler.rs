//! The schedule, driven by tokio-cron-scheduler: one cron job fires the renewal cycle
//! (`[schedule] cron`), another the Jira workflow poll (`[jira.workflow] poll_cron`). A job only
//! sends a [`Tick`] to the daemon's loop, which decides what to run; so a job never overlaps a
//! cycle, and a reload replaces the jobs without touching work under way.
//!
//! The scheduler's own ticker wakes every 500 ms to look for due jobs; BENCHMARKS.md measures
//! what that costs an idle daemon.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::debug;
use uuid::Uuid;

use sectigo_core::schedule::Schedule;

/// What a job asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    Cycle,
    Poll,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("scheduler: {0}")]
    Scheduler(#[from] JobSchedulerError),
    #[error("{key}: invalid cron expression {expr:?}: {error}")]
    Cron {
        key: &'static str,
        expr: String,
        error: sectigo_core::schedule::CronError,
    },
}

struct Slot {
    job: Uuid,
    expr: String,
    schedule: Schedule,
}

pub struct Scheduler {
    inner: JobScheduler,
    ticks: mpsc::Sender<Tick>,
    cycle: Option<Slot>,
    poll: Option<Slot>,
}

impl Scheduler {
    /// Starts an empty scheduler whose jobs send to `ticks`.
    pub async fn start(ticks: mpsc::Sender<Tick>) -> Result<Scheduler, SchedulerError> {
        let inner = JobScheduler::new().await?;
        inner.start().await?;
        Ok(Scheduler {
            inner,
            ticks,
            cycle: None,
            poll: None,
        })
    }

    /// Fires [`Tick::Cycle`] on `expr` (replacing the previous cycle job).
    pub async fn set_cycle(&mut self, expr: &str) -> Result<(), SchedulerError> {
        let slot = &mut self.cycle;
        replace(
            &self.inner,
            &self.ticks,
            slot,
            Some(expr),
            "[schedule] cron",
            Tick::Cycle,
        )
        .await
    }

    /// Fires [`Tick::Poll`] on `expr`; `None` removes the poll job.
    pub async fn set_poll(&mut self, expr: Option<&str>) -> Result<(), SchedulerError> {
        let slot = &mut self.poll;
        let key = "[jira.workflow] poll_cron";
        replace(&self.inner, &self.ticks, slot, expr, key, Tick::Poll).await
    }

    /// When the cycle job fires next, after `now`.
    pub fn next_cycle(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cycle.as_ref().and_then(|s| s.schedule.next_after(now))
    }

    pub async fn shutdown(mut self) {
        if let Err(e) = self.inner.shutdown().await {
            debug!("scheduler shutdown: {e}");
        }
    }
}

/// Puts a job for `expr` in `slot`, replacing the one there. A bad expression leaves the
/// slot as it was.
async fn replace(
    inner: &JobScheduler,
    ticks: &mpsc::Sender<Tick>,
    slot: &mut Option<Slot>,
    expr: Option<&str>,
    key: &'static str,
    tick: Tick,
) -> Result<(), SchedulerError> {
    if slot.as_ref().map(|s| s.expr.as_str()) == expr {
        return Ok(());
    }
    let Some(expr) = expr else {
        if let Some(old) = slot.take() {
            inner.remove(&old.job).await?;
        }
        return Ok(());
    };
    let schedule = Schedule::parse(expr).map_err(|error| SchedulerError::Cron {
        key,
        expr: expr.to_string(),
        error,
    })?;
    let tx = ticks.clone();
    let job = Job::new_async(expr, move |_, _| {
        let tx = tx.clone();
        Box::pin(async move {
            // A full queue already holds this tick: the daemon is busy and will see it.
            if tx.try_send(tick).is_err() {
                debug!("{tick:?} tick dropped: one is already queued");
            }
        })
    })?;
    if let Some(old) = slot.take() {
        inner.remove(&old.job).await?;
    }
    let id = inner.add(job).await?;
    *slot = Some(Slot {
        job: id,
        expr: expr.to_string(),
        schedule,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cron_job_sends_its_tick_and_is_replaced_on_change() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut s = Scheduler::start(tx).await.unwrap();
        s.set_cycle("* * * * * *").await.unwrap();
        let first = s.cycle.as_ref().unwrap().job;
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a tick within 5 s");
        assert_eq!(got, Some(Tick::Cycle));
        s.set_cycle("* * * * * *").await.unwrap();
        assert_eq!(
            s.cycle.as_ref().unwrap().job,
            first,
            "same expression, same job"
        );
        s.set_cycle("0 0 0 1 1 *").await.unwrap();
        assert_ne!(s.cycle.as_ref().unwrap().job, first);
        assert!(s.next_cycle(Utc::now()).is_some());
        s.set_poll(None).await.unwrap();
        assert!(s.poll.is_none());
        s.shutdown().await;
    }

    #[tokio::test]
    async fn the_dialect_is_the_schedulers_own() {
        // Every expression the configuration accepts, tokio-cron-scheduler accepts, and the
        // other way round.
        for expr in [
            "0 0 * * * *",
            "*/10 * * * * *",
            "0 30 2 * * MON-FRI",
            "0 0 12 13 * FRI",
            "0 0 * * *",
            "61 * * * * *",
            "hourly",
            "",
        ] {
            let ours = Schedule::parse(expr).is_ok();
            let theirs = Job::new_async(expr, |_, _| Box::pin(async {})).is_ok();
            assert_eq!(ours, theirs, "{expr:?}");
        }
    }
}
