//! The compile-time checks (`const _` items whose failure is a compile
//! error in sagaflow's words): the saga's structure (one pivot, nothing
//! compensable after it, none in a join, no child after it), that every
//! stored variable's type can be stored, and that a wait for a declared
//! signal takes its declared type.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote_spanned};

use super::super::lower::{Machine, SiteKind, VarType};
use super::super::names::type_string;
use super::machine::site_steps;

/// The saga-structure checks: one per ordered pair of steps that may run one
/// after the other.
pub(super) fn checks(machine: &Machine) -> TokenStream {
    // No `require_compensation` here: the static's `COMPENSATION` and the
    // compensate dispatch already name `Compensate` on each call site, and one
    // more use with another note would repeat the error.
    let mut out = TokenStream::new();
    let mut seen = Vec::new();
    let mut child_seen = Vec::new();
    for &(a, b) in &machine.precedes {
        if let SiteKind::Child { workflow, .. } = &machine.sites[b].kind {
            let span = machine.sites[b].span;
            for (step, _) in site_steps(&machine.sites[a]) {
                let key = (type_string(step), type_string(workflow));
                if !child_seen.contains(&key) {
                    child_seen.push(key);
                    out.extend(child_after_pivot(step, workflow, span));
                }
            }
            continue;
        }
        for (first, second) in site_steps(&machine.sites[a]).into_iter().flat_map(|first| {
            site_steps(&machine.sites[b])
                .into_iter()
                .map(move |second| (first, second))
        }) {
            out.extend(pair_checks(first, second, a == b, &mut seen));
        }
    }
    out.extend(join_checks(machine));
    out
}

// Input:  `let connection: Connection = ..;` held across step `count`
// Output: `const _: () = { storable::<Connection, count>(); };` on `connection`
/// For each variable of a written type a state stores, a check (before the
/// state enum, so its error comes before serde's) that the type can be
/// stored, naming the first step or wait it is held across.
pub(super) fn storable_checks(machine: &Machine) -> TokenStream {
    let mut out = TokenStream::new();
    let mut seen = Vec::new();
    for (index, stored) in machine.stored.iter().enumerate().skip(1) {
        let site = &machine.sites[index - 1];
        for &id in stored {
            let binding = &machine.bindings[id];
            // The macro's own variables (`__step1_arg0`, `__for1_items`)
            // hold a step's arguments or a loop's collection, of types the
            // step or the user's own variables already answer for.
            let VarType::Written(ty) = &binding.ty else {
                continue;
            };
            if binding.ident.to_string().starts_with("__") || seen.contains(&id) {
                continue;
            }
            seen.push(id);
            // A braced struct named like the step or the wait's function
            // (`sleep`, `signal`, `child`) names it in the error, and
            // refers to nothing: a step name that is not a step is one
            // error, elsewhere.
            let path = match &site.kind {
                SiteKind::Join { branches } => {
                    branches.first().map_or(&site.step, |branch| &branch.step)
                }
                _ => &site.step,
            };
            let across = path
                .segments
                .last()
                .map_or_else(|| format_ident!("step"), |segment| segment.ident.clone());
            out.extend(quote_spanned! {binding.ident.span()=>
                const _: () = {
                    #[allow(non_camel_case_types, dead_code)]
                    struct #across {}
                    ::sagaflow::__private::storable::<#ty, #across>();
                };
            });
        }
    }
    out
}

// Input:  `let d: Option<bool> = sagaflow::signal_timeout("approval", t).await;` with `signals(approval: Decision)`
// Output: `const _: () = declared_signal::<bool, Decision>();` on `signal_timeout`
/// For each wait for a declared signal that writes its type, a check that
/// the type is the declared one (a wait that writes none takes the
/// declared type).
pub(super) fn signal_checks(machine: &Machine) -> TokenStream {
    let mut out = TokenStream::new();
    for site in &machine.sites {
        if let SiteKind::Signal {
            value: Some(written),
            declared: Some(declared),
            ..
        } = &site.kind
        {
            out.extend(quote_spanned! {site.span=>
                const _: () = ::sagaflow::__private::declared_signal::<#written, #declared>();
            });
        }
    }
    out
}

