//! Unit tests of the stages, by value, and a snapshot of the expansion.

use proc_macro2::TokenStream;
use quote::quote;

use super::lower::{EdgeIr, LabelIr, Machine, SiteKind, TargetIr};
use super::names::type_string;
use super::{Errors, expand, lower, parse};

/// Lowers a workflow; panics on errors.
fn lowered(item: TokenStream) -> Machine {
    let mut errors = Errors::default();
    let mut func = parse::parse(TokenStream::new(), item, &mut errors).expect("a function");
    super::desugar::desugar(&mut func.body);
    let machine = lower::lower(&func, &mut errors);
    if let Some(error) = errors.take() {
        panic!("{error}");
    }
    machine.expect("no errors")
}

/// The errors lowering reports.
fn lowering_errors(item: TokenStream) -> Vec<String> {
    let mut errors = Errors::default();
    let mut func = parse::parse(TokenStream::new(), item, &mut errors).expect("a function");
    super::desugar::desugar(&mut func.body);
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
fn step_outputs_into_places_keep_what_they_write_into() {
    let machine = lowered(quote! {
        async fn sum(items: Vec<u32>) -> Result<u64, WorkflowError> {
            let mut total: u64 = 1;
            total += price(items[0]).await?;
            let mut each: Vec<u64> = vec![0; 2];
            each[1] = price(items[1]).await?;
            total = price(7).await?;
            Ok(total + each[1])
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["items"]),
            // `total += ..` reads `total` after its step.
            ("Price1", &["items", "total"]),
            // `each[1] = ..` writes into `each`, which it keeps (and not
            // `total`, which the next step's output replaces).
            ("Price2", &["items", "each"]),
            // `total = ..` replaces `total`: not kept across its step.
            ("Price3", &["each"]),
        ])
    );
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
            let total = order.items.iter().map(|i| i.price).sum();
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

/// Names of the stored variables of every state, for the loop tests.
fn stored_names(machine: &Machine, state: usize) -> Vec<String> {
    machine.stored[state]
        .iter()
        .map(|&id| machine.bindings[id].ident.to_string())
        .collect()
}

#[test]
fn loop_with_break_has_a_back_edge_and_an_exit() {
    let machine = lowered(quote! {
        async fn poll(job: Job) -> Result<u32, WorkflowError> {
            let mut tries: u32 = 0;
            loop {
                let done = check(&job).await?;
                tries += 1;
                if done {
                    break;
                }
                wait(tries).await?;
            }
            report(&job, tries).await?;
            Ok(tries)
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["job"]),
            ("Check1", &["job", "tries"]),
            ("Wait2", &["job", "tries"]),
            ("Report3", &["job", "tries"]),
        ])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Ok),
            edge(1, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::State(3), LabelIr::Branch),
            edge(1, TargetIr::Error, LabelIr::Err),
            // the back edge: the end of the body goes round to `check`
            edge(2, TargetIr::State(1), LabelIr::Branch),
            edge(2, TargetIr::Error, LabelIr::Err),
            edge(3, TargetIr::Complete, LabelIr::Ok),
            edge(3, TargetIr::Error, LabelIr::Err),
        ]
    );
    // Each step may run after itself and after the other: the cycle.
    assert_eq!(
        machine.precedes,
        [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    );
}

#[test]
fn while_loop_stores_what_the_condition_reads() {
    let machine = lowered(quote! {
        async fn drain(limit: u32) -> Result<(), WorkflowError> {
            let mut sent: u32 = 0;
            while sent < limit {
                send(sent).await?;
                sent += 1;
            }
            Ok(())
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[("Start", &["limit"]), ("Send1", &["limit", "sent"])])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Branch),
            edge(0, TargetIr::Complete, LabelIr::Branch),
            edge(1, TargetIr::State(1), LabelIr::Branch),
            edge(1, TargetIr::Complete, LabelIr::Branch),
            edge(1, TargetIr::Error, LabelIr::Err),
        ]
    );
}

