//! X.509 reading: certificate bundles as SCM sends them ([`pem`]), certificate signing requests
//! as Jira users paste them ([`csr`]), and revocation reasons ([`revocation`]). One leaf used by
//! the engine, the workflow and the simulators alike.

pub mod csr;
pub mod keygen;
pub mod pem;
pub mod revocation;

pub use csr::Csr;
pub use pem::{parse_bundle, CertInfo, PemError};
