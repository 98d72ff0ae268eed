//! The record's hand-written JSON writer: byte for byte what serde's derive
//! writes, at a fraction of the cost, and the [`HistoryCache`] that spares a
//! worker re-encoding the history it wrote last time. Apart from the
//! envelope around it (`envelope.rs`) because it is most of the encoder's
//! code and all of its speed.

use std::collections::VecDeque;

use super::instance::InstanceRecord;
use super::parts::{CompensationEntry, HistoryEvent, Lease};

/// Writes `record` as JSON, byte for byte what its derived `Serialize`
/// writes through `serde_json` (a test holds them equal), but with the field
/// names as constants and the strings copied unless they need escaping:
/// on every transition, serde_json's byte-by-byte escaping of every name and
/// string was most of the cost of a step. The rarely present parts go
/// through serde.
pub(super) fn write_record(
    out: &mut Vec<u8>,
    record: &InstanceRecord,
    cache: Option<&mut HistoryCache>,
) -> Result<(), serde_json::Error> {
    // Names every field, so a field added to the record without being
    // added here is a compile error rather than a field silently not stored.
    let InstanceRecord {
        workflow: _,
        id: _,
        fingerprint: _,
        version: _,
        phase: _,
        state_name: _,
        state: _,
        compensation_stack: _,
        pivot_passed: _,
        attempt: _,
        next_run_at: _,
        cancel_requested: _,
        lease: _,
        heartbeat: _,
        output: _,
        failure: _,
        last_error: _,
        history: _,
        transitions: _,
        committed_at: _,
        awaiting_signal: _,
        inbox: _,
        signal_seq: _,
        signal_keys: _,
        parent: _,
        awaiting_child: _,
        status: _,
        created_at: _,
        updated_at: _,
    } = record;
    out.extend_from_slice(b"{\"workflow\":");
    write_str(out, &record.workflow)?;
    out.extend_from_slice(b",\"id\":");
    write_str(out, &record.id)?;
    out.extend_from_slice(b",\"fingerprint\":");
    write_str(out, &record.fingerprint)?;
    if record.version != 1 {
        out.extend_from_slice(b",\"version\":");
        write_int(out, record.version);
    }
    out.extend_from_slice(b",\"phase\":");
    write_str(out, record.phase.as_str())?;
    out.extend_from_slice(b",\"state_name\":");
    write_str(out, &record.state_name)?;
    out.extend_from_slice(b",\"state\":");
    out.extend_from_slice(record.state.get().as_bytes());
    out.extend_from_slice(b",\"compensation_stack\":[");
    for (index, entry) in record.compensation_stack.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let CompensationEntry {
            step,
            args,
            output,
            child,
        } = entry;
        out.extend_from_slice(b"{\"step\":");
        write_str(out, step)?;
        out.extend_from_slice(b",\"args\":");
        out.extend_from_slice(args.get().as_bytes());
        out.extend_from_slice(b",\"output\":");
        out.extend_from_slice(output.get().as_bytes());
        if let Some(child) = child {
            out.extend_from_slice(b",\"child\":");
            write_str(out, child)?;
        }
        out.push(b'}');
    }
    out.push(b']');
    // The fields at their default are left out, as serde's derive does.
    if record.pivot_passed {
        out.extend_from_slice(b",\"pivot_passed\":true");
    }
    out.extend_from_slice(b",\"attempt\":");
    write_int(out, record.attempt);
    if let Some(at) = record.next_run_at {
        out.extend_from_slice(b",\"next_run_at\":");
        write_int(out, at);
    }
    if record.cancel_requested {
        out.extend_from_slice(b",\"cancel_requested\":true");
    }
    let Lease {
        owner,
        expires_at,
        epoch,
    } = &record.lease;
    out.extend_from_slice(b",\"lease\":{\"owner\":");
    match owner {
        Some(owner) => write_str(out, owner)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"expires_at\":");
    write_opt_int(out, *expires_at);
    out.extend_from_slice(b",\"epoch\":");
    write_int(out, *epoch);
    out.push(b'}');
    if let Some(heartbeat) = &record.heartbeat {
        out.extend_from_slice(b",\"heartbeat\":");
        serde_json::to_writer(&mut *out, heartbeat)?;
    }
    if let Some(output) = &record.output {
        out.extend_from_slice(b",\"output\":");
        write_value(out, output)?;
    }
    if let Some(failure) = &record.failure {
        out.extend_from_slice(b",\"failure\":");
        serde_json::to_writer(&mut *out, failure)?;
    }
    if let Some(error) = &record.last_error {
        out.extend_from_slice(b",\"last_error\":");
        write_str(out, error)?;
    }
    out.extend_from_slice(b",\"history\":");
    match cache {
        Some(cache) => cache.write(out, &record.history)?,
        None => {
            out.push(b'[');
            for (index, event) in record.history.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_event(out, event)?;
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b",\"transitions\":");
    write_int(out, record.transitions);
    out.extend_from_slice(b",\"committed_at\":");
    write_int(out, record.committed_at);
    if let Some(name) = &record.awaiting_signal {
        out.extend_from_slice(b",\"awaiting_signal\":");
        write_str(out, name)?;
    }
    if !record.inbox.is_empty() {
        out.extend_from_slice(b",\"inbox\":");
        serde_json::to_writer(&mut *out, &record.inbox)?;
    }
    if record.signal_seq != 0 {
        out.extend_from_slice(b",\"signal_seq\":");
        write_int(out, record.signal_seq);
    }
    if !record.signal_keys.is_empty() {
        out.extend_from_slice(b",\"signal_keys\":");
        serde_json::to_writer(&mut *out, &record.signal_keys)?;
    }
    if let Some(parent) = &record.parent {
        out.extend_from_slice(b",\"parent\":");
        write_str(out, parent)?;
    }
    if let Some(child) = &record.awaiting_child {
        out.extend_from_slice(b",\"awaiting_child\":");
        write_str(out, child)?;
    }
    if let Some(status) = &record.status {
        out.extend_from_slice(b",\"status\":");
        write_value(out, status)?;
    }
    out.extend_from_slice(b",\"created_at\":");
    write_int(out, record.created_at);
    out.extend_from_slice(b",\"updated_at\":");
    write_int(out, record.updated_at);
    out.push(b'}');
    Ok(())
}

