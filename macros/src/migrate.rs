//! `#[migrate(from = old, to = new)]`: turns a `fn` from the old version's
//! state enum to `Migration<NewState>` into a unit struct implementing
//! `Migrate`, registered with `.migrate(name)` on the runtime builder.
//!
//! The user's function is kept as written, nested inside the generated
//! `Migrate::migrate`, so its `match` over the old states is checked for
//! exhaustiveness by the compiler as the user wrote it. Its parameter and
//! return types are checked against the versions named in the attribute
//! through two traits whose diagnostics say what to write.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Item, ItemFn, Meta, Path, ReturnType, Token, Type};

use crate::signature::{self, Errors};

const USAGE: &str = "write `#[migrate(from = v1::place_order, to = place_order)] fn place_order_v1_to_v2(old: v1::PlaceOrderState) -> Migration<PlaceOrderState> { match old { .. } }`";

/// Expands `#[migrate(from = .., to = ..)]`; on an error the function is
/// kept as written and the errors are emitted beside it.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_inner(args, item.clone())
        .unwrap_or_else(|error| signature::item_with_errors(item, error))
}

/// The checked parts of a migration.
struct MigrationFn {
    func: ItemFn,
    from: Path,
    to: Path,
    param: Type,
    ret: Type,
}

fn expand_inner(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let (from, to) = parse_args(args, &mut errors);
    let func = match syn::parse2::<Item>(item)? {
        Item::Fn(func) => func,
        other => {
            let head = other.to_token_stream().into_iter().next();
            errors.push(syn::Error::new(
                head.map_or_else(Span::call_site, |token| token.span()),
                format!("`#[migrate(..)]` goes on a `fn`; a migration maps the states of one version of a workflow to the next; {USAGE}"),
            ));
            errors.finish()?;
            unreachable!("an error was pushed");
        }
    };
    let sig = &func.sig;
    if let Some(asyncness) = sig.asyncness {
        errors.push(syn::Error::new(
            asyncness.span(),
            "a migration is a plain `fn`, not `async`: it runs inside the one write that moves an instance, so it cannot wait for anything; do what needs I/O in a step of the new version",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            format!("a migration cannot be generic: it maps one version's state enum to another's; {USAGE}"),
        ));
    }
    let mut params = sig.inputs.iter();
    let param = match (params.next(), params.next()) {
        (Some(FnArg::Typed(typed)), None) => Some((*typed.ty).clone()),
        _ => {
            errors.push(syn::Error::new(
                sig.inputs
                    .span()
                    .join(sig.paren_token.span.join())
                    .unwrap_or(sig.ident.span()),
                format!("a migration takes one parameter, the old version's state; {USAGE}"),
            ));
            None
        }
    };
    let ret = match &sig.output {
        ReturnType::Type(_, ty) => Some((**ty).clone()),
        ReturnType::Default => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("a migration returns `Migration<NewState>`: `Migration::To(state)` to move the instance, `Migration::Decline(reason)` to leave it; {USAGE}"),
            ));
            None
        }
    };
    errors.finish()?;
    let (Some((from, to)), Some(param), Some(ret)) = ((from.zip(to)), param, ret) else {
        unreachable!("parsing returns None only with errors");
    };
    Ok(codegen(&MigrationFn {
        func,
        from,
        to,
        param,
        ret,
    }))
}

