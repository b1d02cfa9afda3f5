//! sectigo-connector: keeps Sectigo SCM certificates renewed before they expire, and the Jira
//! issues that track them in step. This crate is the top layer; the layers under it are crates
//! of their own (see the workspace's `Cargo.toml`), so nothing low can import something high.
//!
//! Within this crate, top to bottom (no module imports one above it):
//! - [`cli`]: the command line: parses, dispatches, prints, maps failures to exit codes.
//! - [`daemon`]: the service's lifecycle (tasks, signals, schedule, reload, shutdown).
//! - [`api`]: the operator API: typed requests and replies, the use cases, their rendering.
//! - [`exit`], [`logging`], [`manpage`]: exit codes, the log subscriber, the manual pages.
//! - `demo` (feature `demo`, never in the packages): the daemon against the simulators.

pub mod api;
pub mod cli;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exit;
pub mod harden;
pub mod logging;
pub mod manpage;
