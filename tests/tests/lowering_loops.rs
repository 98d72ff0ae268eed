//! `#[workflow]` loops with steps, driven by hand: the generated `Workflow`
//! impl is resumed state by state, the way the runtime does it, and the
//! stored state of a loop holds its position and its live variables.

use sagaflow::__private::{EdgeLabel, Target};
use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    sku: String,
    quantity: u32,
}

#[step]
async fn reserve_item(item: &Item) -> Result<String, StepError> {
    record(format!("reserve {}", item.sku));
    if item.quantity > 10 {
        return Err(StepError::permanent(format!("no stock for {}", item.sku)));
    }
    Ok(format!("hold-{}", item.sku))
}

#[compensate(reserve_item)]
async fn release_item(item: &Item, hold: String) -> Result<(), StepError> {
    record(format!("release {} {hold}", item.sku));
    Ok(())
}

#[step(readonly)]
async fn check(attempt: u32) -> Result<bool, StepError> {
    record(format!("check {attempt}"));
    Ok(attempt >= 3)
}

#[step(readonly)]
async fn wait(attempt: u32) -> Result<(), StepError> {
    record(format!("wait {attempt}"));
    Ok(())
}

#[step(readonly)]
async fn cell(row: u32, column: u32) -> Result<u32, StepError> {
    record(format!("cell {row}.{column}"));
    Ok(row * 10 + column)
}

#[step(readonly)]
async fn ping(round: u64) -> Result<(), StepError> {
    record(format!("ping {round}"));
    Ok(())
}

/// Reserves each item; skips empty lines; stops at a line marked `stop`.
#[workflow]
async fn reserve_batch(items: Vec<Item>) -> Result<Vec<String>, WorkflowError> {
    let mut holds: Vec<String> = Vec::new();
    for item in items {
        if item.quantity == 0 {
            continue;
        }
        if item.sku == "stop" {
            break;
        }
        let hold = reserve_item(&item).await?;
        holds.push(hold);
    }
    Ok(holds)
}

/// Polls until `check` says done, waiting between checks.
#[workflow]
async fn poll(limit: u32) -> Result<u32, WorkflowError> {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let done = check(attempt).await?;
        if done || attempt == limit {
            break;
        }
        wait(attempt).await?;
    }
    Ok(attempt)
}

/// A `while` loop and a `while let` loop.
#[workflow]
async fn drain(queue: Vec<u32>) -> Result<u32, WorkflowError> {
    let mut queue: Vec<u32> = queue;
    let mut sum: u32 = 0;
    while let Some(column) = queue.pop() {
        let value = cell(0, column).await?;
        sum += value;
    }
    let mut round: u64 = 0;
    while round < 2 {
        ping(round).await?;
        round += 1;
    }
    Ok(sum)
}

/// Nested loops: `continue` the inner one, `continue 'rows` and `break 'rows`.
#[workflow]
async fn grid(rows: Vec<u32>) -> Result<Vec<u32>, WorkflowError> {
    let mut cells: Vec<u32> = Vec::new();
    'rows: for row in rows {
        for column in 0..4u32 {
            if column == 1 {
                continue;
            }
            if column > row {
                continue 'rows;
            }
            if row == 9 {
                break 'rows;
            }
            let value = cell(row, column).await?;
            cells.push(value);
        }
    }
    Ok(cells)
}

/// Stops at the first cell worth `target`: a step, then `break`, so the
/// state after that step never goes round the loop again.
#[workflow]
async fn find(target: u32) -> Result<u32, WorkflowError> {
    let mut column: u32 = 0;
    loop {
        let value = cell(1, column).await?;
        if value >= target {
            ping(u64::from(value)).await?;
            break;
        }
        column += 1;
    }
    Ok(column)
}