// Input:  `sagaflow::join!(book_flight(&trip), book_hotel(&trip))` after steps `p1`, `p2`
// Output: per branch, `const _` checks: not a pivot; not retriable unless a pivot may precede
/// The saga-structure checks of joins' branches: no pivot in a join, and
/// before the pivot only steps the saga can undo (or that change nothing),
/// since a sibling's failure rolls the join back.
fn join_checks(machine: &Machine) -> TokenStream {
    let mut out = TokenStream::new();
    for (index, site) in machine.sites.iter().enumerate() {
        let SiteKind::Join { branches } = &site.kind else {
            continue;
        };
        let before: Vec<&syn::Path> = machine
            .precedes
            .iter()
            .filter(|&&(a, b)| b == index && a != index)
            .flat_map(|&(a, _)| site_steps(&machine.sites[a]))
            .map(|(step, _)| step)
            .collect();
        for branch in branches {
            let step = &branch.step;
            let name = type_string(step);
            let pivot = format!(
                "saga structure: the pivot `{name}` is a branch of `sagaflow::join!`; the point of no return must be passed alone, since a sibling branch may still fail and roll the saga back; call `{name}(..).await?` before or after the join"
            );
            let retriable = format!(
                "saga structure: retriable step `{name}` is a branch of `sagaflow::join!` before the pivot; if a sibling branch fails the join is rolled back, and `{name}` cannot be undone; make `{name}` compensable with a `#[compensate({name})]`, or `#[step(readonly)]`, or call it after the pivot"
            );
            out.extend(quote_spanned! {branch.span=>
                const _: () = if <#step as ::sagaflow::__private::Step>::KIND.is_pivot() {
                    ::std::panic!(#pivot)
                };
                const _: () = if !(false #(|| <#before as ::sagaflow::__private::Step>::KIND.is_pivot())*)
                    && ::std::matches!(
                        <#step as ::sagaflow::__private::Step>::KIND,
                        ::sagaflow::__private::StepKind::Retriable
                    )
                {
                    ::std::panic!(#retriable)
                };
            });
        }
    }
    out
}

/// The checks of steps `first` and `second`, where `first` may run before
/// `second` (`same_site`: the same call site, in a loop).
fn pair_checks(
    first: (&syn::Path, Span),
    second: (&syn::Path, Span),
    same_site: bool,
    seen: &mut Vec<(String, String)>,
) -> TokenStream {
    let mut out = TokenStream::new();
    {
        let key = (type_string(first.0), type_string(second.0));
        if seen.contains(&key) {
            return out;
        }
        let (a_name, b_name) = key.clone();
        seen.push(key);
        let (a_path, b_path) = (first.0, second.0);
        let second_pivot = if same_site {
            // A site that may run after itself is in a loop.
            format!(
                "saga structure: the pivot `{a_name}` is called in a loop, so it may run more than once; a saga has one point of no return: make `{a_name}` `#[step(retriable)]`, or call it once, after the loop"
            )
        } else {
            format!(
                "saga structure: `{b_name}` is a second pivot after the pivot `{a_name}`; a saga has one point of no return: make `{b_name}` `#[step(retriable)]` or move it before `{a_name}`"
            )
        };
        let after_pivot = format!(
            "saga structure: compensable step `{b_name}` runs after the pivot `{a_name}`; nothing after the point of no return can be undone: move `{b_name}` before `{a_name}`, or declare it `#[step(retriable)]` or `#[step(readonly)]`"
        );
        out.extend(quote_spanned! {second.1=>
            const _: () = if <#a_path as ::sagaflow::__private::Step>::KIND.is_pivot()
                && <#b_path as ::sagaflow::__private::Step>::KIND.is_pivot()
            {
                ::std::panic!(#second_pivot)
            };
            const _: () = if <#a_path as ::sagaflow::__private::Step>::KIND.is_pivot()
                && !<#b_path as ::sagaflow::__private::Step>::KIND.allowed_after_pivot()
                && !<#b_path as ::sagaflow::__private::Step>::KIND.is_pivot()
            {
                ::std::panic!(#after_pivot)
            };
        });
    }
    out
}

// Input:  step `ship` may run before `sagaflow::child(bill, ..)`
// Output: `const _: () = if <ship as Step>::KIND.is_pivot() { panic!("saga structure: ..") };`
/// A child workflow counts as a compensable step of its parent's saga: it
/// may not run after the parent's pivot.
fn child_after_pivot(pivot: &syn::Path, workflow: &syn::Path, span: Span) -> TokenStream {
    let (a_name, b_name) = (type_string(pivot), type_string(workflow));
    let message = format!(
        "saga structure: child workflow `{b_name}` runs after the pivot `{a_name}`; a child workflow is undone with its parent, and nothing after the point of no return can be undone: start `{b_name}` before `{a_name}`, or make `{a_name}` compensable"
    );
    quote_spanned! {span=>
        const _: () = if <#pivot as ::sagaflow::__private::Step>::KIND.is_pivot() {
            ::std::panic!(#message)
        };
    }
}
