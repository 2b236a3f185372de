//! Chat adapters: the terminal and Discord. Each turns what happens in chat into
//! [`ChatEvent`](crate::ports::chat::ChatEvent)s for the engine's inbox and carries out the
//! engine's messages through [`ChatOut`](crate::ports::chat::ChatOut).

pub mod discord;
pub mod shell;
