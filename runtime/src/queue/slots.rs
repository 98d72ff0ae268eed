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
//! is taken over with [`Expect::Version`]; if the instance still runs
//! (another runtime resumed it), the slot is *adopted* — its lease renewed
//! by the new holder, which watches the instance and releases the slot
//! when it ends. So a slot is never free while its instance runs.

use std::collections::BTreeMap;

use super::keys;
use super::records::{self, Lease, Slot, Window};
use crate::error::{Error, StoreError};
use crate::runtime::Runtime;
use crate::store::{Expect, Store};

/// Tries at taking a slot or a start when other processes keep changing
/// them under us, before giving up until the next pass.
const CONTENDED_TRIES: usize = 16;

/// A slot this process holds: its key and the version it wrote.
#[derive(Clone, Debug)]
pub(crate) struct HeldSlot {
    pub(crate) key: String,
    pub(crate) version: u64,
    pub(crate) slot: Slot,
}

/// What [`SlotView::acquire`] got.
#[derive(Debug, Default)]
pub(crate) struct Acquired {
    /// The slot for the instance asked for, if one was free.
    pub(crate) held: Option<HeldSlot>,
    /// Slots of dead holders whose instances still run, now held here
    /// until those instances end.
    pub(crate) adopted: Vec<HeldSlot>,
}

/// The slots under one prefix, as last read or written here.
pub(crate) struct SlotView {
    prefix: String,
    limit: u32,
    /// Held slots by index: the slot and its version.
    held: BTreeMap<u32, (Slot, u64)>,
}

/// Where an instance is, for a slot whose holder's lease expired.
enum InstanceState {
    /// Ended, or never started: its slot is free.
    Gone,
    /// Still running (or waiting): its slot stays held.
    Running,
}

impl SlotView {
    /// Reads the slots under `prefix`, of which `limit` may be held.
    pub(crate) async fn read(
        store: &dyn Store,
        prefix: &str,
        limit: u32,
    ) -> Result<SlotView, Error> {
        let mut view = SlotView {
            prefix: prefix.to_owned(),
            limit,
            held: BTreeMap::new(),
        };
        view.refresh(store).await?;
        Ok(view)
    }