#[test]
fn while_let_binds_the_popped_element_with_its_type() {
    let machine = lowered(quote! {
        async fn work(queue: Vec<Task>) -> Result<(), WorkflowError> {
            let mut queue: Vec<Task> = queue;
            while let Some(task) = queue.pop() {
                run(&task).await?;
                done(task.id).await?;
            }
            Ok(())
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["queue"]),
            ("Run1", &["queue", "task"]),
            ("Done2", &["queue", "task"]),
        ])
    );
    let task = &machine.bindings[machine.stored[1][1]];
    assert_eq!(task.ty.display(), "Task");
}

#[test]
fn for_loop_stores_its_collection_and_position() {
    let machine = lowered(quote! {
        async fn batch(items: Vec<Item>) -> Result<Vec<Hold>, WorkflowError> {
            let mut reserved: Vec<Hold> = Vec::new();
            for item in items {
                let hold = reserve_item(&item).await?;
                reserved.push(hold);
            }
            confirm(reserved.len()).await?;
            Ok(reserved)
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["items"]),
            (
                "ReserveItem1",
                &["reserved", "__for1_items", "__for1_next", "item"]
            ),
            ("Confirm2", &["reserved"]),
        ])
    );
    let types: Vec<String> = machine.stored[1]
        .iter()
        .map(|&id| machine.bindings[id].ty.display())
        .collect();
    assert_eq!(types, ["Vec<Hold>", "Vec<Item>", "usize", "Item"]);
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Branch),
            edge(0, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::State(1), LabelIr::Branch),
            edge(1, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::Error, LabelIr::Err),
            edge(2, TargetIr::Complete, LabelIr::Ok),
            edge(2, TargetIr::Error, LabelIr::Err),
        ]
    );
}

#[test]
fn for_loop_over_a_step_output_and_a_range() {
    let machine = lowered(quote! {
        async fn sync(count: u32) -> Result<(), WorkflowError> {
            let pages = list_pages(count).await?;
            for page in pages {
                fetch(&page).await?;
            }
            for round in 0..count {
                ping(round).await?;
            }
            Ok(())
        }
    });
    assert_eq!(
        stored_names(&machine, 2),
        ["count", "__for1_items", "__for1_next", "page"]
    );
    assert_eq!(stored_names(&machine, 3), ["__for2_range", "round"]);
    let types = |state: usize| -> Vec<String> {
        machine.stored[state]
            .iter()
            .map(|&id| machine.bindings[id].ty.display())
            .collect()
    };
    assert_eq!(
        types(2),
        [
            "u32",
            "Vec<<<list_pages as Step>::Output as IntoIterator>::Item>",
            "usize",
            "<<list_pages as Step>::Output as IntoIterator>::Item",
        ]
    );
    assert_eq!(types(3), ["Range<u32>", "u32"]);
}

#[test]
fn continue_and_labelled_break_in_nested_loops() {
    let machine = lowered(quote! {
        async fn grid(rows: Vec<u32>, skip: u32) -> Result<(), WorkflowError> {
            'rows: for row in rows {
                let mut column: u32 = 0;
                loop {
                    column += 1;
                    if column == skip {
                        continue;
                    }
                    if column > row {
                        continue 'rows;
                    }
                    if column > 100 {
                        break 'rows;
                    }
                    cell(row, column).await?;
                }
            }
            done().await?;
            Ok(())
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["rows", "skip"]),
            (
                "Cell1",
                &["skip", "__for1_items", "__for1_next", "row", "column"]
            ),
            ("Done2", &[]),
        ])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Branch),
            edge(0, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::State(1), LabelIr::Branch),
            edge(1, TargetIr::State(2), LabelIr::Branch),
            edge(1, TargetIr::Error, LabelIr::Err),
            edge(2, TargetIr::Complete, LabelIr::Ok),
            edge(2, TargetIr::Error, LabelIr::Err),
        ]
    );
}

