//! Stage 4: the lowered machine as Rust: the unit struct, the state enum, the
//! `Workflow` impl with its resume segments, the static `StateMachine`, and
//! the compile-time saga checks.

use std::hash::Hasher;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Pat, Stmt, Type};

use super::check::CallSite;
use super::desugar;
use super::rename;
use std::collections::BTreeSet;

use super::lower::{
    Block, Item, LabelIr, LoopHead, LoopItem, Machine, NodeId, Part, SiteKind, TargetIr, VarType,
    camel_case,
};
use super::names::type_string;
use super::parse::WorkflowFn;

struct Names {
    state: Ident,
    ok: Type,
    err: Type,
}

// Input:  `async fn place_order(order: Order) -> Result<Receipt, WorkflowError> { .. }`, lowered
// Output: `struct place_order;`, `enum PlaceOrderState { Start { order }, ReserveInventory1 { .. }, .. }`,
//         `impl Workflow for place_order { .. }` and the `const _` saga checks
/// Generates the workflow.
pub fn generate(func: &WorkflowFn, machine: &Machine) -> TokenStream {
    let names = Names {
        state: format_ident!(
            "{}State",
            camel_case(&func.name.to_string()),
            span = func.name.span()
        ),
        ok: func.ok_type.clone().expect("checked by parse"),
        err: func.err_type.clone().expect("checked by parse"),
    };
    let workflow = &func.name;
    let Names { state, ok, .. } = &names;
    let vis = &func.vis;
    let attrs = &func.attrs;
    let name = func.options.name.clone();

    let variants = (0..machine.stored.len()).map(|index| {
        let variant = format_ident!("{}", machine.state_name(index));
        let fields = machine.stored[index].iter().map(|&id| {
            let binding = &machine.bindings[id];
            let ident = &binding.ident;
            let ty = type_tokens(&binding.ty);
            let shown = rename::shown(ident);
            if *ident == shown {
                quote!(#ident: #ty)
            } else {
                quote!(#[serde(rename = #shown)] #ident: #ty)
            }
        });
        let timer = (index > 0 && machine.sites[index - 1].kind.has_timer())
            .then(|| quote!(__timer: ::sagaflow::__private::Timer));
        let slots = (index > 0 && matches!(machine.sites[index - 1].kind, SiteKind::Join { .. }))
            .then(|| quote!(__branches: ::sagaflow::__private::JoinSlots));
        let child = index
            .checked_sub(1)
            .and_then(|site| match &machine.sites[site].kind {
                // The input as JSON: the state names no child's type, so a
                // name that is not a workflow is not an error here as well.
                SiteKind::Child { .. } => Some(quote!(__child: ::sagaflow::__private::ChildInput)),
                _ => None,
            });
        let fields = fields.chain(timer).chain(slots).chain(child);
        quote!(#variant { #(#fields),* })
    });
    let state_names = (0..machine.stored.len()).map(|index| {
        let text = machine.state_name(index);
        let variant = format_ident!("{}", text);
        quote!(#state::#variant { .. } => #text)
    });

    let input = input_type(func);
    let begin = begin_fn(func, state);
    let resume_arms: Vec<TokenStream> = (0..machine.stored.len())
        .map(|index| resume_arm(machine, &names, index))
        .collect();
    let static_machine = state_machine(machine, func, ok);
    let compensate = compensate_fn(machine);
    let suspension = suspension_fn(machine, state);
    let checks = checks(machine);
    let storable = storable_checks(machine);
    let doc = format!(
        " The states of workflow `{name}`: `Start`, then one per step call, timer and signal wait, each holding the variables live there."
    );

    quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #workflow;

        #storable

        #[doc = #doc]
        #[doc(hidden)]
        #[derive(::sagaflow::__private::serde::Serialize, ::sagaflow::__private::serde::Deserialize)]
        #[serde(crate = "::sagaflow::__private::serde")]
        #[allow(clippy::large_enum_variant)]
        #vis enum #state {
            #(#variants),*
        }

        #[allow(
            unreachable_code, unused_variables, unused_mut, unused_parens, unused_braces,
            unused_must_use, unused_assignments, unused_labels, irrefutable_let_patterns,
            redundant_semicolons, clippy::all, clippy::pedantic, clippy::nursery
        )]
        impl ::sagaflow::__private::Workflow for #workflow {
            const NAME: &'static str = #name;
            type Input = #input;
            type Output = #ok;
            type State = #state;

            fn state_machine(&self) -> &'static ::sagaflow::__private::StateMachine {
                #static_machine
                &MACHINE
            }

            #begin

            fn state_name(state: &#state) -> &'static str {
                match state { #(#state_names,)* }
            }

            fn resume(
                state: #state,
                __driver: &mut ::sagaflow::__private::Driver,
            ) -> impl ::std::future::Future<Output = ::sagaflow::__private::Transition<#state, #ok>> + Send + '_ {
                async move {
                    match state {
                        #(#resume_arms)*
                    }
                }
            }

            #suspension

            #compensate
        }

        #checks
    }
}

// Input:  states `Sleep2 { .., __timer }` and `Signal3 { .. }` waiting for "approval"
// Output: `fn suspension(state) { match state { Sleep2 { __timer, .. } => Some(Timer(*__timer)), .. } }`
/// What each timer's and signal's state waits for, for the runtime; `None`
/// when the workflow has neither (the trait's default).
fn suspension_fn(machine: &Machine, state: &Ident) -> TokenStream {
    let arms: Vec<TokenStream> = machine
        .sites
        .iter()
        .filter_map(|site| {
            let variant = &site.variant;
            let arm = match &site.kind {
                SiteKind::Step | SiteKind::Join { .. } => return None,
                SiteKind::Child { workflow, .. } => {
                    // On the child's name, like every use of it: a name that
                    // is not a workflow is then one error, not one per use.
                    let name = quote_spanned!(syn::spanned::Spanned::span(workflow)=> <#workflow as ::sagaflow::__private::Workflow>::NAME);
                    quote! {
                    #state::#variant { __child, .. } => ::sagaflow::__private::Some(
                        ::sagaflow::__private::Suspension::Child {
                            workflow: #name,
                            input: ::sagaflow::__private::child_json(__child),
                        },
                    ),
                    }
                }
                SiteKind::Sleep { .. } => quote! {
                    #state::#variant { __timer, .. } => ::sagaflow::__private::Some(
                        ::sagaflow::__private::Suspension::Timer(*__timer),
                    ),
                },
                SiteKind::Signal { name, timeout, .. } => {
                    let (pattern, timeout) = match timeout {
                        Some(_) => (
                            quote!(#state::#variant { __timer, .. }),
                            quote!(::sagaflow::__private::Some(*__timer)),
                        ),
                        None => (
                            quote!(#state::#variant { .. }),
                            quote!(::sagaflow::__private::None),
                        ),
                    };
                    quote! {
                        #pattern => ::sagaflow::__private::Some(
                            ::sagaflow::__private::Suspension::Signal { name: #name, timeout: #timeout },
                        ),
                    }
                }
            };
            Some(arm)
        })
        .collect();
    if arms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn suspension(state: &#state) -> ::sagaflow::__private::Option<::sagaflow::__private::Suspension> {
            match state {
                #(#arms)*
                _ => ::sagaflow::__private::None,
            }
        }
    }
}

