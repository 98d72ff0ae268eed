//! The instance record: what the runtime keeps in the store for one workflow
//! instance, and its on-disk envelope.
//!
//! One key per instance, `instances/{id}`, holding JSON an operator can read
//! with the backend's own tools:
//!
//! ```text
//! {"format":1,"checksum":"xxh3-64:9c1e…","record":{"workflow":"place_order","id":"order-42",…}}
//! ```
//!
//! The checksum covers the exact bytes of `record`, so a torn or hand-edited
//! record is detected instead of being resumed with wrong data.
//!
//! The record's parts are apart from what writes and reads them: `keys.rs`
//! (where records live in the store), `parts.rs` (the values a record is
//! made of: phase, lease, history events, compensation entries),
//! `raw.rs` (JSON text kept as written), `instance.rs` (the record itself),
//! and the encoding: `envelope.rs` (format, checksum, `encode`/`decode`)
//! around `write.rs` (the record's hand-written JSON writer).

mod envelope;
#[cfg(test)]
mod fixtures;
mod instance;
mod keys;
mod parts;
mod raw;
mod write;

pub(crate) use envelope::encode_with;
pub use envelope::{DecodeError, FORMAT, decode, encode};
pub use instance::{
    HISTORY_LIMIT, InstanceRecord, SIGNAL_KEYS_KEPT, format_fingerprint, parse_fingerprint,
};
pub use keys::{DUE_PREFIX, KEY_PREFIX, due_key, key, parse_due_key};
pub use parts::{
    CompensationEntry, EventKind, Failure, Heartbeat, HistoryEvent, Lease, Phase, SignalMessage,
};
pub use raw::RawJson;
pub(crate) use write::HistoryCache;
