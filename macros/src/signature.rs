//! The signature of a `#[step]` or `#[compensate]` function, read into a
//! model both macros share: its parameters with their owned (stored) types,
//! and the `T` of its `Result<T, StepError>`.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

/// Which attribute a signature belongs to: the wording of its errors differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `#[step]`.
    Step,
    /// `#[compensate(..)]`.
    Compensation,
}

impl Role {
    fn attribute(self) -> &'static str {
        match self {
            Role::Step => "#[step]",
            Role::Compensation => "#[compensate(..)]",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Role::Step => "a step",
            Role::Compensation => "a compensation",
        }
    }
}

/// One parameter of a step or compensation.
#[derive(Clone)]
#[cfg_attr(test, derive(Debug))]
pub struct Param {
    /// The parameter's type as written.
    pub ty: Type,
    /// The type stored for it: `&T` becomes `T`, `&str` becomes `String`,
    /// `&[T]` becomes `Vec<T>`, anything else stays as written.
    pub owned: Type,
    /// Whether the function takes it by reference (so the stored value is
    /// passed as `&value`).
    pub by_ref: bool,
}

/// The parts of an `async fn name(params) -> Result<T, StepError>` that the
/// generated code needs.
#[cfg_attr(test, derive(Debug))]
pub struct Signature {
    /// The function's name.
    pub ident: Ident,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// The `T` of its `Result<T, StepError>`.
    pub ok_type: Type,
    /// The span of the parenthesised parameter list, where a mismatch with
    /// the step is reported.
    pub params_span: proc_macro2::Span,
}

/// Reads and checks the signature of a step or a compensation; every problem
/// is collected into `errors`, and `None` is returned if there was any.
pub fn parse(func: &ItemFn, role: Role, errors: &mut Errors) -> Option<Signature> {
    let before = errors.count();
    let sig = &func.sig;
    let attribute = role.attribute();
    let noun = role.noun();

    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "`{attribute}` needs an `async fn`; {noun} is awaited by the runtime, which retries it and bounds it with a timeout; write `async fn {}(..)`",
                sig.ident
            ),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            format!("{noun} cannot be a `const fn`; it runs at run time, awaited by the runtime; remove `const`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "{noun} cannot be generic; its arguments and output are stored as JSON and read back under one fixed type; use concrete types"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("{noun} cannot be variadic; its arguments are stored as a tuple of fixed length; take a `Vec<T>` instead"),
        ));
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!(
                    "{noun} cannot take `self`; the workflow calls it by name as a free function; move it out of the `impl` block and take the value as a parameter"
                ),
            )),
            FnArg::Typed(typed) => {
                check_pattern(&typed.pat, role, errors);
                if let Type::Reference(reference) = strip_groups(&typed.ty)
                    && reference.mutability.is_some()
                {
                    let elem = reference.elem.to_token_stream();
                    errors.push(syn::Error::new_spanned(
                        reference,
                        match role {
                            Role::Step => format!(
                                "a step cannot take `&mut {elem}`; the workflow's variables are stored between steps, so a change made through the reference would be lost on resume; take `&{elem}` and return the new value in the step's output"
                            ),
                            Role::Compensation => format!(
                                "a compensation cannot take `&mut {elem}`; it receives the step's stored arguments and output, which it cannot change; take `&{elem}` or `{elem}`"
                            ),
                        },
                    ));
                    continue;
                }
                let (owned, by_ref) = owned_type(&typed.ty);
                params.push(Param { ty: (*typed.ty).clone(), owned, by_ref });
            }
        }
    }

    let ok_type = result_ok_type(&sig.output, role, errors);

    if errors.count() > before {
        return None;
    }
    Some(Signature {
        ident: sig.ident.clone(),
        params,
        ok_type: ok_type?,
        params_span: sig.paren_token.span.join(),
    })
}

fn check_pattern(pat: &Pat, role: Role, errors: &mut Errors) {
    match pat {
        // `mut name` is a binding mode of the function body only: harmless.
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {}
        Pat::Wild(_) => {}
        other => errors.push(syn::Error::new_spanned(
            other,
            format!(
                "parameters of {} must be plain names; the macro passes the stored arguments by position; write `name: Type` and destructure inside the body",
                role.noun()
            ),
        )),
    }
}

