//! `#[step]`: keeps the `async fn` and adds a same-named struct implementing
//! `Step` (and, for steps that are never undone, `Compensate` with no
//! compensation).
//!
//! Stages: [`StepAttr::parse`] reads the attribute's kind and options,
//! [`signature::parse`] the function, [`codegen`] writes the impls.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Item, ItemFn, Lit, Meta, Token};

use crate::signature::{self, Errors, Role, Signature};

/// Expands `#[step(..)]`; on an error the function is kept as written and the
/// errors are emitted beside it.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_inner(args, item.clone())
        .unwrap_or_else(|error| signature::item_with_errors(item, error))
}

fn expand_inner(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let func = match syn::parse2::<Item>(item.clone())? {
        Item::Fn(func) => func,
        other => {
            return Err(syn::Error::new(
                item_head_span(&other),
                "`#[step]` goes on an `async fn`; a step is a function the workflow calls and the runtime retries; write `#[step] async fn name(..) -> Result<T, StepError>`",
            ));
        }
    };
    let mut errors = Errors::default();
    let attr = StepAttr::parse(args, &mut errors);
    let signature = signature::parse(&func, Role::Step, &mut errors);
    match signature {
        Some(signature) => {
            let mut tokens = item;
            tokens.extend(codegen(&func, &attr, &signature));
            // A mistake in the options alone still yields the struct (with the
            // options that did parse), so code naming the step does not
            // cascade into "expected type, found function" errors.
            if let Err(error) = errors.finish() {
                tokens.extend(error.into_compile_error());
            }
            Ok(tokens)
        }
        None => Err(errors
            .finish()
            .expect_err("signature::parse returns None only with errors")),
    }
}

/// Where to report "not a function": the item's first tokens.
fn item_head_span(item: &Item) -> Span {
    item.to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span())
}

/// The role of a step in the saga, as written in the attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// `#[step]`: undone by its `#[compensate]`.
    #[default]
    Compensable,
    /// `#[step(pivot)]`.
    Pivot,
    /// `#[step(retriable)]`.
    Retriable,
    /// `#[step(readonly)]`.
    Readonly,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        match name {
            "compensable" => Some(Kind::Compensable),
            "pivot" => Some(Kind::Pivot),
            "retriable" => Some(Kind::Retriable),
            "readonly" => Some(Kind::Readonly),
            _ => None,
        }
    }

    /// The name used in the runtime's `StepKind::as_str` and in the
    /// fingerprint.
    fn as_str(self) -> &'static str {
        match self {
            Kind::Compensable => "compensable",
            Kind::Pivot => "pivot",
            Kind::Retriable => "retriable",
            Kind::Readonly => "readonly",
        }
    }

    fn variant(self) -> Ident {
        let name = match self {
            Kind::Compensable => "Compensable",
            Kind::Pivot => "Pivot",
            Kind::Retriable => "Retriable",
            Kind::Readonly => "Readonly",
        };
        Ident::new(name, Span::call_site())
    }
}

/// `retry(..)` and `timeout = ".."`, durations already parsed; `None` where
/// unset, so the runtime applies the kind's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Options {
    /// `retry(max_attempts = N)`, at least 1.
    pub max_attempts: Option<u32>,
    /// `retry(initial = "1s")`.
    pub initial_interval: Option<Duration>,
    /// `retry(backoff = 2.0)`, at least 1.0.
    pub backoff: Option<f64>,
    /// `retry(max_interval = "100s")`.
    pub max_interval: Option<Duration>,
    /// `timeout = "30s"`, more than zero.
    pub timeout: Option<Duration>,
}

/// Everything `#[step(..)]` says.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct StepAttr {
    /// The step's kind; compensable unless one is written.
    pub kind: Kind,
    /// Retry and timeout options.
    pub options: Options,
}

const TOP_LEVEL: [&str; 6] = [
    "compensable",
    "pivot",
    "retriable",
    "readonly",
    "retry",
    "timeout",
];
const RETRY_FIELDS: [&str; 4] = ["max_attempts", "initial", "backoff", "max_interval"];
const OPTIONS_HELP: &str = "`#[step]` accepts one kind (`pivot`, `retriable` or `readonly`; compensable when none is written), `retry(max_attempts = 5, initial = \"1s\", backoff = 2.0, max_interval = \"100s\")` and `timeout = \"30s\"`";

