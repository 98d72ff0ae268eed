//! `#[workflow]` lowering of steps inside bare blocks and inside block,
//! `if` and `match` expressions whose value is bound with `let`, driven by
//! hand, with the machines they make.

use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};

#[step(readonly)]
async fn hold(account: &str) -> Result<u32, StepError> {
    record(format!("hold {account}"));
    Ok(account.len() as u32)
}

#[step(readonly)]
async fn lookup(key: &str) -> Result<Option<u32>, StepError> {
    record(format!("lookup {key}"));
    Ok(key.strip_prefix('k').and_then(|n| n.parse().ok()))
}

#[step(retriable)]
async fn settle(amount: u32) -> Result<u32, StepError> {
    record(format!("settle {amount}"));
    Ok(amount + 1)
}

/// A bare block with steps: its locals end with it, what it assigns stays.
#[workflow]
async fn scoped(account: String) -> Result<u32, WorkflowError> {
    let mut total: u32 = 1;
    {
        let held = hold(&account).await?;
        total += held;
        settle(total).await?;
    }
    let settled = settle(total * 2).await?;
    Ok(settled)
}

/// Values of a block, an `if` and a `match` with steps, bound with `let`
/// and held across later steps with no annotation.
#[workflow]
async fn valued(account: String, key: String) -> Result<u32, WorkflowError> {
    let held = { hold(&account).await? };
    // The branches' values are a literal and a computed value: rustc knows
    // their type, the macro does not, and `found` is held across `settle`.
    let found: u32 = if key.is_empty() {
        0
    } else {
        let found = lookup(&key).await?;
        found.unwrap_or(7)
    };
    // Also a literal in one arm, a product in another: annotated.
    let extra: u32 = match found {
        0 => 0,
        n if n > 100 => return Ok(n),
        n => {
            let settled = settle(n).await?;
            settled * 10
        }
    };
    let last = settle(held + found + extra).await?;
    Ok(last + held)
}

/// A `match` on a step's output as a `let`'s value, and a pattern bound
/// from a value with steps (annotated: a tuple built in two branches).
#[workflow]
async fn destructured(key: String) -> Result<u32, WorkflowError> {
    let qty = match lookup(&key).await? {
        Some(qty) => qty,
        None => return Ok(0),
    };
    let (low, high): (u32, u32) = if qty > 5 {
        let held = hold(&key).await?;
        (held, qty)
    } else {
        (qty, qty)
    };
    let settled = settle(low).await?;
    Ok(settled + high)
}

/// `let .. else` on a value with steps: the value is bound, then matched.
#[workflow]
async fn refuted(key: String) -> Result<u32, WorkflowError> {
    let Some(qty) = (match key.len() {
        0 => None,
        _ => lookup(&key).await?,
    }) else {
        return Ok(0);
    };
    let settled = settle(qty).await?;
    Ok(settled)
}

#[tokio::test]
async fn a_let_else_on_a_value_with_steps_binds_or_diverges() {
    let (end, _) = drive::<refuted>("k4".to_owned()).await;
    assert!(matches!(end, End::Complete(5)), "{end:?}");
    assert_eq!(take_log(), ["lookup k4", "settle 4"]);

    let (end, _) = drive::<refuted>("none".to_owned()).await;
    assert!(matches!(end, End::Complete(0)), "{end:?}");
    assert_eq!(take_log(), ["lookup none"]);

    let (end, _) = drive::<refuted>(String::new()).await;
    assert!(matches!(end, End::Complete(0)), "{end:?}");
    assert_eq!(take_log(), Vec::<String>::new());
}

/// A `let x;` assigned in every branch of step-free code after a step, and
/// a variable assigned on one path only, both held across later steps.
#[workflow]
async fn assigned_later(key: String) -> Result<u32, WorkflowError> {
    let exact: u32;
    let mut rounded: u32 = 100;
    let held = hold(&key).await?;
    if held > 3 {
        exact = held;
    } else {
        match held {
            0 => exact = 1,
            _ => exact = held * 2,
        }
    }
    if held > 4 {
        rounded = held;
    }
    let settled = settle(exact).await?;
    Ok(settled + exact + rounded)
}

