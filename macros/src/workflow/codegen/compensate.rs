//! The compensation dispatch ([`compensate_fn`]): from a step's name to its
//! `Compensate` impl, one arm per distinct step; and the check that a step
//! called has a compensation, which the fallback emits alone.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::super::lower::Machine;
use super::super::names::type_string;
use super::machine::site_steps;

/// One dispatch arm per distinct step, spanned on its first call site.
pub(super) fn compensate_fn(machine: &Machine) -> TokenStream {
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

pub(super) fn require_compensation(step: &syn::Path, span: Span) -> TokenStream {
    quote_spanned! {span=>
        #[allow(unused_parens)]
        const _: () = ::sagaflow::__private::require_compensation::<(#step)>();
    }
}
