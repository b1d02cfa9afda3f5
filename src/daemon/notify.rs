//! systemd notifications (Type=notify). Without NOTIFY_SOCKET these do nothing.

use sd_notify::NotifyState;
use tracing::debug;

pub fn ready(status: &str) {
    send(Message::Ready(status.to_string()));
}

pub fn status(status: &str) {
    send(Message::Status(status.to_string()));
}

pub fn reloading() {
    send(Message::Reloading);
}

pub fn stopping() {
    send(Message::Stopping);
}

pub fn watchdog() {
    send(Message::Watchdog);
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any. As sd_watchdog_enabled(3):
/// `WATCHDOG_USEC` set, and `WATCHDOG_PID` unset or naming this process.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse()
        .ok()
        .filter(|u| *u > 0)?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(std::time::Duration::from_micros(usec)),
    }
}

/// What to tell systemd; sent by a dedicated thread so that a slow or full notification socket
/// never blocks the daemon's loop.
enum Message {
    Ready(String),
    Status(String),
    Reloading,
    Stopping,
    Watchdog,
    /// Acknowledged once everything before it was sent.
    Flush(std::sync::mpsc::Sender<()>),
}

fn sender() -> &'static std::sync::mpsc::SyncSender<Message> {
    static TX: std::sync::OnceLock<std::sync::mpsc::SyncSender<Message>> =
        std::sync::OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Message>(64);
        std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                for m in rx {
                    let r = match m {
                        Message::Ready(s) => {
                            sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(&s)])
                        }
                        Message::Status(s) => sd_notify::notify(false, &[NotifyState::Status(&s)]),
                        Message::Reloading => match NotifyState::monotonic_usec_now() {
                            Ok(m) => sd_notify::notify(false, &[NotifyState::Reloading, m]),
                            Err(_) => sd_notify::notify(false, &[NotifyState::Reloading]),
                        },
                        Message::Stopping => sd_notify::notify(
                            false,
                            &[NotifyState::Stopping, NotifyState::Status("stopping")],
                        ),
                        Message::Watchdog => sd_notify::notify(false, &[NotifyState::Watchdog]),
                        Message::Flush(ack) => {
                            let _ = ack.send(());
                            Ok(())
                        }
                    };
                    if let Err(e) = r {
                        debug!("sd_notify failed: {e}");
                    }
                }
            })
            .expect("spawn the sd-notify thread");
        tx
    })
}

fn send(m: Message) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    // A full queue means systemd is not reading: drop rather than block.
    let _ = sender().try_send(m);
}

/// Waits (at most half a second) until the notifications sent so far are out: for the last
/// message before the process exits.
pub fn flush() {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    if sender().try_send(Message::Flush(tx)).is_ok() {
        let _ = rx.recv_timeout(std::time::Duration::from_millis(500));
    }
}
