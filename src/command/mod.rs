//! Chat text -> typed commands. The table in `catalog.rs` drives parsing and help.

pub mod catalog;
pub mod ids;
mod parse;
pub mod suggest;
pub mod text;

pub use parse::{
    parse, quote, reason_text, usage_of, Command, JobFilter, JobId, OperationRequest, ParseError,
    Verdict,
};
