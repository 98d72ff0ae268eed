//! Stage 1: the attributed `async fn` as a model the later stages read.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Block, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemFn, Lit, Pat,
    PathArguments, ReturnType, Token, Type, Visibility,
};

use super::Errors;

/// The workflow function, as the later stages need it.
pub struct WorkflowFn {
    /// Attributes and docs, kept on the generated unit struct.
    pub attrs: Vec<Attribute>,
    /// The function's visibility, given to the struct and the state enum.
    pub vis: Visibility,
    /// The function's name: the workflow's name and the unit struct's.
    pub name: Ident,
    /// The parameters: the workflow's input.
    pub params: Vec<Param>,
    /// `T` of `Result<T, E>`, `None` when the return type is not a `Result`.
    pub ok_type: Option<Type>,
    /// `E` of `Result<T, E>`.
    pub err_type: Option<Type>,
    /// The body, lowered into states.
    pub body: Block,
    /// `#[workflow(name = .., version = .., upgrade = ..)]`.
    pub options: Options,
}

/// The attribute's arguments.
pub struct Options {
    /// The workflow's name: `name = ".."`, else the function's.
    pub name: String,
    /// `version = N` (1 if not given).
    pub version: u32,
    /// `upgrade = "auto"`: instances of older versions may move to this one.
    pub auto_upgrade: bool,
    /// `signals(name: Type, ..)`: the signals the workflow accepts; `None`
    /// when not declared (its waits are then untyped, by name).
    pub signals: Option<Vec<SignalDecl>>,
    /// `query = Type`: the type of its status (`sagaflow::set_status`).
    pub query: Option<Type>,
}

/// One declared signal, `approval: Decision`.
#[derive(Clone)]
pub struct SignalDecl {
    /// Its name as written: the signal's name (`unraw`ed) and the
    /// workflow's associated constant.
    pub name: Ident,
    /// The type of its value.
    pub ty: Type,
}

impl SignalDecl {
    /// The name senders and waits use: `"approval"`.
    pub fn text(&self) -> String {
        self.name.unraw().to_string()
    }
}

/// One parameter `name: Type`.
pub struct Param {
    /// Its name.
    pub name: Ident,
    /// Its type as written.
    pub ty: Type,
    /// Written `mut name: Type`: the body may change it before a step.
    pub mutable: bool,
}

// Input:  `#[workflow] async fn place_order(order: Order) -> Result<Receipt, WorkflowError> { .. }`
// Output: `WorkflowFn { name: place_order, params: [order: Order], ok_type: Receipt, err_type: WorkflowError, .. }`
/// Reads the function. Returns `None` only when the item is not a function at
/// all; every other mistake is pushed to `errors` and parsing goes on.
pub fn parse(args: TokenStream, item: TokenStream, errors: &mut Errors) -> Option<WorkflowFn> {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let span = item
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span());
            errors.at(
                span,
                "`#[workflow]` goes on an `async fn`; the function becomes a durable state machine; write `#[workflow] async fn name(input: Input) -> Result<Output, WorkflowError> { .. }`",
            );
            return None;
        }
    };
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!(
                "a workflow must be an `async fn`; its steps are awaited, and it is resumed step by step; write `async fn {}(..)`",
                sig.ident
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            sig.generics.span(),
            "generic workflows are not supported; the state machine is stored and resumed by name, so its types must be concrete; write the concrete types",
        );
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.at(
                receiver.span(),
                "a workflow cannot take `self`; it is a free function the runtime starts by name; pass the data as a parameter",
            ),
            FnArg::Typed(typed) => {
                let Pat::Ident(pat) = &*typed.pat else {
                    errors.at(
                        typed.pat.span(),
                        "a workflow's parameters must be plain names; they become fields of the stored state; write `name: Type` and destructure in the body",
                    );
                    continue;
                };
                if let Type::Reference(reference) = &*typed.ty {
                    errors.at(
                        typed.ty.span(),
                        format!(
                            "workflow parameter `{}` is a reference; the input is stored with the instance, so it must be owned; write `{}: {}`",
                            pat.ident,
                            pat.ident,
                            reference.elem.to_token_stream()
                        ),
                    );
                }
                params.push(Param {
                    name: pat.ident.clone(),
                    ty: (*typed.ty).clone(),
                    mutable: pat.mutability.is_some(),
                });
            }
        }
    }
    let (ok_type, err_type) = match result_types(&sig.output) {
        Some((ok, err)) => (Some(ok), Some(err)),
        None => {
            let span = match &sig.output {
                ReturnType::Default => sig.paren_token.span.join(),
                ReturnType::Type(_, ty) => ty.span(),
            };
            errors.at(
                span,
                "a workflow must return `Result<T, E>`; an `Err` is what makes the saga compensate its steps; write `-> Result<Output, WorkflowError>`",
            );
            (None, None)
        }
    };
    let options = parse_options(args, &sig.ident, errors);
    Some(WorkflowFn {
        options,
        attrs: func.attrs.clone(),
        vis: func.vis.clone(),
        name: sig.ident.clone(),
        params,
        ok_type,
        err_type,
        body: (*func.block).clone(),
    })
}