#[test]
fn loop_misuse_is_reported_with_the_rewrite() {
    let errors = lowering_errors(quote! {
        async fn misuse(items: Vec<u32>) -> Result<(), WorkflowError> {
            for item in &items {
                send(*item).await?;
            }
            for item in items.iter() {
                send(*item).await?;
            }
            let total = loop {
                let n = count().await?;
                break n;
            };
            for n in 0..=3 {
                send(n).await?;
            }
            Ok(())
        }
    });
    assert_eq!(
        errors,
        [
            "`for` over `&items` borrows the collection, but a loop with steps stores the collection and its position in the workflow's state between steps, and a state holds owned values; iterate over an owned collection: `for item in items.clone() { .. }`, or over indexes: `for index in 0..items.len() { .. }`",
            "`for` over `items.iter()` borrows the collection, but a loop with steps stores the collection and its position in the workflow's state between steps, and a state holds owned values; iterate over an owned collection: `for item in items.clone() { .. }`, or over indexes: `for index in 0..items.len() { .. }`",
            "a loop with steps whose value is bound with `let` is not supported; the value of `break value` cannot be carried across the loop's steps; declare the variable first and assign it before `break`: `let x: Type; loop { ..; x = value; break; }`",
            "an inclusive range `a..=b` in a `for` loop with steps is not supported; the loop stores the rest of its range between steps as a `Range`; write the exclusive range `0..3 + 1`",
        ]
    );
}

#[test]
fn valued_break_in_a_loop_with_steps_is_an_error() {
    let errors = lowering_errors(quote! {
        async fn first(items: Vec<u32>) -> Result<(), WorkflowError> {
            loop {
                let n = count().await?;
                if n > 3 {
                    break n;
                }
            }
            Ok(())
        }
    });
    assert_eq!(
        errors,
        [
            "`break` with a value out of a loop with steps is not supported; the loop's value cannot be carried across its steps; assign a variable declared before the loop, then `break`: `let x: Type; loop { ..; x = value; break; }`"
        ]
    );
}

#[test]
fn snapshot_for_loop_workflow() {
    insta::assert_snapshot!(pretty(expand(
        quote!(),
        quote! {
            /// Reserves every item of a batch.
            pub async fn reserve_batch(items: Vec<Item>) -> Result<Vec<Hold>, WorkflowError> {
                let mut held: Vec<Hold> = Vec::new();
                for item in items {
                    if item.quantity == 0 {
                        continue;
                    }
                    let hold = reserve_item(&item).await?;
                    held.push(hold);
                }
                Ok(held)
            }
        },
    )));
}

#[test]
fn timers_and_signals_are_states_that_store_no_arguments() {
    let machine = lowered(quote! {
        async fn approve(request: Request, delay: Duration) -> Result<bool, WorkflowError> {
            notify(&request).await?;
            sagaflow::sleep(delay).await;
            let answer: Option<bool> = sagaflow::signal_timeout("approval", delay * 2).await;
            let note = sagaflow::signal::<String>("note").await;
            record(&request, &note).await?;
            Ok(answer.unwrap_or(false))
        }
    });
    // `delay` is read by the code that enters the waits, never stored past them.
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["request", "delay"]),
            ("Notify1", &["request", "delay"]),
            ("Sleep2", &["request", "delay"]),
            ("SignalTimeout3", &["request"]),
            ("Signal4", &["request", "answer"]),
            ("Record5", &["request", "answer", "note"]),
        ])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Ok),
            edge(1, TargetIr::State(2), LabelIr::Ok),
            edge(1, TargetIr::Error, LabelIr::Err),
            edge(2, TargetIr::State(3), LabelIr::Ok),
            edge(3, TargetIr::State(4), LabelIr::Ok),
            edge(4, TargetIr::State(5), LabelIr::Ok),
            edge(5, TargetIr::Complete, LabelIr::Ok),
            edge(5, TargetIr::Error, LabelIr::Err),
        ]
    );
    let note = machine
        .bindings
        .iter()
        .find(|binding| binding.ident == "note")
        .expect("bound");
    assert_eq!(note.ty.display(), "String", "typed by the turbofish");
}

#[test]
fn wait_misuse_is_reported_with_the_rewrite() {
    let errors = lowering_errors(quote! {
        async fn misuse(id: u32, name: String) -> Result<(), WorkflowError> {
            sagaflow::sleep(Duration::from_secs(1)).await?;
            let a: bool = sagaflow::signal(name).await;
            let b: Option<bool> = sagaflow::signal_timeout("b").await;
            match id {
                0 if sagaflow::signal::<bool>("go").await => {}
                _ => {}
            }
            Ok(())
        }
    });
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].contains("remove the `?`"), "{}", errors[0]);
    assert!(
        errors[1].contains("must be a string literal"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("takes 2 argument(s)"), "{}", errors[2]);
    assert!(errors[3].contains("`match` guard"), "{}", errors[3]);
}

