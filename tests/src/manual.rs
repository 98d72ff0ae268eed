//! Driving a generated state machine by hand, without a runtime: what the
//! lowering tests use to watch every state a workflow goes through.

use sagaflow::__private::{Driver, Transition};
use sagaflow::{Workflow, WorkflowError};

/// How a workflow driven by [`drive`] ended.
#[derive(Debug)]
pub enum End<O> {
    /// It returned `Ok`.
    Complete(O),
    /// It returned `Err`.
    Fail(WorkflowError),
}

/// Runs a workflow to its end, one `resume` per state, first attempt only;
/// returns the end and the JSON of every state it went through. Each state
/// goes through its JSON, as it does through the store.
pub async fn drive<W: Workflow>(input: W::Input) -> (End<W::Output>, Vec<String>) {
    let mut state = W::begin(input);
    let mut states = Vec::new();
    loop {
        let json = serde_json::to_string(&state).expect("a state serializes");
        state = serde_json::from_str(&json).expect("a state deserializes from its own JSON");
        states.push(json);
        let mut driver = Driver::new("id", W::state_name(&state), 1);
        match W::resume(state, &mut driver).await {
            Transition::Next(next) => state = next,
            Transition::Complete(output) => return (End::Complete(output), states),
            Transition::Fail(error) => return (End::Fail(error), states),
            Transition::Suspend => {
                panic!("a step asked for a retry; drive runs first attempts only")
            }
        }
    }
}
