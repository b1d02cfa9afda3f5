//! The integration tests, in one binary (one link instead of sixteen). Each module drives the
//! real binary or the library against the project's SCM and Jira simulators on loopback.
//! `disk`, `contract` and `systemd` tests are `#[ignore]`d: they need root (mounts), Prism, or a
//! booted container; `.ci/run` runs them with `cargo test --test it -- --ignored disk::`,
//! `contract::` and `systemd::`.

// The tests (and the benchmarks) drive the real binary, which reads the wall clock, and the
// simulators beside it; where time must move faster, a test takes `Env::manual`'s clock.
#![allow(clippy::disallowed_methods)]

mod access;
mod admin;
mod backup;
mod common;

mod config;
mod contract;
mod crash;
mod daemon;
mod declared;
mod deploy;
mod discover;
mod disk;
mod engine;
mod faults;
mod first_hour;
mod hostile;
mod jira;
mod layers;
mod man;
mod online;
mod outage;
mod pem;
mod restore_hold;
mod scm;
mod scm_answers;
mod secrets;
mod security;
mod settle_auto;
mod state;
mod systemd;
mod untrusted;
mod workflow;
