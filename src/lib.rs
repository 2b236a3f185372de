//! opsgate: a chat-ops bot that runs approved, audited, restart-safe cloud operations.
//!
//! See ARCHITECTURE.md for the map. The short version: chat adapters turn what happens in
//! chat into [`ports::chat::ChatEvent`]s; the [`engine`] is the only place that decides, and
//! does no IO; the [`driver`] makes every decision durable in the [`store`] before anything
//! acts on it; cloud operations sit behind [`ports::cloud::CloudOperation`].

pub mod app;
pub mod approval;
pub mod chat;
pub mod cloud;
pub mod command;
pub mod config;
pub mod domain;
pub mod driver;
pub mod emulator;
pub mod engine;
pub mod freeze;
pub mod job;
pub mod metrics;
pub mod policy;
pub mod ports;
pub mod secret;
pub mod store;