impl StepAttr {
    /// Reads the attribute's arguments. Every mistake is pushed to `errors`,
    /// spanned on the offending tokens; what did parse is still returned.
    ///
    /// Input: `pivot, retry(max_attempts = 5, initial = "1s"), timeout = "30s"`.
    /// Output: `StepAttr { kind: Pivot, options: Options { max_attempts: Some(5), .. } }`.
    pub fn parse(args: TokenStream, errors: &mut Errors) -> StepAttr {
        let mut attr = StepAttr::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
            Ok(metas) => metas,
            Err(error) => {
                errors.push(syn::Error::new(
                    error.span(),
                    format!("cannot read the step's options: {error}; {OPTIONS_HELP}"),
                ));
                return attr;
            }
        };
        let mut kind_seen: Option<Ident> = None;
        let mut retry_seen = false;
        let mut timeout_seen = false;
        for meta in metas {
            let path = meta.path();
            let name = path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_else(|| path.to_token_stream().to_string());
            if let Some(kind) = Kind::from_name(&name) {
                let ident = path.get_ident().expect("kinds are single idents").clone();
                if !matches!(meta, Meta::Path(_)) {
                    errors.push(syn::Error::new_spanned(
                        meta,
                        format!("the kind `{name}` takes no value; a kind is a bare word; write `#[step({name})]`"),
                    ));
                } else if let Some(first) = &kind_seen {
                    errors.push(syn::Error::new(
                        ident.span(),
                        format!(
                            "a step has one kind, but this one is declared both `{first}` and `{name}`; the kind decides whether the saga undoes the step or only moves forward past it; keep one of them"
                        ),
                    ));
                } else {
                    attr.kind = kind;
                    kind_seen = Some(ident);
                }
                continue;
            }
            match name.as_str() {
                "retry" => {
                    if std::mem::replace(&mut retry_seen, true) {
                        errors.push(duplicate(&meta, "retry(..)"));
                        continue;
                    }
                    match &meta {
                        Meta::List(list) => parse_retry(list.tokens.clone(), &mut attr.options, errors),
                        _ => errors.push(syn::Error::new_spanned(
                            meta,
                            "`retry` takes its fields in parentheses; each field is optional and unset ones take the kind's defaults; write `retry(max_attempts = 5, initial = \"1s\", backoff = 2.0, max_interval = \"100s\")`",
                        )),
                    }
                }
                "timeout" => {
                    if std::mem::replace(&mut timeout_seen, true) {
                        errors.push(duplicate(&meta, "timeout"));
                        continue;
                    }
                    match &meta {
                        Meta::NameValue(name_value) => {
                            if let Some(timeout) = duration(&name_value.value, "timeout", errors) {
                                if timeout.is_zero() {
                                    errors.push(syn::Error::new_spanned(
                                        &name_value.value,
                                        "`timeout` must be longer than zero; it bounds each attempt, so zero would fail every one; write e.g. `timeout = \"30s\"`",
                                    ));
                                } else {
                                    attr.options.timeout = Some(timeout);
                                }
                            }
                        }
                        _ => errors.push(syn::Error::new_spanned(
                            meta,
                            "`timeout` takes a duration after `=`; it bounds each attempt from start to end; write `timeout = \"30s\"`",
                        )),
                    }
                }
                _ => errors.push(syn::Error::new_spanned(
                    path,
                    format!(
                        "unknown step option `{name}`; {OPTIONS_HELP}{}",
                        suggestion(&name, &TOP_LEVEL)
                    ),
                )),
            }
        }
        attr
    }
}

fn duplicate(meta: &Meta, what: &str) -> syn::Error {
    syn::Error::new_spanned(
        meta,
        format!("`{what}` is given twice; a step has one value for each option; keep one of them"),
    )
}

