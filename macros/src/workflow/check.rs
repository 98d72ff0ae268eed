//! Stage 2: the diagnostics that need no lowering: what is awaited, where
//! steps are called, and calls that are not deterministic. Every mistake is
//! collected; none stops the others.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, Path};

use super::Errors;
use super::lower::{type_string, wait_name};
use super::parse::WorkflowFn;

/// A step call found in the body: its path and the span of its name.
pub struct CallSite {
    /// The step, as written.
    pub step: Path,
    /// The step's name at the call.
    pub span: Span,
}

// Input:  the parsed function
// Output: the step calls it makes (for the fallback's compensation checks);
//         every mistake pushed to `errors`
/// Checks the body; returns every step call outside closures.
pub fn check(func: &WorkflowFn, errors: &mut Errors) -> Vec<CallSite> {
    let mut checker = Checker {
        errors,
        sites: Vec::new(),
        closure: 0,
    };
    checker.visit_block(&func.body);
    checker.sites
}

struct Checker<'a> {
    errors: &'a mut Errors,
    sites: Vec<CallSite>,
    /// Depth of closures, async blocks and nested fns around the visitor.
    closure: usize,
}

impl Checker<'_> {
    fn awaited(&mut self, expr_await: &syn::ExprAwait) {
        let call = match &*expr_await.base {
            Expr::Call(call) => match &*call.func {
                Expr::Path(path) if path.qself.is_none() => Some((call, &path.path)),
                _ => None,
            },
            _ => None,
        };
        let Some((_, path)) = call else {
            self.errors.push(syn::Error::new_spanned(
                expr_await,
                "only steps, durable timers, signals and child workflows can be awaited in a workflow; other futures would run outside the saga: not retried, not compensated and lost on a crash; move this code into a `#[step]` and await the step: `step_name(args).await?`, or wait with `sagaflow::sleep(duration).await` or `sagaflow::signal(\"name\").await`",
            ));
            return;
        };
        let name = type_string(path);
        let span = path
            .segments
            .last()
            .map_or_else(|| path.span(), |s| s.ident.span());
        if let Some(wait) = wait_name(path) {
            if self.closure > 0 {
                let (what, instead) = if wait.starts_with("sleep") {
                    (
                        "a durable timer",
                        format!("`sagaflow::{wait}(..).await;` before or after the closure"),
                    )
                } else if wait == "child" {
                    (
                        "a child workflow",
                        "`let output = sagaflow::child(workflow, input).await?;`, then use `output` in the closure".to_owned(),
                    )
                } else {
                    (
                        "a signal wait",
                        format!(
                            "`let value: T = sagaflow::{wait}(..).await;`, then use `value` in the closure"
                        ),
                    )
                };
                self.errors.at(
                    span,
                    format!(
                        "`sagaflow::{wait}` is {what} inside a closure, async block or nested fn; the workflow can only stop and resume at timers, signals and child workflows in its own body; await it in the workflow body: {instead}"
                    ),
                );
            }
            return;
        }
        if self.closure > 0 {
            self.errors.at(
                span,
                format!(
                    "step `{name}` is called inside a closure, async block or nested fn; the workflow can only stop and resume at steps in its own body; call the step in the workflow body and pass its output in"
                ),
            );
            return;
        }
        self.sites.push(CallSite {
            step: path.clone(),
            span,
        });
    }

    // Input:  `sagaflow::join!(book_flight(&trip), book_hotel(&trip))`
    // Output: its branches as call sites; every malformed branch reported
    /// Checks a join: where it is, and each of its branches.
    fn join(&mut self, mac: &syn::Macro) {
        if self.closure > 0 {
            self.errors.at(
                mac.path.span(),
                "`sagaflow::join!` is inside a closure, async block or nested fn; the workflow can only stop and resume at joins in its own body; write the join in the workflow body and pass its outputs in: `let (a, b) = sagaflow::join!(..)?;`",
            );
            return;
        }
        let Some(branches) = super::join::branches(mac, Some(self.errors)) else {
            return;
        };
        for branch in branches {
            for arg in &branch.args {
                self.visit_expr(arg);
            }
            self.sites.push(CallSite {
                step: branch.step,
                span: branch.span,
            });
        }
    }

    fn nondeterministic(&mut self, segments: &[String], tokens: TokenStream) {
        let joined = segments.join("::");
        let last = segments.last().map(String::as_str).unwrap_or_default();
        let ends = |suffix: &[&str]| {
            segments.len() >= suffix.len()
                && segments[segments.len() - suffix.len()..]
                    .iter()
                    .zip(suffix)
                    .all(|(a, b)| a == b)
        };
        let first = segments.first().map(String::as_str).unwrap_or_default();
        let message = if ends(&["SystemTime", "now"])
            || ends(&["Instant", "now"])
            || ends(&["Utc", "now"])
            || ends(&["Local", "now"])
        {
            format!(
                "`{joined}` reads the clock, which is not deterministic: the code between steps runs again after a crash and would see another time; use `sagaflow::now()`, the time the instance's last transition was committed, which is the same when the code runs again; or read the clock in a step and use its output"
            )
        } else if first == "rand" || last == "thread_rng" || ends(&["rand", "random"]) {
            format!(
                "`{joined}` draws random numbers, which is not deterministic: the code between steps runs again after a crash and would draw others; use `sagaflow::random()`, fixed per state and transition, or draw them in a step and use its output"
            )
        } else if ends(&["Uuid", "new_v4"])
            || ends(&["Uuid", "now_v7"])
            || ends(&["Uuid", "new_v7"])
        {
            format!(
                "`{joined}` makes a new id on every call, which is not deterministic: the code between steps runs again after a crash and would make another; use `sagaflow::uuid()`, fixed per state and transition, or make the id in a step and use its output"
            )
        } else if ends(&["tokio", "spawn"])
            || ends(&["thread", "spawn"])
            || ends(&["task", "spawn"])
        {
            format!(
                "`{joined}` starts work the saga does not track: it is lost on a crash and started again when the code runs again; make that work a step"
            )
        } else if ends(&["thread", "sleep"]) || ends(&["time", "sleep"]) {
            format!(
                "`{joined}` waits outside the saga: the wait is lost on a crash and blocks the worker; write the durable timer `sagaflow::sleep(duration).await`, which survives restarts and holds no worker"
            )
        } else if segments.iter().any(|s| s == "fs") && matches!(first, "std" | "tokio" | "fs") {
            format!(
                "`{joined}` touches the file system, a side effect the saga cannot undo or repeat safely: the code between steps runs again after a crash; do it in a step"
            )
        } else {
            return;
        };
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    fn scan_macro_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => self.scan_macro_tokens(group.stream()),
                TokenTree::Ident(first) => {
                    let prev_is_colon = i > 0
                        && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                    if !prev_is_colon {
                        let mut segments = vec![first.to_string()];
                        let mut j = i + 1;
                        while j + 2 < tokens.len() + 1 {
                            let is_sep = matches!((tokens.get(j), tokens.get(j + 1)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                            match (is_sep, tokens.get(j + 2)) {
                                (true, Some(TokenTree::Ident(next))) => {
                                    segments.push(next.to_string());
                                    j += 3;
                                }
                                _ => break,
                            }
                        }
                        if segments.len() > 1 || segments[0] == "thread_rng" {
                            let path: TokenStream =
                                tokens[i..(j.min(tokens.len()))].iter().cloned().collect();
                            self.nondeterministic(&segments, path);
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Checker<'_> {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Await(expr_await) => {
                self.awaited(expr_await);
                visit::visit_expr(self, expr);
            }
            Expr::Closure(_) | Expr::Async(_) => {
                self.closure += 1;
                visit::visit_expr(self, expr);
                self.closure -= 1;
            }
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        self.closure += 1;
        visit::visit_item(self, item);
        self.closure -= 1;
    }

    fn visit_path(&mut self, path: &'ast Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 || segments[0] == "thread_rng" {
            self.nondeterministic(&segments, path.to_token_stream());
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        if super::join::is_join(mac) {
            self.join(mac);
            return;
        }
        if matches!(name.as_str(), "join" | "try_join" | "select") {
            self.errors.at(
                mac.path.span(),
                format!(
                    "`{}!` is not supported in a workflow; its futures would run outside the saga, not persisted or compensated; run steps concurrently with `let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;`",
                    type_string(&mac.path)
                ),
            );
        }
        self.scan_macro_tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}
