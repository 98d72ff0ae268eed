//! The deterministic context of the code a workflow runs between two
//! suspension points (a segment): the time, the seed of its random draws,
//! the status it sets. The generated code runs each segment inside
//! [`in_segment`]; the helpers of [`crate::durable`] read it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

/// The deterministic context of the segment running on this thread.
pub(crate) struct SegmentContext {
    /// The time `now()` reads, in ms since the epoch.
    pub(crate) now_ms: u64,
    seed: Seed,
    /// How many values `uuid()` and `random()` drew.
    pub(crate) draws: u64,
    /// What `set_status` set last.
    pub(crate) status: Option<serde_json::Value>,
}

/// What `uuid()` and `random()` derive their values from: hashed on the
/// first draw, as most segments draw nothing.
enum Seed {
    Pending {
        id: Arc<str>,
        state: Cow<'static, str>,
        transitions: u64,
    },
    Ready(u64),
}

impl SegmentContext {
    /// The context of a segment of instance `id` at `state`, after
    /// `transitions` committed transitions.
    pub(crate) fn for_segment(
        id: Arc<str>,
        state: Cow<'static, str>,
        transitions: u64,
        now_ms: u64,
    ) -> SegmentContext {
        SegmentContext {
            now_ms,
            seed: Seed::Pending {
                id,
                state,
                transitions,
            },
            draws: 0,
            status: None,
        }
    }

    /// The seed the segment's draws derive from.
    pub(crate) fn seed(&mut self) -> u64 {
        match &self.seed {
            Seed::Ready(seed) => *seed,
            Seed::Pending {
                id,
                state,
                transitions,
            } => {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for byte in id
                    .bytes()
                    .chain([0])
                    .chain(state.bytes())
                    .chain([0])
                    .chain(transitions.to_le_bytes())
                {
                    hash ^= u64::from(byte);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                self.seed = Seed::Ready(hash);
                hash
            }
        }
    }
}

thread_local! {
    static SEGMENT: RefCell<Option<SegmentContext>> = const { RefCell::new(None) };
}

/// `f` on the context of the segment running on this thread, if one is.
pub(crate) fn with_segment<R>(f: impl FnOnce(&mut SegmentContext) -> R) -> Option<R> {
    SEGMENT.with(|segment| segment.borrow_mut().as_mut().map(f))
}

/// Runs `run` (synchronous: a segment has no `.await`) with `context` on
/// this thread; returns its result and the status it set.
pub(crate) fn in_segment<R>(
    context: SegmentContext,
    run: impl FnOnce() -> R,
) -> (R, Option<serde_json::Value>) {
    struct Restore(Option<SegmentContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SEGMENT.with(|segment| *segment.borrow_mut() = previous);
        }
    }
    let previous = SEGMENT.with(|segment| segment.borrow_mut().replace(context));
    let restore = Restore(previous);
    let result = run();
    let status = SEGMENT.with(|segment| {
        segment
            .borrow_mut()
            .as_mut()
            .and_then(|context| context.status.take())
    });
    drop(restore);
    (result, status)
}
