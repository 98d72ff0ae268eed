//! `EmbeddedStore`: the default durable store, a file on local disk.

/// The embedded store (placeholder until it lands).
#[derive(Debug)]
pub struct EmbeddedStore {}
