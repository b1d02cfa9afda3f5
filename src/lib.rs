//! sectigo-connector: keeps Sectigo SCM certificates renewed before they expire, and the Jira
//! issues that track them in step.
//!
//! Layers, top to bottom (nothing low imports something high):
//! - [`cli`]: the command line; [`daemon`]: the service's lifecycle (signals, schedule, reload).
//! - [`engine`]: one renewal cycle, orchestrating the adapters under the pure [`engine::policy`].
//! - adapters: [`scm`] (SCM REST Enrollment API), [`state`] (sled store), [`config`], [`logging`].
//! - [`sim`]: simulators of SCM (and Jira) on loopback, for tests and `demo` only.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod exit;
pub mod http;
pub mod jira;
pub mod logging;
pub mod manpage;
pub mod scm;
pub mod secret;
pub mod sim;
pub mod state;
pub mod workflow;
