//! `#[compensate(step)]`: keeps the `async fn` and implements `Compensate`
//! for the named step (through `CompensationOf<kind::Compensable>`), decoding the step's stored arguments and output and
//! calling the function with them.
//!
//! Whether the parameters match the step is left to the compiler: the
//! expansion asks for `StepSignature<Args, Output>`, which only `#[step]`
//! implements, with the types this function's parameters imply.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, ItemFn, Path};

use crate::signature::{self, Errors, Role, Signature};

/// Expands `#[compensate(step)]`; on an error the function is kept as written
/// and the errors are emitted beside it.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_inner(args, item.clone())
        .unwrap_or_else(|error| signature::item_with_errors(item, error))
}

const USAGE: &str = "write `#[compensate(reserve_inventory)] async fn release_inventory(order: &Order, reservation: Reservation) -> Result<(), StepError>`";

fn expand_inner(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let step = parse_step_path(args, &mut errors);
    let func = match syn::parse2::<Item>(item.clone())? {
        Item::Fn(func) => func,
        other => {
            let head = other.to_token_stream().into_iter().next();
            errors.push(syn::Error::new(
                head.map_or_else(Span::call_site, |token| token.span()),
                format!("`#[compensate(..)]` goes on an `async fn`; a compensation is a function the runtime calls to undo a step; {USAGE}"),
            ));
            errors.finish()?;
            unreachable!("an error was pushed");
        }
    };
    let signature = signature::parse(&func, Role::Compensation, &mut errors);
    if let Some(signature) = &signature
        && signature.params.is_empty()
    {
        errors.push(syn::Error::new(
            signature.params_span,
            format!(
                "a compensation takes the step's parameters and then the step's output, but `{}` takes no parameters; the runtime passes it what the step was called with and what it returned; {USAGE}",
                signature.ident
            ),
        ));
    }
    errors.finish()?;
    let (Some(step), Some(signature)) = (step, signature) else {
        unreachable!("parsing returns None only with errors");
    };
    let mut tokens = item;
    tokens.extend(codegen(&func, &step, &signature));
    Ok(tokens)
}

/// Reads the attribute's argument: the path of the step being undone.
fn parse_step_path(args: TokenStream, errors: &mut Errors) -> Option<Path> {
    if args.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("`#[compensate]` needs the step it undoes; the pairing is what lets the compiler check this function against the step; {USAGE}"),
        ));
        return None;
    }
    match syn::parse2::<Path>(args.clone()) {
        Ok(path)
            if path
                .segments
                .iter()
                .all(|segment| segment.arguments.is_none()) =>
        {
            Some(path)
        }
        _ => {
            errors.push(syn::Error::new_spanned(
                &args,
                format!(
                    "`#[compensate(..)]` takes the name of one step, not `{args}`; the compensation undoes exactly that step; {USAGE}"
                ),
            ));
            None
        }
    }
}