#[test]
fn snapshot_timers_and_signals() {
    insta::assert_snapshot!(pretty(expand(
        quote!(),
        quote! {
            pub async fn approve(request: Request) -> Result<bool, WorkflowError> {
                notify(&request).await?;
                sagaflow::set_status("waiting");
                let answer: Option<bool> =
                    sagaflow::signal_timeout("approval", Duration::from_secs(3600)).await;
                sagaflow::sleep_until(request.deadline).await;
                Ok(answer.unwrap_or(false))
            }
        },
    )));
}

/// Every error `check` and `lower` report, in order.
fn all_errors(item: TokenStream) -> Vec<String> {
    let mut errors = Errors::default();
    let func = parse::parse(TokenStream::new(), item, &mut errors).expect("a function");
    let _ = super::check::check(&func, &mut errors);
    let _ = lower::lower(&func, &mut errors);
    errors
        .take()
        .map(|error| error.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_join_is_one_state_storing_what_its_branches_and_the_rest_read() {
    let machine = lowered(quote! {
        async fn book_trip(trip: Trip, note: String) -> Result<Itinerary, WorkflowError> {
            let (flight, room) = sagaflow::join!(book_flight(&trip), book_hotel(&trip, &note))?;
            issue(&trip, &flight).await?;
            Ok(Itinerary { flight, room })
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["trip", "note"]),
            ("Join1", &["trip", "note"]),
            ("Issue2", &["trip", "flight", "room"]),
        ])
    );
    let SiteKind::Join { branches } = &machine.sites[0].kind else {
        panic!("the first site is a join");
    };
    let steps: Vec<String> = branches
        .iter()
        .map(|branch| type_string(&branch.step))
        .collect();
    assert_eq!(steps, ["book_flight", "book_hotel"]);
    assert_eq!(branches[1].args.len(), 2);
    assert_eq!(
        machine.bindings[machine.stored[2][1]].ty.display(),
        "<book_flight as Step>::Output"
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
fn a_kept_join_result_and_a_join_statement() {
    let machine = lowered(quote! {
        async fn fan(job: Job) -> Result<u32, WorkflowError> {
            sagaflow::join!(warm(&job), prime(&job))?;
            let outcome = sagaflow::join!(left(&job), right(&job));
            match outcome {
                Ok((l, r)) => Ok(l + r),
                Err(e) => Err(e.into()),
            }
        }
    });
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["job"]),
            ("Join1", &["job"]),
            ("Join2", &["job"])
        ])
    );
    let outcome = machine
        .bindings
        .iter()
        .find(|binding| binding.ident == "outcome")
        .expect("bound");
    assert_eq!(
        outcome.ty.display(),
        "Result<(<left as Step>::Output, <right as Step>::Output), StepError>"
    );
    // `?` on the first join only: the second's error goes through the body.
    assert!(
        machine
            .edges
            .contains(&edge(1, TargetIr::Error, LabelIr::Err))
    );
    assert!(
        !machine
            .edges
            .contains(&edge(2, TargetIr::Error, LabelIr::Err))
    );
}