/// Reads `from = path, to = path`.
fn parse_args(args: TokenStream, errors: &mut Errors) -> (Option<Path>, Option<Path>) {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args.clone()) {
        Ok(metas) => metas,
        Err(error) => {
            errors.push(syn::Error::new(error.span(), format!("`#[migrate]` takes `from = <old version's workflow>, to = <new version's workflow>`; {USAGE}")));
            return (None, None);
        }
    };
    let (mut from, mut to) = (None, None);
    let mut given: Vec<String> = Vec::new();
    for meta in metas {
        let key = meta.path().get_ident().map(ToString::to_string);
        let path = match &meta {
            Meta::NameValue(pair) => match &pair.value {
                Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(key) = &key {
            given.push(key.clone());
        }
        let slot = match key.as_deref() {
            Some("from") => &mut from,
            Some("to") => &mut to,
            _ => {
                errors.push(syn::Error::new(
                    meta.path().span(),
                    format!("unknown `#[migrate]` option; it takes `from = ..` and `to = ..`, each a `#[workflow]`'s name; {USAGE}"),
                ));
                continue;
            }
        };
        match path {
            Some(path) if slot.is_none() => *slot = Some(path),
            Some(_) => errors.push(syn::Error::new(meta.span(), "given twice; write it once")),
            None => errors.push(syn::Error::new(
                meta.span(),
                format!("`from` and `to` name the two versions' workflows (their function names, e.g. `v1::place_order`); {USAGE}"),
            )),
        }
    }
    let has = |key: &str| given.iter().any(|given| given == key);
    if !has("from") || !has("to") {
        let missing = match (has("from"), has("to")) {
            (false, false) => "`from` and `to`",
            (false, _) => "`from`",
            _ => "`to`",
        };
        let span = if args.is_empty() {
            Span::call_site()
        } else {
            args.span()
        };
        errors.push(syn::Error::new(
            span,
            format!("`#[migrate]` needs {missing}: the version it migrates from and the one it migrates to; {USAGE}"),
        ));
    }
    (from, to)
}

// Input:  `#[migrate(from = v1::order, to = order)] fn up(old: v1::OrderState) -> Migration<OrderState> { .. }`
// Output: `struct up;` and `impl Migrate for up { type From = v1::order; type To = order; fn migrate(..) { fn up(..) { .. } up(old) } }`
fn codegen(migration: &MigrationFn) -> TokenStream {
    let MigrationFn {
        func,
        from,
        to,
        param,
        ret,
    } = migration;
    let name = &func.sig.ident;
    let name_text = name.to_string();
    let vis = &func.vis;
    let docs = func.attrs.iter().filter(|attr| attr.path().is_ident("doc"));
    let mut inner = func.clone();
    inner.vis = syn::Visibility::Inherited;
    inner.attrs.retain(|attr| !attr.path().is_ident("doc"));
    let from_state = quote!(<#from as ::sagaflow::__private::Workflow>::State);
    let to_state = quote!(<#to as ::sagaflow::__private::Workflow>::State);
    let take = quote_spanned!(param.span()=> ::sagaflow::__private::migration_param::<#param, #from_state>(old));
    let give = quote_spanned!(ret.span()=> ::sagaflow::__private::migration_return::<#ret, ::sagaflow::__private::Migration<#to_state>>);
    let old_machine =
        quote_spanned!(from.span()=> ::sagaflow::__private::Workflow::state_machine(&#from));
    let new_machine =
        quote_spanned!(to.span()=> ::sagaflow::__private::Workflow::state_machine(&#to));
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        impl ::sagaflow::__private::Migrate for #name {
            type From = #from;
            type To = #to;
            const NAME: &'static str = #name_text;

            fn old_machine(&self) -> &'static ::sagaflow::__private::StateMachine {
                #old_machine
            }

            fn new_machine(&self) -> &'static ::sagaflow::__private::StateMachine {
                #new_machine
            }

            fn migrate(old: #from_state) -> ::sagaflow::__private::Migration<#to_state> {
                #inner
                #give(#name(#take))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pretty(tokens: TokenStream) -> String {
        prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
    }

    #[test]
    fn snapshot_migration() {
        let expanded = expand(
            quote!(from = v1::place_order, to = place_order),
            quote! {
                /// Moves waiting orders to v2.
                pub fn up(old: v1::PlaceOrderState) -> Migration<PlaceOrderState> {
                    match old {
                        v1::PlaceOrderState::Start { order } => Migration::To(PlaceOrderState::Start { order }),
                    }
                }
            },
        );
        insta::assert_snapshot!(pretty(expanded));
    }

    #[test]
    fn errors_name_what_to_write() {
        let expanded = expand(
            quote!(from = v1::place_order),
            quote!(
                async fn up(a: u8, b: u8) {}
            ),
        )
        .to_string();
        for expected in [
            "`#[migrate]` needs `to`",
            "a migration is a plain `fn`, not `async`",
            "a migration takes one parameter",
            "a migration returns `Migration<NewState>`",
        ] {
            assert!(expanded.contains(expected), "{expected:?} in {expanded}");
        }
        let unknown = expand(
            quote!(from = v1::a, to = a, into = b),
            quote!(
                fn up(old: S) -> Migration<T> {
                    todo!()
                }
            ),
        )
        .to_string();
        assert!(unknown.contains("unknown `#[migrate]` option"), "{unknown}");
    }
}