fn write_event(out: &mut Vec<u8>, event: &HistoryEvent) -> Result<(), serde_json::Error> {
    let HistoryEvent {
        at,
        kind,
        state,
        step,
        attempt,
        error,
        note,
    } = event;
    out.extend_from_slice(b"{\"at\":");
    write_int(out, *at);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'"');
    if let Some(state) = state {
        out.extend_from_slice(b",\"state\":");
        write_str(out, state)?;
    }
    if let Some(step) = step {
        out.extend_from_slice(b",\"step\":");
        write_str(out, step)?;
    }
    if let Some(attempt) = attempt {
        out.extend_from_slice(b",\"attempt\":");
        write_int(out, *attempt);
    }
    if let Some(error) = error {
        out.extend_from_slice(b",\"error\":");
        write_str(out, error)?;
    }
    if let Some(note) = note {
        out.extend_from_slice(b",\"note\":");
        write_str(out, note)?;
    }
    out.push(b'}');
    Ok(())
}

/// The encoded events of the last record a worker wrote. A history only
/// grows at its end and loses its oldest events at its front, so the next
/// record's encoding re-uses the bytes of the events it still holds and
/// encodes only the new ones: a step costs the same whether the history
/// holds 3 events or [`HISTORY_LIMIT`](super::HISTORY_LIMIT). Every cached
/// event is compared with the record's before its bytes are used, so a cache
/// that does not match the record (another record, a reloaded one) costs
/// time, never bytes.
#[derive(Debug)]
pub(crate) struct HistoryCache {
    /// The cached events, oldest first, with the length of their bytes.
    events: VecDeque<(HistoryEvent, usize)>,
    /// Their JSON, each event preceded by a comma.
    pub(super) bytes: Vec<u8>,
}

impl Default for HistoryCache {
    fn default() -> HistoryCache {
        // Sized for a short saga's history, so it is not regrown event by event.
        HistoryCache {
            events: VecDeque::with_capacity(16),
            bytes: Vec::with_capacity(1_024),
        }
    }
}

impl HistoryCache {
    /// Writes `history` as a JSON array, and keeps it cached.
    fn write(
        &mut self,
        out: &mut Vec<u8>,
        history: &VecDeque<HistoryEvent>,
    ) -> Result<(), serde_json::Error> {
        self.align(history);
        for event in history.iter().skip(self.events.len()) {
            let start = self.bytes.len();
            self.bytes.push(b',');
            if let Err(error) = write_event(&mut self.bytes, event) {
                self.bytes.truncate(start);
                return Err(error);
            }
            self.events
                .push_back((event.clone(), self.bytes.len() - start));
        }
        out.push(b'[');
        out.extend_from_slice(self.bytes.get(1..).unwrap_or_default());
        out.push(b']');
        Ok(())
    }

