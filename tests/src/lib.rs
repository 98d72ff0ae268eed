//! Shared helpers for the sagaflow integration tests.

pub mod faults;