const OPTIONS_HELP: &str = "`#[workflow]` takes `name = \"..\"` (the workflow's name, shared by its versions; the function's name by default), `version = N` (1 by default), `upgrade = \"auto\"` or `\"pinned\"` (the default), `signals(name: Type, ..)` (the signals it accepts, typed) and `query = Type` (the type of its status); e.g. `#[workflow(name = \"place_order\", version = 2, upgrade = \"auto\")]`";

const SIGNALS_HELP: &str = "`signals(..)` lists the signals the workflow accepts, each a name and the type of its value: `signals(approval: Decision, cancel: ())`; the name is how senders and `sagaflow::signal(\"approval\")` know it";

/// One argument of the attribute as written: `key = value`, `key(..)` or
/// a bare `key`.
struct RawOption {
    key: syn::Path,
    value: RawValue,
}

enum RawValue {
    /// `= expr` (`name`, `version`, `upgrade`).
    Expr(Expr),
    /// `= Type` (`query`): a type may hold commas (`HashMap<K, V>`), so it
    /// is parsed as one.
    Type(Type),
    /// `signals(..)`, its declarations as parsed.
    Signals(syn::Result<Punctuated<SignalDecl, Token![,]>>),
    /// `(..)` after another key.
    List,
    /// Nothing after the key.
    Bare,
}

/// Reads the attribute's arguments into keys and values, the value of
/// `query` as a type and every other as an expression.
fn raw_options(input: ParseStream) -> syn::Result<Vec<RawOption>> {
    let mut options = Vec::new();
    while !input.is_empty() {
        let key = input.call(syn::Path::parse_mod_style)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if key.is_ident("query") {
                RawValue::Type(input.parse()?)
            } else {
                RawValue::Expr(input.parse()?)
            }
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            if key.is_ident("signals") {
                // Parsed in its group, so a declaration cut short is
                // reported where it ends; the rest is skipped.
                let declared =
                    content.parse_terminated(<SignalDecl as syn::parse::Parse>::parse, Token![,]);
                if declared.is_err() {
                    content.parse::<TokenStream>()?;
                }
                RawValue::Signals(declared)
            } else {
                content.parse::<TokenStream>()?;
                RawValue::List
            }
        } else {
            RawValue::Bare
        };
        options.push(RawOption { key, value });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(options)
}

