//! `MemoryStore`: a store in memory, for tests and examples.

/// A store in memory (placeholder until the runtime lands).
#[derive(Debug, Default)]
pub struct MemoryStore {}
