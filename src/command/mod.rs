//! Chat text -> typed commands. The table in `catalog.rs` drives parsing and help.

pub mod catalog;
pub mod ids;
