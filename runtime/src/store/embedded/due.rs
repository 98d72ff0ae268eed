//! The due index's copy in memory ([`DueIndex`]), which answers the
//! runtime's scans of the keys under
//! [`WAKE_PREFIX`](super::super::WAKE_PREFIX). Apart because it is a cache
//! beside the database, filled when the store opens and kept by the commit
//! thread, with its own reasons (below).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::super::{ScanPage, Versioned};

/// The runtime's due index (the keys under
/// [`WAKE_PREFIX`](super::super::WAKE_PREFIX)), kept in
/// memory beside the database and answering its scans. Its keys are
/// written and deleted all the time, and a scan of an LSM tree walks every
/// deleted key until a compaction drops it: the poller, which scans the
/// index from its start, would pay for every hint deleted since the last
/// compaction. The copy holds only the live hints (a few dozen bytes
/// each); it is loaded when the store opens and updated by the commit
/// thread after each commit, before the writers learn of it, so a scan
/// sees every write whose answer was given.
pub(super) type DueIndex = Arc<Mutex<BTreeMap<String, Versioned>>>;

pub(super) fn lock_due(index: &DueIndex) -> std::sync::MutexGuard<'_, BTreeMap<String, Versioned>> {
    // Changed only by single inserts and removes.
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A scan of the due index, from its copy in memory (see [`DueIndex`]).
pub(super) fn scan_due(
    index: &DueIndex,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> ScanPage {
    let start = match after {
        Some(after) if after >= prefix => after,
        _ => prefix,
    };
    let index = lock_due(index);
    let mut entries: Vec<(String, Versioned)> = index
        .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(prefix))
        .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
        .take(limit.saturating_add(1))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    drop(index);
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|(key, _)| key.clone())
    } else {
        None
    };
    ScanPage { entries, next }
}