#[test]
fn join_misuse_is_reported_with_the_rewrite() {
    let errors = all_errors(quote! {
        async fn misuse(trip: Trip) -> Result<(), WorkflowError> {
            let (a, b) = sagaflow::join!(book_flight(&trip).await, book_hotel(&trip))?;
            let one = sagaflow::join!(book_flight(&trip))?;
            let (c, d) = sagaflow::join!(book_flight(&trip), 42)?;
            let f = || sagaflow::join!(book_flight(&trip), book_hotel(&trip));
            let (e, g) = tokio::join!(book_flight(&trip), book_hotel(&trip));
            Ok(())
        }
    });
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(errors[0].contains("without `.await`"), "{}", errors[0]);
    assert!(
        errors[0].contains("write `book_flight(&trip)`"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("two or more branches"), "{}", errors[1]);
    assert!(
        errors[1].contains("book_flight(..).await?"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("must be a step call"), "{}", errors[2]);
    assert!(errors[3].contains("inside a closure"), "{}", errors[3]);
    assert!(
        errors[4].contains("`tokio::join!` is not supported"),
        "{}",
        errors[4]
    );
    assert!(errors[4].contains("sagaflow::join!"), "{}", errors[4]);
}

#[test]
fn snapshot_join() {
    insta::assert_snapshot!(pretty(expand(
        quote!(),
        quote! {
            pub async fn book_trip(trip: Trip) -> Result<Itinerary, WorkflowError> {
                let (flight, room) = sagaflow::join!(book_flight(&trip), book_hotel(&trip))?;
                Ok(Itinerary { flight, room })
            }
        },
    )));
}

#[test]
fn a_child_workflow_is_a_state_named_after_the_child() {
    let machine = lowered(quote! {
        async fn fulfil(order: Order, note: String) -> Result<Receipt, WorkflowError> {
            let payment = charge(&order).await?;
            let shipment = sagaflow::child(ship_order, make_input(&order, &note)).await?;
            let kept = sagaflow::child(flows::audit, order.id.clone()).await;
            invoice(&order, &shipment).await?;
            Ok(Receipt { payment, shipment, audited: kept.is_ok() })
        }
    });
    // `note` is read by the code that enters the child's state (the input is
    // stored in the state's `__child` field), never stored past it.
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["order", "note"]),
            ("Charge1", &["order", "note"]),
            ("ShipOrder2", &["order", "payment"]),
            ("Audit3", &["order", "payment", "shipment"]),
            ("Invoice4", &["order", "payment", "shipment", "kept"]),
        ])
    );
    assert_eq!(
        machine.edges,
        [
            edge(0, TargetIr::State(1), LabelIr::Ok),
            edge(1, TargetIr::State(2), LabelIr::Ok),
            edge(1, TargetIr::Error, LabelIr::Err),
            edge(2, TargetIr::State(3), LabelIr::Ok),
            edge(2, TargetIr::Error, LabelIr::Err),
            edge(3, TargetIr::State(4), LabelIr::Ok),
            edge(4, TargetIr::Complete, LabelIr::Ok),
            edge(4, TargetIr::Error, LabelIr::Err),
        ]
    );
    let type_of = |name: &str| {
        machine
            .bindings
            .iter()
            .find(|binding| binding.ident == name)
            .expect("bound")
            .ty
            .display()
    };
    assert_eq!(type_of("shipment"), "<ship_order as Workflow>::Output");
    assert_eq!(
        type_of("kept"),
        "Result<<flows::audit as Workflow>::Output, StepError>"
    );
    assert!(matches!(
        &machine.sites[1].kind,
        super::lower::SiteKind::Child { workflow, .. } if workflow.is_ident("ship_order")
    ));
}

#[test]
fn child_misuse_is_reported_with_the_rewrite() {
    let errors = lowering_errors(quote! {
        async fn misuse(order: Order) -> Result<(), WorkflowError> {
            let a = sagaflow::child(ship_order).await?;
            let b = sagaflow::child(pick_flow(), order.clone()).await?;
            Ok(())
        }
    });
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for error in &errors {
        assert!(
            error.contains("write `let output = sagaflow::child(ship_order, input).await?;`"),
            "{error}"
        );
    }
}

#[test]
fn a_child_in_a_closure_is_reported() {
    let mut errors = Errors::default();
    let func = parse::parse(
        TokenStream::new(),
        quote! {
            async fn misuse(orders: Vec<Order>) -> Result<(), WorkflowError> {
                let run = || async { sagaflow::child(ship_order, orders[0].clone()).await };
                Ok(())
            }
        },
        &mut errors,
    )
    .expect("a function");
    let _ = super::check::check(&func, &mut errors);
    let errors: Vec<String> = errors
        .take()
        .map(|error| error.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("`sagaflow::child` is a child workflow inside a closure"),
        "{}",
        errors[0]
    );
}

#[test]
fn snapshot_child_workflow() {
    insta::assert_snapshot!(pretty(expand(
        quote!(),
        quote! {
            pub async fn fulfil_order(order: Order) -> Result<Receipt, WorkflowError> {
                let payment = charge_card(&order).await?;
                let shipment = sagaflow::child(ship_order, order.clone()).await?;
                Ok(Receipt { payment, shipment })
            }
        },
    )));
}

