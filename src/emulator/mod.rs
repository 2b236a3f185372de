//! A local emulator of the cloud APIs (placeholder until it lands).
