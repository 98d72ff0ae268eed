//! Shared helpers for the sagaflow integration tests.

pub mod faults;
pub mod harness;
pub mod journal;
pub mod manual;

pub use manual::{End, drive};
