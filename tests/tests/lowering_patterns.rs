//! `#[workflow]` lowering of a step's output tested or destructured in
//! place: `let … else`, `if let`, `else if let`, `match` and `while let` on
//! a step call, driven by hand, with the machines they make.

use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};

#[step(readonly)]
async fn parse_qty(line: &str) -> Result<Option<u32>, StepError> {
    record(format!("parse {line}"));
    Ok(line.parse().ok())
}

#[step(readonly)]
async fn discount(qty: u32) -> Result<Option<u32>, StepError> {
    record(format!("discount {qty}"));
    Ok((qty >= 10).then_some(5))
}

#[step(readonly)]
async fn coupon(qty: u32) -> Result<Option<u32>, StepError> {
    record(format!("coupon {qty}"));
    Ok((qty >= 3).then_some(1))
}

#[step(retriable)]
async fn book(qty: u32, off: u32) -> Result<u32, StepError> {
    record(format!("book {qty} -{off}"));
    Ok(qty * 10 - off)
}

/// Every form that tests a step's output in place.
#[workflow]
async fn order_line(line: String) -> Result<u32, WorkflowError> {
    let Some(qty) = parse_qty(&line).await? else {
        return Ok(0);
    };
    let mut off: u32 = 0;
    if let Some(d) = discount(qty).await? {
        off = d;
    } else if let Some(c) = coupon(qty).await? {
        off = c;
    }
    match book(qty, off).await? {
        0 => Ok(0),
        booked => Ok(booked),
    }
}

#[step(readonly)]
async fn next_job(left: u32) -> Result<Option<u32>, StepError> {
    record(format!("next {left}"));
    Ok(left.checked_sub(1))
}

#[step(retriable)]
async fn run_job(job: u32) -> Result<(), StepError> {
    record(format!("run {job}"));
    Ok(())
}

/// `while let` on a step: the step is called again each round.
#[workflow]
async fn drain(count: u32) -> Result<u32, WorkflowError> {
    let mut ran: u32 = 0;
    while let Some(job) = next_job(count - ran).await? {
        run_job(job).await?;
        ran += 1;
    }
    Ok(ran)
}

#[tokio::test]
async fn let_else_on_a_step_returns_early_when_the_pattern_fails() {
    let (end, _) = drive::<order_line>("many".to_owned()).await;
    assert!(matches!(end, End::Complete(0)));
    assert_eq!(take_log(), ["parse many"]);
}

#[tokio::test]
async fn if_let_on_a_step_takes_the_branch_its_output_matches() {
    let (end, _) = drive::<order_line>("12".to_owned()).await;
    assert!(matches!(end, End::Complete(115)));
    assert_eq!(take_log(), ["parse 12", "discount 12", "book 12 -5"]);
}

#[tokio::test]
async fn else_if_let_on_a_step_runs_only_when_the_first_fails() {
    let (end, states) = drive::<order_line>("4".to_owned()).await;
    assert!(matches!(end, End::Complete(39)));
    assert_eq!(
        take_log(),
        ["parse 4", "discount 4", "coupon 4", "book 4 -1"]
    );
    // The output of a step tested in place is not kept in any state.
    assert!(
        states.iter().all(|state| !state.contains("__step")),
        "{states:#?}"
    );
}

#[tokio::test]
async fn while_let_on_a_step_calls_it_each_round_until_it_fails_to_match() {
    let (end, _) = drive::<drain>(3).await;
    assert!(matches!(end, End::Complete(3)));
    assert_eq!(
        take_log(),
        [
            "next 3", "run 2", "next 2", "run 1", "next 1", "run 0", "next 0"
        ]
    );
}

#[test]
fn the_machines_of_steps_tested_in_place() {
    insta::assert_snapshot!("order_line", order_line.state_machine().to_mermaid());
    insta::assert_snapshot!("drain", drain.state_machine().to_mermaid());
}
