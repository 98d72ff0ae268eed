//! Snapshots of what users see as data: the examples' state machines and the
//! JSON of a persisted state. A change to the generated machine shows here.

use sagaflow::__private::{Driver, Transition};
use sagaflow::prelude::*;
use sagaflow_examples::approval::approval;
use sagaflow_examples::batch::reserve_batch;
use sagaflow_examples::coffee::coffee_order;
use sagaflow_examples::fanout::book_trip;
use sagaflow_examples::fulfilment::{fulfil_order, ship_order};
use sagaflow_examples::order::{Order, place_order};
use sagaflow_examples::report::nightly_report;
use sagaflow_examples::upgrade;

#[test]
fn order_saga_mermaid() {
    insta::assert_snapshot!(place_order.state_machine().to_mermaid());
}

#[test]
fn order_saga_dot() {
    insta::assert_snapshot!(place_order.state_machine().to_dot());
}

#[test]
fn nightly_report_mermaid() {
    insta::assert_snapshot!(nightly_report.state_machine().to_mermaid());
}

#[test]
fn coffee_shop_mermaid() {
    insta::assert_snapshot!(coffee_order.state_machine().to_mermaid());
}

#[test]
fn batch_mermaid() {
    insta::assert_snapshot!(reserve_batch.state_machine().to_mermaid());
}

#[test]
fn fanout_mermaid() {
    insta::assert_snapshot!(book_trip.state_machine().to_mermaid());
}

#[test]
fn fanout_dot() {
    insta::assert_snapshot!(book_trip.state_machine().to_dot());
}

#[test]
fn approval_mermaid() {
    insta::assert_snapshot!(approval.state_machine().to_mermaid());
}

#[test]
fn fulfilment_mermaid() {
    // The parent's child state says which workflow it runs.
    insta::assert_snapshot!(fulfil_order.state_machine().to_mermaid());
}

#[test]
fn fulfilment_child_mermaid() {
    insta::assert_snapshot!(ship_order.state_machine().to_mermaid());
}

#[test]
fn upgrade_versions_mermaid() {
    // Three versions of one workflow: what changed between them shows here.
    for (version, machine) in [
        (1, upgrade::v1::place_order.state_machine()),
        (2, upgrade::v2::place_order.state_machine()),
        (3, upgrade::v3::place_order.state_machine()),
    ] {
        assert_eq!(
            (machine.workflow, machine.version),
            ("place_order", version)
        );
        insta::assert_snapshot!(format!("upgrade_v{version}_mermaid"), machine.to_mermaid());
    }
}

#[test]
fn upgrade_stored_description_with_shapes() {
    // What a runtime stores of a machine: states, variables with their
    // traced shapes, steps with their argument and output shapes, version
    // and upgrade policy. Tools and runtimes without the code read it.
    let description = upgrade::v2::place_order.state_machine().describe();
    let json = serde_json::to_string_pretty(&description).expect("a description encodes");
    insta::assert_snapshot!(json);
}

#[test]
fn fingerprints_are_stable_and_distinct() {
    let order = place_order.state_machine().fingerprint();
    let coffee = coffee_order.state_machine().fingerprint();
    assert_ne!(order, coffee);
    insta::assert_snapshot!(format!(
        "place_order {order:016x}\ncoffee_order {coffee:016x}"
    ));
    // The fingerprints these machines had before fingerprints covered the
    // shapes of stored types: records written then carry them, and a
    // runtime recognises them by these.
    assert_eq!(place_order.state_machine().legacy, 0x98c4_2321_aa80_2ec1);
    assert_eq!(coffee_order.state_machine().legacy, 0xa621_14d9_1a72_53d6);
}

/// The state persisted after the first two steps: it holds exactly the
/// variables the rest of the saga uses.
#[tokio::test]
async fn persisted_state_after_two_steps() {
    let order = Order {
        id: "o-1".into(),
        sku: "kettle".into(),
        quantity: 1,
        amount_cents: 2_500,
        fail_shipment: false,
    };
    let mut state = <place_order as Workflow>::begin(order);
    for _ in 0..3 {
        let mut driver = Driver::new("o-1", <place_order as Workflow>::state_name(&state), 1);
        let Transition::Next(next) = <place_order as Workflow>::resume(state, &mut driver).await
        else {
            panic!("each of the first three transitions leads to a next state")
        };
        state = next;
    }
    assert_eq!(
        <place_order as Workflow>::state_name(&state),
        "CreateShipment3"
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&state).expect("the state serializes"));
}