#[test]
fn locals_from_step_outputs_and_copies_are_typed_without_annotations() {
    let machine = lowered(quote! {
        async fn quote_order(order: Order) -> Result<u64, WorkflowError> {
            let copy = order.clone();
            let (net, tax) = split(&copy).await?;
            let Some(extra) = surcharge(&copy).await? else { return Ok(0) };
            finish(&copy).await?;
            Ok(net + tax + extra)
        }
    });
    let types: Vec<(String, String)> = machine
        .stored
        .last()
        .expect("states")
        .iter()
        .map(|&id| {
            let binding = &machine.bindings[id];
            (binding.ident.to_string(), binding.ty.display())
        })
        .collect();
    assert_eq!(
        types,
        [
            ("copy".to_owned(), "Order".to_owned()),
            (
                "net".to_owned(),
                "<<split as Step>::Output as TupleElement<0>>::Type".to_owned()
            ),
            (
                "tax".to_owned(),
                "<<split as Step>::Output as TupleElement<1>>::Type".to_owned()
            ),
            (
                "extra".to_owned(),
                "<<surcharge as Step>::Output as OptionParts>::Some".to_owned()
            ),
        ]
    );
}

/// The body after the desugaring stage, pretty-printed.
fn desugared(item: TokenStream) -> String {
    let mut errors = Errors::default();
    let mut func = parse::parse(TokenStream::new(), item, &mut errors).expect("a function");
    super::desugar::desugar(&mut func.body);
    let block = &func.body;
    pretty(quote!(fn body() #block))
}

#[test]
fn a_value_with_steps_becomes_a_variable_each_tail_assigns() {
    let body = desugared(quote! {
        async fn pay(account: String, key: String) -> Result<u32, WorkflowError> {
            let held = { hold(&account).await? };
            let found = match key.len() {
                0 => 0,
                1 => return Ok(1),
                _ => {
                    let found = lookup(&key).await?;
                    if found > 3 { settle(found).await? } else { found }
                }
            };
            let qty = match lookup(&key).await? {
                Some(qty) => qty,
                None => return Ok(0),
            };
            {
                settle(held + found + qty).await?;
            }
            Ok(held)
        }
    });
    assert_eq!(
        body,
        "fn body() {
    let __value1;
    match () {
        () => {
            __value1 = hold(&account).await?;
        }
    };
    let held = __value1;
    let __value2;
    match key.len() {
        0 => {
            __value2 = 0;
        }
        1 => return Ok(1),
        _ => {
            let found = lookup(&key).await?;
            if found > 3 {
                __value2 = settle(found).await?;
            } else {
                __value2 = found;
            };
        }
    };
    let found = __value2;
    let __step3 = lookup(&key).await?;
    let qty = match __step3 {
        Some(qty) => qty,
        None => return Ok(0),
    };
    match () {
        () => {
            settle(held + found + qty).await?;
        }
    }
    Ok(held)
}
"
    );
}

#[test]
fn values_of_blocks_are_typed_by_their_tails_and_never_stored() {
    let machine = lowered(quote! {
        async fn pay(account: String, key: String) -> Result<u32, WorkflowError> {
            let held = { hold(&account).await? };
            let qty = match lookup(&key).await? {
                Some(qty) => qty,
                None => return Ok(0),
            };
            {
                let fee = settle(held).await?;
                audit(&key).await?;
                notify(fee).await?;
            }
            let last = settle(qty).await?;
            Ok(last + held)
        }
    });
    // A step's state keeps its arguments. `__value1` lives from `hold` to
    // the next line only; `held` and `qty` are held across later steps with
    // the types of `hold`'s output and of the `Some` of `lookup`'s; the
    // block's `fee` ends with it.
    assert_eq!(
        states(&machine),
        owned(&[
            ("Start", &["account", "key"]),
            ("Hold1", &["account", "key"]),
            ("Lookup2", &["key", "held"]),
            ("Settle3", &["key", "held", "qty"]),
            ("Audit4", &["key", "held", "qty", "fee"]),
            ("Notify5", &["held", "qty", "fee"]),
            ("Settle6", &["held", "qty"]),
        ])
    );
    let type_of = |name: &str| {
        let binding = machine
            .bindings
            .iter()
            .find(|binding| binding.ident == name)
            .expect("a binding");
        type_string(&super::codegen::type_tokens(&binding.ty))
    };
    assert_eq!(
        type_of("held"),
        "<hold as::sagaflow::__private::Step>::Output"
    );
    assert!(type_of("qty").contains("lookup"), "{}", type_of("qty"));
    // `let __value1;` is left out of the segment that never assigns it.
    assert!(machine.unassigned[0].contains("__value1"));
    assert!(!machine.unassigned[1].contains("__value1"));
    // No choice is made at a bare block.
    assert!(
        machine
            .edges
            .contains(&edge(0, TargetIr::State(1), LabelIr::Ok))
    );
}

#[test]
fn a_step_nested_in_an_expression_runs_first_unless_code_before_it_could_act() {
    let body = desugared(quote! {
        async fn pay(item: String, qty: u32, flag: bool) -> Result<u32, WorkflowError> {
            let total = price(&item).await? * qty;
            let fee = quote(price(&item).await? + 1).await?.fee;
            if ready(total).await? {}
            let late = u32::from(flag) + price(&item).await?;
            Ok(total + quote(item.len()).await?.total)
        }
    });
    assert_eq!(
        body,
        "fn body() {
    let mut __step1 = price(&item).await?;
    let total = __step1 * qty;
    let mut __step2 = price(&item).await?;
    let mut __step3 = quote(__step2 + 1).await?;
    let fee = __step3.fee;
    let mut __step4 = ready(total).await?;
    if __step4 {}
    let late = u32::from(flag) + price(&item).await?;
    let mut __step5 = quote(item.len()).await?;
    Ok(total + __step5.total)
}
"
    );
}

