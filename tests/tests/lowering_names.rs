//! `#[workflow]` with a parameter and locals named like the workflow
//! itself, as ordinary Rust allows beside a function of that name.

use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    id: u32,
    item: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    order: Order,
    slot: u32,
}

#[step(readonly)]
async fn reserve(id: u32) -> Result<u32, StepError> {
    record(format!("reserve {id}"));
    Ok(id + 10)
}

#[step(readonly)]
async fn confirm(receipt: &Receipt) -> Result<String, StepError> {
    record(format!("confirm {} {}", receipt.order.item, receipt.slot));
    Ok(format!("{}#{}", receipt.order.item, receipt.slot))
}

/// The workflow, its parameter and a local share the name `order`; the
/// parameter goes into a struct by shorthand and into a format string.
#[workflow]
async fn order(order: Order) -> Result<String, WorkflowError> {
    let slot = reserve(order.id).await?;
    record(format!("slot {slot} for {}", order.item));
    record(format!("order {order:?}"));
    let receipt = Receipt { order, slot };
    let confirmed = confirm(&receipt).await?;
    let Receipt { order, .. } = receipt;
    Ok(format!("{confirmed} for {}", order.id))
}

#[tokio::test]
async fn a_parameter_named_like_its_workflow_runs_and_is_stored_under_its_name() {
    let input = Order {
        id: 7,
        item: "tea".to_owned(),
    };
    let (end, states) = drive::<order>(input).await;
    assert!(
        matches!(&end, End::Complete(output) if output == "tea#17 for 7"),
        "{end:?}"
    );
    assert_eq!(
        take_log(),
        [
            "reserve 7",
            "slot 17 for tea",
            "order Order { id: 7, item: \"tea\" }",
            "confirm tea 17"
        ]
    );
    // The state holds the input under the name the user wrote.
    assert!(
        states[1].contains("\"order\"") && !states[1].contains("_sagaflow_local"),
        "{states:#?}"
    );
}

#[test]
fn the_machine_names_the_variable_as_written() {
    let machine = order.state_machine();
    let names: Vec<&str> = machine
        .states
        .iter()
        .flat_map(|state| state.variables.iter().map(|variable| variable.name))
        .collect();
    assert!(names.contains(&"order"), "{names:?}");
    assert!(
        names.iter().all(|name| !name.contains("_sagaflow_local")),
        "{names:?}"
    );
}
