//! sectigo-connector: keeps Sectigo SCM certificates renewed before they expire, and the Jira
//! issues that track them in step. This crate is the top layer; the layers under it are crates
//! of their own (see the workspace's `Cargo.toml`), so nothing low can import something high.
//!
//! Within this crate, top to bottom (no module imports one above it):
//! - [`cli`]: the command line: its words, what each command does, how replies are printed,
//!   failures mapped to exit codes.
//! - [`daemon`]: the service's loop (tasks, signals, schedule, reload, shutdown).
//! - [`lifecycle`]: one configuration at work, started, driven and stopped the same way by
//!   `run`, `run --once` and the demo.
//! - [`render`]: how replies look on a terminal (or as JSON).
//! - [`api`]: the operator API: typed requests and replies, the use cases, the socket client.
//! - [`hooks`]: the root helper's side of the deploy hooks (`run-hooks`).
//! - [`exit`], [`logging`], [`manpage`], [`harden`]: exit codes, the log subscriber, the
//!   manual pages, the process's own hardening.
//! - `demo` (feature `demo`, never in the packages): the daemon against the simulators.

pub mod api;
pub mod cli;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exit;
pub mod harden;
pub mod hooks;
pub mod lifecycle;
pub mod logging;
pub mod manpage;
pub mod render;
