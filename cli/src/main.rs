//! `sagaflow`: list, show, cancel and retry saga instances in any sagaflow
//! store, and serve a read-only web view of them.
//!
//! This binary knows no workflows (they live in your code): it reads records
//! as JSON and draws the state machines runtimes stored descriptions of
//! (`graph`, the web view). Typed state checks need your workflows: ship the
//! same tool in your binary with
//! `sagaflow_cli::run(Registry::new().register(your_workflow))`.

use std::process::ExitCode;

use sagaflow_cli::Registry;

#[tokio::main]
async fn main() -> ExitCode {
    sagaflow_cli::run(Registry::new()).await
}