// Input:
//     #[compensate(reserve_inventory)]
//     async fn release_inventory(order: &Order, reservation: Reservation) -> Result<(), StepError> { .. }
// Output: the function unchanged, then
//     impl CompensationOf<kind::Compensable> for reserve_inventory {  // `Compensate` follows
//         const COMPENSATION = Some("release_inventory");
//         fn compensate(args, output) -> CompensationFuture {
//             compensation_allowed::<Self>();  // the step is compensable, not pivot/retriable/readonly
//             compensation_matches::<Self, (Order,), Reservation>();  // the compile-time signature check
//             Box::pin(async move { decode args as (Order,), output as Reservation; release_inventory(&arg0, output).await })
//         }
//     }
fn codegen(func: &ItemFn, step: &Path, signature: &Signature) -> TokenStream {
    let (output_param, step_params) = signature
        .params
        .split_last()
        .expect("checked: at least one parameter");
    let function = &signature.ident;
    let compensation_name = function.to_string();
    let step_name = step
        .segments
        .last()
        .expect("a path has a segment")
        .ident
        .to_string();
    let args_what = format!("arguments of step `{step_name}`");
    let output_what = format!("output of step `{step_name}`");

    // Mixed-site names cannot collide with the user's items (a `const arg0`
    // in scope would turn `let arg0` into a pattern match).
    let hygienic = |name: &str| syn::Ident::new(name, Span::mixed_site());
    let args_value = hygienic("args");
    let output_value = hygienic("output");
    let stored_output = hygienic("stored_output");
    let bindings: Vec<_> = (0..step_params.len())
        .map(|i| format_ident!("arg{}", i, span = Span::mixed_site()))
        .collect();
    let owned_args: Vec<_> = step_params.iter().map(|param| &param.owned).collect();
    let args_tuple = quote!((#(#owned_args,)*));
    let owned_output = &output_param.owned;
    let call_args = step_params
        .iter()
        .zip(&bindings)
        .map(|(param, binding)| {
            if param.by_ref {
                quote!(&#binding)
            } else {
                quote!(#binding)
            }
        })
        .chain(std::iter::once(if output_param.by_ref {
            quote!(&#stored_output)
        } else {
            quote!(#stored_output)
        }));

    // Spanned on the parameter list, so a mismatch with the step is reported
    // on this function's parameters with `StepSignature`'s message. Naming
    // the step as `Self` (not by its path again) keeps a misspelt step name
    // to one "cannot find type" error.
    // The braced struct named like the compensation (a type, so the call of
    // the function by its name below is untouched) names it in the error.
    let signature_check = quote_spanned! {signature.params_span=>
        {
            #[allow(non_camel_case_types, dead_code)]
            struct #function {}
            ::sagaflow::__private::compensation_matches::<Self, #args_tuple, #owned_output, #function>();
        }
    };
    // Spanned on the step's name: a pivot, retriable or readonly step there
    // is one error naming its kind (the impl itself never conflicts with the
    // one `#[step]` gave it, being for another kind).
    let kind_check = quote_spanned! {step.span()=>
        ::sagaflow::__private::compensation_allowed::<Self>();
    };
    let cfgs = signature::cfg_attributes(func);
    quote_spanned! {step.span()=>
        #(#cfgs)*
        impl ::sagaflow::__private::CompensationOf<::sagaflow::__private::kind::Compensable> for #step {
            const COMPENSATION: ::sagaflow::__private::Option<&'static str> =
                ::sagaflow::__private::Some(#compensation_name);

            fn compensate(
                #args_value: ::sagaflow::__private::RawJson,
                #output_value: ::sagaflow::__private::RawJson,
            ) -> ::sagaflow::__private::CompensationFuture {
                #kind_check
                #signature_check
                ::sagaflow::__private::Box::pin(async move {
                    let (#(#bindings,)*): #args_tuple = ::sagaflow::__private::decode(#args_what, &#args_value)?;
                    let #stored_output: #owned_output = ::sagaflow::__private::decode(#output_what, &#output_value)?;
                    #function(#(#call_args),*).await
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        let tokens = expand(args, item);
        prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
    }

    #[test]
    fn snapshot_compensation() {
        insta::assert_snapshot!(expand_str(
            quote!(reserve_inventory),
            quote! {
                /// Puts the reserved items back.
                async fn release_inventory(order: &Order, note: &str, reservation: Reservation) -> Result<(), StepError> {
                    warehouse::release(order, note, reservation).await
                }
            },
        ));
    }

    #[test]
    fn snapshot_compensation_of_a_step_in_another_module() {
        insta::assert_snapshot!(expand_str(
            quote!(crate::payments::charge_payment),
            quote! {
                pub async fn refund_payment(_: Order, payment: &Payment) -> Result<(), sagaflow::StepError> {
                    payments::refund(payment).await
                }
            },
        ));
    }

    fn errors_of(args: TokenStream, item: TokenStream) -> String {
        let text = expand(args, item.clone()).to_string();
        assert!(
            text.starts_with(&item.to_string()),
            "the function is kept as written: {text}"
        );
        assert!(!text.contains("impl"), "no impl on error: {text}");
        text
    }

    #[test]
    fn a_missing_step_is_an_error() {
        let text = errors_of(
            quote!(),
            quote!(
                async fn undo(x: u8) -> Result<(), StepError> {
                    Ok(())
                }
            ),
        );
        assert!(
            text.contains("`#[compensate]` needs the step it undoes"),
            "{text}"
        );
    }

    #[test]
    fn more_than_a_path_is_an_error() {
        let text = errors_of(
            quote!(a, b),
            quote!(
                async fn undo(x: u8) -> Result<(), StepError> {
                    Ok(())
                }
            ),
        );
        assert!(
            text.contains("takes the name of one step, not `a , b`"),
            "{text}"
        );
    }

    #[test]
    fn no_parameters_is_an_error() {
        let text = errors_of(
            quote!(reserve),
            quote!(
                async fn undo() -> Result<(), StepError> {
                    Ok(())
                }
            ),
        );
        assert!(text.contains("but `undo` takes no parameters"), "{text}");
    }

    #[test]
    fn errors_are_collected() {
        let text = errors_of(
            quote!(),
            quote!(
                fn undo() -> Result<u8, StepError> {
                    Ok(1)
                }
            ),
        );
        assert!(text.contains("needs the step it undoes"), "{text}");
        assert!(text.contains("needs an `async fn`"), "{text}");
        assert!(text.contains("returns nothing on success"), "{text}");
    }
}
