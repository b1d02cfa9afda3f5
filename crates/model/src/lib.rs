//! What the daemon knows and what it says, with no IO: the records the store keeps
//! ([`records`]: certificates and their lifecycle, the journal of billable calls, Jira issues the
//! workflow acted on, the Jira outbox) and the events a person hears of ([`event`]). The
//! store (`sectigo-state`) persists the records; the Jira crate renders the events; the engine
//! makes both.

pub mod declared;
pub mod event;
pub mod records;

pub use declared::{DeclaredOp, DeclaredRecord};
pub use event::{Event, Notification};
pub use records::*;