/// Reads `T` out of `-> Result<T, StepError>`.
fn result_ok_type(output: &ReturnType, role: Role, errors: &mut Errors) -> Option<Type> {
    let noun = role.noun();
    let example = match role {
        Role::Step => "Result<T, StepError>",
        Role::Compensation => "Result<(), StepError>",
    };
    let ty = match output {
        ReturnType::Default => {
            errors.push(syn::Error::new_spanned(
                output,
                format!(
                    "{noun} must return `{example}`; the runtime retries or compensates on `Err` and stores the `Ok` value; add `-> {example}`"
                ),
            ));
            return None;
        }
        ReturnType::Type(_, ty) => ty,
    };
    let wrong_return = || {
        syn::Error::new_spanned(
            ty,
            format!(
                "{noun} must return `{example}`, not `{}`; the runtime retries or compensates on `Err` and stores the `Ok` value; write `-> {example}`",
                ty.to_token_stream()
            ),
        )
    };
    let Type::Path(path) = strip_groups(ty) else {
        errors.push(wrong_return());
        return None;
    };
    let Some(last) = path.path.segments.last() else {
        errors.push(wrong_return());
        return None;
    };
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        errors.push(wrong_return());
        return None;
    };
    let types: Vec<&Type> = arguments
        .args
        .iter()
        .filter_map(|argument| match argument {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    if last.ident != "Result" || types.len() != 2 {
        errors.push(wrong_return());
        return None;
    }
    let (ok, error) = (types[0], types[1]);
    let error_is_step_error = matches!(
        strip_groups(error),
        Type::Path(path) if path.qself.is_none()
            && path.path.segments.last().is_some_and(|segment| segment.ident == "StepError")
    );
    if !error_is_step_error {
        errors.push(syn::Error::new_spanned(
            error,
            format!(
                "the error type of {noun} must be `StepError`, not `{}`; the runtime reads from it whether a retry may help; write `{example}` and convert other errors with `?`",
                error.to_token_stream()
            ),
        ));
        return None;
    }
    if role == Role::Compensation
        && !matches!(strip_groups(ok), Type::Tuple(tuple) if tuple.elems.is_empty())
    {
        errors.push(syn::Error::new_spanned(
            ok,
            format!(
                "a compensation returns nothing on success, not `{}`; the saga only needs to know that the undo happened; write `Result<(), StepError>`",
                ok.to_token_stream()
            ),
        ));
        return None;
    }
    Some(ok.clone())
}

/// The type under invisible groups and parentheses (`macro_rules!` wraps
/// `$t:ty` in a none-delimited group).
fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_groups(&group.elem),
        Type::Paren(paren) => strip_groups(&paren.elem),
        other => other,
    }
}

/// The stored form of a parameter type, and whether the function borrows it.
///
/// Input: `&Order`, `&str`, `&[Item]`, `Order`.
/// Output: `Order`, `String`, `Vec<Item>`, `Order`.
pub fn owned_type(ty: &Type) -> (Type, bool) {
    let Type::Reference(reference) = strip_groups(ty) else {
        return (ty.clone(), false);
    };
    let owned = match strip_groups(&reference.elem) {
        Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => {
            syn::parse_quote!(::std::string::String)
        }
        Type::Slice(slice) => {
            let elem = &slice.elem;
            syn::parse_quote!(::std::vec::Vec<#elem>)
        }
        elem => elem.clone(),
    };
    (owned, true)
}

/// The tokens of `tokens` as one string with whitespace normalised: every
/// token separated by one space (`::` prints as `: :`). Whether punctuation
/// is joint depends on the user's spacing (`u8>,` vs `u8> ,`), so it is not
/// used; walking the tokens ourselves keeps the string, and so the
/// fingerprint, the same whichever `proc_macro2` backend printed them.
pub fn normalized_tokens(tokens: TokenStream) -> String {
    fn walk(tokens: TokenStream, out: &mut Vec<String>) {
        for tree in tokens {
            match tree {
                TokenTree::Group(group) => {
                    let (open, close) = match group.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::None => ("", ""),
                    };
                    if !open.is_empty() {
                        out.push(open.to_owned());
                    }
                    walk(group.stream(), out);
                    if !close.is_empty() {
                        out.push(close.to_owned());
                    }
                }
                TokenTree::Ident(ident) => out.push(ident.to_string()),
                TokenTree::Punct(punct) => out.push(punct.as_char().to_string()),
                TokenTree::Literal(literal) => out.push(literal.to_string()),
            }
        }
    }
    let mut out = Vec::new();
    walk(tokens, &mut out);
    out.join(" ")
}

/// The function's `#[cfg(..)]` attributes, repeated on every generated item
/// so they exist exactly when the function does.
pub fn cfg_attributes(func: &ItemFn) -> Vec<&syn::Attribute> {
    func.attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect()
}

/// Errors collected while reading an attribute and its function, so the user
/// sees all of them at once (serde_derive's `Ctxt`).
#[derive(Default)]
pub struct Errors {
    combined: Option<syn::Error>,
    count: usize,
}

