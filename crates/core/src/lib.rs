//! The leaf layer of sectigo-connector: what every other layer reads and none of them owns.
//!
//! - [`clock`]: time as an input (a [`clock::Clock`]; the wall clock is read nowhere else).
//! - [`config`]: `connector.toml` and `profiles.d/*.toml`, every error at once, naming file and key.
//! - [`names`]: certificate ids, issue keys, profile and certificate names, each checked once.
//! - [`secret`]: a string whose `Debug`/`Display` print a mask.
//! - [`x509`]: reading certificates (PEM bundles), CSRs, and revocation reasons (RFC 5280).
//! - [`http`]: helpers shared by the HTTP clients (error chains, path segments, Retry-After).
//! - [`lines`]: reading a file line by line with a bound on a line's length.
//! - [`schedule`]: the cron dialect of tokio-cron-scheduler, to validate and to tell fire times.
//! - [`text`]: untrusted text made safe for a log line or a comment.
//!
//! Nothing here does I/O beyond reading the configuration files (and the readers [`lines`] is
//! given), and nothing imports a crate of the project.

pub mod clock;
pub mod config;
pub mod http;
pub mod lines;
pub mod names;
pub mod schedule;
pub mod secret;
pub mod text;
pub mod x509;
