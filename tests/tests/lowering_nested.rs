//! `#[workflow]` lowering of steps nested in expressions: each runs first,
//! as a `let` of its own, when nothing before it in its statement can have
//! an effect or leave early.

use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    total: u32,
    fee: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    item: String,
    price: u32,
}

#[step(readonly)]
async fn price(item: &str) -> Result<u32, StepError> {
    record(format!("price {item}"));
    Ok(item.len() as u32)
}

#[step(readonly)]
async fn quote(total: u32) -> Result<Quote, StepError> {
    record(format!("quote {total}"));
    Ok(Quote { total, fee: 1 })
}

#[step(readonly)]
async fn ready(total: u32) -> Result<bool, StepError> {
    record(format!("ready {total}"));
    Ok(total > 5)
}

#[step(readonly)]
async fn items(count: u32) -> Result<Vec<String>, StepError> {
    record(format!("items {count}"));
    Ok((0..count).map(|i| format!("i{i}")).collect())
}

/// Steps in arithmetic, in a call's and a struct's arguments, in a step's
/// argument, in an `if` condition (also after `else`), a `match` scrutinee,
/// a `for` collection, a compound assignment and the tail.
#[workflow]
async fn nested(item: String, qty: u32) -> Result<u32, WorkflowError> {
    let mut total = price(&item).await? * qty;
    let mut lines: Vec<Line> = Vec::new();
    lines.push(Line {
        item: item.clone(),
        price: price(&item).await?,
    });
    // A field of a step's output has a type the macro cannot name.
    let fee: u32 = quote(price(&item).await? + 1).await?.fee;
    if ready(total).await? {
        total += 100;
    } else if ready(total + 10).await? {
        total += 10;
    }
    match quote(total).await?.total {
        0 => return Ok(0),
        _ => {}
    }
    for each in items(qty).await? {
        total += price(&each).await? + fee;
    }
    Ok(total + quote(lines.len() as u32).await?.total)
}

#[tokio::test]
async fn nested_steps_run_first_in_the_order_written() {
    let (end, _) = drive::<nested>(("tea".to_owned(), 2)).await;
    // total 3 * 2 = 6; fee of quote(3 + 1) = 1; ready(6) → 106;
    // quote(106); items i0, i1: 106 + (2 + 1) * 2 = 112; + quote(1).total.
    assert!(matches!(end, End::Complete(113)), "{end:?}");
    assert_eq!(
        take_log(),
        [
            "price tea",
            "price tea",
            "price tea",
            "quote 4",
            "ready 6",
            "quote 106",
            "items 2",
            "price i0",
            "price i1",
            "quote 1"
        ]
    );
}

#[tokio::test]
async fn a_nested_step_in_an_else_if_runs_only_when_the_first_condition_fails() {
    let (end, _) = drive::<nested>(("t".to_owned(), 1)).await;
    // total 1; fee 1; ready(1) no, ready(11) → 11; quote(11);
    // items i0: 11 + 2 + 1 = 14; + quote(1).total = 15.
    assert!(matches!(end, End::Complete(15)), "{end:?}");
    assert_eq!(
        take_log(),
        [
            "price t", "price t", "price t", "quote 2", "ready 1", "ready 11", "quote 11",
            "items 1", "price i0", "quote 1"
        ]
    );
}

/// A step in the `let` of a let chain, and in a `return`'s value.
#[workflow]
async fn chained(count: u32) -> Result<u32, WorkflowError> {
    if let Some(last) = items(count).await?.pop()
        && last != "i0"
    {
        // A computed argument, stored as such: `last` itself (of the type
        // `pop()` gives, which the macro does not name) is not held.
        return Ok(price(&format!("{last}")).await? * 10);
    }
    Ok(0)
}

