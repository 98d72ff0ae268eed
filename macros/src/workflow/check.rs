//! Stage 2: the diagnostics that need no lowering: what is awaited, where
//! steps are called, which signals are waited for (in a workflow that
//! declares its signals), and effects outside steps (tasks, threads,
//! processes, the network, files, writes to globals). Every mistake is collected; none
//! stops the others. Reads of the clock, random numbers or the environment
//! are not effects: what the body computes is committed before a step sees
//! it (see `desugar::hoist_arguments` and `StateInfo::commit_on_entry`).

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, Path};

use super::Errors;
use super::lower::is_compound;
use super::names::{type_string, wait_name};
use super::parse::{SignalDecl, WorkflowFn};

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
        signals: func.options.signals.as_deref(),
        sites: Vec::new(),
        closure: 0,
    };
    checker.visit_block(&func.body);
    checker.sites
}

struct Checker<'a> {
    errors: &'a mut Errors,
    /// The signals the workflow declares, if it declares them.
    signals: Option<&'a [SignalDecl]>,
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
        let Some((call, path)) = call else {
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
            if wait.starts_with("signal") {
                self.signal_declared(call, &wait);
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

    // Input:  `sagaflow::signal::<bool>("aproval")` in a workflow declaring `signals(approval: Decision)`
    // Output: an error on `"aproval"` that lists the declared signals
    /// In a workflow that declares its signals, checks that a signal wait
    /// names one of them (its type is checked by the generated code).
    fn signal_declared(&mut self, call: &syn::ExprCall, wait: &str) {
        let Some(signals) = self.signals else {
            return;
        };
        // A name that is not a literal is reported by the lowering.
        let Some(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(name),
            ..
        })) = call.args.first()
        else {
            return;
        };
        let text = name.value();
        if signals.iter().any(|signal| signal.text() == text) {
            return;
        }
        let declared = if signals.is_empty() {
            "it declares none (`signals()`)".to_owned()
        } else {
            let list: Vec<String> = signals
                .iter()
                .map(|signal| format!("`{}: {}`", signal.text(), type_string(&signal.ty)))
                .collect();
            format!("it declares {}", list.join(", "))
        };
        let instead = if syn::parse_str::<syn::Ident>(&text).is_ok() {
            format!("or declare it: `signals(.., {text}: T)`")
        } else {
            "declared names are Rust identifiers, so rename this signal (e.g. `cancel_order`) and declare it".to_owned()
        };
        self.errors.at(
            name.span(),
            format!(
                "`sagaflow::{wait}` waits for signal `{text}`, which this workflow does not declare; {declared}, and only those can be sent to it; wait for a declared signal, {instead}"
            ),
        );
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

    /// Reports `segments`, a path in the body, if it names an effect the
    /// saga cannot track: its code between steps runs again after a crash.
    fn effect(&mut self, segments: &[String], tokens: TokenStream) {
        let joined = segments.join("::");
        let ends = |suffix: &[&str]| {
            segments.len() >= suffix.len()
                && segments[segments.len() - suffix.len()..]
                    .iter()
                    .zip(suffix)
                    .all(|(a, b)| a == b)
        };
        let first = segments.first().map(String::as_str).unwrap_or_default();
        let message = if spawns(segments) {
            format!(
                "`{joined}` starts work the saga does not track (a task or a thread): it is lost on a crash and started again when the code runs again; make that work a step, or run steps side by side with `sagaflow::join!(step_a(..), step_b(..))`"
            )
        } else if segments.iter().any(|s| s == "process")
            && matches!(first, "std" | "tokio" | "process")
        {
            format!(
                "`{joined}` starts or ends a process, a side effect the saga cannot undo or repeat safely: the code between steps runs again after a crash; do it in a step"
            )
        } else if (segments.iter().any(|s| s == "net")
            && matches!(first, "std" | "tokio" | "async_std" | "net"))
            || matches!(
                first,
                "TcpStream"
                    | "TcpListener"
                    | "UdpSocket"
                    | "UnixStream"
                    | "UnixListener"
                    | "reqwest"
                    | "ureq"
                    | "hyper"
            )
        {
            format!(
                "`{joined}` talks over the network, a side effect the saga cannot undo or repeat safely: the code between steps runs again after a crash; do it in a step, whose retries and compensation the saga tracks"
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

    /// Reports a write to a global: the code between steps runs again after
    /// a crash, so the write happens again.
    fn global_write(&mut self, tokens: TokenStream, global: &str, how: &str) {
        self.errors.push(syn::Error::new_spanned(
            tokens,
            format!(
                "`{global}` looks like a `static`, and this {how} it from the workflow body; the code between steps runs again after a crash (and on every process that resumes the instance), so the write happens again and other instances see it; keep the value in a local (it is saved with the state), or write it in a step"
            ),
        ));
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
                        if segments.len() > 1 {
                            let path: TokenStream =
                                tokens[i..(j.min(tokens.len()))].iter().cloned().collect();
                            self.effect(&segments, path);
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
            Expr::MethodCall(call) => {
                let method = call.method.to_string();
                if let Some(global) = screaming(&call.receiver)
                    && GLOBAL_WRITES.contains(&method.as_str())
                {
                    self.global_write(
                        call.to_token_stream(),
                        &global,
                        &format!("`.{method}(..)` changes"),
                    );
                } else if method.starts_with("spawn") {
                    self.errors.at(
                        call.method.span(),
                        format!(
                            "`.{method}(..)` starts work the saga does not track (a task, a thread or a process): it is lost on a crash and started again when the code runs again; make that work a step, or run steps side by side with `sagaflow::join!(step_a(..), step_b(..))`"
                        ),
                    );
                }
                visit::visit_expr(self, expr);
            }
            Expr::Assign(syn::ExprAssign { left, .. })
            | Expr::Binary(syn::ExprBinary { left, .. })
                if is_assignment(expr) =>
            {
                if let Some(global) = screaming(left) {
                    self.global_write(expr.to_token_stream(), &global, "assignment changes");
                }
                visit::visit_expr(self, expr);
            }
            Expr::Unsafe(block) => {
                self.errors.push(syn::Error::new_spanned(
                    block.unsafe_token,
                    "`unsafe` in a workflow body: what it does (a write to a `static mut`, a raw pointer) is not saved with the state and runs again after a crash; keep values in locals, and do the rest in a step",
                ));
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
        if segments.len() > 1 {
            self.effect(&segments, path.to_token_stream());
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
        if name == "select" {
            self.errors.at(
                mac.path.span(),
                format!(
                    "`{}!` is not supported in a workflow; its futures would run outside the saga, not persisted or compensated. To bound a step's time, give it a timeout: `#[step(timeout = \"30s\")]`; to wait for a signal at most so long, write `sagaflow::signal_timeout::<T>(\"name\", duration).await`; to run steps concurrently, `let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;`",
                    type_string(&mac.path)
                ),
            );
        } else if matches!(name.as_str(), "join" | "try_join") {
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

/// Methods that change the value behind a `static` (atomics, locks, cells).
const GLOBAL_WRITES: &[&str] = &[
    "fetch_add",
    "fetch_sub",
    "fetch_and",
    "fetch_or",
    "fetch_xor",
    "fetch_nand",
    "fetch_max",
    "fetch_min",
    "fetch_update",
    "store",
    "swap",
    "compare_exchange",
    "compare_exchange_weak",
    "lock",
    "write",
    "try_lock",
    "try_write",
    "borrow_mut",
    "replace",
    "take",
    "set",
    "get_mut",
];

// Input:  `ORDERS_SEEN`, `crate::COUNTS`, `Self::LIMIT`
// Output: its name when the path names an item in SCREAMING_CASE, the
//         naming of statics and constants
/// The name of a global the expression is, if it is one.
fn screaming(expr: &Expr) -> Option<String> {
    let Expr::Path(path) = expr else {
        return None;
    };
    let last = path.path.segments.last()?.ident.to_string();
    let letters = last.chars().filter(char::is_ascii_alphabetic).count();
    (letters >= 1 && !last.chars().any(|c| c.is_ascii_lowercase())).then(|| type_string(&path.path))
}

/// Whether `expr` is `=` or a compound assignment (`+=`, `|=`, ...).
fn is_assignment(expr: &Expr) -> bool {
    match expr {
        Expr::Assign(_) => true,
        Expr::Binary(binary) => is_compound(&binary.op),
        _ => false,
    }
}

// Input:  `tokio::task::spawn_blocking`, `std::thread::Builder::new`
// Output: whether the path starts a task or a thread
/// Whether a path starts work outside the saga.
fn spawns(segments: &[String]) -> bool {
    let Some(last) = segments.last() else {
        return false;
    };
    let runner = |s: &String| {
        matches!(
            s.as_str(),
            "tokio" | "thread" | "task" | "rayon" | "smol" | "async_std" | "runtime" | "futures"
        )
    };
    (last.starts_with("spawn") && segments.len() >= 2 && segments.iter().any(runner))
        || segments.ends_with(&["thread".to_owned(), "Builder".to_owned(), "new".to_owned()])
        || segments.ends_with(&["thread".to_owned(), "scope".to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        let path: Path = syn::parse_str(text).expect("a path");
        path.segments.iter().map(|s| s.ident.to_string()).collect()
    }

    #[test]
    fn spawning_paths_are_told_from_others() {
        for spawning in [
            "tokio::spawn",
            "tokio::task::spawn_blocking",
            "tokio::task::spawn_local",
            "std::thread::spawn",
            "thread::spawn",
            "std::thread::Builder::new",
            "std::thread::scope",
            "rayon::spawn",
            "smol::spawn",
        ] {
            assert!(spawns(&path(spawning)), "{spawning}");
        }
        for other in [
            "spawn",
            "my_crate::spawn_order",
            "Order::new",
            "task_list::len",
        ] {
            assert!(!spawns(&path(other)), "{other}");
        }
    }

    #[test]
    fn screaming_case_paths_are_globals() {
        let global = |text: &str| screaming(&syn::parse_str(text).expect("an expression"));
        assert_eq!(global("ORDERS_SEEN").as_deref(), Some("ORDERS_SEEN"));
        assert_eq!(global("crate::COUNTS").as_deref(), Some("crate::COUNTS"));
        assert_eq!(global("order"), None);
        assert_eq!(global("Order"), None);
        assert_eq!(global("X").as_deref(), Some("X"));
        assert_eq!(global("T::default"), None);
        assert_eq!(global("orders.len()"), None);
    }
}
