//! `#[workflow]`: compiles an `async fn` calling steps into a persisted state
//! machine.
//!
//! Stages, each in its own file: [`parse`] (syn → model), [`rename`] (a
//! variable named like the workflow), [`check`] (every
//! diagnostic, collected), [`desugar`] (a step's output tested or
//! destructured in place becomes a `let` of it first, and a step's computed
//! arguments are evaluated into locals before its statement), [`status`]
//! (`set_status` given the declared query type), [`lower`]
//! (model → IR: suspension points, states, stored variables by liveness,
//! edges), [`codegen`] (IR → tokens).
//!
//! Loops with steps (`loop`, `while`, `while let`, `for`) are cycles in the
//! CFG: the state at a step in a loop stores the loop's live variables and
//! its position, never its history. `for pat in items` evaluates `items`
//! once into a stored `Vec<T>` (`__forN_items`) and a stored index
//! (`__forN_next`), and clones each element (so `T: Clone`); `for pat in a..b`
//! stores the rest of the range (`__forN_range`). Resuming inside a loop
//! finishes the current iteration, then goes round from the loop's head.

mod check;
mod codegen;
mod desugar;
mod join;
mod lower;
mod names;
mod parse;
mod rename;
mod status;

use proc_macro2::TokenStream;

/// Errors collected across stages, combined so the user sees all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds one error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Adds an error on `span`.
    pub(crate) fn at(&mut self, span: proc_macro2::Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// The collected errors.
    pub(crate) fn take(&mut self) -> Option<syn::Error> {
        self.0.take()
    }
}

/// Expands `#[workflow]`. On mistakes, emits every error beside a unit
/// struct and a stub `Workflow` impl, so code naming the workflow does not
/// cascade into unrelated errors.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let func = match parse::parse(args, item.clone(), &mut errors) {
        Some(func) => func,
        None => {
            let mut tokens = item;
            if let Some(error) = errors.take() {
                tokens.extend(error.into_compile_error());
            }
            return tokens;
        }
    };
    let mut func = func;
    rename::rename_own_name(&mut func);
    let sites = check::check(&func, &mut errors);
    desugar::desugar(&mut func.body);
    desugar::hoist_arguments(&mut func.body);
    if let Some(query) = func.options.query.clone() {
        status::type_status_calls(&mut func.body, &query);
    }
    let machine = lower::lower(&func, &mut errors);
    match (errors.take(), machine) {
        (None, Some(machine)) => codegen::generate(&func, &machine),
        (error, _) => {
            let mut tokens = codegen::fallback(&func, &sites);
            if let Some(error) = error {
                tokens.extend(error.into_compile_error());
            }
            tokens
        }
    }
}

#[cfg(test)]
mod tests;