/// Reads the fields of `retry(..)` into `options`.
fn parse_retry(tokens: TokenStream, options: &mut Options, errors: &mut Errors) {
    let fields = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(fields) => fields,
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                format!(
                    "cannot read `retry(..)`: {error}; write `retry(max_attempts = 5, initial = \"1s\", backoff = 2.0, max_interval = \"100s\")`"
                ),
            ));
            return;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    let mut max_interval_value: Option<Expr> = None;
    for field in fields {
        let path = field.path();
        let name = path.to_token_stream().to_string();
        let Meta::NameValue(name_value) = &field else {
            errors.push(syn::Error::new_spanned(
                field,
                format!(
                    "`retry` fields are written `name = value`; each sets one part of the retry policy; write e.g. `retry(max_attempts = 5, initial = \"1s\")`{}",
                    suggestion(&name, &RETRY_FIELDS)
                ),
            ));
            continue;
        };
        if RETRY_FIELDS.contains(&name.as_str()) {
            if seen.contains(&name) {
                errors.push(duplicate(&field, &format!("retry({name} = ..)")));
                continue;
            }
            seen.push(name.clone());
        }
        let value = &name_value.value;
        match name.as_str() {
            "max_attempts" => options.max_attempts = max_attempts(value, errors),
            "initial" => options.initial_interval = duration(value, "initial", errors),
            "max_interval" => {
                options.max_interval = duration(value, "max_interval", errors);
                max_interval_value = Some(value.clone());
            }
            "backoff" => options.backoff = backoff(value, errors),
            _ => errors.push(syn::Error::new_spanned(
                path,
                format!(
                    "unknown `retry` field `{name}`; `retry(..)` accepts `max_attempts = 5`, `initial = \"1s\"`, `backoff = 2.0` and `max_interval = \"100s\"`, each optional{}",
                    suggestion(&name, &RETRY_FIELDS)
                ),
            )),
        }
    }
    if let (Some(initial), Some(max), Some(value)) = (
        options.initial_interval,
        options.max_interval,
        &max_interval_value,
    ) && max < initial
    {
        errors.push(syn::Error::new_spanned(
            value,
            format!(
                "`max_interval` ({}) is shorter than `initial` ({}); the delay between attempts starts at `initial` and grows up to `max_interval`; make `max_interval` at least `initial`",
                humantime::format_duration(max),
                humantime::format_duration(initial)
            ),
        ));
    }
}

fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

fn max_attempts(value: &Expr, errors: &mut Errors) -> Option<u32> {
    let help = "`max_attempts` counts every attempt, the first included; write a positive integer, e.g. `max_attempts = 5`";
    let Some(Lit::Int(int)) = literal(value) else {
        errors.push(syn::Error::new_spanned(
            value,
            format!("`max_attempts` takes an integer literal; {help}"),
        ));
        return None;
    };
    match int.base10_parse::<u32>() {
        Ok(0) => {
            errors.push(syn::Error::new(
                int.span(),
                "`max_attempts = 0` would never run the step; it counts every attempt, the first included; write `max_attempts = 1` for a single attempt without retries",
            ));
            None
        }
        Ok(attempts) => Some(attempts),
        Err(error) => {
            errors.push(syn::Error::new(
                int.span(),
                format!("invalid `max_attempts`: {error}; {help}"),
            ));
            None
        }
    }
}

fn backoff(value: &Expr, errors: &mut Errors) -> Option<f64> {
    let parsed = match literal(value) {
        Some(Lit::Float(float)) => float.base10_parse::<f64>(),
        Some(Lit::Int(int)) => int.base10_parse::<f64>(),
        _ => {
            errors.push(syn::Error::new_spanned(
                value,
                "`backoff` takes a number literal; it multiplies the delay after every failed attempt; write e.g. `backoff = 2.0`",
            ));
            return None;
        }
    };
    match parsed {
        Ok(backoff) if backoff >= 1.0 && backoff.is_finite() => Some(backoff),
        Ok(backoff) => {
            errors.push(syn::Error::new_spanned(
                value,
                format!(
                    "`backoff = {backoff}` is less than 1.0; it multiplies the delay after every failed attempt, so below 1.0 retries would come ever faster; write `backoff = 1.0` for a constant delay or e.g. `backoff = 2.0`"
                ),
            ));
            None
        }
        Err(error) => {
            errors.push(syn::Error::new_spanned(
                value,
                format!("invalid `backoff`: {error}; write e.g. `backoff = 2.0`"),
            ));
            None
        }
    }
}

