//! A runtime for tests: [`TestEnv`].

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use sagaflow::store::Store;
use serde::de::DeserializeOwned;

use sagaflow::{Handle, MemoryStore, Migrate, Outcome, Runtime, RuntimeBuilder, Status, Workflow};

/// A [`Runtime`] for tests, on a [`MemoryStore`] unless told otherwise,
/// with the workflows under test registered.
///
/// It derefs to its [`Runtime`], so `env.start(..)`, `env.signal(..)`,
/// `env.status(..)` and the rest work on it, and `&env` is a `&Runtime`
/// where a function asks for one. [`run`](TestEnv::run) and
/// [`outcome`](TestEnv::outcome) wait for an instance's end within a time
/// limit, so a workflow that waits forever fails the test instead of
/// hanging it.
///
/// Meant for `#[tokio::test(start_paused = true)]` (see the
/// [crate docs](crate#paused-time)): then the limit, a day by default, is
/// a day of tokio's paused time, which passes in moments.
///
/// ```
/// # use sagaflow::prelude::*;
/// use sagaflow_testkit::TestEnv;
///
/// #[step(readonly)]
/// async fn greet(name: &str) -> Result<String, StepError> {
///     Ok(format!("hello, {name}"))
/// }
///
/// #[workflow]
/// async fn hello(name: String) -> Result<String, WorkflowError> {
///     Ok(greet(&name).await?)
/// }
///
/// # /*
/// #[tokio::test(start_paused = true)]
/// # */
/// async fn says_hello() {
///     let env = TestEnv::builder().register(hello).build().await;
///     let outcome = env.run(hello, "hello-1", "Ada".to_owned()).await;
///     assert_eq!(outcome, Outcome::Completed("hello, Ada".to_owned()));
///     // The env is a runtime: ask it what it knows.
///     let status = env.status("hello-1").await.unwrap().expect("the instance");
///     assert_eq!(status.workflow, "hello");
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() { says_hello().await }
/// ```
pub struct TestEnv {
    runtime: Runtime,
    store: Arc<dyn Store>,
    time_limit: Duration,
}

/// Builds a [`TestEnv`]: [`TestEnv::builder`].
pub struct TestEnvBuilder {
    runtime: RuntimeBuilder,
    store: Option<Arc<dyn Store>>,
    time_limit: Duration,
}

impl TestEnv {
    /// How long [`run`](TestEnv::run) and [`outcome`](TestEnv::outcome)
    /// wait by default: a day, of tokio's paused time in a paused test.
    pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);

    /// A builder: register the workflows under test, then
    /// [`build`](TestEnvBuilder::build).
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder {
            runtime: Runtime::builder(),
            store: None,
            time_limit: TestEnv::DEFAULT_TIME_LIMIT,
        }
    }

    /// The runtime (also reachable through `Deref`).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The store the runtime runs on: read records from it, or build a
    /// second env on it (`TestEnv::builder().store(env.store())`), as
    /// another process sharing the store would be.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Starts instance `id` of `workflow` with `input` and waits for its
    /// outcome (see [`outcome`](TestEnv::outcome)).
    ///
    /// # Panics
    ///
    /// If `start` fails, or as [`outcome`](TestEnv::outcome) does.
    pub async fn run<W: Workflow>(
        &self,
        workflow: W,
        id: &str,
        input: W::Input,
    ) -> Outcome<W::Output> {
        let handle = match self.runtime.start(workflow, id, input).await {
            Ok(handle) => handle,
            Err(error) => panic!("starting instance `{id}` of `{}` failed: {error}", W::NAME),
        };
        self.outcome(&handle).await
    }

    /// Waits for the instance of `handle` to end, and returns how.
    ///
    /// # Panics
    ///
    /// If waiting fails (a store error, an instance this runtime cannot
    /// run), or if the instance has not ended within the time limit
    /// ([`TestEnvBuilder::time_limit`]); the message says where it stopped
    /// (phase, state, the signal it waits for, its last error).
    pub async fn outcome<T: DeserializeOwned, W>(&self, handle: &Handle<T, W>) -> Outcome<T> {
        let id = handle.id();
        match tokio::time::timeout(self.time_limit, handle.outcome()).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => panic!("waiting for instance `{id}` failed: {error}"),
            Err(_) => {
                let status = match self.runtime.status(id).await {
                    Ok(Some(status)) => Where(&status).to_string(),
                    Ok(None) => "no record".to_owned(),
                    Err(error) => format!("its record cannot be read: {error}"),
                };
                panic!(
                    "instance `{id}` did not end within {:?} (of tokio's clock, paused or not): {status}",
                    self.time_limit
                )
            }
        }
    }
}

