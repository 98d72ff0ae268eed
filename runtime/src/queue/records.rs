//! The values stored under a queue's keys (see the keys' module): JSON, so
//! an operator can read them with the store's own tools.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;

/// An item waiting to start: `items/..`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    /// The instance id.
    pub(crate) id: String,
    /// The workflow to start, and its version.
    pub(crate) workflow: String,
    pub(crate) version: u32,
    /// The partition key, on a partitioned queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) partition: Option<String>,
    /// When it was enqueued (ms since the Unix epoch).
    pub(crate) enqueued_at: u64,
    /// The dispatcher starting it, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) claim: Option<Lease>,
    /// The workflow's input, as JSON.
    pub(crate) input: Box<RawValue>,
}

/// Who holds an item or a slot, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    /// The holder's runtime id.
    pub(crate) owner: String,
    /// When the hold lapses unless renewed (ms since the Unix epoch).
    pub(crate) expires_at: u64,
}

impl Lease {
    pub(crate) fn is_live(&self, now: u64) -> bool {
        self.expires_at > now
    }
}

/// A concurrency slot held for a running instance: `slots/{n}`,
/// `partitions/{key}/{n}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Slot {
    /// The instance it is held for.
    pub(crate) instance: String,
    /// The process that watches the instance and renews the slot.
    #[serde(flatten)]
    pub(crate) lease: Lease,
}

/// The waiting item of an id: `ids/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Waiting {
    /// The item's key.
    pub(crate) item: String,
}

/// The rate limit's window: `rate`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Window {
    /// The starts still in the window, oldest first: per millisecond (since
    /// the Unix epoch), how many.
    pub(crate) starts: Vec<(u64, u32)>,
}

/// `value` as JSON bytes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|error| Error::Codec {
        what: "a queue record".to_owned(),
        reason: error.to_string(),
    })
}

/// The value stored under `key`.
pub(crate) fn decode<'a, T: Deserialize<'a>>(key: &str, bytes: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::Corrupt {
        id: key.to_owned(),
        reason: error.to_string(),
    })
}
