//! The dispatcher: one task per queue in every runtime with workers. Each
//! pass reads the waiting items in priority order, oldest first, and for
//! each one that may start now takes, in this order, a per-process permit,
//! the item itself (a claim written into it by compare-and-swap, so two
//! processes never start it together), a slot of its partition, a slot of
//! the queue and a start of the rate limit's window; then it starts the
//! instance, deletes the item, and holds the slots until the instance ends.
//! A pass stops at the first item the queue-wide limits refuse (later
//! items would be refused too), and skips items of a full partition (they
//! hold up no one else).
//!
//! A pass runs when an item is enqueued or a slot freed in this process,
//! when the rate limit's window frees a start, and every poll interval
//! (other processes' enqueues and ends).

use std::collections::HashMap;
use std::sync::Arc;

use super::holder::{self, Run};
use super::records::{self, Item, Lease};
use super::slots::{self, HeldSlot, RateWindow, SlotView};
use super::state::QueueState;
use crate::clock::{Clock, duration_ms};
use crate::error::{Error, StoreError};
use crate::runtime::Runtime;
use crate::store::{Expect, Store};

/// Items read per page of a pass.
const PAGE: usize = 128;

/// Items a pass reads at most: items of full partitions at the head of a
/// long queue are skipped at this cost per pass; the ones behind them wait
/// for a later pass.
const SCAN_BUDGET: usize = 4_096;

/// Starts the dispatcher of `state`'s queue on `runtime`.
pub(crate) fn spawn(runtime: &Runtime, state: Arc<QueueState>) {
    let task_runtime = runtime.clone();
    runtime.spawn_counted(run(task_runtime, state));
}