/// Parses a duration string with humantime (`"30s"`, `"1m 30s"`, `"500ms"`).
fn duration(value: &Expr, option: &str, errors: &mut Errors) -> Option<Duration> {
    let Some(Lit::Str(text)) = literal(value) else {
        errors.push(syn::Error::new_spanned(
            value,
            format!(
                "`{option}` takes a duration string; the unit is part of the value so it cannot be misread; write e.g. `{option} = \"30s\"`, `\"1m 30s\"` or `\"500ms\"`"
            ),
        ));
        return None;
    };
    match humantime::parse_duration(&text.value()) {
        Ok(duration) => Some(duration),
        Err(error) => {
            errors.push(syn::Error::new(
                text.span(),
                format!(
                    "invalid duration {:?} for `{option}`: {error}; durations are a number and a unit (ms, s, m, h, d); write e.g. `{option} = \"30s\"`, `\"1m 30s\"` or `\"500ms\"`",
                    text.value()
                ),
            ));
            None
        }
    }
}

/// `"; did you mean `x`?"` when `name` is a likely typo of a known word.
fn suggestion(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| {
            let shared_prefix = name
                .chars()
                .zip(candidate.chars())
                .take_while(|(a, b)| a == b)
                .count();
            *distance > 0 && (*distance <= 2 || shared_prefix >= 4)
        })
        .min()
        .map(|(_, candidate)| format!("; did you mean `{candidate}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The step's fingerprint: FNV-1a 64 over its name, kind, parameter types and
/// output type as written (whitespace normalised), each field terminated so
/// that `("ab", "c")` and `("a", "bc")` differ.
fn fingerprint(name: &str, kind: Kind, signature: &Signature) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    let mut field = |text: &str| {
        hasher.write(text.as_bytes());
        hasher.write(&[0xff]);
    };
    field(name);
    field(kind.as_str());
    for param in &signature.params {
        field(&signature::normalized_tokens(param.ty.to_token_stream()));
    }
    field("->");
    field(&signature::normalized_tokens(
        signature.ok_type.to_token_stream(),
    ));
    hasher.finish()
}

fn option_tokens<T>(value: Option<T>, to_tokens: impl FnOnce(T) -> TokenStream) -> TokenStream {
    match value {
        Some(value) => {
            let value = to_tokens(value);
            quote!(::sagaflow::__private::Some(#value))
        }
        None => quote!(::sagaflow::__private::None),
    }
}

fn duration_tokens(duration: Duration) -> TokenStream {
    if duration.subsec_nanos().is_multiple_of(1_000_000)
        && let Ok(millis) = u64::try_from(duration.as_millis())
    {
        let millis = Literal::u64_unsuffixed(millis);
        return quote!(::sagaflow::__private::Duration::from_millis(#millis));
    }
    let secs = Literal::u64_unsuffixed(duration.as_secs());
    let nanos = Literal::u32_unsuffixed(duration.subsec_nanos());
    quote!(::sagaflow::__private::Duration::new(#secs, #nanos))
}

/// The owned argument tuple: `()`, `(A,)` or `(A, B)`.
pub fn args_tuple(signature: &Signature) -> TokenStream {
    let owned = signature.params.iter().map(|param| &param.owned);
    quote!((#(#owned,)*))
}

// Input:
//     #[step(pivot)]
//     async fn create_shipment(order: &Order) -> Result<Shipment, StepError> { .. }
// Output: the function unchanged, then
//     struct create_shipment {}
//     impl Step for create_shipment { NAME, KIND, OPTIONS, FINGERPRINT, Args = (Order,), Output = Shipment }
//     impl<C> StepSignature<(Order,), Shipment, C> for create_shipment {}
//     impl StepKindOf for create_shipment { type Kind = kind::Pivot; }
//     impl CompensationOf<kind::Pivot> for create_shipment { COMPENSATION = None, .. }  // not for compensable steps
fn codegen(func: &ItemFn, attr: &StepAttr, signature: &Signature) -> TokenStream {
    let ident = &signature.ident;
    let vis = &func.vis;
    let name = ident.to_string();
    let kind = attr.kind;
    let kind_variant = kind.variant();
    let options = attr.options;
    let max_attempts = option_tokens(options.max_attempts, |n| {
        Literal::u32_unsuffixed(n).into_token_stream()
    });
    let initial_interval = option_tokens(options.initial_interval, duration_tokens);
    let backoff = option_tokens(options.backoff, |b| {
        Literal::f64_unsuffixed(b).into_token_stream()
    });
    let max_interval = option_tokens(options.max_interval, duration_tokens);
    let timeout = option_tokens(options.timeout, duration_tokens);
    let fingerprint = syn::LitInt::new(
        &format!("0x{:016x}", fingerprint(&name, kind, signature)),
        ident.span(),
    );
    let args = args_tuple(signature);
    let output = &signature.ok_type;
    let doc = format!(
        " The {} step `{name}`, declared with `#[step]`: implements `sagaflow::Step` so workflows and `#[compensate({name})]` can refer to it. Call the function `{name}` to run the step directly.",
        kind.as_str()
    );

    let cfgs = signature::cfg_attributes(func);
    let mut tokens = quote_spanned! {ident.span()=>
        #(#cfgs)*
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}

        #(#cfgs)*
        impl ::sagaflow::__private::Step for #ident {
            const NAME: &'static str = #name;
            const KIND: ::sagaflow::__private::StepKind = ::sagaflow::__private::StepKind::#kind_variant;
            const OPTIONS: ::sagaflow::__private::StepOptions = ::sagaflow::__private::StepOptions {
                max_attempts: #max_attempts,
                initial_interval: #initial_interval,
                backoff: #backoff,
                max_interval: #max_interval,
                timeout: #timeout,
            };
            const FINGERPRINT: u64 = #fingerprint;
            type Args = #args;
            type Output = #output;
        }

        #(#cfgs)*
        impl<C> ::sagaflow::__private::StepSignature<#args, #output, C> for #ident {}

        #(#cfgs)*
        impl ::sagaflow::__private::StepKindOf for #ident {
            type Kind = ::sagaflow::__private::kind::#kind_variant;
        }
    };

    if kind != Kind::Compensable {
        let message = format!(
            "step `{name}` is a {} step and has no compensation",
            kind.as_str()
        );
        tokens.extend(quote_spanned! {ident.span()=>
            #(#cfgs)*
            impl ::sagaflow::__private::CompensationOf<::sagaflow::__private::kind::#kind_variant> for #ident {
                const COMPENSATION: ::sagaflow::__private::Option<&'static str> = ::sagaflow::__private::None;

                fn compensate(
                    _args: ::sagaflow::__private::RawJson,
                    _output: ::sagaflow::__private::RawJson,
                ) -> ::sagaflow::__private::CompensationFuture {
                    ::sagaflow::__private::Box::pin(async {
                        ::sagaflow::__private::Err(::sagaflow::__private::StepError::permanent(#message))
                    })
                }
            }
        });
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: TokenStream) -> (StepAttr, Vec<String>) {
        let mut errors = Errors::default();
        let attr = StepAttr::parse(args, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        };
        (attr, messages)
    }

    fn parse_ok(args: TokenStream) -> StepAttr {
        let (attr, errors) = parse(args);
        assert!(errors.is_empty(), "{errors:?}");
        attr
    }

    #[test]
    fn kinds() {
        assert_eq!(parse_ok(quote!()).kind, Kind::Compensable);
        assert_eq!(parse_ok(quote!(pivot)).kind, Kind::Pivot);
        assert_eq!(parse_ok(quote!(retriable)).kind, Kind::Retriable);
        assert_eq!(parse_ok(quote!(readonly)).kind, Kind::Readonly);
        assert_eq!(parse_ok(quote!(compensable)).kind, Kind::Compensable);
    }

    #[test]
    fn options_in_any_order() {
        let expected = StepAttr {
            kind: Kind::Retriable,
            options: Options {
                max_attempts: Some(5),
                initial_interval: Some(Duration::from_secs(1)),
                backoff: Some(2.0),
                max_interval: Some(Duration::from_secs(100)),
                timeout: Some(Duration::from_secs(30)),
            },
        };
        assert_eq!(
            parse_ok(quote!(
                retriable,
                retry(
                    max_attempts = 5,
                    initial = "1s",
                    backoff = 2.0,
                    max_interval = "100s"
                ),
                timeout = "30s"
            )),
            expected
        );
        assert_eq!(
            parse_ok(quote!(
                timeout = "30s",
                retry(
                    max_interval = "100s",
                    backoff = 2,
                    initial = "1s",
                    max_attempts = 5
                ),
                retriable,
            )),
            expected
        );
    }

    #[test]
    fn partial_retry_and_compound_durations() {
        let attr = parse_ok(quote!(retry(initial = "1m 30s 250ms")));
        assert_eq!(attr.kind, Kind::Compensable);
        assert_eq!(
            attr.options,
            Options {
                initial_interval: Some(Duration::from_millis(90_250)),
                ..Options::default()
            }
        );
        assert_eq!(
            parse_ok(quote!(timeout = "500ms")).options.timeout,
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn collects_every_option_error() {
        let (attr, errors) = parse(quote!(
            pivot,
            retriable,
            retry(
                max_attempts = 0,
                backoff = 0.5,
                initial = "3 parsecs",
                jitter = 1
            ),
            timeout = 30,
            tmeout = "1s"
        ));
        assert_eq!(attr.kind, Kind::Pivot, "the first kind is kept");
        assert_eq!(errors.len(), 7, "{errors:#?}");
        assert!(
            errors[0].contains("declared both `pivot` and `retriable`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("`max_attempts = 0` would never run the step"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with("`backoff = 0.5` is less than 1.0"),
            "{}",
            errors[2]
        );
        assert!(
            errors[3].starts_with("invalid duration \"3 parsecs\" for `initial`"),
            "{}",
            errors[3]
        );
        assert!(
            errors[4].starts_with("unknown `retry` field `jitter`"),
            "{}",
            errors[4]
        );
        assert!(
            errors[5].starts_with("`timeout` takes a duration string"),
            "{}",
            errors[5]
        );
        assert!(
            errors[6].starts_with("unknown step option `tmeout`"),
            "{}",
            errors[6]
        );
        assert!(
            errors[6].ends_with("did you mean `timeout`?"),
            "{}",
            errors[6]
        );
    }

    #[test]
    fn rejects_duplicates_and_bad_shapes() {
        let (_, errors) = parse(quote!(timeout = "1s", timeout = "2s", retry, pivot = 1));
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("`timeout` is given twice"));
        assert!(errors[1].starts_with("`retry` takes its fields in parentheses"));
        assert!(errors[2].starts_with("the kind `pivot` takes no value"));
        let (_, errors) = parse(quote!(
            retry(initial = "10s", max_interval = "1s"),
            timeout = "0s"
        ));
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("`max_interval` (1s) is shorter than `initial` (10s)"));
        assert!(errors[1].starts_with("`timeout` must be longer than zero"));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            suggestion("retriabel", &TOP_LEVEL),
            "; did you mean `retriable`?"
        );
        assert_eq!(
            suggestion("max_attempt", &RETRY_FIELDS),
            "; did you mean `max_attempts`?"
        );
        assert_eq!(suggestion("retries", &TOP_LEVEL), "; did you mean `retry`?");
        assert_eq!(suggestion("idempotent", &TOP_LEVEL), "");
    }

    #[test]
    fn duration_literals() {
        assert_eq!(
            duration_tokens(Duration::from_secs(1)).to_string(),
            ":: sagaflow :: __private :: Duration :: from_millis (1000)"
        );
        assert_eq!(
            duration_tokens(Duration::new(1, 5)).to_string(),
            ":: sagaflow :: __private :: Duration :: new (1 , 5)"
        );
    }

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        let tokens = expand(args, item);
        prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
    }

    #[test]
    fn fingerprint_depends_on_types_as_written_not_on_spacing() {
        let fingerprint_of = |item: TokenStream, args: TokenStream| {
            let func: ItemFn = syn::parse2(item).unwrap();
            let mut errors = Errors::default();
            let attr = StepAttr::parse(args, &mut errors);
            let signature = signature::parse(&func, Role::Step, &mut errors).unwrap();
            fingerprint(&signature.ident.to_string(), attr.kind, &signature)
        };
        let base = fingerprint_of(
            quote!(
                async fn a(x: &Order) -> Result<Vec<u8>, StepError> {}
            ),
            quote!(),
        );
        let spaced: TokenStream = "async fn a( x : & Order ) -> Result< Vec < u8 >, StepError > {}"
            .parse()
            .unwrap();
        assert_eq!(base, fingerprint_of(spaced, quote!()));
        assert_eq!(
            base,
            fingerprint_of(
                quote!(
                    async fn a(renamed: &Order) -> Result<Vec<u8>, StepError> {}
                ),
                quote!()
            )
        );
        assert_ne!(
            base,
            fingerprint_of(
                quote!(
                    async fn a(x: &Order) -> Result<Vec<u8>, StepError> {}
                ),
                quote!(pivot)
            )
        );
        assert_ne!(
            base,
            fingerprint_of(
                quote!(
                    async fn a(x: Order) -> Result<Vec<u8>, StepError> {}
                ),
                quote!()
            )
        );
        assert_ne!(
            base,
            fingerprint_of(
                quote!(
                    async fn a(x: &Order) -> Result<Vec<u16>, StepError> {}
                ),
                quote!()
            )
        );
        assert_ne!(
            base,
            fingerprint_of(
                quote!(
                    async fn b(x: &Order) -> Result<Vec<u8>, StepError> {}
                ),
                quote!()
            )
        );
    }

    #[test]
    fn snapshot_compensable_step_with_options() {
        insta::assert_snapshot!(expand_str(
            quote!(
                retry(
                    max_attempts = 5,
                    initial = "1s",
                    backoff = 2.0,
                    max_interval = "100s"
                ),
                timeout = "30s"
            ),
            quote! {
                /// Charges the customer.
                pub async fn charge_payment(order: &Order, note: &str) -> Result<Payment, StepError> {
                    gateway::charge(order, note).await
                }
            },
        ));
    }

    #[test]
    fn snapshot_pivot_step() {
        insta::assert_snapshot!(expand_str(
            quote!(pivot),
            quote! {
                async fn create_shipment(order: &Order, items: &[Item], reservation: Reservation) -> Result<Shipment, sagaflow::StepError> {
                    carrier::ship(order, items, reservation).await
                }
            },
        ));
    }

    #[test]
    fn snapshot_readonly_step_without_parameters() {
        insta::assert_snapshot!(expand_str(
            quote!(readonly),
            quote! {
                pub(crate) async fn exchange_rate() -> Result<f64, StepError> { Ok(1.1) }
            },
        ));
    }

    #[test]
    fn bad_signature_keeps_the_function_and_reports() {
        let tokens = expand(
            quote!(),
            quote!(
                fn not_async(order: &mut Order) -> Result<(), StepError> {
                    Ok(())
                }
            ),
        );
        let text = tokens.to_string();
        assert!(text.starts_with("fn not_async"), "{text}");
        assert!(text.contains("needs an `async fn`"), "{text}");
        assert!(text.contains("cannot take `&mut Order`"), "{text}");
        assert!(!text.contains("impl"), "{text}");
    }

    #[test]
    fn bad_options_still_generate_the_struct() {
        let tokens = expand(
            quote!(pivot, timeout = "soon"),
            quote!(
                async fn ship() -> Result<(), StepError> {
                    Ok(())
                }
            ),
        );
        let text = tokens.to_string();
        assert!(text.contains("struct ship"), "{text}");
        assert!(text.contains("StepKind :: Pivot"), "{text}");
        assert!(text.contains("compile_error"), "{text}");
    }

    #[test]
    fn cfg_attributes_follow_the_function() {
        let text = expand_str(
            quote!(pivot),
            quote!(
                #[cfg(feature = "shipping")]
                async fn ship() -> Result<(), StepError> {
                    Ok(())
                }
            ),
        );
        assert_eq!(
            text.matches("#[cfg(feature = \"shipping\")]").count(),
            6,
            "{text}"
        );
    }

    #[test]
    fn not_a_function() {
        let text = expand(
            quote!(),
            quote!(
                struct Order;
            ),
        )
        .to_string();
        assert!(text.contains("`#[step]` goes on an `async fn`"), "{text}");
    }
}
