//! The static `StateMachine` the generated impl returns ([`state_machine`]):
//! its states with their steps, waits and stored variables, its edges, and
//! its fingerprints (the structure's, and the legacy one with the types as
//! written). With [`site_steps`], the steps a suspension point runs, which
//! the compensation dispatch and the checks read too.

use std::hash::Hasher;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Type;

use super::super::desugar;
use super::super::lower::{LabelIr, Machine, SiteKind, TargetIr};
use super::super::names::type_string;
use super::super::parse::WorkflowFn;
use super::super::rename;
use super::types::type_tokens;

/// FNV-1a 64 over the workflow's name, states, the names of the stored
/// variables, and edges. The variables' types are covered by their shapes
/// (traced when the runtime is built), not by how they are written, so
/// moving an old version into a module of its own keeps its structure.
pub fn structural_fingerprint(machine: &Machine, name: &str) -> u64 {
    fingerprint_text(machine, name, false)
}

/// The fingerprint of sagaflow before shapes were traced: the structure
/// with the variables' types as written. Records written then carry it; a
/// runtime recognises them by it.
pub fn legacy_fingerprint(machine: &Machine, name: &str) -> u64 {
    fingerprint_text(machine, name, true)
}

fn fingerprint_text(machine: &Machine, name: &str, with_types: bool) -> u64 {
    let mut text = format!("workflow {name}\n");
    for (index, vars) in machine.stored.iter().enumerate() {
        text.push_str(&format!("state {}\n", machine.state_name(index)));
        if index > 0 {
            let site = &machine.sites[index - 1];
            match &site.kind {
                SiteKind::Step => {
                    text.push_str(&format!("step {}\n", type_string(&site.step)));
                }
                SiteKind::Join { branches } => {
                    let steps: Vec<String> = branches
                        .iter()
                        .map(|branch| type_string(&branch.step))
                        .collect();
                    text.push_str(&format!("join {}\n", steps.join(", ")));
                }
                SiteKind::Sleep { until, .. } => {
                    text.push_str(if *until { "sleep until\n" } else { "sleep\n" });
                }
                SiteKind::Child { workflow, .. } => {
                    text.push_str(&format!("child {}\n", type_string(workflow)));
                }
                // The type the wait decodes, written or declared: a wait
                // that leaves out a type it wrote before keeps the
                // fingerprint once its signal is declared.
                SiteKind::Signal {
                    name,
                    value,
                    declared,
                    timeout,
                } => {
                    let value = value
                        .as_ref()
                        .or(declared.as_ref())
                        .map_or_else(|| "_".to_owned(), type_string);
                    text.push_str(&format!(
                        "signal {:?}: {value}{}\n",
                        name.value(),
                        if timeout.is_some() { " timeout" } else { "" }
                    ));
                }
            }
        }
        for &id in vars {
            let binding = &machine.bindings[id];
            if with_types {
                text.push_str(&format!(
                    "var {}: {}\n",
                    binding.ident,
                    binding.ty.display()
                ));
            } else {
                text.push_str(&format!("var {}\n", binding.ident));
            }
        }
    }
    for edge in &machine.edges {
        text.push_str(&format!(
            "edge {} {:?} {:?}\n",
            edge.from, edge.to, edge.label
        ));
    }
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// Whether entering state `index` must be written before its step runs
/// (see `StateInfo::commit_on_entry`): it stores an argument its step
/// computed, or `Start`'s code, which is not written, leads to it having
/// computed a local, assigned a variable (a `mut` parameter too) or chosen
/// between targets.
fn commits_on_entry(machine: &Machine, func: &WorkflowFn, index: usize) -> bool {
    let stored = &machine.stored[index];
    if stored
        .iter()
        .any(|&id| desugar::is_argument_local(&machine.bindings[id].ident.to_string()))
    {
        return true;
    }
    let mut from_start = machine
        .edges
        .iter()
        .filter(|edge| edge.from == 0)
        .map(|edge| edge.to);
    if !from_start.clone().any(|to| to == TargetIr::State(index)) {
        return false;
    }
    let first = from_start.next();
    from_start.any(|to| Some(to) != first)
        || !machine.assigned[0].is_empty()
        || stored.iter().any(|&id| {
            let binding = &machine.bindings[id];
            binding.declared_at.is_some()
                || func
                    .params
                    .iter()
                    .any(|param| param.mutable && param.name == binding.ident)
        })
}

pub(super) fn state_machine(machine: &Machine, func: &WorkflowFn, ok: &Type) -> TokenStream {
    let name = func.options.name.as_str();
    let version = func.options.version;
    let upgrade = if func.options.auto_upgrade {
        quote!(::sagaflow::__private::Upgrade::Auto)
    } else {
        quote!(::sagaflow::__private::Upgrade::Pinned)
    };
    let states = (0..machine.stored.len()).map(|index| {
        let state_name = machine.state_name(index);
        let commit_on_entry = commits_on_entry(machine, func, index);
        let variables = machine.stored[index].iter().map(|&id| {
            let binding = &machine.bindings[id];
            let var = rename::shown(&binding.ident);
            let ty = binding.ty.display();
            let tokens = type_tokens(&binding.ty);
            quote!(::sagaflow::__private::Variable { name: #var, ty: #ty, shape: ::sagaflow::__private::shape_of::<#tokens>() })
        });
        let is_wait = index > 0 && !matches!(machine.sites[index - 1].kind, SiteKind::Step);
        let step = if index == 0 || is_wait {
            quote!(::sagaflow::__private::None)
        } else {
            let site = &machine.sites[index - 1];
            let info = step_info(&site.step, site.span);
            quote!(::sagaflow::__private::Some(#info))
        };
        let branches = match index.checked_sub(1).map(|site| &machine.sites[site].kind) {
            Some(SiteKind::Join { branches }) => {
                let infos = branches.iter().map(|branch| step_info(&branch.step, branch.span));
                quote!(&[#(#infos),*])
            }
            _ => quote!(&[]),
        };
        let wait = match index.checked_sub(1).map(|site| &machine.sites[site].kind) {
            Some(SiteKind::Sleep { until: false, .. }) => quote!(::sagaflow::__private::Some("sleep")),
            Some(SiteKind::Sleep { until: true, .. }) => quote!(::sagaflow::__private::Some("sleep until")),
            Some(SiteKind::Signal { name, timeout, .. }) => {
                let or_timeout = if timeout.is_some() { " or timeout" } else { "" };
                let text = format!("signal {}{or_timeout}", name.value());
                quote!(::sagaflow::__private::Some(#text))
            }
            Some(SiteKind::Child { workflow, .. }) => {
                let name = workflow
                    .segments
                    .last()
                    .map_or_else(String::new, |segment| segment.ident.to_string());
                let text = format!("child {name}");
                quote!(::sagaflow::__private::Some(#text))
            }
            Some(SiteKind::Step | SiteKind::Join { .. }) | None => quote!(::sagaflow::__private::None),
        };
        quote!(::sagaflow::__private::StateInfo { name: #state_name, step: #step, wait: #wait, variables: &[#(#variables),*], commit_on_entry: #commit_on_entry, branches: #branches })
    });
    let edges = machine.edges.iter().map(|edge| {
        let from = edge.from;
        let to = match edge.to {
            TargetIr::State(index) => quote!(::sagaflow::__private::Target::State(#index)),
            TargetIr::Complete => quote!(::sagaflow::__private::Target::Complete),
            TargetIr::Error => quote!(::sagaflow::__private::Target::Error),
        };
        let label = match edge.label {
            LabelIr::Ok => quote!(Ok),
            LabelIr::Err => quote!(Err),
            LabelIr::Branch => quote!(Branch),
        };
        quote!(::sagaflow::__private::Edge { from: #from, to: #to, label: ::sagaflow::__private::EdgeLabel::#label })
    });
    let base = syn::LitInt::new(
        &format!("0x{:016x}", structural_fingerprint(machine, name)),
        Span::call_site(),
    );
    let legacy = syn::LitInt::new(
        &format!("0x{:016x}", legacy_fingerprint(machine, name)),
        Span::call_site(),
    );
    let folds: Vec<TokenStream> = machine.sites.iter().flat_map(site_steps).map(|(step, _)| {
        quote!(let fingerprint = ::sagaflow::__private::fingerprint_combine(fingerprint, <#step as ::sagaflow::__private::Step>::FINGERPRINT);)
    }).collect();
    quote! {
        static MACHINE: ::sagaflow::__private::StateMachine = ::sagaflow::__private::StateMachine {
            workflow: #name,
            version: #version,
            upgrade: #upgrade,
            states: &[#(#states),*],
            edges: &[#(#edges),*],
            structure: {
                let fingerprint: u64 = #base;
                #(#folds)*
                fingerprint
            },
            legacy: {
                let fingerprint: u64 = #legacy;
                #(#folds)*
                fingerprint
            },
            output: ::sagaflow::__private::shape_of::<#ok>(),
            traced: ::sagaflow::__private::Traced::new(),
        };
    }
}

/// The `StepInfo` of step `step`, its compensation named on `span`.
fn step_info(step: &syn::Path, span: Span) -> TokenStream {
    let compensation =
        quote_spanned!(span=> <#step as ::sagaflow::__private::Compensate>::COMPENSATION);
    quote!(::sagaflow::__private::StepInfo {
        name: <#step as ::sagaflow::__private::Step>::NAME,
        kind: <#step as ::sagaflow::__private::Step>::KIND,
        compensation: #compensation,
        args: ::sagaflow::__private::shape_of::<<#step as ::sagaflow::__private::Step>::Args>(),
        output: ::sagaflow::__private::shape_of::<<#step as ::sagaflow::__private::Step>::Output>(),
    })
}

/// The steps a suspension point runs, with their call sites' spans: its
/// step, a join's branches, nothing for a wait.
pub(super) fn site_steps(site: &super::super::lower::Site) -> Vec<(&syn::Path, Span)> {
    match &site.kind {
        SiteKind::Step => vec![(&site.step, site.span)],
        SiteKind::Join { branches } => branches
            .iter()
            .map(|branch| (&branch.step, branch.span))
            .collect(),
        SiteKind::Sleep { .. } | SiteKind::Signal { .. } | SiteKind::Child { .. } => Vec::new(),
    }
}
