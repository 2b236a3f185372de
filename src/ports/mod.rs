//! The seams between the engine and the world: chat, the clouds, the store, and the
//! engine's inbox. Adapters implement these; the engine and the driver use them, and know no
//! adapter.

pub mod chat;
pub mod cloud;
pub mod inbox;
pub mod store;
