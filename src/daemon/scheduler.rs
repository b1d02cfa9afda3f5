//! The schedule, driven by tokio-cron-scheduler: one cron job fires the renewal cycle
//! (`[schedule] cron`), another the Jira workflow poll (`[jira.workflow] poll_cron`). A job only
//! sends a [`Tick`] to the daemon's loop, which decides what to run; so a job never overlaps a
//! cycle, and a reload replaces the jobs without touching work under way.
//!
//! The scheduler's own ticker wakes every 500 ms to look for due jobs. It runs on a thread of
//! its own, on a single-threaded runtime, so that those wake-ups touch nothing else: the
//! daemon's workers sleep until a job fires. BENCHMARKS.md measures what is left.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
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
    #[error("the scheduler's thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the scheduler's thread has stopped")]
    Stopped,
    #[error("the scheduler did not answer within {}s", ANSWER_WITHIN.as_secs())]
    NoAnswer,
}

/// How long the daemon waits for the scheduler's thread to take a change or to stop. It never
/// waits longer: a scheduler that hangs must not take the daemon's loop (signals, the control
/// socket, shutdown) with it.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

struct Slot {
    job: Uuid,
    expr: String,
    schedule: Schedule,
}

/// What the daemon asks of the scheduler's thread.
enum Command {
    Set {
        tick: Tick,
        expr: Option<String>,
        done: oneshot::Sender<Result<Option<Schedule>, SchedulerError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// The handle the daemon holds; the scheduler itself lives on its thread.
pub struct Scheduler {
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The cycle's schedule, to tell when it fires next.
    cycle: Option<Schedule>,
}

impl Scheduler {
    /// Starts an empty scheduler, on its own thread, whose jobs send to `ticks`.
    pub async fn start(ticks: mpsc::Sender<Tick>) -> Result<Scheduler, SchedulerError> {
        let (commands, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("sectigo-schedule".into())
            .spawn(move || serve(ticks, rx, ready_tx))
            .map_err(SchedulerError::Thread)?;
        ready_rx.await.map_err(|_| SchedulerError::Stopped)??;
        Ok(Scheduler {
            commands,
            thread: Some(thread),
            cycle: None,
        })
    }

    async fn set(
        &self,
        tick: Tick,
        expr: Option<&str>,
    ) -> Result<Option<Schedule>, SchedulerError> {
        let (done, rx) = oneshot::channel();
        self.commands
            .send(Command::Set {
                tick,
                expr: expr.map(str::to_string),
                done,
            })
            .map_err(|_| SchedulerError::Stopped)?;
        match tokio::time::timeout(ANSWER_WITHIN, rx).await {
            Ok(r) => r.map_err(|_| SchedulerError::Stopped)?,
            Err(_) => Err(SchedulerError::NoAnswer),
        }
    }

    /// Fires [`Tick::Cycle`] on `expr` (replacing the previous cycle job).
    pub async fn set_cycle(&mut self, expr: &str) -> Result<(), SchedulerError> {
        self.cycle = self.set(Tick::Cycle, Some(expr)).await?;
        Ok(())
    }

    /// Fires [`Tick::Poll`] on `expr`; `None` removes the poll job.
    pub async fn set_poll(&mut self, expr: Option<&str>) -> Result<(), SchedulerError> {
        self.set(Tick::Poll, expr).await.map(|_| ())
    }

    /// When the cycle job fires next, after `now`.
    pub fn next_cycle(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cycle.as_ref().and_then(|s| s.next_after(now))
    }

    /// Stops the jobs and the thread; gives up (leaving the thread to the process's exit)
    /// after [`ANSWER_WITHIN`].
    pub async fn shutdown(mut self) {
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok()
            && tokio::time::timeout(ANSWER_WITHIN, rx).await.is_err()
        {
            tracing::warn!("{}; stopping without it", SchedulerError::NoAnswer);
            return;
        }
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The scheduler's thread: a single-threaded runtime holding the JobScheduler and its jobs.
fn serve(
    ticks: mpsc::Sender<Tick>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<(), SchedulerError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(SchedulerError::Thread(e)));
            return;
        }
    };
    rt.block_on(async move {
        let mut inner = match JobScheduler::new().await {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        if let Err(e) = inner.start().await {
            let _ = ready.send(Err(e.into()));
            return;
        }
        let _ = ready.send(Ok(()));
        let (mut cycle, mut poll): (Option<Slot>, Option<Slot>) = (None, None);
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::Set { tick, expr, done } => {
                    let (slot, key) = match tick {
                        Tick::Cycle => (&mut cycle, "[schedule] cron"),
                        Tick::Poll => (&mut poll, "[jira.workflow] poll_cron"),
                    };
                    let r = replace(&inner, &ticks, slot, expr.as_deref(), key, tick)
                        .await
                        .map(|()| slot.as_ref().map(|s| s.schedule.clone()));
                    let _ = done.send(r);
                }
                Command::Shutdown(done) => {
                    if let Err(e) = inner.shutdown().await {
                        debug!("scheduler shutdown: {e}");
                    }
                    let _ = done.send(());
                    return;
                }
            }
        }
    });
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
    use sectigo_core::clock::Clock as _;

    #[tokio::test]
    async fn a_cron_job_sends_its_tick_and_is_replaced_on_change() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut s = Scheduler::start(tx).await.unwrap();
        s.set_cycle("* * * * * *").await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a tick within 5 s");
        assert_eq!(got, Some(Tick::Cycle));
        // A yearly schedule replaces it: no more ticks, and the next fire time is its own.
        s.set_cycle("0 0 0 1 1 *").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(rx.try_recv().is_err(), "the every-second job was removed");
        let next = s
            .next_cycle(sectigo_core::clock::SystemClock.now())
            .unwrap();
        assert_eq!(next.format("%m-%d %H:%M:%S").to_string(), "01-01 00:00:00");
        // A bad expression is refused and leaves the schedule as it was.
        assert!(s.set_cycle("every hour").await.is_err());
        assert_eq!(
            s.next_cycle(sectigo_core::clock::SystemClock.now()),
            Some(next)
        );
        s.set_poll(Some("* * * * * *")).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a poll tick within 5 s");
        assert_eq!(got, Some(Tick::Poll));
        s.set_poll(None).await.unwrap();
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
