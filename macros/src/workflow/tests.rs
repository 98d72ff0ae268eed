//! Unit tests of the stages, by value, and a snapshot of the expansion.

use proc_macro2::TokenStream;
use quote::quote;

use super::lower::{EdgeIr, LabelIr, Machine, TargetIr};
use super::{Errors, expand, lower, parse};

/// Lowers a workflow; panics on errors.
fn lowered(item: TokenStream) -> Machine {
    let mut errors = Errors::default();
    let func = parse::parse(TokenStream::new(), item, &mut errors).expect("a function");
    let machine = lower::lower(&func, &mut errors);
    if let Some(error) = errors.take() {
        panic!("{error}");
    }
    machine.expect("no errors")
}

/// The errors lowering reports.
fn lowering_errors(item: TokenStream) -> Vec<String> {
    let mut errors = Errors::default();
    let func = parse::parse(TokenStream::new(), item, &mut errors).expect("a function");
    let _ = lower::lower(&func, &mut errors);
    errors
        .take()
        .map(|error| error.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default()
}

/// Per state: name and stored variables.
fn states(machine: &Machine) -> Vec<(String, Vec<String>)> {
    (0..machine.stored.len())
        .map(|state| {
            let vars = machine.stored[state]
                .iter()
                .map(|&id| machine.bindings[id].ident.to_string())
                .collect();
            (machine.state_name(state), vars)
        })
        .collect()
}

fn owned(states: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    states
        .iter()
        .map(|(name, vars)| {
            (
                name.to_string(),
                vars.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

fn edge(from: usize, to: TargetIr, label: LabelIr) -> EdgeIr {
    EdgeIr { from, to, label }
}

fn pretty(tokens: TokenStream) -> String {
    prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
}

#[test]
fn straight_sequence() {
    let machine = lowered(quote! {
        async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
            let reservation = reserve_inventory(&order).await?;
            let payment = charge_payment(&order).await?;
            Ok(Receipt { id: order.id, reservation, payment })
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["order"]),
            ("ReserveInventory1", &["order"]),
            ("ChargePayment2", &["order", "reservation"]),
        ])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Ok),
            edge(1, TargetIr::State(2), LabelIr::Ok),
            edge(1, TargetIr::Error, LabelIr::Err),
            edge(2, TargetIr::Complete, LabelIr::Ok),
            edge(2, TargetIr::Error, LabelIr::Err),
        ]
    );
    assert_eq!(machine.precedes, [(0, 1)]);
}

#[test]
fn if_else_with_a_step_in_one_branch() {
    let machine = lowered(quote! {
        async fn refund(order: Order, amount: u64) -> Result<u64, WorkflowError> {
            let note: String = format!("refund {}", order.id);
            if amount > 100 {
                approve(&order).await?;
            } else {
                println!("small refund");
            }
            pay_back(&order, &note).await?;
            Ok(amount)
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["order", "amount"]),
            ("Approve1", &["order", "amount", "note"]),
            ("PayBack2", &["order", "amount", "note"]),
        ])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Branch),
            edge(0, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::State(2), LabelIr::Ok),
            edge(1, TargetIr::Error, LabelIr::Err),
            edge(2, TargetIr::Complete, LabelIr::Ok),
            edge(2, TargetIr::Error, LabelIr::Err),
        ]
    );
}

#[test]
fn match_on_a_kept_result() {
    let machine = lowered(quote! {
        async fn pay(order: Order) -> Result<(), WorkflowError> {
            let charged = charge(&order).await;
            match charged {
                Ok(payment) => {
                    receipt(&order, &payment).await?;
                    Ok(())
                }
                Err(error) => Err(WorkflowError::new(error.to_string())),
            }
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["order"]),
            ("Charge1", &["order"]),
            ("Receipt2", &["order", "payment"])
        ])
    );
    let payment = &machine.bindings[machine.stored[2][1]];
    assert_eq!(payment.ty.display(), "<charge as Step>::Output");
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Ok),
            edge(1, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::Error, LabelIr::Branch),
            edge(2, TargetIr::Complete, LabelIr::Ok),
            edge(2, TargetIr::Error, LabelIr::Err),
        ]
    );
}

#[test]
fn format_string_capture_keeps_a_variable_alive() {
    let machine = lowered(quote! {
        async fn greet(name: String) -> Result<(), WorkflowError> {
            let label: String = name.to_uppercase();
            wait_a_bit().await?;
            tracing::info!("done with {label:?}");
            Ok(())
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[("Start", &["name"]), ("WaitABit1", &["label"])])
    );
}

#[test]
fn shadowing_not_live_together_is_fine() {
    let machine = lowered(quote! {
        async fn twice(x: u64) -> Result<u64, WorkflowError> {
            let x: u64 = x + 1;
            let y = double(x).await?;
            let x: u64 = y * 2;
            triple(x).await?;
            Ok(x)
        }
    });
    let stored = &machine.stored;
    assert_eq!(
        states(&machine),
        owned(&[("Start", &["x"]), ("Double1", &["x"]), ("Triple2", &["x"])])
    );
    assert_ne!(
        stored[1][0], stored[2][0],
        "two different bindings named `x`"
    );
}

#[test]
fn shadowing_live_together_is_an_error() {
    let errors = lowering_errors(quote! {
        async fn twice(x: u64) -> Result<u64, WorkflowError> {
            let y: u64 = x;
            if y > 0 {
                let x: u64 = 1;
                double(x).await?;
                println!("{x}");
            }
            Ok(x + y)
        }
    });
    assert_eq!(
        errors,
        [
            "two different variables named `x` are both needed after step `double`; the state stored at that step has one field per name; rename one of them"
        ]
    );
}

#[test]
fn unnameable_and_borrowed_locals_are_errors() {
    let errors = lowering_errors(quote! {
        async fn place(order: Order) -> Result<u64, WorkflowError> {
            let total = order.items.len();
            let first = &order.items[0];
            let fine = total;
            reserve(&order).await?;
            Ok(total + first.price)
        }
    });
    assert_eq!(
        errors,
        [
            "cannot name the type of `total`, held across step `reserve`; the state stored at that step declares a field for it; annotate it: `let total: Type = ...;`",
            "`first` is a reference held across step `reserve`; a workflow's state is stored between steps, so it keeps owned values; write `let first = value.clone();` or borrow again after the step",
        ]
    );
}

#[test]
fn snapshot_small_workflow() {
    insta::assert_snapshot!(pretty(expand(
        quote!(),
        quote! {
            /// Places an order.
            pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
                let reservation = reserve_inventory(&order).await?;
                if order.express {
                    notify(format!("{} ships fast", order.id)).await?;
                }
                Ok(Receipt { id: order.id, reservation })
            }
        },
    )));
}
