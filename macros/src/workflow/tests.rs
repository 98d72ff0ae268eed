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
fn debug_print() {
    println!(
        "{}",
        pretty(expand(
            quote!(),
            quote! {
            async fn buy(item: String, customer: String) -> Result<String, WorkflowError> {
                let quoted = quote_price(&item).await;
                let price: u64;
                match quoted {
                    Ok(quoted) if quoted > 100 => {
                        send_mail(&customer, format!("{item} is pricey")).await?;
                        price = quoted;
                    }
                    Ok(quoted) => price = quoted,
                    Err(error) => {
                        send_mail(&customer, format!("no {item}: {error}")).await?;
                        return Err(WorkflowError::new("unavailable"));
                    }
                }
                Ok(price)
            }
                        }
        ))
    );
}