async fn run(runtime: Runtime, state: Arc<QueueState>) {
    let clock = runtime.shared_clock();
    let poll = duration_ms(runtime.shared_poll_interval());
    let mut shutdown = runtime.shutdown_signal();
    let dispatcher = Dispatcher {
        store: Arc::clone(&state.store),
        owner: runtime.runtime_id().to_owned(),
        ttl: duration_ms(runtime.shared_lease_ttl()),
        rate: state
            .queue
            .rate()
            .map(|rate| RateWindow::new(state.keys.rate(), rate.starts, duration_ms(rate.period))),
        clock: Arc::clone(&clock),
        runtime,
        state: Arc::clone(&state),
    };
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

/// An item this pass claimed.
struct Claimed {
    key: String,
    version: u64,
    item: Item,
}

/// Whether a claimed item may start.
enum Admission {
    /// It holds these slots and a start of the rate limit.
    Admitted(Vec<HeldSlot>),
    /// Its partition is full: later items of other partitions may start.
    PartitionFull,
    /// The queue is full, or its rate limit (until this time, if given):
    /// nothing else starts in this pass.
    QueueFull(Option<u64>),
}

impl Dispatcher {
    /// One pass over the waiting items. Returns when a start is allowed
    /// again, if the rate limit is what stopped it.
    async fn pass(&self) -> Result<Option<u64>, Error> {
        let store = &*self.store;
        let queue = &self.state.queue;
        if let Some(rate) = &self.rate
            && let Some(at) = rate.free_at(store, self.clock.now_ms()).await?
        {
            return Ok(Some(at));
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
            for (key, stored) in page.entries {
                scanned += 1;
                if self.state.is_unstartable(&key) {
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
                // Room, as far as the slots read in this pass say: nothing
                // is claimed for an item that cannot start.
                if let (Some(limit), Some(partition)) = (queue.partition_limit(), &item.partition) {
                    if !partitions.contains_key(partition) {
                        let prefix = self.state.keys.partition(partition);
                        let view = SlotView::read(store, &prefix, limit).await?;
                        partitions.insert(partition.clone(), view);
                    }
                    if !partitions
                        .get(partition)
                        .is_some_and(|view| view.has_room(now))
                    {
                        continue;
                    }
                }
                if let Some(limit) = queue.concurrency_limit() {
                    if global.is_none() {
                        let view = SlotView::read(store, &self.state.keys.slots(), limit).await?;
                        global = Some(view);
                    }
                    if !global.as_ref().is_some_and(|view| view.has_room(now)) {
                        return Ok(None);
                    }
                }
                let Ok(permit) = Arc::clone(&self.state.permits).try_acquire_owned() else {
                    return Ok(None);
                };
                let Some(claimed) = self.claim(key, stored.version, item, now).await? else {
                    continue;
                };
                let admission = self.admit(&claimed, &mut global, &mut partitions).await;
                match admission {
                    Ok(Admission::Admitted(slots)) => self.launch(claimed, slots, permit),
                    Ok(Admission::PartitionFull) => self.unclaim(claimed).await,
                    Ok(Admission::QueueFull(at)) => {
                        self.unclaim(claimed).await;
                        return Ok(at);
                    }
                    Err(error) => {
                        self.unclaim(claimed).await;
                        return Err(error);
                    }
                }
            }
            match page.next {
                Some(next) if scanned < SCAN_BUDGET => after = Some(next),
                _ => return Ok(None),
            }
        }
    }

    /// Claims the item at `key` (read at `version`) for this process.
    async fn claim(
        &self,
        key: String,
        version: u64,
        mut item: Item,
        now: u64,
    ) -> Result<Option<Claimed>, Error> {
        item.claim = Some(Lease {
            owner: self.owner.clone(),
            expires_at: now.saturating_add(self.ttl),
        });
        match self
            .store
            .put(&key, records::encode(&item)?, Expect::Version(version))
            .await
        {
            Ok(version) => Ok(Some(Claimed { key, version, item })),
            // Claimed, started or changed by another process since the scan.
            Err(StoreError::Conflict) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Gives a claimed item back for a later pass. A failure is only
    /// logged: the claim lapses with its lease.
    async fn unclaim(&self, mut claimed: Claimed) {
        claimed.item.claim = None;
        let written = match records::encode(&claimed.item) {
            Ok(bytes) => self
                .store
                .put(&claimed.key, bytes, Expect::Version(claimed.version))
                .await
                .map(drop)
                .map_err(Error::from),
            Err(error) => Err(error),
        };
        match written {
            Ok(()) | Err(Error::Store(StoreError::Conflict)) => {}
            Err(error) => {
                tracing::warn!(item = claimed.key, %error, "cannot give a queued item back; its claim lapses");
            }
        }
    }

    /// Takes the slots and the rate limit's start `claimed` needs; gives
    /// back what it took if it cannot have them all.
    async fn admit(
        &self,
        claimed: &Claimed,
        global: &mut Option<SlotView>,
        partitions: &mut HashMap<String, SlotView>,
    ) -> Result<Admission, Error> {
        let store = &*self.store;
        let id = claimed.item.id.as_str();
        let lease = Lease {
            owner: self.owner.clone(),
            expires_at: self.clock.now_ms().saturating_add(self.ttl),
        };
        let mut held = Vec::new();
        if let Some(view) = claimed
            .item
            .partition
            .as_ref()
            .and_then(|partition| partitions.get_mut(partition))
        {
            let acquired = view
                .acquire(&self.runtime, store, id, &lease, self.clock.now_ms())
                .await?;
            self.adopt(acquired.adopted);
            match acquired.held {
                Some(slot) => held.push(slot),
                None => return Ok(Admission::PartitionFull),
            }
        }
        if let Some(view) = global {
            let acquired = view
                .acquire(&self.runtime, store, id, &lease, self.clock.now_ms())
                .await;
            let acquired = match acquired {
                Ok(acquired) => acquired,
                Err(error) => {
                    self.give_back(&held, global, partitions).await;
                    return Err(error);
                }
            };
            self.adopt(acquired.adopted);
            match acquired.held {
                Some(slot) => held.push(slot),
                None => {
                    self.give_back(&held, global, partitions).await;
                    return Ok(Admission::QueueFull(None));
                }
            }
        }
        if let Some(rate) = &self.rate {
            let refused = match rate.take(store, self.clock.now_ms()).await {
                Ok(refused) => refused,
                Err(error) => {
                    self.give_back(&held, global, partitions).await;
                    return Err(error);
                }
            };
            if let Some(at) = refused {
                self.give_back(&held, global, partitions).await;
                return Ok(Admission::QueueFull(Some(at)));
            }
        }
        Ok(Admission::Admitted(held))
    }

    /// Releases slots taken for an item that does not start after all.
    async fn give_back(
        &self,
        held: &[HeldSlot],
        global: &mut Option<SlotView>,
        partitions: &mut HashMap<String, SlotView>,
    ) {
        for slot in held {
            if let Err(error) = slots::release(&*self.store, slot).await {
                tracing::warn!(slot = slot.key, %error, "cannot release a queue slot; it lapses");
            }
            if let Some(view) = global.as_mut() {
                view.forget(&slot.key);
            }
            for view in partitions.values_mut() {
                view.forget(&slot.key);
            }
        }
    }

    /// Holds adopted slots until their instances end.
    fn adopt(&self, adopted: Vec<HeldSlot>) {
        for slot in adopted {
            let run = Run {
                instance: slot.slot.instance.clone(),
                slots: vec![slot],
                permit: None,
            };
            holder::spawn(&self.runtime, Arc::clone(&self.state), run);
        }
    }

    /// Starts the instance of `claimed`, which holds `slots` and `permit`,
    /// on a task of its own that then holds them until it ends.
    fn launch(
        &self,
        claimed: Claimed,
        slots: Vec<HeldSlot>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let runtime = self.runtime.clone();
        let state = Arc::clone(&self.state);
        let store = Arc::clone(&self.store);
        let task_runtime = runtime.clone();
        runtime.spawn_counted(async move {
            let Claimed { key, version, item } = claimed;
            let started = match serde_json::from_str(item.input.get()) {
                Ok(input) => {
                    task_runtime
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
                    state.started(&item.id);
                    let run = Run {
                        instance: item.id,
                        slots,
                        permit: Some(permit),
                    };
                    holder::hold(task_runtime, state, run).await;
                }
                Err(error) => {
                    for slot in &slots {
                        if let Err(error) = slots::release(&*store, slot).await {
                            tracing::warn!(slot = slot.key, %error, "cannot release a queue slot; it lapses");
                        }
                    }
                    let unstartable = !matches!(
                        error,
                        Error::Store(_) | Error::Shutdown
                    );
                    if unstartable {
                        // Left for a process that can start it (with the
                        // workflow registered, or another version).
                        tracing::warn!(id = item.id, queue = state.queue.name(), %error, "a queued item cannot start here");
                        state.mark_unstartable(&key);
                    } else {
                        tracing::warn!(id = item.id, %error, "a queued item did not start; tried again");
                    }
                    let mut claimed = Claimed { key, version, item };
                    claimed.item.claim = None;
                    if let Ok(bytes) = records::encode(&claimed.item)
                        && let Err(error) = store.put(&claimed.key, bytes, Expect::Version(claimed.version)).await
                        && !matches!(error, StoreError::Conflict)
                    {
                        tracing::warn!(item = claimed.key, %error, "cannot give a queued item back; its claim lapses");
                    }
                    drop(permit);
                    state.wake.notify_one();
                }
            }
        });
    }
}
