//! The dispatcher: one task per queue in every runtime with workers. Each
//! pass reads the waiting items in priority order, oldest first, a page at
//! a time, and picks from the page the items that may start now, as far
//! as the slots and the rate limit's window read at the pass's start say:
//! for each, a per-process permit and a free slot of its partition and of
//! the queue. Then, for all picked items at once, it claims each item (a
//! claim written into it by compare-and-swap, so two processes never start
//! it together) and writes its slots (`Expect::Absent`: a slot another
//! process took meanwhile fails the item, which waits for a later pass);
//! takes the rate limit's starts for the items that got everything, in one
//! write of the window; and starts their instances, each on a task that
//! deletes the item and holds the slots until the instance ends.
//!
//! A pass stops at the first item the queue-wide limits refuse (later
//! items would be refused too), and skips items of a full partition (they
//! hold up no one else). It runs when an item is enqueued or a slot freed
//! in this process, when the rate limit's window frees a start, and every
//! poll interval (other processes' enqueues and ends).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::holder::{self, Run};
use super::records::{self, Item, Lease};
use super::slots::{self, HeldSlot, RateWindow, SlotView};
use super::state::QueueState;
use crate::clock::{Clock, duration_ms};
use crate::error::{Error, StoreError};
use crate::runtime::Runtime;
use crate::store::{Expect, Store};

/// Items read per page of a pass; the items picked from one page are
/// claimed and given their slots together.
const PAGE: usize = 128;

/// Items a pass reads at most: items of full partitions at the head of a
/// long queue are skipped at this cost per pass; the ones behind them wait
/// for a later pass.
const SCAN_BUDGET: usize = 4_096;

/// Starts the dispatcher of `state`'s queue on `runtime`.
pub(crate) fn spawn(runtime: &Runtime, state: Arc<QueueState>) {
    let dispatcher = Arc::new(Dispatcher {
        store: Arc::clone(&state.store),
        owner: runtime.runtime_id().to_owned(),
        ttl: duration_ms(runtime.shared_lease_ttl()),
        rate: state
            .queue
            .rate()
            .map(|rate| RateWindow::new(state.keys.rate(), rate.starts, duration_ms(rate.period))),
        clock: runtime.shared_clock(),
        runtime: runtime.clone(),
        state,
    });
    runtime.spawn_counted(run(dispatcher));
}

