//! Where records live in the store: one key per instance under
//! [`KEY_PREFIX`], and the due index beside them, whose keys sort by the
//! time an instance needs a worker. Apart from the record: these are the
//! store's layout, which the runtime's scans and the stores' notifications
//! read without a record in hand.

/// The store key prefix of instance records.
pub const KEY_PREFIX: &str = "instances/";

/// The store key of instance `id`.
pub fn key(id: &str) -> String {
    [KEY_PREFIX, id].concat()
}

/// The store key prefix of the due index.
pub const DUE_PREFIX: &str = "due/";

/// The due-index key saying instance `id` is due at `at_ms`:
/// `due/{20-digit zero-padded ms}/{id}`, so keys sort by time.
///
/// Due keys are hints, never truth: a worker that finds one re-reads the
/// instance's record and skips it unless the record says it is due and
/// claimable; stale hints are deleted.
pub fn due_key(at_ms: u64, id: &str) -> String {
    format!("{DUE_PREFIX}{at_ms:020}/{id}")
}

/// The time and instance id of a due-index key, `None` if it is not one.
pub fn parse_due_key(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix(DUE_PREFIX)?;
    let (at, id) = rest.split_once('/')?;
    if at.len() != 20 || id.is_empty() {
        return None;
    }
    Some((at.parse().ok()?, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_and_parse_back() {
        let early = due_key(999, "a/b");
        let late = due_key(1_000, "a");
        assert!(early < late);
        assert_eq!(early, "due/00000000000000000999/a/b");
        assert_eq!(parse_due_key(&early), Some((999, "a/b")));
        assert_eq!(parse_due_key("due/12/x"), None);
        assert_eq!(parse_due_key("instances/x"), None);
    }
}
