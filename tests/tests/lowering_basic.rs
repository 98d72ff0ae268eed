//! `#[workflow]` lowering, driven by hand: the generated `Workflow` impl is
//! resumed state by state, the way the runtime does it.

use sagaflow::__private::{EdgeLabel, Target};
use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    id: u32,
    amount: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    order_id: u32,
    reservation: String,
    payment: u64,
}

#[step]
async fn reserve_inventory(order: &Order) -> Result<String, StepError> {
    record(format!("reserve {}", order.id));
    Ok(format!("r-{}", order.id))
}

#[compensate(reserve_inventory)]
async fn release_inventory(order: &Order, reservation: String) -> Result<(), StepError> {
    record(format!("release {} {reservation}", order.id));
    Ok(())
}

#[step]
async fn charge_payment(order: &Order, reservation: &str) -> Result<u64, StepError> {
    record(format!("charge {} {reservation}", order.id));
    if order.amount > 1000 {
        return Err(StepError::permanent("card declined"));
    }
    Ok(order.amount)
}

#[compensate(charge_payment)]
async fn refund_payment(order: &Order, reservation: &str, payment: u64) -> Result<(), StepError> {
    record(format!("refund {} {reservation} {payment}", order.id));
    Ok(())
}

#[step(pivot)]
async fn ship(order_id: u32) -> Result<(), StepError> {
    record(format!("ship {order_id}"));
    Ok(())
}

#[step(retriable)]
async fn notify(message: String) -> Result<(), StepError> {
    record(format!("notify {message}"));
    Ok(())
}

/// Places an order.
#[workflow]
async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
    let label: String = format!("order {}", order.id);
    let reservation = reserve_inventory(&order).await?;
    let payment = charge_payment(&order, &reservation).await?;
    ship(order.id).await?;
    notify(format!("{label} shipped")).await?;
    Ok(Receipt {
        order_id: order.id,
        reservation,
        payment,
    })
}

#[tokio::test]
async fn straight_sequence_runs_steps_in_order_and_stores_live_variables() {
    let order = Order { id: 7, amount: 30 };
    let (end, states) = drive::<place_order>(order).await;
    let End::Complete(receipt) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(
        receipt,
        Receipt {
            order_id: 7,
            reservation: "r-7".into(),
            payment: 30
        }
    );
    assert_eq!(
        take_log(),
        [
            "reserve 7",
            "charge 7 r-7",
            "ship 7",
            "notify order 7 shipped"
        ]
    );
    assert_eq!(
        states,
        [
            r#"{"Start":{"order":{"id":7,"amount":30}}}"#,
            r#"{"ReserveInventory1":{"order":{"id":7,"amount":30},"label":"order 7"}}"#,
            r#"{"ChargePayment2":{"order":{"id":7,"amount":30},"label":"order 7","reservation":"r-7"}}"#,
            r#"{"Ship3":{"order":{"id":7,"amount":30},"label":"order 7","reservation":"r-7","payment":30}}"#,
            r#"{"Notify4":{"order":{"id":7,"amount":30},"reservation":"r-7","payment":30,"__notify1_arg0":"order 7 shipped"}}"#,
        ]
    );
}

#[step(readonly)]
async fn price(item: u32) -> Result<u64, StepError> {
    record(format!("price {item}"));
    Ok(u64::from(item) * 10)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    total: u64,
    last: u64,
    each: Vec<u64>,
}

/// Step outputs written into places: a compound assignment, a field and an
/// element of a local.
#[workflow]
async fn sum_prices(items: Vec<u32>) -> Result<Tally, WorkflowError> {
    let mut tally: Tally = Tally {
        total: 0,
        last: 0,
        each: vec![0; items.len()],
    };
    let mut total: u64 = 1;
    for i in 0..items.len() {
        total += price(items[i]).await?;
        tally.each[i] = price(items[i] + 1).await?;
    }
    tally.last = price(99).await?;
    total *= price(1).await?;
    tally.total = total;
    Ok(tally)
}

#[tokio::test]
async fn step_outputs_go_into_compound_assignments_fields_and_elements() {
    let (end, states) = drive::<sum_prices>(vec![1, 2]).await;
    let End::Complete(tally) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(
        tally,
        Tally {
            total: (1 + 10 + 20) * 10,
            last: 990,
            each: vec![20, 30],
        }
    );
    assert_eq!(
        take_log(),
        [
            "price 1", "price 2", "price 2", "price 3", "price 99", "price 1"
        ]
    );
    // Every state after the first holds the running total: the compound
    // assignment reads it after its step.
    assert!(
        states[1..]
            .iter()
            .all(|state| state.contains(r#""total":"#)),
        "{states:#?}"
    );
}

#[tokio::test]
async fn a_failing_step_with_question_mark_fails_the_workflow() {
    let (end, _) = drive::<place_order>(Order {
        id: 8,
        amount: 5000,
    })
    .await;
    let End::Fail(error) = end else {
        panic!("the workflow should fail")
    };
    assert_eq!(error.message(), "card declined");
    assert_eq!(take_log(), ["reserve 8", "charge 8 r-8"]);
}

#[test]
fn state_machine_lists_states_variables_and_edges() {
    let machine = place_order.state_machine();
    let names: Vec<_> = machine.states.iter().map(|state| state.name).collect();
    assert_eq!(
        names,
        [
            "Start",
            "ReserveInventory1",
            "ChargePayment2",
            "Ship3",
            "Notify4"
        ]
    );
    let step = machine.states[2].step.as_ref().unwrap();
    assert_eq!(
        (step.name, step.kind, step.compensation),
        (
            "charge_payment",
            StepKind::Compensable,
            Some("refund_payment")
        )
    );
    let vars: Vec<_> = machine.states[3]
        .variables
        .iter()
        .map(|v| (v.name, v.ty))
        .collect();
    assert_eq!(
        vars,
        [
            ("order", "Order"),
            ("label", "String"),
            ("reservation", "<reserve_inventory as Step>::Output"),
            ("payment", "<charge_payment as Step>::Output"),
        ]
    );
    let edges: Vec<_> = machine
        .edges
        .iter()
        .map(|e| (e.from, e.to, e.label))
        .collect();
    assert_eq!(
        edges,
        [
            (0, Target::State(1), EdgeLabel::Ok),
            (1, Target::State(2), EdgeLabel::Ok),
            (1, Target::Error, EdgeLabel::Err),
            (2, Target::State(3), EdgeLabel::Ok),
            (2, Target::Error, EdgeLabel::Err),
            (3, Target::State(4), EdgeLabel::Ok),
            (3, Target::Error, EdgeLabel::Err),
            (4, Target::Complete, EdgeLabel::Ok),
            (4, Target::Error, EdgeLabel::Err),
        ]
    );
    print!("{}", machine.to_mermaid());
}