/// A loop as the body's tail, left only by `return`; a `for` with a tuple
/// pattern inside it; a pure inner loop whose `break` is its own; a kept
/// result matched in the loop, with `continue` in an arm.
#[workflow]
async fn settle(pairs: Vec<(u32, String)>) -> Result<u32, WorkflowError> {
    let mut rounds: u32 = 0;
    let mut pending: Vec<(u32, String)> = pairs;
    loop {
        rounds += 1;
        for (column, name) in pending.clone() {
            let mut spins = 0;
            loop {
                spins += 1;
                if spins > 2 {
                    break;
                }
            }
            let checked = cell(rounds, column).await;
            match checked {
                Ok(value) if value % 2 == 0 => {
                    ping(u64::from(value)).await?;
                    record(format!("{name} even"));
                }
                Ok(_) => continue,
                Err(error) => return Err(WorkflowError::from(error)),
            }
        }
        pending.pop();
        if pending.is_empty() {
            return Ok(rounds);
        }
    }
}

/// `while let` with a let chain.
#[workflow]
async fn countdown(start: Vec<u32>) -> Result<(), WorkflowError> {
    let mut queue: Vec<u32> = start;
    while let Some(n) = queue.pop()
        && n > 0
    {
        ping(u64::from(n)).await?;
    }
    Ok(())
}

fn item(sku: &str, quantity: u32) -> Item {
    Item {
        sku: sku.into(),
        quantity,
    }
}