#[tokio::test]
async fn a_variable_assigned_by_step_free_code_between_steps_is_held_from_there() {
    // held 2: exact 4, rounded stays 100, settle 4 → 5.
    let (end, states) = drive::<assigned_later>("ab".to_owned()).await;
    assert!(matches!(end, End::Complete(109)), "{end:?}");
    assert_eq!(take_log(), ["hold ab", "settle 4"]);
    // `exact` is not held across `hold` (it is assigned after it);
    // `rounded`, which one path keeps, is.
    let hold_state = states
        .iter()
        .find(|state| state.contains("Hold1"))
        .unwrap_or_else(|| panic!("{states:#?}"));
    assert!(
        !hold_state.contains("exact") && hold_state.contains("rounded"),
        "{states:#?}"
    );
    // held 5: exact 5, rounded 5, settle 5 → 6.
    let (end, _) = drive::<assigned_later>("abcde".to_owned()).await;
    assert!(matches!(end, End::Complete(16)), "{end:?}");
    take_log();
}

#[tokio::test]
async fn a_bare_block_runs_its_steps_and_keeps_what_it_assigns() {
    let (end, states) = drive::<scoped>("acct".to_owned()).await;
    assert!(matches!(end, End::Complete(11)), "{end:?}");
    assert_eq!(take_log(), ["hold acct", "settle 5", "settle 10"]);
    // The block's own `held` ends with it: the state of the step after it
    // in the block keeps only `total`.
    assert!(
        states[2].contains("Settle2") && states[2].contains("total") && !states[2].contains("held"),
        "{states:#?}"
    );
}

#[tokio::test]
async fn the_values_of_a_block_an_if_and_a_match_with_steps_are_bound() {
    let (end, states) = drive::<valued>(("ab".to_owned(), "k3".to_owned())).await;
    // held 2, found 3, extra (3 + 1) * 10 = 40, last 2 + 3 + 40 + 1 = 46.
    assert!(matches!(end, End::Complete(48)), "{end:?}");
    assert_eq!(
        take_log(),
        ["hold ab", "lookup k3", "settle 3", "settle 45"]
    );
    // A value's own variable is never held across a step.
    assert!(
        states.iter().all(|state| !state.contains("__value")),
        "{states:#?}"
    );
}

#[tokio::test]
async fn a_branch_without_steps_gives_the_value_directly() {
    let (end, _) = drive::<valued>(("ab".to_owned(), String::new())).await;
    // found 0, extra 0, last 2 + 1 = 3.
    assert!(matches!(end, End::Complete(5)), "{end:?}");
    assert_eq!(take_log(), ["hold ab", "settle 2"]);
}

#[tokio::test]
async fn a_diverging_arm_of_a_bound_match_returns() {
    let (end, _) = drive::<valued>(("ab".to_owned(), "k500".to_owned())).await;
    assert!(matches!(end, End::Complete(500)), "{end:?}");
    assert_eq!(take_log(), ["hold ab", "lookup k500"]);
}

#[tokio::test]
async fn a_match_on_a_step_as_a_value_and_a_pattern_of_a_branching_value() {
    let (end, _) = drive::<destructured>("k9".to_owned()).await;
    // qty 9 > 5: held len("k9") = 2, so (2, 9); settle 2 → 3; 3 + 9.
    assert!(matches!(end, End::Complete(12)), "{end:?}");
    assert_eq!(take_log(), ["lookup k9", "hold k9", "settle 2"]);

    let (end, _) = drive::<destructured>("k2".to_owned()).await;
    assert!(matches!(end, End::Complete(5)), "{end:?}");
    assert_eq!(take_log(), ["lookup k2", "settle 2"]);

    let (end, _) = drive::<destructured>("none".to_owned()).await;
    assert!(matches!(end, End::Complete(0)), "{end:?}");
    assert_eq!(take_log(), ["lookup none"]);
}

#[test]
fn the_machines_of_steps_in_blocks() {
    insta::assert_snapshot!("scoped", scoped.state_machine().to_mermaid());
    insta::assert_snapshot!("valued", valued.state_machine().to_mermaid());
    insta::assert_snapshot!("destructured", destructured.state_machine().to_mermaid());
    insta::assert_snapshot!("refuted", refuted.state_machine().to_mermaid());
}
