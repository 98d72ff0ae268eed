//! `EmbeddedStore`: the default durable store, a directory on local disk.
//!
//! # Engine
//!
//! [fjall](https://docs.rs/fjall) 3, an LSM-tree with a write-ahead journal,
//! chosen over redb by measurement on a 2-core machine (300-byte values):
//! one fsync'd commit per write, fjall 4.6k–5.5k/s against redb 2.1k–2.8k/s;
//! 64 writes per commit, fjall 105k–113k/s against redb 48k–111k/s.
//!
//! fjall runs one background worker for flushes and compactions, not its
//! default of one per core: with two, fjall 3.1's first worker hands every
//! compaction to the second by re-queueing it, spinning while the second is
//! busy. One fjall thread committing batches of 200 fsync'd 2.3 KB writes
//! spends 5.5–6.1 µs of CPU per write with one worker, 6.2–7.1 µs with two.
//!
//! # Durability and group commit
//!
//! Every successful [`put`](super::Store::put) and [`delete`](super::Store::delete) is in
//! the journal and fsync'd before it returns, and becomes visible to readers
//! only then. Writers do not commit themselves; two threads do it for them:
//!
//! - the **sequencer** takes each write as it arrives, checks its
//!   expectation against the latest version of the key (including writes
//!   not yet committed: later writes see earlier ones; one map holds the
//!   latest decided version of every recently written key), gives it the
//!   next version, writes that version into the value's header, and adds it
//!   to the batch being filled (the value arrives already copied into the
//!   buffer fjall keeps, by the writer's thread, which frees its own buffer
//!   where it made it);
//! - the **commit thread** writes a whole batch to the journal atomically,
//!   fsyncs once, applies it, and hands it back to the sequencer, which
//!   answers every writer in it.
//!
//! The sequencer hands over the filled batch the moment the commit thread
//! is free, so everything that arrives during one fsync shares the next
//! one (at most [`MAX_BATCH_OPS`] operations or [`MAX_BATCH_BYTES`] bytes),
//! and checking, encoding and answering overlap the fsync. 2,000
//! concurrent instances cost a handful of fsyncs, not 2,000; a lone writer
//! still gets its own commit at once. A failed expectation fails only its
//! own operation. If a commit fails, its writers get
//! [`StoreError::Backend`]; if the store's threads are gone, callers get
//! [`StoreError::Unavailable`], never a hang.
//!
//! A write whose caller stops waiting (a dropped future, a timeout) is
//! still decided and, if its expectation holds, committed.
//!
//! The store also says it [batches writes](super::Store::batches_writes), so the
//! runtime sends its transitions through [`GroupCommit`](super::GroupCommit):
//! [`put_batch`](super::Store::put_batch) queues a whole group in one message and
//! gets one answer for all of it, so the runtime's one flusher task is woken
//! per commit instead of each of 2,000 writers being woken from the
//! sequencer's thread. Measured with the bench's four-step saga, 2,000 at
//! once (`--group-commit on,off`, medians of 5 rounds): 98k–118k durable
//! steps/s one by one, 119k–156k grouped.
//!
//! Reads ([`get`](super::Store::get), [`scan`](super::Store::scan)) go straight to fjall
//! on the calling thread; they are short (memtable or block cache) and never
//! wait for a commit.
//!
//! # What a write costs
//!
//! Measured on a 2-core machine shared with other builds (load average
//! 1.8–2.2 during these runs; wall-clock rates vary by ±15% from run to
//! run), before and after the single version map, the single copy of each
//! value and the single fjall worker:
//!
//! - the store alone (`bench --only store`: 2,000 writers, CAS of 2.3 KB
//!   values): 107k, 136k, 123k CAS/s before; 143k, 130k, 143k after. One
//!   writer: 4.5k–4.9k/s before and 3.6k–4.7k/s after (one fsync each);
//! - the four-step saga (`bench --only throughput --workers 2000`, median
//!   of 10 rounds, three runs): 67k, 63k, 63k steps/s before; 66k, 70k,
//!   69k after, with 2–3.5% less CPU time.
//!
//! CPU per write (2,000 writers, 1.3 KB values, at load 3.5) is about
//! 7–8.5 µs, about half of it in fjall's commit: its journal write through
//! the page cache, the memtable insert, flushes, deleting old journals, and
//! the fsync (about 200 µs of CPU per commit, plus its writeback per byte).
//! Tried and not kept:
//!
//! - deciding writes on the callers' threads under a mutex, without the
//!   sequencer thread: the same CPU per write, and the saga 7% slower,
//!   because the work moves onto the runtime's threads;
//! - two fjall databases, keys spread by hash, each with its own journal
//!   and commit thread (so one fsync overlaps the other's journal write):
//!   the store alone 1.5x faster on an idle machine, but 10% more CPU per
//!   write (twice the fsyncs, each half as full) and the saga 15–20% slower;
//! - memtables of 8, 16 or 256 MiB instead of 64 (8 MiB: 15% more CPU per
//!   write), and `fdatasync` instead of `fsync`: no gain.
//!
//! # Layout on disk
//!
//! The keyspace `data` maps each key (its UTF-8 bytes) to an 8-byte
//! big-endian version followed by the value. The keyspace `meta` holds
//! `last_version`, the highest version ever handed out, written in the same
//! atomic batch as the writes that use it: versions come from this one
//! counter, so they are never reused, across deletes and restarts alike.
//!
//! Nothing on disk makes the store panic: a value shorter than its version
//! header or a key that is not UTF-8 is reported as [`StoreError::Backend`]
//! naming the key.
//!
//! # Files
//!
//! `handle.rs` holds [`EmbeddedStore`], what callers open and hold, and its
//! [`Store`](super::Store) methods; `writes.rs` a write on its way to the
//! sequencer and its answer on the way back; `commit.rs` the group commit
//! (the sequencer thread and the commit thread); `due.rs` the due index's
//! copy in memory; `disk.rs` the layout on disk and the errors reading it.
//!
//! [`StoreError::Backend`]: crate::StoreError::Backend
//! [`StoreError::Unavailable`]: crate::StoreError::Unavailable

mod commit;
mod disk;
mod due;
mod handle;
mod writes;

pub use commit::{MAX_BATCH_BYTES, MAX_BATCH_OPS};
pub use handle::{EmbeddedStore, MAX_KEY_SIZE, MAX_VALUE_SIZE};
