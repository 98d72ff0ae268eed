//! The runtime: registers workflows, starts instances, runs them on workers.

/// The runtime (placeholder until it lands).
#[derive(Clone, Debug)]
pub struct Runtime {}

/// How an instance ended (placeholder until it lands).
#[derive(Debug)]
pub enum Outcome<T> {
    /// Completed.
    Completed(T),
}