    /// Keeps only the longest run of cached events that `history` starts
    /// with, after dropping those it lost from its front.
    fn align(&mut self, history: &VecDeque<HistoryEvent>) {
        let lost = history.front().map_or(self.events.len(), |first| {
            self.events
                .iter()
                .position(|(cached, _)| cached == first)
                .unwrap_or(self.events.len())
        });
        if lost > 0 {
            let bytes: usize = self.events.drain(..lost).map(|(_, len)| len).sum();
            self.bytes.drain(..bytes);
        }
        let same = self
            .events
            .iter()
            .zip(history)
            .take_while(|((cached, _), event)| cached == *event)
            .count();
        while self.events.len() > same {
            if let Some((_, len)) = self.events.pop_back() {
                self.bytes.truncate(self.bytes.len() - len);
            }
        }
    }
}

/// A JSON value, as serde_json writes it, with its strings and keys
/// through [`write_str`] and its integers through `itoa`.
fn write_value(out: &mut Vec<u8>, value: &serde_json::Value) -> Result<(), serde_json::Error> {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(value) => write_bool(out, *value),
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(value), _) => write_int(out, value),
            (None, Some(value)) => write_int(out, value),
            (None, None) => serde_json::to_writer(&mut *out, number)?,
        },
        Value::String(text) => write_str(out, text)?,
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_str(out, key)?;
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A JSON string: copied as it is when nothing in it needs escaping (the
/// common case: names, ids, states), else escaped by serde_json.
fn write_str(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    if is_plain(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, text)
    }
}

/// Whether no byte of `bytes` needs escaping in JSON (a control character,
/// `"` or `\\`): eight bytes at a time, with the classic "has a zero byte"
/// and "has a byte less than n" word tricks.
fn is_plain(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let (words, rest) = bytes.as_chunks::<8>();
    let words_plain = words.iter().all(|word| {
        let word = u64::from_le_bytes(*word);
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        (below_space
            | has_zero(word ^ (ONES * u64::from(b'"')))
            | has_zero(word ^ (ONES * u64::from(b'\\'))))
            == 0
    });
    words_plain
        && rest
            .iter()
            .all(|&byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
}

pub(super) fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_opt_int(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(value) => write_int(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::super::envelope::{decode, encode, encode_with};
    use super::super::fixtures::{rich, sample};
    use super::super::instance::HISTORY_LIMIT;
    use super::super::parts::EventKind;
    use super::*;

    #[test]
    fn a_cached_history_encodes_what_a_fresh_one_does() {
        let mut cache = HistoryCache::default();
        let mut record = rich();
        let check = |record: &InstanceRecord, cache: &mut HistoryCache| {
            assert_eq!(
                encode_with(record, cache).expect("encodes"),
                encode(record).expect("encodes")
            );
        };
        check(&record, &mut cache);
        // Events appended, then the oldest ones dropped past the limit.
        for at in 0..(2 * HISTORY_LIMIT as u64) {
            record.push_event(HistoryEvent {
                state: Some(Cow::Borrowed("Charge1")),
                attempt: Some(1),
                ..HistoryEvent::new(at, EventKind::StepStarted)
            });
            check(&record, &mut cache);
        }
        // An event changed in the middle, one removed, the history emptied.
        record.history[10].attempt = Some(7);
        check(&record, &mut cache);
        record.history.remove(20);
        check(&record, &mut cache);
        // Another record altogether, then back.
        check(&sample(), &mut cache);
        check(&record, &mut cache);
        record.history.clear();
        check(&record, &mut cache);
    }

    #[test]
    fn the_hand_written_encoder_writes_what_serde_writes() {
        for record in [sample(), rich(), InstanceRecord::empty()] {
            let mut ours = Vec::new();
            write_record(&mut ours, &record, None).expect("encodes");
            let serde = serde_json::to_vec(&record).expect("encodes");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde)
            );
        }
        let record = rich();
        assert_eq!(decode(&encode(&record).expect("encodes")), Ok(record));
    }

    #[test]
    fn plain_strings_are_told_from_those_that_need_escaping() {
        let simple = |bytes: &[u8]| {
            bytes
                .iter()
                .all(|&byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
        };
        for byte in 0..=u8::MAX {
            for at in 0..19 {
                let mut bytes = b"order-42 step \xc3\xa9 ok".to_vec();
                bytes[at] = byte;
                assert_eq!(is_plain(&bytes), simple(&bytes), "byte {byte:#x} at {at}");
            }
        }
    }
}
