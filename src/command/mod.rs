//! Chat text -> typed commands. The table in `catalog.rs` drives parsing and help.

pub mod catalog;
pub mod ids;
mod parse;
pub mod suggest;
pub mod text;

pub use parse::{parse, quote, usage_of, Command, JobFilter, JobId, OperationRequest, ParseError};
