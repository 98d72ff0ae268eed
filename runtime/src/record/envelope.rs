//! The record's on-disk envelope: the format version, the checksum over
//! the record's exact bytes, and [`encode`] and [`decode`] between a record
//! and the bytes stored. Apart from the types it stores, and from the
//! hand-written JSON writer it wraps (`write.rs`).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::instance::InstanceRecord;
use super::write::{HistoryCache, write_int, write_record};

/// The envelope's format version; a record with another one is not decoded.
pub const FORMAT: u32 = 1;

/// Why stored bytes are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON envelope.
    #[error("not a record envelope: {0}")]
    Envelope(String),
    /// An envelope of a format this version does not read.
    #[error("record format {0} is not supported (this version reads format {FORMAT})")]
    Format(u32),
    /// The checksum does not match the record's bytes.
    #[error("checksum mismatch: stored {stored}, computed {computed}")]
    Checksum {
        /// The checksum in the envelope.
        stored: String,
        /// The checksum of the bytes found.
        computed: String,
    },
    /// The checksum matches but the record's fields do not.
    #[error("invalid record: {0}")]
    Record(String),
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    format: u32,
    checksum: String,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// The checksum written: XXH3, 64 bits, of the record's bytes. Enough to
/// catch torn writes and stray edits (it is not meant to resist tampering),
/// and fast: FNV-1a, which records were first written with, costs a
/// multiplication per byte in a chain, a microsecond or more per write.
fn checksum(bytes: &[u8]) -> String {
    format!("{XXH3}{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

const XXH3: &str = "xxh3-64:";
const FNV1A: &str = "fnv1a64:";

/// The checksum of `bytes` by the algorithm `stored` names (records written
/// before XXH3 carry FNV-1a's), so both kinds of record read back.
fn checksum_like(stored: &str, bytes: &[u8]) -> String {
    if stored.starts_with(FNV1A) {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{FNV1A}{hash:016x}")
    } else {
        checksum(bytes)
    }
}

/// Serializes a record into its envelope.
pub fn encode(record: &InstanceRecord) -> Result<Vec<u8>, serde_json::Error> {
    encode_into(record, None)
}

/// [`encode`], re-using the encoded events of `cache` that the record's
/// history still holds, and leaving the record's in it.
pub(crate) fn encode_with(
    record: &InstanceRecord,
    cache: &mut HistoryCache,
) -> Result<Vec<u8>, serde_json::Error> {
    encode_into(record, Some(cache))
}

fn encode_into(
    record: &InstanceRecord,
    cache: Option<&mut HistoryCache>,
) -> Result<Vec<u8>, serde_json::Error> {
    // The envelope is written around the record's JSON in one buffer, the
    // checksum filled in after it: through a `RawValue`, serde_json would
    // parse the record's JSON again to validate it, and copy it twice.
    // Sized from what the record holds, so the buffer (which a store may
    // keep) is neither regrown nor mostly empty.
    let history = cache
        .as_ref()
        .map_or(record.history.len() * 128, |cache| cache.bytes.len());
    let mut out = Vec::with_capacity(
        768 + record.state.get().len() + history + 96 * record.compensation_stack.len(),
    );
    out.extend_from_slice(b"{\"format\":");
    write_int(&mut out, FORMAT);
    out.extend_from_slice(b",\"checksum\":\"");
    let checksum_at = out.len();
    out.extend_from_slice(XXH3.as_bytes());
    out.extend_from_slice(&[b'0'; 16]);
    out.extend_from_slice(b"\",\"record\":");
    let record_at = out.len();
    write_record(&mut out, record, cache)?;
    // The hash's 16 hex digits, written in place: no string to format.
    let hash = xxhash_rust::xxh3::xxh3_64(&out[record_at..]);
    let digits_at = checksum_at + XXH3.len();
    for (index, digit) in out[digits_at..digits_at + 16].iter_mut().enumerate() {
        let nibble = (hash >> (60 - 4 * index)) & 0xf;
        *digit = b"0123456789abcdef"[nibble as usize];
    }
    out.push(b'}');
    Ok(out)
}

/// Reads a record from its envelope, checking format and checksum.
pub fn decode(bytes: &[u8]) -> Result<InstanceRecord, DecodeError> {
    let envelope: EnvelopeIn<'_> =
        serde_json::from_slice(bytes).map_err(|error| DecodeError::Envelope(error.to_string()))?;
    if envelope.format != FORMAT {
        return Err(DecodeError::Format(envelope.format));
    }
    let computed = checksum_like(&envelope.checksum, envelope.record.get().as_bytes());
    if computed != envelope.checksum {
        return Err(DecodeError::Checksum {
            stored: envelope.checksum,
            computed,
        });
    }
    serde_json::from_str(envelope.record.get())
        .map_err(|error| DecodeError::Record(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::sample;
    use super::*;

    #[test]
    fn round_trips() {
        let record = sample();
        let bytes = encode(&record).expect("encodes");
        assert_eq!(decode(&bytes), Ok(record));
    }

    #[test]
    fn record_json_is_stable() {
        let bytes = encode(&sample()).expect("encodes");
        let text = String::from_utf8(bytes).expect("utf-8");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn detects_a_changed_byte() {
        let bytes = encode(&sample()).expect("encodes");
        let text = String::from_utf8(bytes)
            .expect("utf-8")
            .replace("\"attempt\":1,", "\"attempt\":2,");
        assert!(matches!(
            decode(text.as_bytes()),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn reads_records_checksummed_with_fnv1a() {
        // An envelope as the first releases wrote it.
        let body =
            String::from_utf8(serde_json::to_vec(&sample()).expect("encodes")).expect("utf-8");
        let envelope = format!(
            r#"{{"format":1,"checksum":"{}","record":{body}}}"#,
            checksum_like(FNV1A, body.as_bytes())
        );
        assert!(envelope.contains("\"checksum\":\"fnv1a64:"));
        assert_eq!(decode(envelope.as_bytes()), Ok(sample()));
        let changed = envelope.replace("\"attempt\":1,", "\"attempt\":2,");
        assert!(matches!(
            decode(changed.as_bytes()),
            Err(DecodeError::Checksum { stored, .. }) if stored.starts_with(FNV1A)
        ));
    }

    #[test]
    fn reads_records_that_spell_out_fields_at_their_default() {
        // `sample()` as the releases before this one wrote it, with
        // `"pivot_passed":false`, `"next_run_at":null` and the like.
        let old = r#"{"format":1,"checksum":"xxh3-64:992a223b9b12cb5c","record":{"workflow":"place_order","id":"order-42","fingerprint":"0123456789abcdef","phase":"Running","state_name":"ChargePayment1","state":{"ChargePayment1":{"order":{"id":42},"reservation":"R-1"}},"compensation_stack":[{"step":"reserve_inventory","args":[{"id":42}],"output":"R-1"}],"pivot_passed":false,"attempt":1,"next_run_at":null,"cancel_requested":false,"lease":{"owner":"worker-1","expires_at":1700000030000,"epoch":1},"output":null,"failure":null,"last_error":null,"history":[{"at":1700000000000,"kind":"created"},{"at":1700000000100,"kind":"step_started","state":"ReserveInventory0","step":"reserve_inventory","attempt":1},{"at":1700000000500,"kind":"step_succeeded","state":"ReserveInventory0","step":"reserve_inventory","attempt":1}],"transitions":1,"committed_at":1700000000500,"created_at":1700000000000,"updated_at":1700000000500}}"#;
        assert!(old.contains("\"next_run_at\":null"));
        assert_eq!(decode(old.as_bytes()), Ok(sample()));
    }

    #[test]
    fn rejects_garbage_and_other_formats() {
        assert!(matches!(
            decode(b"\x00\xffnot json"),
            Err(DecodeError::Envelope(_))
        ));
        assert!(matches!(
            decode(b"{\"format\":1}"),
            Err(DecodeError::Envelope(_))
        ));
        let other = br#"{"format":2,"checksum":"x","record":{}}"#;
        assert_eq!(decode(other), Err(DecodeError::Format(2)));
    }

    #[test]
    fn rejects_a_valid_checksum_over_wrong_fields() {
        let body = r#"{"workflow":"w"}"#;
        let envelope = format!(
            r#"{{"format":1,"checksum":"{}","record":{body}}}"#,
            checksum(body.as_bytes())
        );
        assert!(matches!(
            decode(envelope.as_bytes()),
            Err(DecodeError::Record(_))
        ));
    }
}
