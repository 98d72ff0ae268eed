//! Concurrency slots and the rate limit's window, shared by every process
//! through compare-and-swap.
//!
//! A queue with `concurrency(n)` has slot keys `slots/0` .. `slots/{n-1}`;
//! a partition with `partition_concurrency(p)` has `p` of its own. A slot
//! exists while it is held: written with [`Expect::Absent`] for an instance
//! about to start, naming it and the process that holds it with a lease
//! (renewed while the instance runs), deleted when the instance ends. A
//! slot whose lease expired (its holder died, or shut down) is looked at
//! by whoever needs one: if its instance ended or never started, the slot
//! is deleted; if the instance still runs (another runtime resumed it),
//! the slot is *adopted*: its lease renewed by the new holder, which
//! watches the instance and releases the slot when it ends. So a slot is
//! never free while its instance runs.

use std::collections::BTreeSet;

use super::keys;
use super::records::{self, Lease, Slot, Window};
use crate::error::{Error, StoreError};
use crate::runtime::Runtime;
use crate::store::{Expect, Store};

/// Tries at taking starts from the window while other processes keep
/// changing it, before leaving them to the next pass.
const CONTENDED_TRIES: usize = 16;

/// A slot this process holds: its key and the version it wrote.
#[derive(Clone, Debug)]
pub(crate) struct HeldSlot {
    pub(crate) key: String,
    pub(crate) version: u64,
    pub(crate) slot: Slot,
}

/// The slots under one prefix, as read at the start of a pass and
/// assigned during it.
pub(crate) struct SlotView {
    prefix: String,
    limit: u32,
    /// Indices held (by anyone) or assigned in this pass.
    occupied: BTreeSet<u32>,
    /// Slots whose holder's lease had expired when read: index, slot, version.
    expired: Vec<(u32, Slot, u64)>,
}

