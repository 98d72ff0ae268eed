//! Shared helpers for the sagaflow integration tests.
