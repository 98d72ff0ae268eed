//! A timeline of side effects, printed as it happens and kept for tests.

use std::sync::Mutex;

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records one side effect: prints it with the step attempt it ran in, and
/// keeps it so a test can assert the exact order.
pub fn record(event: impl Into<String>) {
    let event = event.into();
    let attempt = sagaflow::context()
        .map(|ctx| format!(" (attempt {}, key {})", ctx.attempt, ctx.idempotency_key()))
        .unwrap_or_default();
    println!("  - {event}{attempt}");
    EVENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(event);
}

/// Every event recorded so far, in order, whose text contains `needle`.
pub fn events_for(needle: &str) -> Vec<String> {
    EVENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .filter(|event| event.contains(needle))
        .cloned()
        .collect()
}
