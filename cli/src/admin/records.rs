//! Reading stored records for an operator: decoding, a state's variables,
//! the history as a timeline, why an instance rolled back.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use sagaflow::machine::StateDescription;
use sagaflow::record::{self, EventKind, Failure, HistoryEvent, InstanceRecord};

use super::types::{StoredVariable, TimelineEntry, Undecodable};

/// Records read per page of a scan.
pub(super) const SCAN_PAGE: usize = 256;

/// Decodes the stored bytes at `key`.
pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<InstanceRecord, Undecodable> {
    let undecodable = |reason: String| Undecodable {
        key: key.to_owned(),
        reason,
    };
    let instance = record::decode(bytes).map_err(|error| undecodable(error.to_string()))?;
    if instance.fingerprint_value().is_none() {
        return Err(undecodable(format!(
            "fingerprint `{}` is not 16 hex digits",
            instance.fingerprint
        )));
    }
    Ok(instance)
}

/// The variables of a stored state variant (`{"Variant": {"name": value}}`),
/// in the machine's order when the state is known.
pub(super) fn variables(
    state: &Value,
    state_name: &str,
    info: Option<&StateDescription>,
) -> Vec<StoredVariable> {
    let fields = match state {
        Value::Object(map) => match map.get(state_name) {
            Some(Value::Object(fields)) => fields.clone(),
            Some(other) => {
                return vec![StoredVariable {
                    name: state_name.to_owned(),
                    ty: None,
                    value: other.clone(),
                }];
            }
            None => map.clone(),
        },
        // A unit variant: nothing stored.
        Value::String(_) | Value::Null => return Vec::new(),
        other => {
            return vec![StoredVariable {
                name: "state".to_owned(),
                ty: None,
                value: other.clone(),
            }];
        }
    };
    let mut variables = Vec::new();
    let mut rest = fields;
    if let Some(info) = info {
        for variable in &info.variables {
            if let Some(value) = rest.remove(&variable.name) {
                variables.push(StoredVariable {
                    name: variable.name.clone(),
                    ty: Some(variable.ty.clone()),
                    value,
                });
            }
        }
    }
    variables.extend(rest.into_iter().map(|(name, value)| StoredVariable {
        name,
        ty: None,
        value,
    }));
    variables
}

/// The history as a timeline: each step attempt's start and end joined into
/// one entry with its duration.
pub(crate) fn timeline<'a>(history: impl Iterator<Item = &'a HistoryEvent>) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = Vec::new();
    let mut started: Option<(usize, &HistoryEvent)> = None;
    for event in history {
        let entry = TimelineEntry {
            at: event.at,
            kind: event.kind,
            state: event.state.as_deref().map(str::to_owned),
            step: event.step.as_deref().map(str::to_owned),
            attempt: event.attempt,
            duration_ms: None,
            error: event.error.clone(),
            note: event.note.clone(),
        };
        match event.kind {
            EventKind::StepStarted => {
                started = Some((entries.len(), event));
                entries.push(entry);
            }
            EventKind::StepSucceeded | EventKind::StepRetried | EventKind::StepFailed => {
                match started.take() {
                    Some((index, start))
                        if start.state == event.state && start.attempt == event.attempt =>
                    {
                        let joined = &mut entries[index];
                        joined.kind = event.kind;
                        joined.duration_ms = Some(event.at.saturating_sub(start.at));
                        joined.error = event.error.clone();
                    }
                    _ => entries.push(entry),
                }
            }
            _ => {
                started = None;
                entries.push(entry);
            }
        }
    }
    entries
}

/// The step that succeeded in the current state right before the instance
/// failed, if that is how it failed (the workflow's code returned the error).
pub(super) fn succeeded_then_failed(instance: &InstanceRecord) -> Option<String> {
    let last = instance.history.iter().rev().find(|event| {
        event.state.as_deref() == Some(instance.state_name.as_str())
            && matches!(
                event.kind,
                EventKind::StepSucceeded | EventKind::StepFailed | EventKind::StepRetried
            )
    })?;
    (last.kind == EventKind::StepSucceeded).then(|| {
        last.step
            .as_deref()
            .map_or_else(|| instance.state_name.clone(), str::to_owned)
    })
}

/// The failure that started the rollback, from its `compensating` event
/// (whose error is that failure, displayed).
pub(super) fn rollback_cause(instance: &InstanceRecord) -> Option<Failure> {
    let shown = instance
        .history
        .iter()
        .rev()
        .find(|event| event.kind == EventKind::Compensating)?
        .error
        .clone()?;
    if let Some(rest) = shown.strip_prefix("step `")
        && let Some((step, message)) = rest.split_once("` failed: ")
    {
        return Some(Failure {
            message: message.to_owned(),
            step: Some(step.to_owned()),
        });
    }
    Some(Failure::new(shown))
}

/// Wall time in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