impl SlotView {
    /// Reads the slots under `prefix`, of which `limit` may be held.
    pub(crate) async fn read(
        store: &dyn Store,
        prefix: &str,
        limit: u32,
        now: u64,
    ) -> Result<SlotView, Error> {
        let mut view = SlotView {
            prefix: prefix.to_owned(),
            limit,
            occupied: BTreeSet::new(),
            expired: Vec::new(),
        };
        let mut after: Option<String> = None;
        loop {
            let page = store
                .scan(prefix, after.as_deref(), limit as usize + 1)
                .await?;
            for (key, stored) in page.entries {
                let Some(index) = keys::slot_index(prefix, &key) else {
                    continue;
                };
                // An unreadable slot counts as held until someone deletes
                // it: a limit is never exceeded on a guess.
                view.occupied.insert(index);
                match records::decode::<Slot>(&key, &stored.value) {
                    Ok(slot) if !slot.lease.is_live(now) => {
                        view.expired.push((index, slot, stored.version));
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "a queue slot cannot be read"),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(view),
            }
        }
    }

    /// Settles the slots whose holder's lease expired: deletes those whose
    /// instance ended or never started, adopts (holds with `lease`) those
    /// whose instance still runs, and returns the adopted ones.
    pub(crate) async fn reclaim(
        &mut self,
        runtime: &Runtime,
        store: &dyn Store,
        lease: &Lease,
    ) -> Result<Vec<HeldSlot>, Error> {
        let mut adopted = Vec::new();
        for (index, slot, version) in std::mem::take(&mut self.expired) {
            let key = keys::slot(&self.prefix, index);
            if !still_runs(runtime, &slot.instance).await? {
                match store.delete(&key, Expect::Version(version)).await {
                    Ok(()) => {
                        self.occupied.remove(&index);
                    }
                    // Settled by another process first.
                    Err(StoreError::Conflict) => {}
                    Err(error) => return Err(error.into()),
                }
                continue;
            }
            let mine = Slot {
                instance: slot.instance.clone(),
                lease: lease.clone(),
            };
            match store
                .put(&key, records::encode(&mine)?, Expect::Version(version))
                .await
            {
                Ok(written) => {
                    tracing::info!(
                        instance = mine.instance,
                        slot = key,
                        previous = slot.lease.owner,
                        "adopted the queue slot of a running instance whose holder's lease expired"
                    );
                    adopted.push(HeldSlot {
                        key,
                        version: written,
                        slot: mine,
                    });
                }
                Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(adopted)
    }

    /// Whether slots wait to be settled by [`reclaim`](Self::reclaim).
    pub(crate) fn has_expired(&self) -> bool {
        !self.expired.is_empty()
    }

    /// A free slot's index, now assigned in this view; `None` when all
    /// `limit` are held or assigned.
    pub(crate) fn assign(&mut self) -> Option<u32> {
        if self.occupied.len() >= self.limit as usize {
            return None;
        }
        let index = (0..self.limit).find(|index| !self.occupied.contains(index))?;
        self.occupied.insert(index);
        Some(index)
    }

    /// Frees an index assigned in this pass and never written.
    pub(crate) fn unassign(&mut self, index: u32) {
        self.occupied.remove(&index);
    }
}

/// Whether instance `id` still runs (or waits): its slot stays held.
async fn still_runs(runtime: &Runtime, id: &str) -> Result<bool, Error> {
    match runtime.status(id).await {
        Ok(None) => Ok(false),
        Ok(Some(status)) => Ok(!status.phase.is_terminal()),
        // A record that does not decode is not known to have ended.
        Err(Error::Corrupt { .. }) => Ok(true),
        Err(error) => Err(error),
    }
}

/// Takes slot `key` for `instance`: `None` if someone holds it.
pub(crate) async fn take(
    store: &dyn Store,
    key: String,
    instance: &str,
    lease: &Lease,
) -> Result<Option<HeldSlot>, Error> {
    let slot = Slot {
        instance: instance.to_owned(),
        lease: lease.clone(),
    };
    match store
        .put(&key, records::encode(&slot)?, Expect::Absent)
        .await
    {
        Ok(version) => Ok(Some(HeldSlot { key, version, slot })),
        Err(StoreError::Conflict) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Renews `held` until `expires_at`; `false` if it is no longer ours
/// (another process took it over after our lease lapsed).
pub(crate) async fn renew(
    store: &dyn Store,
    held: &mut HeldSlot,
    expires_at: u64,
) -> Result<bool, Error> {
    let mut slot = held.slot.clone();
    slot.lease.expires_at = expires_at;
    match store
        .put(
            &held.key,
            records::encode(&slot)?,
            Expect::Version(held.version),
        )
        .await
    {
        Ok(version) => {
            held.version = version;
            held.slot = slot;
            Ok(true)
        }
        Err(StoreError::Conflict) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Releases `held`, unless another process took it over.
pub(crate) async fn release(store: &dyn Store, held: &HeldSlot) -> Result<(), Error> {
    match store.delete(&held.key, Expect::Version(held.version)).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Releases each of `held`, logging what fails (its lease lapses).
pub(crate) async fn release_all(store: &dyn Store, held: &[HeldSlot]) {
    for slot in held {
        if let Err(error) = release(store, slot).await {
            tracing::warn!(slot = slot.key, %error, "cannot release a queue slot; its lease lapses");
        }
    }
}

/// The rate limit: at most `starts` starts in any window of `period_ms`,
/// kept as start counts per millisecond (so the record holds at most one
/// entry per millisecond of the window, however many start in it).
pub(crate) struct RateWindow {
    key: String,
    starts: u32,
    period_ms: u64,
}

impl RateWindow {
    pub(crate) fn new(key: String, starts: u32, period_ms: u64) -> RateWindow {
        RateWindow {
            key,
            starts,
            period_ms,
        }
    }

    /// The starts still in the window at `now`, and the window's version.
    async fn read(&self, store: &dyn Store, now: u64) -> Result<(Window, Option<u64>), Error> {
        let (mut window, version) = match store.get(&self.key).await? {
            Some(stored) => (
                records::decode::<Window>(&self.key, &stored.value)?,
                Some(stored.version),
            ),
            None => (Window::default(), None),
        };
        let since = now.saturating_sub(self.period_ms);
        window.starts.retain(|(at, _)| *at > since);
        Ok((window, version))
    }

    /// Starts left in the window at `now`, and when one is next allowed if
    /// none is left.
    fn room(&self, window: &Window) -> (u32, Option<u64>) {
        let taken: u64 = window
            .starts
            .iter()
            .map(|(_, count)| u64::from(*count))
            .sum();
        let limit = u64::from(self.starts);
        if taken < limit {
            return (u32::try_from(limit - taken).unwrap_or(u32::MAX), None);
        }
        // The time by which enough of the oldest starts left the window.
        let mut left = taken;
        for (at, count) in &window.starts {
            left -= u64::from(*count);
            if left < limit {
                return (0, Some(at.saturating_add(self.period_ms)));
            }
        }
        (0, None)
    }

    /// How many starts the window allows at `now`, and when the next is
    /// allowed if none is.
    pub(crate) async fn budget(
        &self,
        store: &dyn Store,
        now: u64,
    ) -> Result<(u32, Option<u64>), Error> {
        let (window, _) = self.read(store, now).await?;
        Ok(self.room(&window))
    }

    /// Takes up to `wanted` starts at `now`; returns how many it took.
    pub(crate) async fn take(
        &self,
        store: &dyn Store,
        now: u64,
        wanted: u32,
    ) -> Result<u32, Error> {
        for _ in 0..CONTENDED_TRIES {
            let (mut window, version) = self.read(store, now).await?;
            let taken = self.room(&window).0.min(wanted);
            if taken == 0 {
                return Ok(0);
            }
            // Another process's clock may be a little ahead: kept in order.
            match window.starts.binary_search_by_key(&now, |(at, _)| *at) {
                Ok(index) => window.starts[index].1 += taken,
                Err(index) => window.starts.insert(index, (now, taken)),
            }
            let expect = version.map_or(Expect::Absent, Expect::Version);
            match store
                .put(&self.key, records::encode(&window)?, expect)
                .await
            {
                Ok(_) => return Ok(taken),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(starts: &[(u64, u32)]) -> Window {
        Window {
            starts: starts.to_vec(),
        }
    }

    #[test]
    fn the_window_allows_what_is_left_and_says_when_more_is() {
        let rate = RateWindow::new("rate".to_owned(), 3, 1_000);
        assert_eq!(rate.room(&window(&[])), (3, None));
        assert_eq!(rate.room(&window(&[(1_000, 1), (1_500, 1)])), (1, None));
        // Full: one more once the oldest millisecond's starts leave it.
        assert_eq!(
            rate.room(&window(&[(1_000, 2), (1_500, 1)])),
            (0, Some(2_000))
        );
        // Over (another process's clock): until enough have left.
        assert_eq!(
            rate.room(&window(&[(1_000, 1), (1_200, 2), (1_500, 2)])),
            (0, Some(2_200))
        );
    }

    #[test]
    fn slots_are_assigned_up_to_the_limit_counting_those_above_it() {
        let mut view = SlotView {
            prefix: "queues/q/slots/".to_owned(),
            limit: 2,
            occupied: BTreeSet::from([3]),
            expired: Vec::new(),
        };
        // A slot above a lowered limit still counts while it is held.
        assert_eq!(view.assign(), Some(0));
        assert_eq!(view.assign(), None);
        view.unassign(3);
        assert_eq!(view.assign(), Some(1));
        assert_eq!(view.assign(), None);
    }
}
