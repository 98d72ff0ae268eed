//! What the workflow declares it accepts ([`declared_items`]): one
//! associated constant per signal of `signals(..)`, the `Signal` the
//! typed client API sends, and `DeclaresQuery` for `query = ..`. Emitted
//! beside the machine and beside errors alike, so code that names
//! `place_order::approval` does not cascade.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::super::names::type_string;
use super::super::parse::WorkflowFn;

// Input:  `#[workflow(signals(approval: Decision), query = Status)] pub async fn place_order(..)`
// Output: `impl place_order { pub const approval: Signal<place_order, Decision> = Signal::new("approval"); }`,
//         `const _: () = signal_value::<Decision>();`,
//         `impl DeclaresQuery for place_order { type Query = Status; }` (with `query`)
/// The signals' constants and their checks; the query's impl when
/// `with_query` (it needs the workflow's `Workflow` impl).
pub fn declared_items(func: &WorkflowFn, with_query: bool) -> TokenStream {
    let workflow = &func.name;
    let vis = &func.vis;
    let mut out = TokenStream::new();
    if let Some(signals) = &func.options.signals {
        let consts = signals.iter().map(|signal| {
            let name = &signal.name;
            let ty = &signal.ty;
            let text = signal.text();
            let doc = format!(
                " Signal `{text}` of workflow `{workflow}`, carrying a `{}`: send it with `handle.signal({workflow}::{text}, value)`.",
                type_string(ty)
            );
            quote! {
                #[doc = #doc]
                #vis const #name: ::sagaflow::__private::Signal<#workflow, #ty> =
                    ::sagaflow::__private::Signal::new(#text);
            }
        });
        out.extend(quote! {
            #[allow(non_upper_case_globals)]
            impl #workflow {
                #(#consts)*
            }
        });
        for signal in signals {
            let ty = &signal.ty;
            out.extend(quote_spanned! {ty.span()=>
                const _: () = ::sagaflow::__private::signal_value::<#ty>();
            });
        }
    }
    if let Some(query) = func.options.query.as_ref().filter(|_| with_query) {
        out.extend(quote! {
            impl ::sagaflow::__private::DeclaresQuery for #workflow {
                type Query = #query;
            }
        });
    }
    out
}
