//! [`RawJson`]: JSON text kept as it was written, the form in which a
//! record holds the workflow's state and the compensation stack's
//! arguments and outputs. Apart because it is a type of its own, with its
//! own scratch buffer, that the runtime hands to and takes from the
//! workflow's generated code.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// JSON text kept as it was written: an instance's state, stored and handed
/// to the workflow without being built into a [`serde_json::Value`] tree
/// (which cost more than a step on every transition).
///
/// Two values are equal when their texts are: the runtime writes JSON
/// compactly and in one order, so the same state is the same text.
#[derive(Clone)]
pub struct RawJson(
    /// `None`: `null`, which needs no allocation (an emptied record holds it).
    /// The text is always one well-formed JSON value: it is only ever made
    /// by serde_json, writing a value or reading one.
    Option<Box<str>>,
);

thread_local! {
    /// Where [`RawJson::to_json`] writes, so each text is allocated once,
    /// at its size, rather than grown and then shrunk.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The scratch buffer is kept up to this size between uses.
const SCRATCH_KEPT: usize = 64 << 10;

impl RawJson {
    /// `null`.
    pub const fn null() -> RawJson {
        RawJson(None)
    }

    /// The JSON text of `value`.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, serde_json::Error> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                let written = serde_json::to_writer(&mut *buffer, value)
                    .and_then(|()| RawJson::from_written(&buffer));
                if buffer.capacity() > SCRATCH_KEPT {
                    *buffer = Vec::new();
                }
                written
            }
            // Serializing a value that makes a `RawJson` of its own.
            Err(_) => RawJson::from_written(&serde_json::to_vec(value)?),
        })
    }

    /// The text serde_json wrote (always UTF-8).
    fn from_written(bytes: &[u8]) -> Result<RawJson, serde_json::Error> {
        let text = std::str::from_utf8(bytes).map_err(serde::ser::Error::custom)?;
        Ok(RawJson(Some(Box::from(text))))
    }

    /// The JSON text of `value`.
    pub fn from_value(value: &serde_json::Value) -> RawJson {
        // A `Value` always serializes: its map keys are strings.
        RawJson::to_json(value).unwrap_or_else(|_| RawJson::null())
    }

    /// The text, e.g. `{"Charge1":{"order":42}}`.
    pub fn get(&self) -> &str {
        self.0.as_deref().unwrap_or("null")
    }

    /// Decodes the text into `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    /// The text as a [`serde_json::Value`] tree.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.parse()
    }
}

/// Written as the JSON it holds (the record's own encoder copies the text;
/// through serde, as in a `Status` printed as JSON, it is checked first).
impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(self.get()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Read as the JSON text of one value, kept as it is; `null` needs no text.
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
        let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
        Ok(RawJson(raw.map(Box::<str>::from)))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}
