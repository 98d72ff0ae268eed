//! The Rust types the generated code names: a stored variable's field type
//! ([`type_tokens`]), a join's outputs, the workflow's input, and the names
//! of the state enum and the workflow's output and error ([`Names`]). A leaf
//! the other parts of the code generation share.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, Type};

use super::super::lower::{Part, VarType};
use super::super::parse::WorkflowFn;

pub(super) struct Names {
    pub(super) state: Ident,
    pub(super) ok: Type,
    pub(super) err: Type,
}

/// The field type of a stored variable.
pub(crate) fn type_tokens(ty: &VarType) -> TokenStream {
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
pub(super) fn input_type(func: &WorkflowFn) -> TokenStream {
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