async fn run(dispatcher: Arc<Dispatcher>) {
    let clock = Arc::clone(&dispatcher.clock);
    let poll = duration_ms(dispatcher.runtime.shared_poll_interval());
    let mut shutdown = dispatcher.runtime.shutdown_signal();
    let state = Arc::clone(&dispatcher.state);
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let next_poll = clock.now_ms().saturating_add(poll);
        let wake_at = match dispatcher.pass().await {
            Ok(Some(at)) => at.min(next_poll),
            Ok(None) => next_poll,
            Err(error) => {
                tracing::warn!(queue = state.queue.name(), %error, "a queue's dispatch pass failed");
                next_poll
            }
        };
        tokio::select! {
            () = clock.sleep_until(wake_at) => {}
            () = state.wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

struct Dispatcher {
    runtime: Runtime,
    state: Arc<QueueState>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// This runtime's id, the owner of its claims and slots.
    owner: String,
    ttl: u64,
    rate: Option<RateWindow>,
}

/// An item picked to start, with what the pass assigned it.
struct Pick {
    key: String,
    version: u64,
    item: Item,
    /// The slot indices assigned: of its partition, of the queue.
    partition_slot: Option<u32>,
    queue_slot: Option<u32>,
    permit: OwnedSemaphorePermit,
}

/// A picked item that got its claim and its slots.
struct Admitted {
    key: String,
    /// The item's version after the claim.
    version: u64,
    item: Item,
    slots: Vec<HeldSlot>,
    permit: OwnedSemaphorePermit,
}

impl Dispatcher {
    /// The lease of a claim or a slot taken now.
    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            expires_at: self.clock.now_ms().saturating_add(self.ttl),
        }
    }

    /// One pass over the waiting items. Returns when to pass again, if
    /// sooner than the next poll (the rate limit's window frees a start).
    async fn pass(self: &Arc<Self>) -> Result<Option<u64>, Error> {
        let store = &*self.store;
        let queue = &self.state.queue;
        let mut rate_budget = None;
        if let Some(rate) = &self.rate {
            let (budget, free_at) = rate.budget(store, self.clock.now_ms()).await?;
            if budget == 0 {
                return Ok(free_at);
            }
            rate_budget = Some(budget);
        }
        let items = self.state.keys.items();
        let mut global: Option<SlotView> = None;
        let mut partitions: HashMap<String, SlotView> = HashMap::new();
        let mut after: Option<String> = None;
        let mut scanned = 0;
        loop {
            if self.state.permits.available_permits() == 0 {
                return Ok(None);
            }
            let page = store.scan(&items, after.as_deref(), PAGE).await?;
            let mut picks = Vec::new();
            // Whether the queue-wide limits stop the pass after this page,
            // and when to pass again.
            let mut stop: Option<Option<u64>> = None;
            for (key, stored) in page.entries {
                scanned += 1;
                if self.state.skips(&key) {
                    continue;
                }
                let item = match records::decode::<Item>(&key, &stored.value) {
                    Ok(item) => item,
                    Err(error) => {
                        tracing::error!(%error, "a queued item cannot be read; left in the store");
                        self.state.mark_unstartable(&key);
                        continue;
                    }
                };
                let now = self.clock.now_ms();
                if item.claim.as_ref().is_some_and(|claim| claim.is_live(now)) {
                    continue;
                }
                let mut partition_slot = None;
                if let (Some(limit), Some(partition)) = (queue.partition_limit(), &item.partition) {
                    if !partitions.contains_key(partition) {
                        let prefix = self.state.keys.partition(partition);
                        let view = self.view(&prefix, limit).await?;
                        partitions.insert(partition.clone(), view);
                    }
                    let Some(index) = partitions.get_mut(partition).and_then(SlotView::assign)
                    else {
                        continue;
                    };
                    partition_slot = Some(index);
                }
                let unassign = |partitions: &mut HashMap<String, SlotView>| {
                    if let (Some(index), Some(partition)) = (partition_slot, &item.partition)
                        && let Some(view) = partitions.get_mut(partition)
                    {
                        view.unassign(index);
                    }
                };
                let mut queue_slot = None;
                if let Some(limit) = queue.concurrency_limit() {
                    if global.is_none() {
                        global = Some(self.view(&self.state.keys.slots(), limit).await?);
                    }
                    let Some(index) = global.as_mut().and_then(SlotView::assign) else {
                        unassign(&mut partitions);
                        stop = Some(None);
                        break;
                    };
                    queue_slot = Some(index);
                }
                let permit = match Arc::clone(&self.state.permits).try_acquire_owned() {
                    Ok(permit) if rate_budget != Some(0) => permit,
                    _ => {
                        unassign(&mut partitions);
                        if let (Some(index), Some(view)) = (queue_slot, global.as_mut()) {
                            view.unassign(index);
                        }
                        // The window is read again at the next pass.
                        stop = Some(rate_budget.map(|_| now.saturating_add(1)));
                        break;
                    }
                };
                if let Some(budget) = &mut rate_budget {
                    *budget -= 1;
                }
                picks.push(Pick {
                    key,
                    version: stored.version,
                    item,
                    partition_slot,
                    queue_slot,
                    permit,
                });
            }
            self.start_picks(picks, &mut global, &mut partitions)
                .await?;
            if let Some(wake) = stop {
                return Ok(wake);
            }
            match page.next {
                Some(next) if scanned < SCAN_BUDGET => after = Some(next),
                _ => return Ok(None),
            }
        }
    }

    /// The slots under `prefix` (`limit` of them), those of dead holders
    /// settled first (their slots freed or adopted).
    async fn view(&self, prefix: &str, limit: u32) -> Result<SlotView, Error> {
        let mut view = SlotView::read(&*self.store, prefix, limit, self.clock.now_ms()).await?;
        if view.has_expired() {
            let adopted = view
                .reclaim(&self.runtime, &*self.store, &self.lease())
                .await?;
            for slot in adopted {
                let run = Run {
                    instance: slot.slot.instance.clone(),
                    slots: vec![slot],
                    permit: None,
                };
                holder::spawn(&self.runtime, Arc::clone(&self.state), run);
            }
        }
        Ok(view)
    }

    /// Claims the picked items and takes their slots, all at once; takes
    /// the rate limit's starts for those that got everything; starts them.
    /// A pick that lost a race (its item or a slot taken by another process
    /// meanwhile) waits for a later pass, and the views are read again.
    async fn start_picks(
        self: &Arc<Self>,
        picks: Vec<Pick>,
        global: &mut Option<SlotView>,
        partitions: &mut HashMap<String, SlotView>,
    ) -> Result<(), Error> {
        if picks.is_empty() {
            return Ok(());
        }
        let mut taking = JoinSet::new();
        let mut inline = None;
        if picks.len() == 1 {
            // One pick (a slot freed, an item enqueued): no task for it.
            inline = picks.into_iter().next();
        } else {
            for (order, pick) in picks.into_iter().enumerate() {
                let dispatcher = Arc::clone(self);
                taking.spawn(async move { (order, dispatcher.take(pick).await) });
            }
        }
        let mut admitted = Vec::new();
        let mut raced = false;
        let mut failure = None;
        let inline = match inline {
            Some(pick) => Some(Ok((0, self.take(pick).await))),
            None => None,
        };
        let mut joined_all = inline.into_iter();
        loop {
            let joined = match joined_all.next() {
                Some(joined) => joined,
                None => match taking.join_next().await {
                    Some(joined) => joined,
                    None => break,
                },
            };
            let (order, taken) = match joined {
                Ok(joined) => joined,
                Err(error) => {
                    tracing::error!(%error, "a queued item's claim failed");
                    raced = true;
                    continue;
                }
            };
            match taken {
                Ok(Some(item)) => admitted.push((order, item)),
                Ok(None) => raced = true,
                Err(error) => {
                    raced = true;
                    failure = Some(error);
                }
            }
        }
        if raced {
            *global = None;
            partitions.clear();
        }
        admitted.sort_by_key(|(order, _)| *order);
        let mut allowed = admitted.len();
        if let Some(rate) = &self.rate {
            let wanted = u32::try_from(admitted.len()).unwrap_or(u32::MAX);
            match rate.take(&*self.store, self.clock.now_ms(), wanted).await {
                Ok(taken) => allowed = taken as usize,
                Err(error) => {
                    allowed = 0;
                    failure = Some(error);
                }
            }
        }
        for (index, (_, item)) in admitted.into_iter().enumerate() {
            if index < allowed {
                self.launch(item);
            } else {
                slots::release_all(&*self.store, &item.slots).await;
                self.unclaim(&item.key, item.version, item.item).await;
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Claims `pick`'s item and takes the slots assigned to it; gives back
    /// what it took if it cannot have everything: `None` when another
    /// process claimed or started the item first, or took one of its slots.
    async fn take(&self, pick: Pick) -> Result<Option<Admitted>, Error> {
        let store = &*self.store;
        let Pick {
            key,
            version,
            mut item,
            partition_slot,
            queue_slot,
            permit,
        } = pick;
        let lease = self.lease();
        item.claim = Some(lease.clone());
        let mut wanted = Vec::new();
        if let (Some(index), Some(partition)) = (partition_slot, &item.partition) {
            let prefix = self.state.keys.partition(partition);
            wanted.push(super::keys::slot(&prefix, index));
        }
        if let Some(index) = queue_slot {
            wanted.push(super::keys::slot(&self.state.keys.slots(), index));
        }
        // The claim and the slots are written together: on a durable
        // store they share a commit, and a race lost gives them all back.
        let claim = records::encode(&item)?;
        let slots_wanted = wanted.len();
        let claimed = store.put(&key, claim, Expect::Version(version));
        let slots_taken = async {
            let mut taken = Vec::with_capacity(wanted.len());
            for slot_key in wanted {
                taken.push(slots::take(store, slot_key, &item.id, &lease).await);
            }
            taken
        };
        let (claimed, slots_taken) = tokio::join!(claimed, slots_taken);
        let mut held = Vec::with_capacity(slots_taken.len());
        let mut refused = Ok(());
        for taken in slots_taken {
            match taken {
                Ok(Some(slot)) => held.push(slot),
                Ok(None) => {}
                Err(error) => refused = Err(error),
            }
        }
        let all_slots = held.len() == slots_wanted;
        let version = match claimed {
            Ok(version) if all_slots && refused.is_ok() => version,
            claimed => {
                slots::release_all(store, &held).await;
                if let Ok(version) = claimed {
                    self.unclaim(&key, version, item).await;
                }
                return match (claimed, refused) {
                    (Err(StoreError::Conflict), Ok(())) | (Ok(_), Ok(())) => Ok(None),
                    (_, Err(error)) => Err(error),
                    (Err(error), Ok(())) => Err(error.into()),
                };
            }
        };
        Ok(Some(Admitted {
            key,
            version,
            item,
            slots: held,
            permit,
        }))
    }

    /// Gives a claimed item (at `version`) back for a later pass. A
    /// failure is only logged: the claim lapses with its lease.
    async fn unclaim(&self, key: &str, version: u64, mut item: Item) {
        item.claim = None;
        let written = match records::encode(&item) {
            Ok(bytes) => self
                .store
                .put(key, bytes, Expect::Version(version))
                .await
                .map(drop)
                .map_err(Error::from),
            Err(error) => Err(error),
        };
        match written {
            Ok(()) | Err(Error::Store(StoreError::Conflict)) => {}
            Err(error) => {
                tracing::warn!(item = key, %error, "cannot give a queued item back; its claim lapses");
            }
        }
    }

    /// Starts the instance of `admitted` on a task of its own, which then
    /// holds its slots and permit until the instance ends.
    fn launch(self: &Arc<Self>, admitted: Admitted) {
        self.state.set_in_flight(&admitted.key, true);
        let dispatcher = Arc::clone(self);
        self.runtime.spawn_counted(async move {
            let Admitted {
                key,
                version,
                item,
                slots,
                permit,
            } = admitted;
            let runtime = &dispatcher.runtime;
            let state = &dispatcher.state;
            let store = &*dispatcher.store;
            let started = match serde_json::from_str(item.input.get()) {
                Ok(input) => {
                    runtime
                        .start_here(&item.workflow, item.version, item.id.clone(), input)
                        .await
                }
                Err(error) => Err(Error::Codec {
                    what: format!("the queued input of instance `{}`", item.id),
                    reason: error.to_string(),
                }),
            };
            match started {
                Ok(()) => {
                    // Started: a crash before these deletes only makes a
                    // later pass start it again, which attaches to it.
                    let ids = state.keys.id(&item.id);
                    let (item_deleted, id_deleted) = tokio::join!(
                        store.delete(&key, Expect::Version(version)),
                        store.delete(&ids, Expect::Any),
                    );
                    for (what, deleted) in [("item", item_deleted), ("id", id_deleted)] {
                        if let Err(error) = deleted {
                            tracing::warn!(id = item.id, what, %error, "cannot delete a started queue item");
                        }
                    }
                    state.set_in_flight(&key, false);
                    state.started(&item.id);
                    let run = Run {
                        instance: item.id,
                        slots,
                        permit: Some(permit),
                    };
                    holder::hold(runtime.clone(), Arc::clone(state), run).await;
                }
                Err(error) => {
                    slots::release_all(store, &slots).await;
                    if matches!(error, Error::Store(_) | Error::Shutdown) {
                        tracing::warn!(id = item.id, %error, "a queued item did not start; tried again");
                    } else {
                        // Left for a process that can start it (with the
                        // workflow registered, or another version).
                        tracing::warn!(id = item.id, queue = state.queue.name(), %error, "a queued item cannot start here");
                        state.mark_unstartable(&key);
                    }
                    dispatcher.unclaim(&key, version, item).await;
                    state.set_in_flight(&key, false);
                    drop(permit);
                    state.wake.notify_one();
                }
            }
        });
    }
}