    async fn refresh(&mut self, store: &dyn Store) -> Result<(), Error> {
        self.held.clear();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .scan(&self.prefix, after.as_deref(), self.limit as usize + 1)
                .await?;
            for (key, stored) in page.entries {
                let Some(index) = keys::slot_index(&self.prefix, &key) else {
                    continue;
                };
                match records::decode::<Slot>(&key, &stored.value) {
                    Ok(slot) => {
                        self.held.insert(index, (slot, stored.version));
                    }
                    // An unreadable slot counts as held until someone
                    // deletes it: a limit is never exceeded on a guess.
                    Err(error) => tracing::warn!(%error, "a queue slot cannot be read"),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Whether a slot may be had now, as far as this view knows: one is
    /// free, or a holder's lease expired.
    pub(crate) fn has_room(&self, now: u64) -> bool {
        self.held.len() < self.limit as usize
            || self.held.values().any(|(slot, _)| !slot.lease.is_live(now))
    }

    /// Takes a slot for `instance`, held by `owner` until `expires_at`.
    /// On the way, looks at the slots whose holder's lease expired: frees
    /// or takes those whose instance is gone, adopts those whose instance
    /// still runs.
    pub(crate) async fn acquire(
        &mut self,
        runtime: &Runtime,
        store: &dyn Store,
        instance: &str,
        lease: &Lease,
        now: u64,
    ) -> Result<Acquired, Error> {
        let mut acquired = Acquired::default();
        for _ in 0..CONTENDED_TRIES {
            let mut changed = false;
            let expired: Vec<(u32, Slot, u64)> = self
                .held
                .iter()
                .filter(|(_, (slot, _))| !slot.lease.is_live(now))
                .map(|(index, (slot, version))| (*index, slot.clone(), *version))
                .collect();
            for (index, slot, version) in expired {
                let key = keys::slot(&self.prefix, index);
                let running = matches!(
                    instance_state(runtime, &slot.instance).await?,
                    InstanceState::Running
                );
                let mine = Slot {
                    instance: if running {
                        slot.instance.clone()
                    } else {
                        instance.to_owned()
                    },
                    lease: lease.clone(),
                };
                if !running && (index >= self.limit || acquired.held.is_some()) {
                    // Not needed here (a slot above a lowered limit, or one
                    // more than wanted): deleted, so it frees room.
                    match store.delete(&key, Expect::Version(version)).await {
                        Ok(()) => {
                            self.held.remove(&index);
                        }
                        Err(StoreError::Conflict) => changed = true,
                        Err(error) => return Err(error.into()),
                    }
                    continue;
                }
                match store
                    .put(&key, records::encode(&mine)?, Expect::Version(version))
                    .await
                {
                    Ok(written) => {
                        self.held.insert(index, (mine.clone(), written));
                        let held = HeldSlot {
                            key,
                            version: written,
                            slot: mine,
                        };
                        if running {
                            tracing::info!(
                                instance = held.slot.instance,
                                slot = held.key,
                                previous = slot.lease.owner,
                                "adopted the queue slot of a running instance whose holder's lease expired"
                            );
                            acquired.adopted.push(held);
                        } else {
                            acquired.held = Some(held);
                        }
                    }
                    Err(StoreError::Conflict) => changed = true,
                    Err(error) => return Err(error.into()),
                }
            }
            if acquired.held.is_some() {
                return Ok(acquired);
            }
            if !changed && self.held.len() < self.limit as usize {
                let free = (0..self.limit).find(|index| !self.held.contains_key(index));
                if let Some(index) = free {
                    let key = keys::slot(&self.prefix, index);
                    let mine = Slot {
                        instance: instance.to_owned(),
                        lease: lease.clone(),
                    };
                    match store
                        .put(&key, records::encode(&mine)?, Expect::Absent)
                        .await
                    {
                        Ok(written) => {
                            self.held.insert(index, (mine.clone(), written));
                            acquired.held = Some(HeldSlot {
                                key,
                                version: written,
                                slot: mine,
                            });
                            return Ok(acquired);
                        }
                        Err(StoreError::Conflict) => changed = true,
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            if !changed {
                return Ok(acquired);
            }
            self.refresh(store).await?;
        }
        Ok(acquired)
    }

    /// Forgets a slot this view handed out and that was released.
    pub(crate) fn forget(&mut self, key: &str) {
        if let Some(index) = keys::slot_index(&self.prefix, key) {
            self.held.remove(&index);
        }
    }
}

/// Whether instance `id` still runs.
async fn instance_state(runtime: &Runtime, id: &str) -> Result<InstanceState, Error> {
    match runtime.status(id).await {
        Ok(None) => Ok(InstanceState::Gone),
        Ok(Some(status)) if status.phase.is_terminal() => Ok(InstanceState::Gone),
        Ok(Some(_)) => Ok(InstanceState::Running),
        // A record that does not decode is not known to have ended.
        Err(Error::Corrupt { .. }) => Ok(InstanceState::Running),
        Err(error) => Err(error),
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

/// The rate limit: at most `starts` starts in any window of `period_ms`.
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
        window.starts.retain(|start| *start > since);
        Ok((window, version))
    }

    /// When the next start is allowed, if not now.
    fn full_until(&self, window: &Window) -> Option<u64> {
        let starts = self.starts as usize;
        let len = window.starts.len();
        (len >= starts).then(|| window.starts[len - starts].saturating_add(self.period_ms))
    }

    /// `None` if a start is allowed at `now`; else when one is.
    pub(crate) async fn free_at(&self, store: &dyn Store, now: u64) -> Result<Option<u64>, Error> {
        let (window, _) = self.read(store, now).await?;
        Ok(self.full_until(&window))
    }

    /// Takes a start at `now`: `None` if it was taken, else when the next
    /// start is allowed.
    pub(crate) async fn take(&self, store: &dyn Store, now: u64) -> Result<Option<u64>, Error> {
        for _ in 0..CONTENDED_TRIES {
            let (mut window, version) = self.read(store, now).await?;
            if let Some(at) = self.full_until(&window) {
                return Ok(Some(at));
            }
            // Another process's clock may be a little ahead: kept in order.
            let at = window.starts.partition_point(|start| *start <= now);
            window.starts.insert(at, now);
            let expect = version.map_or(Expect::Absent, Expect::Version);
            match store
                .put(&self.key, records::encode(&window)?, expect)
                .await
            {
                Ok(_) => return Ok(None),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Some(now.saturating_add(1)))
    }
}