// Input:  `name = "place_order", version = 2, upgrade = "auto", signals(approval: Decision), query = Status`
// Output: `Options { name: "place_order", version: 2, auto_upgrade: true, signals: Some([approval: Decision]), query: Some(Status) }`
/// Reads the attribute's arguments; every mistake is pushed to `errors`.
fn parse_options(args: TokenStream, func: &Ident, errors: &mut Errors) -> Options {
    let mut options = Options {
        name: func.to_string(),
        version: 1,
        auto_upgrade: false,
        signals: None,
        query: None,
    };
    let raw = match raw_options.parse2(args) {
        Ok(raw) => raw,
        Err(error) => {
            errors.at(error.span(), OPTIONS_HELP);
            return options;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for RawOption { key: path, value } in raw {
        let Some(key) = path.get_ident().map(ToString::to_string) else {
            errors.at(path.span(), OPTIONS_HELP);
            continue;
        };
        if seen.contains(&key) {
            errors.at(
                path.span(),
                format!("`{key}` is given twice; write it once"),
            );
            continue;
        }
        seen.push(key.clone());
        let literal = match &value {
            RawValue::Expr(Expr::Lit(ExprLit { lit, .. })) => Some(lit.clone()),
            _ => None,
        };
        match (key.as_str(), literal, value) {
            ("name", Some(Lit::Str(name)), _) => {
                let text = name.value();
                let valid = !text.is_empty()
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if valid {
                    options.name = text;
                } else {
                    errors.at(
                        name.span(),
                        format!(
                            "workflow name {text:?} must be letters, digits, `_`, `-` or `.` (it is part of store keys and ids); write e.g. `name = \"place_order\"`"
                        ),
                    );
                }
            }
            ("version", Some(Lit::Int(version)), _) => match version.base10_parse::<u32>() {
                Ok(version) if version >= 1 => options.version = version,
                _ => errors.at(
                    version.span(),
                    "`version` is a whole number from 1 up: the version of this workflow's code; write e.g. `version = 2`",
                ),
            },
            ("upgrade", Some(Lit::Str(policy)), _) => match policy.value().as_str() {
                "auto" => options.auto_upgrade = true,
                "pinned" => options.auto_upgrade = false,
                other => errors.at(
                    policy.span(),
                    format!(
                        "unknown upgrade policy {other:?}: write `upgrade = \"auto\"` (instances of older versions move to this one where the machines prove it safe) or `upgrade = \"pinned\"` (they stay on their version; the default)"
                    ),
                ),
            },
            ("signals", _, RawValue::Signals(declared)) => {
                options.signals = Some(signals(declared, errors));
            }
            ("query", _, RawValue::Type(ty)) => options.query = Some(ty),
            ("name" | "version" | "upgrade", _, value) => {
                let span = match &value {
                    RawValue::Expr(expr) => expr.span(),
                    _ => path.span(),
                };
                errors.at(span, OPTIONS_HELP);
            }
            ("signals", _, _) => errors.at(path.span(), SIGNALS_HELP),
            ("query", _, _) => errors.at(
                path.span(),
                "`query = Type` declares the type of the workflow's status, which `sagaflow::set_status` sets and `handle.query()` returns; write e.g. `query = OrderStatus`",
            ),
            _ => errors.at(
                path.span(),
                format!("unknown `#[workflow]` option `{key}`; {OPTIONS_HELP}"),
            ),
        }
    }
    options
}

// Input:  `approval: Decision, note: String`, parsed
// Output: `[SignalDecl { name: approval, ty: Decision }, SignalDecl { name: note, ty: String }]`
/// The signals a workflow declares; a malformed list or a name given twice
/// is pushed to `errors`.
fn signals(
    declared: syn::Result<Punctuated<SignalDecl, Token![,]>>,
    errors: &mut Errors,
) -> Vec<SignalDecl> {
    let declared = match declared {
        Ok(declared) => declared,
        Err(error) => {
            errors.at(error.span(), SIGNALS_HELP);
            return Vec::new();
        }
    };
    let mut signals: Vec<SignalDecl> = Vec::new();
    for signal in declared {
        if signals.iter().any(|seen| seen.name == signal.name) {
            errors.at(
                signal.name.span(),
                format!(
                    "signal `{}` is declared twice; a signal has one name and one type; write it once",
                    signal.name
                ),
            );
            continue;
        }
        signals.push(signal);
    }
    signals
}

impl syn::parse::Parse for SignalDecl {
    fn parse(input: ParseStream) -> syn::Result<SignalDecl> {
        let name: Ident = input.call(Ident::parse_any)?;
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse()?;
        Ok(SignalDecl { name, ty })
    }
}

/// `T` and `E` of a return type written `Result<T, E>` (any path ending in `Result`).
fn result_types(output: &ReturnType) -> Option<(Type, Type)> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(path) = &**ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let ok = types.next()?;
    let err = types.next()?;
    Some((ok, err))
}
