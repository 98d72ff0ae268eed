//! The layout on disk (an 8-byte version header before each value, the
//! version counter in `meta`; see the module's "Layout on disk") and the
//! errors the store reports, a corrupt entry among them. Apart so the
//! store's handle and its commit thread read and write entries one way.

use byteview::ByteView;

use super::super::Versioned;
use crate::error::StoreError;

/// Bytes of the version header before each stored value.
pub(super) const HEADER: usize = 8;
/// The key in `meta` holding the highest version handed out.
pub(super) const LAST_VERSION: &str = "last_version";

pub(super) fn backend(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

/// A fjall error, with what the store was doing.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
struct EngineError {
    context: &'static str,
    source: fjall::Error,
}

pub(super) fn engine(context: &'static str, source: fjall::Error) -> StoreError {
    StoreError::Backend(Box::new(EngineError { context, source }))
}

/// Splits a stored entry into its version and value.
pub(super) fn split<'a>(key: &[u8], stored: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    match stored.split_first_chunk::<HEADER>() {
        Some((version, value)) => Ok((u64::from_be_bytes(*version), value)),
        None => Err(backend(format!(
            "the embedded store is corrupt: the value of key {:?} is {} bytes, shorter than its {HEADER}-byte version header",
            String::from_utf8_lossy(key),
            stored.len()
        ))),
    }
}

pub(super) fn decode(key: &[u8], stored: &[u8]) -> Result<Versioned, StoreError> {
    split(key, stored).map(|(version, value)| Versioned {
        value: value.to_vec(),
        version,
    })
}

/// The stored form of a value before its version is decided: a header to
/// hold the version, then the bytes. Built on the writer's thread, once, in
/// the buffer fjall keeps (its `Slice` is a `ByteView`): the writer's own
/// buffer is freed on the thread that made it, and the sequencer only
/// writes the version in.
pub(super) fn staged(value: &[u8]) -> ByteView {
    ByteView::fused(&[0; HEADER], value)
}

/// `staged` with its version written in.
pub(super) fn stamped(mut stored: ByteView, version: u64) -> fjall::Slice {
    let written = match stored.get_mut() {
        Some(mut bytes) => {
            bytes[..HEADER].copy_from_slice(&version.to_be_bytes());
            true
        }
        None => false,
    };
    if written {
        stored.into()
    } else {
        // Shared (never, for a value just staged): a copy of its own.
        ByteView::fused(&version.to_be_bytes(), &stored[HEADER..]).into()
    }
}