/// The field type of a stored variable.
pub(super) fn type_tokens(ty: &VarType) -> TokenStream {
    match ty {
        VarType::Written(ty) => quote!(#ty),
        VarType::StepOutput(step) => quote!(<#step as ::sagaflow::__private::Step>::Output),
        VarType::StepResult(step) => quote!(
            ::sagaflow::__private::Result<<#step as ::sagaflow::__private::Step>::Output, ::sagaflow::__private::StepError>
        ),
        VarType::ChildOutput(child) => {
            quote!(<#child as ::sagaflow::__private::Workflow>::Output)
        }
        VarType::ChildResult(child) => quote!(
            ::sagaflow::__private::Result<<#child as ::sagaflow::__private::Workflow>::Output, ::sagaflow::__private::StepError>
        ),
        VarType::StepError => quote!(::sagaflow::__private::StepError),
        VarType::Part(of, part) => {
            let of = type_tokens(of);
            match part {
                Part::Some => quote!(<#of as ::sagaflow::__private::OptionParts>::Some),
                Part::Ok => quote!(<#of as ::sagaflow::__private::ResultParts>::Ok),
                Part::Err => quote!(<#of as ::sagaflow::__private::ResultParts>::Err),
                Part::Element(index) => {
                    let index = proc_macro2::Literal::usize_unsuffixed(*index);
                    quote!(<#of as ::sagaflow::__private::TupleElement<#index>>::Type)
                }
            }
        }
        VarType::Element(collection) => {
            let collection = type_tokens(collection);
            quote!(<#collection as ::std::iter::IntoIterator>::Item)
        }
        VarType::VecOf(element) => {
            let element = type_tokens(element);
            quote!(::std::vec::Vec<#element>)
        }
        VarType::RangeOf(element) => {
            let element = type_tokens(element);
            quote!(::std::ops::Range<#element>)
        }
        VarType::JoinOutput(steps) => join_output_tokens(steps),
        VarType::Operated(left, op, right) => {
            let left = type_tokens(left);
            let right = type_tokens(right);
            let op = Ident::new(op, Span::call_site());
            quote!(<#left as ::core::ops::#op<#right>>::Output)
        }
        VarType::JoinResult(steps) => {
            let outputs = join_output_tokens(steps);
            quote!(::sagaflow::__private::Result<#outputs, ::sagaflow::__private::StepError>)
        }
        VarType::Unknown => quote!(_),
    }
}

/// `(<a as Step>::Output, <b as Step>::Output)`: a join's outputs.
fn join_output_tokens(steps: &[syn::Path]) -> TokenStream {
    let outputs = steps
        .iter()
        .map(|step| quote!(<#step as ::sagaflow::__private::Step>::Output));
    quote!((#(#outputs,)*))
}

/// One parameter: its type; several: a tuple; none: `()`.
fn input_type(func: &WorkflowFn) -> TokenStream {
    match func.params.as_slice() {
        [param] => {
            let ty = &param.ty;
            quote!(#ty)
        }
        params => {
            let types = params.iter().map(|param| &param.ty);
            quote!((#(#types,)*))
        }
    }
}

fn begin_fn(func: &WorkflowFn, state: &Ident) -> TokenStream {
    let input = input_type(func);
    let names: Vec<&Ident> = func.params.iter().map(|param| &param.name).collect();
    match names.as_slice() {
        [name] => quote! {
            fn begin(input: #input) -> #state { #state::Start { #name: input } }
        },
        names => quote! {
            fn begin(input: #input) -> #state {
                let (#(#names,)*) = input;
                #state::Start { #(#names),* }
            }
        },
    }
}

// Input:  state `ChargePayment2` storing `order`, `reservation`
// Output: `PlaceOrderState::ChargePayment2 { mut order, mut reservation } => { <args>; <attempt>; segment(<continuation>) }`
fn resume_arm(machine: &Machine, names: &Names, index: usize) -> TokenStream {
    let Names { state, ok, err } = names;
    let variant = format_ident!("{}", machine.state_name(index));
    let fields = machine.stored[index]
        .iter()
        .map(|&id| &machine.bindings[id].ident);
    let items = &machine.items;
    let declared = machine.assigned[index].iter().map(|&id| {
        let binding = &machine.bindings[id];
        let ident = &binding.ident;
        match &binding.ty {
            VarType::Unknown => quote!(let mut #ident;),
            ty => {
                let ty = type_tokens(ty);
                quote!(let mut #ident: #ty;)
            }
        }
    });
    let continuation = continuation(machine, state, index);
    let segment = quote! {
        __driver.segment(move || -> ::sagaflow::__private::Result<::sagaflow::__private::Transition<#state, #ok>, #err> {
            #(#items)*
            #(#declared)*
            #continuation
        })
    };
    if index == 0 {
        return quote!(#state::#variant { #(mut #fields),* } => #segment,);
    }
    let site = &machine.sites[index - 1];
    let step = &site.step;
    if let SiteKind::Join { branches } = &site.kind {
        let run = join_run(branches);
        return quote! {
            #state::#variant { #(mut #fields,)* __branches } => {
                #run
                #segment
            }
        };
    }
    if let Some(result) = wait_result(&site.kind, site.span) {
        let timer = site.kind.has_timer().then(|| quote!(__timer: _,));
        let child = matches!(site.kind, SiteKind::Child { .. }).then(|| quote!(__child: _,));
        return quote! {
            #state::#variant { #(mut #fields,)* #timer #child } => {
                #result
                #segment
            }
        };
    }
    let args = &site.args;
    // Spanned by the argument: a type mismatch at the call points there.
    let arg_names: Vec<Ident> = args
        .iter()
        .enumerate()
        .map(|(i, arg)| Ident::new(&format!("__arg{i}"), syn::spanned::Spanned::span(arg)))
        .collect();
    // `(#step)`: in parentheses the step is only looked up as a type, so a
    // plain `async fn` there is one "expected type, found function" error,
    // not that and "constant provided when a type was expected".
    quote! {
        #state::#variant { #(mut #fields),* } => {
            #(let #arg_names = #args;)*
            let __args = __driver.args::<(#step), _>(&(#(&#arg_names,)*));
            let __result = match __driver.attempt::<(#step), _>(__args, #step(#(#arg_names),*)).await {
                ::sagaflow::__private::Attempt::Done(result) => result,
                ::sagaflow::__private::Attempt::Suspend => return ::sagaflow::__private::Transition::Suspend,
            };
            #segment
        }
    }
}

// Input:  the join `sagaflow::join!(book_flight(&trip), book_hotel(&trip))`
// Output: its arguments evaluated, both branches run concurrently with
//         `tokio::join!`, then `let __result = Ok((flight, hotel))` or the
//         first failure (or `return Transition::Suspend` when a branch waits for a retry)
/// How a join's state runs its unfinished branches and gets its `__result`.
fn join_run(branches: &[super::join::Branch]) -> TokenStream {
    let mut prepare = TokenStream::new();
    let mut runs = Vec::new();
    for (i, branch) in branches.iter().enumerate() {
        let step = &branch.step;
        let args = &branch.args;
        let names: Vec<Ident> = (0..args.len())
            .map(|j| format_ident!("__branch{}_arg{}", i, j))
            .collect();
        let encoded = format_ident!("__branch{}_args", i);
        prepare.extend(quote_spanned! {branch.span=>
            #(let #names = #args;)*
            let #encoded = __join.args::<(#step), _>(&(#(&#names,)*));
        });
        runs.push(quote_spanned! {branch.span=>
            __join.branch::<(#step), _>(#i, #encoded, #step(#(#names),*))
        });
    }
    let results: Vec<Ident> = (0..branches.len())
        .map(|i| format_ident!("__branch{}_result", i))
        .collect();
    let values: Vec<Ident> = (0..branches.len())
        .map(|i| format_ident!("__branch{}_output", i))
        .collect();
    let failed = (0..branches.len()).map(|i| {
        let slots = (0..branches.len()).map(|j| {
            if i == j {
                quote!(::sagaflow::__private::Err(error))
            } else {
                quote!(_)
            }
        });
        quote!((#(#slots,)*))
    });
    quote! {
        let __join = __driver.join(__branches);
        #prepare
        let (#(#results,)*) = ::sagaflow::__private::join_branches!(#(#runs),*);
        let __result = match __driver.end_join(__join) {
            ::sagaflow::__private::JoinEnd::Suspend => return ::sagaflow::__private::Transition::Suspend,
            ::sagaflow::__private::JoinEnd::Failed(error) => ::sagaflow::__private::Err(error),
            ::sagaflow::__private::JoinEnd::Ok => match (#(#results,)*) {
                (#(::sagaflow::__private::Ok(#values),)*) => ::sagaflow::__private::Ok((#(#values,)*)),
                #(#failed)|* => ::sagaflow::__private::Err(error),
            },
        };
    }
}

// Input:  a signal wait `let approved: Option<bool> = sagaflow::signal_timeout("approval", d).await;`
// Output: `let __result = match __driver.receive::<bool>("approval") { Some(Ok(v)) => Some(v), .. };`
/// How a timer's or a signal's state gets its `__result` when it resumes;
/// `None` for a step's state.
fn wait_result(kind: &SiteKind, span: Span) -> Option<TokenStream> {
    Some(match kind {
        SiteKind::Step | SiteKind::Join { .. } => return None,
        // The runtime resumes a timer's state only once it has fired.
        SiteKind::Sleep { .. } => quote!(let __result = ();),
        // The runtime resumes a child's state only once the child has ended.
        SiteKind::Child { workflow, .. } => quote_spanned! {syn::spanned::Spanned::span(workflow)=>
            let __result = match __driver.child::<#workflow>() {
                ::sagaflow::__private::Some(result) => result,
                ::sagaflow::__private::None => return ::sagaflow::__private::Transition::Suspend,
            };
        },
        SiteKind::Signal {
            name,
            value,
            timeout,
        } => {
            let value = value.as_ref().map(|ty| quote_spanned!(span=> ::<#ty>));
            let receive = quote_spanned!(span=> __driver.receive #value (#name));
            let (received, missing) = match timeout {
                Some(_) => (
                    quote!(::sagaflow::__private::Some(value)),
                    quote! {
                        ::sagaflow::__private::None if __driver.timed_out() => ::sagaflow::__private::None,
                        ::sagaflow::__private::None => return ::sagaflow::__private::Transition::Suspend,
                    },
                ),
                None => (
                    quote!(value),
                    quote!(::sagaflow::__private::None => return ::sagaflow::__private::Transition::Suspend,),
                ),
            };
            quote! {
                let __result = match #receive {
                    ::sagaflow::__private::Some(::sagaflow::__private::Ok(value)) => #received,
                    ::sagaflow::__private::Some(::sagaflow::__private::Err(error)) => {
                        return ::sagaflow::__private::Transition::Fail(error);
                    }
                    #missing
                };
            }
        }
    })
}

// Input:  the site's location `[(2, 1), (0, 0)]` (item 2, branch 1, then item 0)
// Output: `{ { <stmt with __result>; <rest of the branch> }; <rest of the body> }`
/// The pure code a state runs after its step: the rest of the innermost
/// block, then of each enclosing block, nested so scopes stay right. A loop
/// around the step finishes the current iteration first, then goes round.
fn continuation(machine: &Machine, state: &Ident, index: usize) -> TokenStream {
    let emit = Emit {
        machine,
        state,
        segment: &machine.segments[index],
        unassigned: &machine.unassigned[index],
    };
    if index == 0 {
        return emit.items(&machine.body, 0);
    }
    let site = &machine.sites[index - 1];
    let mut levels: Vec<(&Block, usize)> = Vec::new();
    let mut block = &machine.body;
    for (depth, &(item, branch)) in site.location.iter().enumerate() {
        levels.push((block, item));
        if depth + 1 < site.location.len() {
            block = child(&block.items[item], branch);
        }
    }
    let (inner, item) = levels.pop().expect("a site is in a block");
    let stmt = &site.stmt;
    let rest = emit.items(inner, item + 1);
    let mut code = quote!(#stmt #rest);
    let mut falls_through = inner.falls_through(item + 1);
    while let Some((block, item)) = levels.pop() {
        if let Item::Loop(item_loop) = &block.items[item] {
            // The rest of the iteration, then the loop from its head; what
            // follows the loop only if this segment can leave it.
            // Each part only if the segment reaches it: unreachable code may
            // name variables this segment never declares.
            let label = &item_loop.label;
            let leaves = emit.segment.contains(&item_loop.exit);
            let rest = if leaves {
                emit.items(block, item + 1)
            } else {
                TokenStream::new()
            };
            let looped = if emit.segment.contains(&item_loop.entry) {
                let iteration = emit.iteration(item_loop);
                quote! {
                    let mut __resuming = ::sagaflow::__private::Some(__result);
                    #label loop {
                        if let ::sagaflow::__private::Some(__result) = __resuming.take() {
                            #code
                        } else {
                            #iteration
                        }
                    }
                }
            } else {
                // The rest of this iteration never goes round: the loop is
                // only the target of its `break`s.
                quote!(#label loop { #code })
            };
            code = quote! {
                { #looped };
                #rest
            };
            falls_through = leaves && block.falls_through(item + 1);
            continue;
        }
        // Code after a diverging block is unreachable and may name variables
        // this segment never declares: leave it out.
        let rest = if falls_through {
            emit.items(block, item + 1)
        } else {
            TokenStream::new()
        };
        falls_through = falls_through && block.falls_through(item + 1);
        code = quote!({ #code }; #rest);
    }
    code
}

fn child(item: &Item, branch: usize) -> &Block {
    match item {
        Item::If(item_if) => item_if
            .blocks
            .get(branch)
            .or(item_if.else_block.as_ref())
            .expect("a branch"),
        Item::Match(item_match) => &item_match.arms[branch].3,
        Item::Loop(item_loop) => &item_loop.body,
        _ => unreachable!("sites are nested only in `if`, `match` and loops"),
    }
}

/// What emitting the code of one state's segment needs.
struct Emit<'a> {
    machine: &'a Machine,
    state: &'a Ident,
    /// The CFG nodes the segment runs: code after a loop is emitted only if
    /// the segment can leave the loop (else it may name undeclared variables).
    segment: &'a BTreeSet<NodeId>,
    /// The `let x;` declarations to leave out (see [`Machine::unassigned`]).
    unassigned: &'a BTreeSet<String>,
}

impl Emit<'_> {
    /// The items of `block` from `from` on, as a segment runs them: pure code as
    /// written, a step as the transition to its state.
    fn items(&self, block: &Block, from: usize) -> TokenStream {
        let (machine, state) = (self.machine, self.state);
        let mut out = TokenStream::new();
        for item in &block.items[from.min(block.items.len())..] {
            match item {
                Item::Pure {
                    stmt: Stmt::Local(local),
                    ..
                } if local.init.is_none()
                    && matches!(&local.pat, Pat::Ident(pat) if self.unassigned.contains(&pat.ident.to_string())) =>
                    {}
                Item::Pure { stmt, tail } => {
                    let mut stmt = stmt.clone();
                    ReturnRewriter.visit_stmt_mut(&mut stmt);
                    match (&stmt, tail) {
                        (Stmt::Expr(expr, None), true) if block.ret => {
                            out.extend(quote!(return ::sagaflow::__private::complete(#expr);));
                        }
                        (Stmt::Expr(expr, None), true) => out.extend(quote!(#expr;)),
                        _ => out.extend(quote!(#stmt)),
                    }
                }
                Item::Step { site: index } => {
                    let site = &machine.sites[*index];
                    let variant = &site.variant;
                    let fields = machine.stored[index + 1]
                        .iter()
                        .map(|&id| &machine.bindings[id].ident);
                    let timer = site.kind.timer().map(|(arg, until)| {
                        let mut arg = arg.clone();
                        ReturnRewriter.visit_expr_mut(&mut arg);
                        let span = syn::spanned::Spanned::span(&arg);
                        let timer = if until {
                            quote_spanned!(span=> ::sagaflow::__private::Timer::at(#arg))
                        } else {
                            quote_spanned!(span=> ::sagaflow::__private::Timer::after(#arg))
                        };
                        // Evaluated before the fields move into the state.
                        quote!(let __timer = #timer;)
                    });
                    let timer_field = timer.as_ref().map(|_| quote!(__timer,));
                    let slots = match &site.kind {
                        SiteKind::Join { branches } => {
                            let count = branches.len();
                            Some(quote!(__branches: ::sagaflow::__private::JoinSlots::new(#count),))
                        }
                        _ => None,
                    };
                    let child = match &site.kind {
                        SiteKind::Child { workflow, input } => {
                            let mut input = input.clone();
                            ReturnRewriter.visit_expr_mut(&mut input);
                            let span = syn::spanned::Spanned::span(workflow);
                            let start = quote_spanned!(span=> ::sagaflow::__private::child_input::<<#workflow as ::sagaflow::__private::Workflow>::Input>(
                                <#workflow as ::sagaflow::__private::Workflow>::NAME,
                                #input,
                            ));
                            // Evaluated before the fields move into the state.
                            Some(quote!(let __child = #start;))
                        }
                        _ => None,
                    };
                    let child_field = child.as_ref().map(|_| quote!(__child,));
                    out.extend(quote! {
                        #timer
                        #child
                        return ::sagaflow::__private::Ok(::sagaflow::__private::Transition::Next(#state::#variant { #(#fields,)* #timer_field #slots #child_field }));
                    });
                    break;
                }
                Item::If(item_if) => {
                    let mut branches = TokenStream::new();
                    for (i, (cond, branch)) in item_if.conds.iter().zip(&item_if.blocks).enumerate()
                    {
                        let mut cond = cond.clone();
                        ReturnRewriter.visit_expr_mut(&mut cond);
                        let body = self.items(branch, 0);
                        if i > 0 {
                            branches.extend(quote!(else));
                        }
                        branches.extend(quote!(if #cond { #body }));
                    }
                    if let Some(else_block) = &item_if.else_block {
                        let body = self.items(else_block, 0);
                        branches.extend(quote!(else { #body }));
                    }
                    out.extend(quote!(#branches;));
                    if !block.falls_through_item(item) {
                        break;
                    }
                }
                Item::Match(item_match) => {
                    let mut scrutinee = item_match.expr.clone();
                    ReturnRewriter.visit_expr_mut(&mut scrutinee);
                    let arms = item_match.arms.iter().map(|(attrs, pat, guard, body)| {
                        let body = self.items(body, 0);
                        let guard = guard.as_ref().map(|guard| {
                            let mut guard = guard.clone();
                            ReturnRewriter.visit_expr_mut(&mut guard);
                            quote!(if #guard)
                        });
                        quote!(#(#attrs)* #pat #guard => { #body })
                    });
                    out.extend(quote!(match #scrutinee { #(#arms)* };));
                    if !block.falls_through_item(item) {
                        break;
                    }
                }
                Item::Loop(item_loop) => {
                    out.extend(self.loop_init(item_loop));
                    let label = &item_loop.label;
                    let iteration = self.iteration(item_loop);
                    out.extend(quote!(#label loop { #iteration };));
                    if !self.segment.contains(&item_loop.exit) {
                        break;
                    }
                }
            }
        }
        out
    }

    // Input:  `for item in items { .. }` with steps
    // Output: `let mut __for1_items: Vec<Item> = items.into_iter().collect(); let mut __for1_next: usize = 0;`
    /// What runs once, when control enters the loop from above.
    fn loop_init(&self, item_loop: &LoopItem) -> TokenStream {
        let bindings = &self.machine.bindings;
        match &item_loop.head {
            LoopHead::Loop | LoopHead::While(_) => TokenStream::new(),
            LoopHead::ForEach {
                collection,
                items,
                next,
                ..
            } => {
                let mut collection = collection.clone();
                ReturnRewriter.visit_expr_mut(&mut collection);
                let items_ty = type_tokens(&bindings[*items].ty);
                let (items, next) = (&bindings[*items].ident, &bindings[*next].ident);
                quote! {
                    let mut #items: #items_ty = ::std::iter::Iterator::collect(
                        ::std::iter::IntoIterator::into_iter(#collection),
                    );
                    let mut #next: usize = 0;
                }
            }
            LoopHead::ForRange { range, rest, .. } => {
                let mut range = range.clone();
                ReturnRewriter.visit_expr_mut(&mut range);
                let ty = type_tokens(&bindings[*rest].ty);
                let rest = &bindings[*rest].ident;
                quote!(let mut #rest: #ty = #range;)
            }
        }
    }

    // Input:  `for item in items { <body> }` with steps
    // Output: `if __for1_next >= __for1_items.len() { break; }
    //          let item = Clone::clone(&__for1_items[__for1_next]); __for1_next += 1; <body>`
    /// One iteration from the head: the condition or the next element, then
    /// the body. The `break` here is directly inside the generated `loop`.
    fn iteration(&self, item_loop: &LoopItem) -> TokenStream {
        let bindings = &self.machine.bindings;
        let body = self.items(&item_loop.body, 0);
        match &item_loop.head {
            LoopHead::Loop => body,
            LoopHead::While(cond) => {
                let mut cond = cond.clone();
                ReturnRewriter.visit_expr_mut(&mut cond);
                quote!(if #cond { #body } else { break; })
            }
            LoopHead::ForEach {
                pat, items, next, ..
            } => {
                let (items, next) = (&bindings[*items].ident, &bindings[*next].ident);
                let element = quote_spanned!(syn::spanned::Spanned::span(pat)=>
                    ::std::clone::Clone::clone(&#items[#next])
                );
                quote! {
                    if #next >= #items.len() {
                        break;
                    }
                    let #pat = #element;
                    #next += 1;
                    #body
                }
            }
            LoopHead::ForRange { pat, rest, .. } => {
                let rest = &bindings[*rest].ident;
                quote! {
                    let #pat = match ::std::iter::Iterator::next(&mut #rest) {
                        ::sagaflow::__private::Some(element) => element,
                        ::sagaflow::__private::None => break,
                    };
                    #body
                }
            }
        }
    }
}

// Input:  `return Err(e)` in the body (not in closures, async blocks or items)
// Output: `return ::sagaflow::__private::complete(Err(e))`
struct ReturnRewriter;

impl VisitMut for ReturnRewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Return(ret) => {
                if let Some(value) = &mut ret.expr {
                    self.visit_expr_mut(value);
                    let inner = value.clone();
                    **value = syn::parse_quote!(::sagaflow::__private::complete(#inner));
                }
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// FNV-1a 64 over the workflow's name, states, the names of the stored
/// variables, and edges. The variables' types are covered by their shapes
/// (traced when the runtime is built), not by how they are written, so
/// moving an old version into a module of its own keeps its structure.
pub fn structural_fingerprint(machine: &Machine, name: &str) -> u64 {
    fingerprint_text(machine, name, false)
}

/// The fingerprint of sagaflow before shapes were traced: the structure
/// with the variables' types as written. Records written then carry it; a
/// runtime recognises them by it.
pub fn legacy_fingerprint(machine: &Machine, name: &str) -> u64 {
    fingerprint_text(machine, name, true)
}

fn fingerprint_text(machine: &Machine, name: &str, with_types: bool) -> u64 {
    let mut text = format!("workflow {name}\n");
    for (index, vars) in machine.stored.iter().enumerate() {
        text.push_str(&format!("state {}\n", machine.state_name(index)));
        if index > 0 {
            let site = &machine.sites[index - 1];
            match &site.kind {
                SiteKind::Step => {
                    text.push_str(&format!("step {}\n", type_string(&site.step)));
                }
                SiteKind::Join { branches } => {
                    let steps: Vec<String> = branches
                        .iter()
                        .map(|branch| type_string(&branch.step))
                        .collect();
                    text.push_str(&format!("join {}\n", steps.join(", ")));
                }
                SiteKind::Sleep { until, .. } => {
                    text.push_str(if *until { "sleep until\n" } else { "sleep\n" });
                }
                SiteKind::Child { workflow, .. } => {
                    text.push_str(&format!("child {}\n", type_string(workflow)));
                }
                SiteKind::Signal {
                    name,
                    value,
                    timeout,
                } => {
                    let value = value.as_ref().map_or_else(|| "_".to_owned(), type_string);
                    text.push_str(&format!(
                        "signal {:?}: {value}{}\n",
                        name.value(),
                        if timeout.is_some() { " timeout" } else { "" }
                    ));
                }
            }
        }
        for &id in vars {
            let binding = &machine.bindings[id];
            if with_types {
                text.push_str(&format!(
                    "var {}: {}\n",
                    binding.ident,
                    binding.ty.display()
                ));
            } else {
                text.push_str(&format!("var {}\n", binding.ident));
            }
        }
    }
    for edge in &machine.edges {
        text.push_str(&format!(
            "edge {} {:?} {:?}\n",
            edge.from, edge.to, edge.label
        ));
    }
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// Whether entering state `index` must be written before its step runs
/// (see `StateInfo::commit_on_entry`): it stores an argument its step
/// computed, or `Start`'s code, which is not written, leads to it having
/// computed a local, assigned a variable (a `mut` parameter too) or chosen
/// between targets.
fn commits_on_entry(machine: &Machine, func: &WorkflowFn, index: usize) -> bool {
    let stored = &machine.stored[index];
    if stored
        .iter()
        .any(|&id| desugar::is_argument_local(&machine.bindings[id].ident.to_string()))
    {
        return true;
    }
    let mut from_start = machine
        .edges
        .iter()
        .filter(|edge| edge.from == 0)
        .map(|edge| edge.to);
    if !from_start.clone().any(|to| to == TargetIr::State(index)) {
        return false;
    }
    let first = from_start.next();
    from_start.any(|to| Some(to) != first)
        || !machine.assigned[0].is_empty()
        || stored.iter().any(|&id| {
            let binding = &machine.bindings[id];
            binding.declared_at.is_some()
                || func
                    .params
                    .iter()
                    .any(|param| param.mutable && param.name == binding.ident)
        })
}

fn state_machine(machine: &Machine, func: &WorkflowFn, ok: &Type) -> TokenStream {
    let name = func.options.name.as_str();
    let version = func.options.version;
    let upgrade = if func.options.auto_upgrade {
        quote!(::sagaflow::__private::Upgrade::Auto)
    } else {
        quote!(::sagaflow::__private::Upgrade::Pinned)
    };
    let states = (0..machine.stored.len()).map(|index| {
        let state_name = machine.state_name(index);
        let commit_on_entry = commits_on_entry(machine, func, index);
        let variables = machine.stored[index].iter().map(|&id| {
            let binding = &machine.bindings[id];
            let var = rename::shown(&binding.ident);
            let ty = binding.ty.display();
            let tokens = type_tokens(&binding.ty);
            quote!(::sagaflow::__private::Variable { name: #var, ty: #ty, shape: ::sagaflow::__private::shape_of::<#tokens>() })
        });
        let is_wait = index > 0 && !matches!(machine.sites[index - 1].kind, SiteKind::Step);
        let step = if index == 0 || is_wait {
            quote!(::sagaflow::__private::None)
        } else {
            let site = &machine.sites[index - 1];
            let info = step_info(&site.step, site.span);
            quote!(::sagaflow::__private::Some(#info))
        };
        let branches = match index.checked_sub(1).map(|site| &machine.sites[site].kind) {
            Some(SiteKind::Join { branches }) => {
                let infos = branches.iter().map(|branch| step_info(&branch.step, branch.span));
                quote!(&[#(#infos),*])
            }
            _ => quote!(&[]),
        };
        let wait = match index.checked_sub(1).map(|site| &machine.sites[site].kind) {
            Some(SiteKind::Sleep { until: false, .. }) => quote!(::sagaflow::__private::Some("sleep")),
            Some(SiteKind::Sleep { until: true, .. }) => quote!(::sagaflow::__private::Some("sleep until")),
            Some(SiteKind::Signal { name, timeout, .. }) => {
                let or_timeout = if timeout.is_some() { " or timeout" } else { "" };
                let text = format!("signal {}{or_timeout}", name.value());
                quote!(::sagaflow::__private::Some(#text))
            }
            Some(SiteKind::Child { workflow, .. }) => {
                let name = workflow
                    .segments
                    .last()
                    .map_or_else(String::new, |segment| segment.ident.to_string());
                let text = format!("child {name}");
                quote!(::sagaflow::__private::Some(#text))
            }
            Some(SiteKind::Step | SiteKind::Join { .. }) | None => quote!(::sagaflow::__private::None),
        };
        quote!(::sagaflow::__private::StateInfo { name: #state_name, step: #step, wait: #wait, variables: &[#(#variables),*], commit_on_entry: #commit_on_entry, branches: #branches })
    });
    let edges = machine.edges.iter().map(|edge| {
        let from = edge.from;
        let to = match edge.to {
            TargetIr::State(index) => quote!(::sagaflow::__private::Target::State(#index)),
            TargetIr::Complete => quote!(::sagaflow::__private::Target::Complete),
            TargetIr::Error => quote!(::sagaflow::__private::Target::Error),
        };
        let label = match edge.label {
            LabelIr::Ok => quote!(Ok),
            LabelIr::Err => quote!(Err),
            LabelIr::Branch => quote!(Branch),
        };
        quote!(::sagaflow::__private::Edge { from: #from, to: #to, label: ::sagaflow::__private::EdgeLabel::#label })
    });
    let base = syn::LitInt::new(
        &format!("0x{:016x}", structural_fingerprint(machine, name)),
        Span::call_site(),
    );
    let legacy = syn::LitInt::new(
        &format!("0x{:016x}", legacy_fingerprint(machine, name)),
        Span::call_site(),
    );
    let folds: Vec<TokenStream> = machine.sites.iter().flat_map(site_steps).map(|(step, _)| {
        quote!(let fingerprint = ::sagaflow::__private::fingerprint_combine(fingerprint, <#step as ::sagaflow::__private::Step>::FINGERPRINT);)
    }).collect();
    quote! {
        static MACHINE: ::sagaflow::__private::StateMachine = ::sagaflow::__private::StateMachine {
            workflow: #name,
            version: #version,
            upgrade: #upgrade,
            states: &[#(#states),*],
            edges: &[#(#edges),*],
            structure: {
                let fingerprint: u64 = #base;
                #(#folds)*
                fingerprint
            },
            legacy: {
                let fingerprint: u64 = #legacy;
                #(#folds)*
                fingerprint
            },
            output: ::sagaflow::__private::shape_of::<#ok>(),
            traced: ::sagaflow::__private::Traced::new(),
        };
    }
}

/// The `StepInfo` of step `step`, its compensation named on `span`.
fn step_info(step: &syn::Path, span: Span) -> TokenStream {
    let compensation =
        quote_spanned!(span=> <#step as ::sagaflow::__private::Compensate>::COMPENSATION);
    quote!(::sagaflow::__private::StepInfo {
        name: <#step as ::sagaflow::__private::Step>::NAME,
        kind: <#step as ::sagaflow::__private::Step>::KIND,
        compensation: #compensation,
        args: ::sagaflow::__private::shape_of::<<#step as ::sagaflow::__private::Step>::Args>(),
        output: ::sagaflow::__private::shape_of::<<#step as ::sagaflow::__private::Step>::Output>(),
    })
}

/// The steps a suspension point runs, with their call sites' spans: its
/// step, a join's branches, nothing for a wait.
fn site_steps(site: &super::lower::Site) -> Vec<(&syn::Path, Span)> {
    match &site.kind {
        SiteKind::Step => vec![(&site.step, site.span)],
        SiteKind::Join { branches } => branches
            .iter()
            .map(|branch| (&branch.step, branch.span))
            .collect(),
        SiteKind::Sleep { .. } | SiteKind::Signal { .. } | SiteKind::Child { .. } => Vec::new(),
    }
}

/// One dispatch arm per distinct step, spanned on its first call site.
fn compensate_fn(machine: &Machine) -> TokenStream {
    let mut seen = Vec::new();
    let mut arms = TokenStream::new();
    for (step, span) in machine.sites.iter().flat_map(site_steps) {
        let key = type_string(step);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let compensate =
            quote_spanned!(span=> <#step as ::sagaflow::__private::Compensate>::compensate);
        arms.extend(quote! {
            if step == <#step as ::sagaflow::__private::Step>::NAME {
                return ::sagaflow::__private::Some(#compensate(args, output));
            }
        });
    }
    quote! {
        fn compensate(
            step: &str,
            args: ::sagaflow::__private::RawJson,
            output: ::sagaflow::__private::RawJson,
        ) -> ::sagaflow::__private::Option<::sagaflow::__private::CompensationFuture> {
            #arms
            ::sagaflow::__private::None
        }
    }
}

fn require_compensation(step: &syn::Path, span: Span) -> TokenStream {
    quote_spanned! {span=>
        #[allow(unused_parens)]
        const _: () = ::sagaflow::__private::require_compensation::<(#step)>();
    }
}

/// The saga-structure checks: one per ordered pair of steps that may run one
/// after the other.
fn checks(machine: &Machine) -> TokenStream {
    // No `require_compensation` here: the static's `COMPENSATION` and the
    // compensate dispatch already name `Compensate` on each call site, and one
    // more use with another note would repeat the error.
    let mut out = TokenStream::new();
    let mut seen = Vec::new();
    let mut child_seen = Vec::new();
    for &(a, b) in &machine.precedes {
        if let SiteKind::Child { workflow, .. } = &machine.sites[b].kind {
            let span = machine.sites[b].span;
            for (step, _) in site_steps(&machine.sites[a]) {
                let key = (type_string(step), type_string(workflow));
                if !child_seen.contains(&key) {
                    child_seen.push(key);
                    out.extend(child_after_pivot(step, workflow, span));
                }
            }
            continue;
        }
        for (first, second) in site_steps(&machine.sites[a]).into_iter().flat_map(|first| {
            site_steps(&machine.sites[b])
                .into_iter()
                .map(move |second| (first, second))
        }) {
            out.extend(pair_checks(first, second, a == b, &mut seen));
        }
    }
    out.extend(join_checks(machine));
    out
}

// Input:  `let connection: Connection = ..;` held across step `count`
// Output: `const _: () = { storable::<Connection, count>(); };` on `connection`
/// For each variable of a written type a state stores, a check (before the
/// state enum, so its error comes before serde's) that the type can be
/// stored, naming the first step or wait it is held across.
fn storable_checks(machine: &Machine) -> TokenStream {
    let mut out = TokenStream::new();
    let mut seen = Vec::new();
    for (index, stored) in machine.stored.iter().enumerate().skip(1) {
        let site = &machine.sites[index - 1];
        for &id in stored {
            let binding = &machine.bindings[id];
            // The macro's own variables (`__step1_arg0`, `__for1_items`)
            // hold a step's arguments or a loop's collection, of types the
            // step or the user's own variables already answer for.
            let VarType::Written(ty) = &binding.ty else {
                continue;
            };
            if binding.ident.to_string().starts_with("__") || seen.contains(&id) {
                continue;
            }
            seen.push(id);
            // A braced struct named like the step or the wait's function
            // (`sleep`, `signal`, `child`) names it in the error, and
            // refers to nothing: a step name that is not a step is one
            // error, elsewhere.
            let path = match &site.kind {
                SiteKind::Join { branches } => {
                    branches.first().map_or(&site.step, |branch| &branch.step)
                }
                _ => &site.step,
            };
            let across = path
                .segments
                .last()
                .map_or_else(|| format_ident!("step"), |segment| segment.ident.clone());
            out.extend(quote_spanned! {binding.ident.span()=>
                const _: () = {
                    #[allow(non_camel_case_types, dead_code)]
                    struct #across {}
                    ::sagaflow::__private::storable::<#ty, #across>();
                };
            });
        }
    }
    out
}

// Input:  `sagaflow::join!(book_flight(&trip), book_hotel(&trip))` after steps `p1`, `p2`
// Output: per branch, `const _` checks: not a pivot; not retriable unless a pivot may precede
/// The saga-structure checks of joins' branches: no pivot in a join, and
/// before the pivot only steps the saga can undo (or that change nothing),
/// since a sibling's failure rolls the join back.
fn join_checks(machine: &Machine) -> TokenStream {
    let mut out = TokenStream::new();
    for (index, site) in machine.sites.iter().enumerate() {
        let SiteKind::Join { branches } = &site.kind else {
            continue;
        };
        let before: Vec<&syn::Path> = machine
            .precedes
            .iter()
            .filter(|&&(a, b)| b == index && a != index)
            .flat_map(|&(a, _)| site_steps(&machine.sites[a]))
            .map(|(step, _)| step)
            .collect();
        for branch in branches {
            let step = &branch.step;
            let name = type_string(step);
            let pivot = format!(
                "saga structure: the pivot `{name}` is a branch of `sagaflow::join!`; the point of no return must be passed alone, since a sibling branch may still fail and roll the saga back; call `{name}(..).await?` before or after the join"
            );
            let retriable = format!(
                "saga structure: retriable step `{name}` is a branch of `sagaflow::join!` before the pivot; if a sibling branch fails the join is rolled back, and `{name}` cannot be undone; make `{name}` compensable with a `#[compensate({name})]`, or `#[step(readonly)]`, or call it after the pivot"
            );
            out.extend(quote_spanned! {branch.span=>
                const _: () = if <#step as ::sagaflow::__private::Step>::KIND.is_pivot() {
                    ::std::panic!(#pivot)
                };
                const _: () = if !(false #(|| <#before as ::sagaflow::__private::Step>::KIND.is_pivot())*)
                    && ::std::matches!(
                        <#step as ::sagaflow::__private::Step>::KIND,
                        ::sagaflow::__private::StepKind::Retriable
                    )
                {
                    ::std::panic!(#retriable)
                };
            });
        }
    }
    out
}

/// The checks of steps `first` and `second`, where `first` may run before
/// `second` (`same_site`: the same call site, in a loop).
fn pair_checks(
    first: (&syn::Path, Span),
    second: (&syn::Path, Span),
    same_site: bool,
    seen: &mut Vec<(String, String)>,
) -> TokenStream {
    let mut out = TokenStream::new();
    {
        let key = (type_string(first.0), type_string(second.0));
        if seen.contains(&key) {
            return out;
        }
        let (a_name, b_name) = key.clone();
        seen.push(key);
        let (a_path, b_path) = (first.0, second.0);
        let second_pivot = if same_site {
            // A site that may run after itself is in a loop.
            format!(
                "saga structure: the pivot `{a_name}` is called in a loop, so it may run more than once; a saga has one point of no return: make `{a_name}` `#[step(retriable)]`, or call it once, after the loop"
            )
        } else {
            format!(
                "saga structure: `{b_name}` is a second pivot after the pivot `{a_name}`; a saga has one point of no return: make `{b_name}` `#[step(retriable)]` or move it before `{a_name}`"
            )
        };
        let after_pivot = format!(
            "saga structure: compensable step `{b_name}` runs after the pivot `{a_name}`; nothing after the point of no return can be undone: move `{b_name}` before `{a_name}`, or declare it `#[step(retriable)]` or `#[step(readonly)]`"
        );
        out.extend(quote_spanned! {second.1=>
            const _: () = if <#a_path as ::sagaflow::__private::Step>::KIND.is_pivot()
                && <#b_path as ::sagaflow::__private::Step>::KIND.is_pivot()
            {
                ::std::panic!(#second_pivot)
            };
            const _: () = if <#a_path as ::sagaflow::__private::Step>::KIND.is_pivot()
                && !<#b_path as ::sagaflow::__private::Step>::KIND.allowed_after_pivot()
                && !<#b_path as ::sagaflow::__private::Step>::KIND.is_pivot()
            {
                ::std::panic!(#after_pivot)
            };
        });
    }
    out
}

// Input:  step `ship` may run before `sagaflow::child(bill, ..)`
// Output: `const _: () = if <ship as Step>::KIND.is_pivot() { panic!("saga structure: ..") };`
/// A child workflow counts as a compensable step of its parent's saga: it
/// may not run after the parent's pivot.
fn child_after_pivot(pivot: &syn::Path, workflow: &syn::Path, span: Span) -> TokenStream {
    let (a_name, b_name) = (type_string(pivot), type_string(workflow));
    let message = format!(
        "saga structure: child workflow `{b_name}` runs after the pivot `{a_name}`; a child workflow is undone with its parent, and nothing after the point of no return can be undone: start `{b_name}` before `{a_name}`, or make `{a_name}` compensable"
    );
    quote_spanned! {span=>
        const _: () = if <#pivot as ::sagaflow::__private::Step>::KIND.is_pivot() {
            ::std::panic!(#message)
        };
    }
}

// Input:  a workflow with mistakes
// Output: the unit struct, a stub `Workflow` impl when the signature allows,
//         and the compensation checks of every step call found
/// What is emitted beside the errors, so user code naming the workflow does
/// not cascade and missing compensations are still reported.
pub fn fallback(func: &WorkflowFn, sites: &[CallSite]) -> TokenStream {
    let workflow = &func.name;
    let vis = &func.vis;
    let attrs = &func.attrs;
    let name = func.options.name.clone();
    let mut out = quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #workflow;
    };
    let owned_params = func
        .params
        .iter()
        .all(|param| !matches!(param.ty, Type::Reference(_)));
    if let Some(ok) = &func.ok_type
        && owned_params
    {
        let input = input_type(func);
        out.extend(quote! {
            #[allow(unused_variables, clippy::all)]
            impl ::sagaflow::__private::Workflow for #workflow {
                const NAME: &'static str = #name;
                type Input = #input;
                type Output = #ok;
                type State = ();
                fn state_machine(&self) -> &'static ::sagaflow::__private::StateMachine {
                    ::std::unimplemented!()
                }
                fn begin(input: #input) {}
                fn state_name(state: &()) -> &'static str {
                    "Start"
                }
                fn resume(
                    state: (),
                    driver: &mut ::sagaflow::__private::Driver,
                ) -> impl ::std::future::Future<Output = ::sagaflow::__private::Transition<(), #ok>> + Send + '_ {
                    ::std::future::pending()
                }
                fn compensate(
                    step: &str,
                    args: ::sagaflow::__private::RawJson,
                    output: ::sagaflow::__private::RawJson,
                ) -> ::sagaflow::__private::Option<::sagaflow::__private::CompensationFuture> {
                    ::sagaflow::__private::None
                }
            }
        });
    }
    for site in sites {
        out.extend(require_compensation(&site.step, site.span));
    }
    out
}
