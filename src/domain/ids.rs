//! Identities of the things opsgate keeps and talks about.

/// A job's number, as people type it (`!approve 42`): consecutive, never reused.
pub type JobId = u64;

/// A chat message's ID (a Discord snowflake, or the terminal's own counter).
pub type MessageId = String;
