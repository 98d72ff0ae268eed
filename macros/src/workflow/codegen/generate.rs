//! The entry point of the code generation ([`generate`]): the workflow's
//! unit struct, its state enum (one variant per suspension point, holding
//! the variables live there), and `impl Workflow` around the parts the other
//! files generate; with `begin` and `suspension`, which only this impl
//! needs.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use super::super::lower::{Machine, SiteKind, camel_case};
use super::super::parse::WorkflowFn;
use super::super::rename;
use super::checks::{checks, signal_checks, storable_checks};
use super::compensate::compensate_fn;
use super::declared::declared_items;
use super::machine::state_machine;
use super::resume::resume_arm;
use super::types::{Names, input_type, type_tokens};

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
    let signal_checks = signal_checks(machine);
    let declared = declared_items(func, true);
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

        #signal_checks

        #declared
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