impl Deref for TestEnv {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

impl fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestEnv")
            .field("runtime", &self.runtime)
            .field("store", &self.store.name())
            .field("time_limit", &self.time_limit)
            .finish()
    }
}

/// Where an instance stopped, in one line.
struct Where<'a>(&'a Status);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.0;
        write!(
            f,
            "{} at state `{}`, attempt {}",
            status.phase.as_str(),
            status.state,
            status.attempt
        )?;
        if let Some(signal) = &status.awaiting_signal {
            write!(f, ", waiting for signal `{}`", signal.name)?;
        }
        if let Some(at) = status.next_run_at {
            write!(f, ", next run at {at} ms")?;
        }
        if let Some(blocked) = &status.blocked {
            write!(f, ", blocked: {blocked}")?;
        }
        if let Some(error) = &status.last_error {
            write!(f, ", last error: {error}")?;
        }
        Ok(())
    }
}

impl TestEnvBuilder {
    /// A workflow under test (see [`RuntimeBuilder::register`]); register
    /// the child workflows it calls too.
    pub fn register<W: Workflow>(mut self, workflow: W) -> TestEnvBuilder {
        self.runtime = self.runtime.register(workflow);
        self
    }

    /// A migration (see [`RuntimeBuilder::migrate`]).
    pub fn migrate<M: Migrate>(mut self, migration: M) -> TestEnvBuilder {
        self.runtime = self.runtime.migrate(migration);
        self
    }

    /// The store to run on, instead of a new [`MemoryStore`]: another
    /// env's [`store`](TestEnv::store), or a [`FaultyStore`](crate::FaultyStore).
    pub fn store(mut self, store: impl Store) -> TestEnvBuilder {
        self.store = Some(Arc::new(store));
        self
    }

    /// How long [`TestEnv::run`] and [`TestEnv::outcome`] wait for an
    /// instance to end before they fail the test (default
    /// [`TestEnv::DEFAULT_TIME_LIMIT`]). It is measured on tokio's clock:
    /// in a paused test a long limit costs no real time, only the runtime's
    /// polling while the instance waits.
    pub fn time_limit(mut self, limit: Duration) -> TestEnvBuilder {
        self.time_limit = limit;
        self
    }

    /// Any other setting of the runtime: `.configure(|rt| rt.lease_ttl(..).clock(..))`.
    /// The store is the env's ([`store`](Self::store)); one set here is
    /// replaced.
    pub fn configure(
        mut self,
        settings: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
    ) -> TestEnvBuilder {
        self.runtime = settings(self.runtime);
        self
    }

    /// Builds the runtime.
    ///
    /// # Panics
    ///
    /// If [`RuntimeBuilder::build`] fails (a workflow registered twice, a
    /// child workflow not registered, ..), with its error.
    pub async fn build(self) -> TestEnv {
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
        let runtime = match self.runtime.store(Arc::clone(&store)).build().await {
            Ok(runtime) => runtime,
            Err(error) => panic!("the test runtime cannot be built: {error}"),
        };
        TestEnv {
            runtime,
            store,
            time_limit: self.time_limit,
        }
    }
}

impl fmt::Debug for TestEnvBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestEnvBuilder")
            .field("time_limit", &self.time_limit)
            .finish_non_exhaustive()
    }
}
