//! What the steps of a test ran, in order, per thread: the hand-driven
//! lowering tests (`drive`) run a workflow on their test's own thread, so
//! tests side by side do not see each other's entries.

use std::cell::RefCell;

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Appends `entry` to this thread's journal.
pub fn record(entry: String) {
    LOG.with(|log| log.borrow_mut().push(entry));
}

/// This thread's journal so far, emptied.
pub fn take_log() -> Vec<String> {
    LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))
}