#[tokio::test]
async fn a_step_in_a_let_chain_runs_before_the_chain_binds() {
    let (end, _) = drive::<chained>(3).await;
    assert!(matches!(end, End::Complete(20)), "{end:?}");
    assert_eq!(take_log(), ["items 3", "price i2"]);

    let (end, _) = drive::<chained>(1).await;
    assert!(matches!(end, End::Complete(0)), "{end:?}");
    assert_eq!(take_log(), ["items 1"]);
}

#[test]
fn the_machine_of_nested_steps() {
    insta::assert_snapshot!("nested", nested.state_machine().to_mermaid());
    insta::assert_snapshot!("guarded", guarded.state_machine().to_mermaid());
}

/// A step on the right of `&&` and `||` (it runs only when the left does
/// not decide), and in a `while` condition (it runs each round).
#[workflow]
async fn guarded(total: u32, express: bool) -> Result<u32, WorkflowError> {
    let mut rounds: u32 = 0;
    if express && ready(total).await? {
        rounds += 100;
    }
    let either = express || ready(total + 1).await?;
    while price(&"x".repeat(rounds as usize % 7)).await? < 3 && rounds < 1000 {
        rounds += 1;
    }
    let mut left: u32 = 2;
    while let Some(each) = items(left).await?.pop() {
        left -= 1;
        // Held across `price`: the type of `pop()`'s item is not the macro's
        // to name.
        let each: String = each;
        rounds += price(&each).await?;
    }
    Ok(rounds + u32::from(either))
}

#[tokio::test]
async fn a_step_right_of_a_logical_operator_runs_only_when_needed() {
    // express: ready(6) → 100 rounds; `||` decided by `express`;
    // while: price of "xx" (100 % 7 = 2) < 3 → 101; "xxx" → stop.
    let (end, _) = drive::<guarded>((6, true)).await;
    // Then items(2) pops i1, items(1) pops i0, items(0) is empty: + 2 + 2.
    assert!(matches!(end, End::Complete(106)), "{end:?}");
    assert_eq!(
        take_log(),
        [
            "ready 6",
            "price xx",
            "price xxx",
            "items 2",
            "price i1",
            "items 1",
            "price i0",
            "items 0"
        ]
    );

    // Not express: `&&` skips ready; `||` asks ready(7) → true; while from
    // 0 rounds: "", "x", "xx" < 3, then "xxx" stops at 3 rounds.
    let (end, _) = drive::<guarded>((6, false)).await;
    assert!(matches!(end, End::Complete(8)), "{end:?}");
    assert_eq!(
        take_log(),
        [
            "ready 7",
            "price ",
            "price x",
            "price xx",
            "price xxx",
            "items 2",
            "price i1",
            "items 1",
            "price i0",
            "items 0"
        ]
    );
}

/// Locals typed by what std's names say, held across a step with no
/// annotation: `format!`, `to_string()`, `len()`, `is_empty()`, a cast,
/// `String::from` and `String::new`.
#[workflow]
async fn described(item: String, lines: Vec<Line>) -> Result<String, WorkflowError> {
    let title = format!("{item} x{}", lines.len());
    let count = lines.len();
    let wide = count as u64;
    let label = wide.to_string();
    let none = lines.is_empty();
    let owner = String::from("shop");
    let mut note = String::new();
    let total = price(&item).await?;
    note.push_str(&owner);
    Ok(format!(
        "{title} {label} {none} {note} {total} {}",
        count + 1
    ))
}

#[tokio::test]
async fn locals_typed_by_std_names_are_held_without_annotations() {
    let lines = vec![Line {
        item: "cup".to_owned(),
        price: 3,
    }];
    let (end, states) = drive::<described>(("tea".to_owned(), lines)).await;
    assert!(
        matches!(&end, End::Complete(output) if output == "tea x1 1 false shop 3 2"),
        "{end:?}"
    );
    assert_eq!(take_log(), ["price tea"]);
    // Every one of them is stored at the step.
    let at_price = &states[1];
    for name in ["title", "count", "label", "none", "owner", "note"] {
        assert!(
            at_price.contains(&format!("\"{name}\"")),
            "{name}: {at_price}"
        );
    }
}
