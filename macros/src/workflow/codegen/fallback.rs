//! What is emitted beside the errors when a workflow has mistakes
//! ([`fallback`]): the unit struct, a stub `impl Workflow`, the declared
//! signals and query, and the compensation checks of every step call found. Apart from the machine's
//! code, which it never reaches.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Type;

use super::super::check::CallSite;
use super::super::parse::WorkflowFn;
use super::compensate::require_compensation;
use super::declared::declared_items;
use super::types::input_type;

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
    let stub = func.ok_type.is_some() && owned_params;
    out.extend(declared_items(func, stub));
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
