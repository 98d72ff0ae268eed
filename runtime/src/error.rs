//! Errors, one type per layer: a step's, a workflow's, the store's, the runtime's.

use std::fmt;

/// Why a step attempt failed, and whether trying again may help.
///
/// `?` converts any [`std::error::Error`] into a retryable `StepError`; use
/// [`StepError::permanent`] for failures that no retry will fix (a declined
/// card), so the saga compensates at once.
///
/// Like `anyhow::Error`, `StepError` does not itself implement
/// `std::error::Error`, which is what lets `?` accept every error type.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepError {
    message: String,
    retryable: bool,
}

impl StepError {
    /// A failure worth retrying (a timeout, a connection reset).
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry will fix: the step fails for good at once.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
        }
    }

    /// Whether the runtime may try the step again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The message, as given.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        write!(f, "StepError({kind}: {:?})", self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StepError {
    fn from(error: E) -> StepError {
        StepError::retryable(error.to_string())
    }
}

/// Why a workflow ended with `Err`: a step that failed for good (through `?`)
/// or an error the workflow body returned. The runtime then compensates.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkflowError {
    message: String,
    step: Option<String>,
}

impl WorkflowError {
    /// A workflow-level failure with a message.
    pub fn new(message: impl Into<String>) -> WorkflowError {
        WorkflowError {
            message: message.into(),
            step: None,
        }
    }

