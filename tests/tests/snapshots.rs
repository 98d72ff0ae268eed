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

#[test]
fn order_saga_mermaid() {
    insta::assert_snapshot!(place_order.state_machine().to_mermaid());
}

#[test]
fn order_saga_dot() {
    insta::assert_snapshot!(place_order.state_machine().to_dot());
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