/// Parses a workflow with attribute arguments `args`: the function and the
/// errors of parsing and checking it.
fn parsed_with(args: TokenStream, item: TokenStream) -> (parse::WorkflowFn, Vec<String>) {
    let mut errors = Errors::default();
    let func = parse::parse(args, item, &mut errors).expect("a function");
    let _ = super::check::check(&func, &mut errors);
    let errors = errors
        .take()
        .map(|error| error.into_iter().map(|e| e.to_string()).collect())
        .unwrap_or_default();
    (func, errors)
}

#[test]
fn declared_signals_and_query_are_parsed() {
    let (func, errors) = parsed_with(
        quote!(version = 2, signals(approval: Decision, r#type: HashMap<String, u32>), query = Vec<Stage>),
        quote! {
            async fn approve(id: u32) -> Result<(), WorkflowError> { Ok(()) }
        },
    );
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(func.options.version, 2);
    let signals: Vec<(String, String)> = func
        .options
        .signals
        .as_ref()
        .expect("declared")
        .iter()
        .map(|signal| (signal.text(), type_string(&signal.ty)))
        .collect();
    assert_eq!(
        signals,
        [
            ("approval".to_owned(), "Decision".to_owned()),
            // A raw identifier names the signal without its `r#`.
            ("type".to_owned(), "HashMap<String, u32>".to_owned()),
        ]
    );
    assert_eq!(
        func.options.query.as_ref().map(type_string).as_deref(),
        Some("Vec<Stage>")
    );
    // Without them: untyped, as before; `signals()` declares none.
    let (func, _) = parsed_with(
        quote!(),
        quote!(
            async fn a(id: u32) -> Result<(), E> {
                Ok(())
            }
        ),
    );
    assert!(func.options.signals.is_none() && func.options.query.is_none());
    let (func, _) = parsed_with(
        quote!(signals()),
        quote!(
            async fn a(id: u32) -> Result<(), E> {
                Ok(())
            }
        ),
    );
    assert_eq!(func.options.signals.map(|signals| signals.len()), Some(0));
}

#[test]
fn malformed_declarations_are_reported_with_the_form_to_write() {
    let item = quote!(
        async fn a(id: u32) -> Result<(), E> {
            Ok(())
        }
    );
    for (args, expected) in [
        (
            quote!(signals(approval)),
            "`signals(approval: Decision, cancel: ())`",
        ),
        (
            quote!(signals = "approval"),
            "`signals(approval: Decision, cancel: ())`",
        ),
        (
            quote!(signals(a: bool, a: u32)),
            "signal `a` is declared twice",
        ),
        (quote!(query(Stage)), "write e.g. `query = OrderStatus`"),
        (
            quote!(query = Stage, query = Other),
            "`query` is given twice",
        ),
        (
            quote!(querry = Stage),
            "unknown `#[workflow]` option `querry`",
        ),
    ] {
        let (_, errors) = parsed_with(args.clone(), item.clone());
        assert_eq!(errors.len(), 1, "{args}: {errors:#?}");
        assert!(errors[0].contains(expected), "{args}: {}", errors[0]);
    }
}

#[test]
fn a_wait_for_an_undeclared_signal_is_reported_with_the_declared_ones() {
    let body = quote! {
        async fn approve(id: u32) -> Result<(), WorkflowError> {
            let a: Decision = sagaflow::signal("approval").await;
            let b: Option<bool> = sagaflow::signal_timeout("aproval", wait).await;
            let c: bool = sagaflow::signal("cancel-order").await;
            Ok(())
        }
    };
    let (_, errors) = parsed_with(
        quote!(signals(approval: Decision, note: String)),
        body.clone(),
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains(
            "`sagaflow::signal_timeout` waits for signal `aproval`, which this workflow does not declare; it declares `approval: Decision`, `note: String`"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].ends_with("or declare it: `signals(.., aproval: T)`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("declared names are Rust identifiers"),
        "{}",
        errors[1]
    );
    let (_, errors) = parsed_with(quote!(signals()), body.clone());
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("it declares none (`signals()`)"),
        "{}",
        errors[0]
    );
    // A workflow that declares no signals waits for any, untyped.
    let (_, errors) = parsed_with(quote!(query = Stage), body);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn a_declared_signal_types_the_waits_that_write_no_type() {
    let mut errors = Errors::default();
    let mut func = parse::parse(
        quote!(signals(approval: Decision, note: String)),
        quote! {
            async fn approve(request: Request) -> Result<String, WorkflowError> {
                let decision = sagaflow::signal("approval").await;
                let note = sagaflow::signal_timeout("note", wait).await;
                let again: Decision = sagaflow::signal("approval").await;
                record(&request).await?;
                Ok(format!("{} {:?} {}", decision.by, note, again.by))
            }
        },
        &mut errors,
    )
    .expect("a function");
    super::desugar::desugar(&mut func.body);
    let machine = lower::lower(&func, &mut errors).expect("no errors");
    let ty = |name: &str| {
        machine
            .bindings
            .iter()
            .find(|binding| binding.ident == name)
            .expect("bound")
            .ty
            .display()
    };
    assert_eq!(ty("decision"), "Decision");
    assert_eq!(ty("note"), "Option<String>");
    assert_eq!(ty("again"), "Decision");
    let kinds: Vec<(Option<String>, Option<String>)> = machine
        .sites
        .iter()
        .filter_map(|site| match &site.kind {
            SiteKind::Signal {
                value, declared, ..
            } => Some((
                value.as_ref().map(type_string),
                declared.as_ref().map(type_string),
            )),
            _ => None,
        })
        .collect();
    // What is written stays apart from the declaration: codegen checks one
    // against the other.
    assert_eq!(
        kinds,
        [
            (None, Some("Decision".to_owned())),
            (None, Some("String".to_owned())),
            (Some("Decision".to_owned()), Some("Decision".to_owned())),
        ]
    );
}

#[test]
fn snapshot_typed_signals_and_query() {
    insta::assert_snapshot!(pretty(expand(
        quote!(signals(approval: Decision, note: String), query = Stage),
        quote! {
            pub async fn approve(request: Request) -> Result<bool, WorkflowError> {
                sagaflow::set_status(Stage::Waiting);
                let decision = sagaflow::signal("approval").await;
                let note: Option<String> =
                    sagaflow::signal_timeout("note", Duration::from_secs(3600)).await;
                notify(&request, note).await?;
                Ok(decision.approved)
            }
        },
    )));
}