    /// The message, as given.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The step whose failure this is, when the runtime knows it.
    pub fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    /// Names the step this failure came from.
    pub fn with_step(mut self, step: impl Into<String>) -> WorkflowError {
        self.step = Some(step.into());
        self
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}` failed: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl fmt::Debug for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkflowError({self})")
    }
}

impl From<StepError> for WorkflowError {
    fn from(error: StepError) -> WorkflowError {
        WorkflowError::new(error.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for WorkflowError {
    fn from(error: E) -> WorkflowError {
        WorkflowError::new(error.to_string())
    }
}

/// An error from a [`Store`](crate::store::Store) backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The expectation of a `put` or `delete` did not hold: someone else
    /// wrote the key first. Not a failure of the store.
    #[error("conflict: the key changed since it was read")]
    Conflict,
    /// The backend did not answer in time; the write may or may not have applied.
    #[error("the store timed out: {0}")]
    Timeout(String),
    /// The backend is unreachable or refused the operation.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A value larger than the backend accepts.
    #[error("value of {size} bytes exceeds the store's limit of {limit} bytes")]
    TooLarge {
        /// The value's size in bytes.
        size: usize,
        /// The largest value the store accepts.
        limit: usize,
    },
    /// Any other backend error.
    #[error("store error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The runtime's error: what `Runtime` and `Handle` methods return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `build()` was called without `.store(..)`.
    #[error(
        "no store configured: call `.store(MemoryStore::new())` or another store on the builder"
    )]
    NoStore,
    /// A workflow was used with a runtime it was not registered with.
    #[error("workflow `{0}` is not registered: call `.register({0})` on the runtime builder")]
    UnknownWorkflow(String),
    /// A registered workflow runs a child workflow (`sagaflow::child`) that
    /// is not registered: `build()` refuses, so no instance ever waits for
    /// a child nobody can run.
    #[error(
        "workflow `{parent}` runs child workflow `{child}`, which is not registered: call `.register({child})` on the runtime builder"
    )]
    UnregisteredChild {
        /// The registered workflow that calls the child.
        parent: String,
        /// The child workflow's name.
        child: String,
    },
    /// Two registered workflows share a name and a version.
    #[error(
        "workflow `{name}` version {version} is registered twice: give the other one another \
         version (`#[workflow(name = \"{name}\", version = N)]`) or register it once"
    )]
    DuplicateWorkflow {
        /// The workflow's name.
        name: String,
        /// The version registered twice.
        version: u32,
    },
    /// Two registered workflow versions have the same state machine (and so
    /// the same fingerprint): an instance could not tell which it runs on.
    #[error(
        "{first} and {second} have the same fingerprint {fingerprint:016x}: they are the same \
         machine; register one of them"
    )]
    DuplicateFingerprint {
        /// The fingerprint.
        fingerprint: u64,
        /// The first registration (`name vN`).
        first: String,
        /// The second.
        second: String,
    },
    /// A migration goes to a version that is not registered, or from a
    /// workflow to another, or from a version to itself.
    #[error(
        "migration `{migration}` goes to `{workflow}` version {version}, which is not registered \
         with another fingerprint than the one it migrates from: `.register(..)` the version it \
         migrates to, and migrate between two versions of one workflow"
    )]
    MigrationTarget {
        /// The migration's name.
        migration: String,
        /// The workflow it migrates to.
        workflow: String,
        /// The version it migrates to.
        version: u32,
    },
    /// Two migrations start from the same version.
    #[error(
        "migrations `{first}` and `{second}` both migrate `{workflow}` version {version}: \
         register one"
    )]
    DuplicateMigration {
        /// The first migration's name.
        first: String,
        /// The second's.
        second: String,
        /// The workflow.
        workflow: String,
        /// The version both migrate from.
        version: u32,
    },
    /// `start` with an id that belongs to an instance of another workflow.
    #[error("instance `{id}` already exists and runs workflow `{existing}`, not `{requested}`")]
    IdInUse {
        /// The instance id.
        id: String,
        /// The workflow the existing instance runs.
        existing: String,
        /// The workflow `start` asked for.
        requested: String,
    },
    /// No instance has this id.
    #[error("no instance with id `{0}`")]
    NotFound(String),
    /// [`Runtime::enqueue`](crate::Runtime::enqueue) into a queue this
    /// runtime's builder did not define.
    #[error(
        "queue `{0}` is not defined: call `.queue(Queue::new(\"{0}\"))` on the runtime builder, \
         with the same limits in every process"
    )]
    UnknownQueue(String),
    /// Two queues of one runtime share a name, or a queue's name is empty:
    /// `build()` refuses.
    #[error(
        "queue `{0}` is defined twice, or has an empty name: give each queue a name of its own"
    )]
    DuplicateQueue(String),
    /// An item without a partition key for a queue with a per-partition
    /// limit, or with one for a queue without.
    #[error(
        "queue `{queue}` {}",
        if *partitioned {
            "limits each partition: enqueue with `Enqueue::new(queue).partition(key)`"
        } else {
            "has no partitions: define it with `.partition_concurrency(n)`, or enqueue without a partition key"
        }
    )]
    PartitionKey {
        /// The queue.
        queue: String,
        /// Whether the queue is partitioned (and the item had no key).
        partitioned: bool,
    },
    /// The stored record could not be decoded; it is left untouched.
    #[error("the record of instance `{id}` cannot be decoded: {reason}")]
    Corrupt {
        /// The instance id (or store key).
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The instance was written by code whose state machine has another
    /// fingerprint than any registered one; it is left untouched.
    #[error(
        "instance `{id}` of workflow `{workflow}` has fingerprint {stored:016x}, which no \
         registered version has: {reason}"
    )]
    FingerprintMismatch {
        /// The instance id.
        id: String,
        /// The workflow name.
        workflow: String,
        /// Fingerprint in the record.
        stored: u64,
        /// Fingerprint of the newest registered version.
        registered: u64,
        /// What was tried and why it cannot run here (the versions
        /// registered, why none may take it over).
        reason: String,
    },
    /// Input or output could not be (de)serialized.
    #[error("cannot encode or decode {what}: {reason}")]
    Codec {
        /// What was being encoded or decoded.
        what: String,
        /// serde's message.
        reason: String,
    },
    /// A workflow input larger than the runtime accepts; nothing was written.
    #[error("the input is {size} bytes, more than the limit of {limit} bytes")]
    InputTooLarge {
        /// The encoded input's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The runtime was shut down while waiting.
    #[error("the runtime has shut down")]
    Shutdown,
    /// `cancel` of an instance whose pivot step has succeeded: the saga is
    /// past its point of no return and cannot be undone, so it continues
    /// forward to its end.
    #[error("instance `{id}` has passed its pivot and cannot be cancelled; it continues forward")]
    PastPivot {
        /// The instance id.
        id: String,
    },
    /// [`Runtime::signal`](crate::Runtime::signal) for an instance that has
    /// ended: nothing would ever read the signal, so it was not recorded.
    #[error("instance `{id}` has ended ({phase}); signal `{signal}` was not recorded")]
    InstanceEnded {
        /// The instance id.
        id: String,
        /// How it ended: `Completed`, `Compensated` or `Failed`.
        phase: crate::record::Phase,
        /// The signal's name.
        signal: String,
    },
    /// [`heartbeat`](crate::heartbeat) was called outside a step attempt run
    /// by the runtime (for example when a step function is called directly
    /// in a unit test). Nothing was recorded.
    #[error("heartbeat outside a step: nothing to record")]
    NotInStep,
    /// The worker running this step attempt lost its lease on the instance:
    /// another runtime took it over, and this attempt's result will be
    /// discarded. A step that sees this may stop early.
    #[error("the lease on instance `{id}` was lost to another worker")]
    LeaseLost {
        /// The instance id.
        id: String,
    },
    /// The instance this step attempt runs for was cancelled
    /// ([`Runtime::cancel`](crate::Runtime::cancel)) while the attempt ran.
    /// The instance rolls back once the attempt ends, whatever it returns;
    /// a long step that sees this may stop early (with `?`, or after undoing
    /// its partial work).
    #[error("instance `{id}` was cancelled while this step ran")]
    Cancelled {
        /// The instance id.
        id: String,
    },
}
