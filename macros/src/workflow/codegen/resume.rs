//! How each state resumes ([`resume_arm`]): a step's state attempts its
//! step, a join's state runs its unfinished branches, a timer's, signal's or
//! child's state takes what it waited for; then the state's segment
//! (`segment.rs`). Apart from the segment, which is the user's code, and
//! from `generate.rs`, which only gathers the arms.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use super::super::lower::{Machine, SiteKind, VarType};
use super::segment::continuation;
use super::types::{Names, type_tokens};

// Input:  state `ChargePayment2` storing `order`, `reservation`
// Output: `PlaceOrderState::ChargePayment2 { mut order, mut reservation } => { <args>; <attempt>; segment(<continuation>) }`
pub(super) fn resume_arm(machine: &Machine, names: &Names, index: usize) -> TokenStream {
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
fn join_run(branches: &[super::super::join::Branch]) -> TokenStream {
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
            declared,
            timeout,
        } => {
            // The written type when there is one (`checks` compares it with
            // the declared one), else the declared type, which then types
            // the wait.
            let value = value
                .as_ref()
                .or(declared.as_ref())
                .map(|ty| quote_spanned!(span=> ::<#ty>));
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
