//! The schedules in the admin's store.

use sagaflow::Schedules;

use super::view::Admin;

impl Admin {
    /// The schedules in the store: list, describe, pause, unpause, trigger,
    /// backfill, delete (see [`Schedules`]). Triggers and backfills are
    /// requests: a worker runtime with the schedule's workflow registered
    /// starts the instances.
    pub fn schedules(&self) -> Schedules {
        self.runtime.schedules()
    }
}