impl Errors {
    /// Records one more error.
    pub fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// How many errors were recorded.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `Ok` if no error was recorded, else all of them combined.
    pub fn finish(self) -> syn::Result<()> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The fallback when an attribute cannot expand: the item as written plus the
/// errors, so calls to the function still resolve and only the real mistakes
/// are reported (tokio-macros' habit).
pub fn item_with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let mut tokens = item;
    tokens.extend(error.into_compile_error());
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn owned(ty: Type) -> (String, bool) {
        let (owned, by_ref) = owned_type(&ty);
        (normalized_tokens(owned.to_token_stream()), by_ref)
    }

    #[test]
    fn owned_types() {
        assert_eq!(owned(syn::parse_quote!(&Order)), ("Order".into(), true));
        assert_eq!(
            owned(syn::parse_quote!(&'static Order)),
            ("Order".into(), true)
        );
        assert_eq!(
            owned(syn::parse_quote!(&str)),
            (": : std : : string : : String".into(), true)
        );
        assert_eq!(
            owned(syn::parse_quote!(&[Item])),
            (": : std : : vec : : Vec < Item >".into(), true)
        );
        assert_eq!(owned(syn::parse_quote!(Order)), ("Order".into(), false));
        assert_eq!(
            owned(syn::parse_quote!(Vec<&'static str>)),
            ("Vec < & ' static str >".into(), false)
        );
        assert_eq!(
            owned(syn::parse_quote!(&models::Order)),
            ("models : : Order".into(), true)
        );
    }

    #[test]
    fn normalizes_whitespace() {
        let spaced = quote!(Result<Vec<u8>, crate::StepError>);
        let tight: TokenStream = "Result<Vec<u8>,crate::StepError>".parse().unwrap();
        assert_eq!(normalized_tokens(spaced.clone()), normalized_tokens(tight));
        assert_eq!(
            normalized_tokens(spaced),
            "Result < Vec < u8 > , crate : : StepError >"
        );
    }

    fn parse_fn(tokens: TokenStream, role: Role) -> Result<Signature, String> {
        let func: ItemFn = syn::parse2(tokens).unwrap();
        let mut errors = Errors::default();
        let signature = parse(&func, role, &mut errors);
        match errors.finish() {
            Ok(()) => Ok(signature.unwrap()),
            Err(error) => Err(error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    #[test]
    fn reads_a_step_signature() {
        let signature = parse_fn(
            quote!(
                async fn create_shipment(
                    order: &Order,
                    mut notes: Vec<String>,
                    _: &str,
                ) -> Result<Shipment, sagaflow::StepError> {
                    todo!()
                }
            ),
            Role::Step,
        )
        .unwrap();
        assert_eq!(signature.ident, "create_shipment");
        let params: Vec<(String, bool)> = signature
            .params
            .iter()
            .map(|param| {
                (
                    normalized_tokens(param.owned.to_token_stream()),
                    param.by_ref,
                )
            })
            .collect();
        assert_eq!(
            params,
            [
                ("Order".to_owned(), true),
                ("Vec < String >".to_owned(), false),
                (": : std : : string : : String".to_owned(), true)
            ]
        );
        assert_eq!(
            normalized_tokens(signature.ok_type.to_token_stream()),
            "Shipment"
        );
    }

    #[test]
    fn collects_every_signature_error() {
        let errors = parse_fn(
            quote!(
                fn f<T>(state: &mut State, (a, b): (u8, u8)) -> Result<T, String> {
                    todo!()
                }
            ),
            Role::Step,
        )
        .unwrap_err();
        assert!(errors.contains("needs an `async fn`"), "{errors}");
        assert!(errors.contains("cannot be generic"), "{errors}");
        assert!(errors.contains("cannot take `&mut State`"), "{errors}");
        assert!(errors.contains("must be plain names"), "{errors}");
        assert!(
            errors.contains("must be `StepError`, not `String`"),
            "{errors}"
        );
    }

    #[test]
    fn rejects_a_missing_or_foreign_return_type() {
        let errors = parse_fn(
            quote!(
                async fn f() {}
            ),
            Role::Step,
        )
        .unwrap_err();
        assert!(
            errors.contains("must return `Result<T, StepError>`"),
            "{errors}"
        );
        let errors = parse_fn(
            quote!(
                async fn f() -> Option<u8> {
                    None
                }
            ),
            Role::Step,
        )
        .unwrap_err();
        assert!(errors.contains("not `Option < u8 >`"), "{errors}");
        let errors = parse_fn(
            quote!(
                async fn f(x: u8) -> Result<u8, StepError> {
                    Ok(x)
                }
            ),
            Role::Compensation,
        )
        .unwrap_err();
        assert!(errors.contains("returns nothing on success"), "{errors}");
    }
}
