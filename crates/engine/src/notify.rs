//! `[notify] command`: for mail, chat or paging without Jira. Each event that needs a person
//! (a renewal failed, an outcome unknown, a stall, expiring without auto-renew, a deploy
//! failed), and once each problem that holds up many certificates (an SCM host unreachable
//! and back, a profile's credentials refused and accepted, a daily budget spent), runs the
//! command once, with `SECTIGO_EVENT`, `SECTIGO_CERT_ID`, `SECTIGO_PROFILE` and
//! `SECTIGO_MESSAGE` in its environment, at most [`TIMEOUT`]. It runs beside the work (a slow
//! pager never delays a renewal); `run --once` and a stopping daemon wait for it.

use std::sync::Arc;
use std::time::Duration;

use sectigo_model::Notification;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

/// A notify command that runs longer is killed (and the failure logged).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The longest value put in the command's environment, in characters (the kernel refuses
/// one string over 128 KiB, and the command would not start).
const MAX_VALUE: usize = 16 * 1024;

/// A value of the command's environment: its control characters escaped but newlines and
/// tabs (a NUL, from a certificate's CN say, would keep the command from starting at all),
/// and bounded.
fn env_value(s: &str) -> String {
    sectigo_core::text::bounded(&sectigo_core::text::EscapedLines(s).to_string(), MAX_VALUE)
}

/// Runs the notify command; clones share the command (a reload replaces it) and the
/// commands under way.
#[derive(Clone, Default)]
pub struct Notifier {
    command: Arc<std::sync::Mutex<Option<Arc<Vec<String>>>>>,
    running: TaskTracker,
}

impl Notifier {
    pub fn new(command: Option<Vec<String>>) -> Notifier {
        let n = Notifier::default();
        n.set(command);
        n
    }

    /// The command of the configuration now in force.
    pub fn set(&self, command: Option<Vec<String>>) {
        *self.command.lock().unwrap_or_else(|e| e.into_inner()) = command.map(Arc::new);
    }

    /// Starts the command for `n` (nothing when none is configured).
    pub fn send(&self, n: Notification) {
        let Some(argv) = self
            .command
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        self.running.spawn(async move {
            let Some((prog, args)) = argv.split_first() else {
                return;
            };
            let child = tokio::process::Command::new(prog)
                .args(args)
                .env("SECTIGO_EVENT", n.event)
                .env("SECTIGO_CERT_ID", env_value(&n.cert_id))
                .env("SECTIGO_PROFILE", env_value(&n.profile))
                .env("SECTIGO_MESSAGE", env_value(&n.message))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            let r = match child {
                Err(e) => Err(format!("cannot start: {e}")),
                Ok(c) => match tokio::time::timeout(TIMEOUT, c.wait_with_output()).await {
                    Err(_) => Err(format!("killed after {} s", TIMEOUT.as_secs())),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(o)) if o.status.success() => Ok(()),
                    Ok(Ok(o)) => Err(format!(
                        "{}: {}",
                        o.status,
                        sectigo_core::text::Escaped(&sectigo_core::text::bounded(
                            &String::from_utf8_lossy(&o.stderr),
                            500
                        ))
                    )),
                },
            };
            match r {
                Ok(()) => info!(cert_id = %n.cert_id, profile = %n.profile, "[notify] command told of {}", n.event),
                Err(e) => error!(cert_id = %n.cert_id, profile = %n.profile,
                    "[notify] command {prog:?} failed for {} ({e}); the event is in the log above", n.event),
            }
        });
    }

    /// Waits (at most `limit`) for the commands under way.
    pub async fn drain(&self, limit: Duration) {
        self.running.close();
        let _ = tokio::time::timeout(limit, self.running.wait()).await;
        self.running.reopen();
    }
}