#[tokio::test]
async fn for_loop_runs_a_step_per_item_and_stores_its_position() {
    let items = vec![item("a", 1), item("b", 0), item("c", 2)];
    let (end, states) = drive::<reserve_batch>(items).await;
    let End::Complete(holds) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(holds, ["hold-a", "hold-c"]);
    assert_eq!(take_log(), ["reserve a", "reserve c"]);
    let all = r#"[{"sku":"a","quantity":1},{"sku":"b","quantity":0},{"sku":"c","quantity":2}]"#;
    assert_eq!(
        states,
        [
            format!(r#"{{"Start":{{"items":{all}}}}}"#),
            // at item 0: the next position is 1; nothing held yet
            format!(
                r#"{{"ReserveItem1":{{"holds":[],"__for1_items":{all},"__for1_next":1,"item":{{"sku":"a","quantity":1}}}}}}"#
            ),
            // `b` was skipped by `continue`: at item 2, the next position is 3
            format!(
                r#"{{"ReserveItem1":{{"holds":["hold-a"],"__for1_items":{all},"__for1_next":3,"item":{{"sku":"c","quantity":2}}}}}}"#
            ),
        ]
    );
}

#[tokio::test]
async fn for_loop_break_leaves_the_loop() {
    let items = vec![item("a", 1), item("stop", 1), item("c", 2)];
    let (end, _) = drive::<reserve_batch>(items).await;
    let End::Complete(holds) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(holds, ["hold-a"]);
    assert_eq!(take_log(), ["reserve a"]);
}

#[tokio::test]
async fn a_failing_step_in_a_loop_fails_the_workflow_mid_loop() {
    let items = vec![item("a", 1), item("b", 50), item("c", 2)];
    let (end, _) = drive::<reserve_batch>(items).await;
    let End::Fail(error) = end else {
        panic!("the workflow should fail")
    };
    assert_eq!(error.message(), "no stock for b");
    assert_eq!(take_log(), ["reserve a", "reserve b"]);
}

#[tokio::test]
async fn loop_with_break_runs_until_done() {
    let (end, states) = drive::<poll>(10).await;
    let End::Complete(attempts) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(attempts, 3);
    assert_eq!(
        take_log(),
        ["check 1", "wait 1", "check 2", "wait 2", "check 3"]
    );
    assert_eq!(
        states,
        [
            r#"{"Start":{"limit":10}}"#,
            r#"{"Check1":{"limit":10,"attempt":1}}"#,
            r#"{"Wait2":{"limit":10,"attempt":1}}"#,
            r#"{"Check1":{"limit":10,"attempt":2}}"#,
            r#"{"Wait2":{"limit":10,"attempt":2}}"#,
            r#"{"Check1":{"limit":10,"attempt":3}}"#,
        ]
    );

    let (end, _) = drive::<poll>(2).await;
    let End::Complete(attempts) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(attempts, 2);
    assert_eq!(take_log(), ["check 1", "wait 1", "check 2"]);
}

#[tokio::test]
async fn while_and_while_let_loops() {
    let (end, states) = drive::<drain>(vec![1, 2]).await;
    let End::Complete(sum) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(sum, 3);
    assert_eq!(take_log(), ["cell 0.2", "cell 0.1", "ping 0", "ping 1"]);
    assert_eq!(
        states,
        [
            r#"{"Start":{"queue":[1,2]}}"#,
            r#"{"Cell1":{"queue":[1],"sum":0,"column":2}}"#,
            r#"{"Cell1":{"queue":[],"sum":2,"column":1}}"#,
            r#"{"Ping2":{"sum":3,"round":0}}"#,
            r#"{"Ping2":{"sum":3,"round":1}}"#,
        ]
    );
}

#[tokio::test]
async fn nested_loops_with_labelled_continue_and_break() {
    let (end, states) = drive::<grid>(vec![2, 0, 3, 9, 5]).await;
    let End::Complete(cells) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(cells, [20, 22, 0, 30, 32, 33]);
    assert_eq!(
        take_log(),
        [
            "cell 2.0", "cell 2.2", "cell 0.0", "cell 3.0", "cell 3.2", "cell 3.3"
        ]
    );
    // Mid-loop, the outer position, the rest of the inner range and the
    // cells so far: nothing of the iterations before.
    assert_eq!(
        states[5],
        r#"{"Cell1":{"cells":[20,22,0,30],"__for1_items":[2,0,3,9,5],"__for1_next":3,"row":3,"__for2_range":{"start":3,"end":4},"column":2}}"#
    );
}

#[tokio::test]
async fn break_right_after_a_step_leaves_the_loop() {
    let (end, states) = drive::<find>(12).await;
    let End::Complete(column) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(column, 2);
    assert_eq!(take_log(), ["cell 1.0", "cell 1.1", "cell 1.2", "ping 12"]);
    // `ping`'s argument `u64::from(value)` is stored as computed before the
    // step; after it the loop is over, so neither `value` nor `target` is stored
    assert_eq!(
        states.last().unwrap(),
        r#"{"Ping2":{"column":2,"__ping1_arg0":12}}"#
    );
}

#[tokio::test]
async fn loops_nested_in_a_tail_loop_with_matches_and_pure_loops() {
    let (end, _) = drive::<settle>(vec![(1, "a".into()), (2, "b".into())]).await;
    let End::Complete(rounds) = end else {
        panic!("the workflow failed")
    };
    assert_eq!(rounds, 2);
    // round 1: 11 is odd (`continue`), 12 is even; round 2: 21 is odd, then `return`
    assert_eq!(
        take_log(),
        ["cell 1.1", "cell 1.2", "ping 12", "b even", "cell 2.1"]
    );
}

#[tokio::test]
async fn while_let_chain_stops_at_the_first_false() {
    let (end, _) = drive::<countdown>(vec![4, 0, 2, 1]).await;
    assert!(matches!(end, End::Complete(())));
    assert_eq!(take_log(), ["ping 1", "ping 2"]);
}

#[test]
fn state_machine_has_back_edges() {
    let machine = poll.state_machine();
    let edges: Vec<_> = machine
        .edges
        .iter()
        .map(|e| (e.from, e.to, e.label))
        .collect();
    assert_eq!(
        edges,
        [
            (0, Target::State(1), EdgeLabel::Ok),
            (1, Target::State(2), EdgeLabel::Branch),
            (1, Target::Complete, EdgeLabel::Branch),
            (1, Target::Error, EdgeLabel::Err),
            (2, Target::State(1), EdgeLabel::Branch),
            (2, Target::Error, EdgeLabel::Err),
        ]
    );
    let vars: Vec<_> = reserve_batch.state_machine().states[1]
        .variables
        .iter()
        .map(|v| (v.name, v.ty))
        .collect();
    assert_eq!(
        vars,
        [
            ("holds", "Vec<String>"),
            ("__for1_items", "Vec<Item>"),
            ("__for1_next", "usize"),
            ("item", "Item")
        ]
    );
    print!("{}", machine.to_mermaid());
}
