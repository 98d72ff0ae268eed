//! Shared helpers for the sagaflow integration tests.

pub mod harness;
pub mod journal;
pub mod manual;

pub use manual::{End, drive};
