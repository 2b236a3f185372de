//! The core's words: identities, the job's spec, who acted, and time. Everything else in the
//! crate speaks these; this module imports nothing else of the crate.

mod actor;
mod ids;
mod severity;
mod spec;
pub mod time;

pub use actor::{Actor, Person};
pub use ids::{ChannelId, JobId, MessageId, RoleId, UserId};
pub use severity::Severity;
pub use spec::{JobSpec, Provider};
