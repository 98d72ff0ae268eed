//! `sagaflow::join!(a(..), b(..))`: the parallel step, as the stages see it.
//! A join is one suspension point whose state runs several steps at once,
//! one slot per branch.

use proc_macro2::Span;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Macro, Path, Stmt, Token};

use super::Errors;

/// One branch of a join: a step call written without `.await`.
#[derive(Clone, Debug)]
pub struct Branch {
    /// The step, as written (also its type).
    pub step: Path,
    /// The argument expressions, as written.
    pub args: Vec<Expr>,
    /// The step's name at the call: every generated check points here.
    pub span: Span,
}

/// Whether `mac` is `sagaflow::join!` (or `::sagaflow::join!`).
pub fn is_join(mac: &Macro) -> bool {
    let segments: Vec<String> = mac
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments == ["sagaflow", "join"]
}

/// `sagaflow::join!(..)?` or `sagaflow::join!(..)`: the macro and whether `?` follows.
pub fn join_call(expr: &Expr) -> Option<(&Macro, bool)> {
    let (inner, has_try) = match expr {
        Expr::Try(expr_try) => (&*expr_try.expr, true),
        other => (other, false),
    };
    match inner {
        Expr::Macro(expr_macro) if is_join(&expr_macro.mac) => Some((&expr_macro.mac, has_try)),
        _ => None,
    }
}

/// A statement that is a join, with its value discarded or `?`-checked:
/// `sagaflow::join!(..)?;` or `sagaflow::join!(..);`.
pub fn join_stmt(stmt: &Stmt) -> Option<(&Macro, bool)> {
    match stmt {
        Stmt::Macro(stmt_macro) if is_join(&stmt_macro.mac) => Some((&stmt_macro.mac, false)),
        Stmt::Expr(expr, _) => join_call(expr),
        _ => None,
    }
}

// Input:  `sagaflow::join!(book_flight(&trip), book_hotel(&trip))`
// Output: `[Branch { step: book_flight, args: [&trip] }, Branch { step: book_hotel, .. }]`
/// The branches of a join. Reports every malformed branch to `errors` (when
/// given) and returns `None` if there was one.
pub fn branches(mac: &Macro, mut errors: Option<&mut Errors>) -> Option<Vec<Branch>> {
    let mut report = |span: Span, message: String| {
        if let Some(errors) = errors.as_deref_mut() {
            errors.at(span, message);
        }
    };
    let exprs = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(mac.tokens.clone()) {
        Ok(exprs) => exprs,
        Err(error) => {
            report(
                error.span(),
                "`sagaflow::join!` takes step calls separated by commas; each branch is a step the join runs concurrently; write `sagaflow::join!(step_a(..), step_b(..))`".to_owned(),
            );
            return None;
        }
    };
    let mut branches = Vec::new();
    let mut ok = true;
    for expr in &exprs {
        let mut call_expr = expr;
        if let Expr::Await(expr_await) = expr {
            report(
                expr_await.await_token.span(),
                format!(
                    "a branch of `sagaflow::join!` is written without `.await`; the join starts its branches concurrently and awaits them itself; write `{}`",
                    super::names::type_string(&expr_await.base)
                ),
            );
            ok = false;
            call_expr = &expr_await.base;
        }
        let call = match call_expr {
            Expr::Call(call) => match &*call.func {
                Expr::Path(path) if path.qself.is_none() => Some((call, &path.path)),
                _ => None,
            },
            _ => None,
        };
        let Some((call, path)) = call else {
            report(
                expr.span(),
                "each branch of `sagaflow::join!` must be a step call `step(args)`; the join runs steps concurrently and stores one slot per step; move other code before or after the join".to_owned(),
            );
            ok = false;
            continue;
        };
        let span = path
            .segments
            .last()
            .map_or_else(|| path.span(), |segment| segment.ident.span());
        if let Some(wait) = super::names::wait_name(path) {
            let instead = if wait == "child" {
                "`let output = sagaflow::child(workflow, input).await?;`".to_owned()
            } else {
                format!("`sagaflow::{wait}(..).await`")
            };
            report(
                span,
                format!(
                    "`sagaflow::{wait}` cannot be a branch of `sagaflow::join!`; a join runs steps concurrently and stores one slot per step; await it before or after the join: {instead}"
                ),
            );
            ok = false;
            continue;
        }
        branches.push(Branch {
            step: path.clone(),
            args: call.args.iter().cloned().collect(),
            span,
        });
    }
    if exprs.len() < 2 {
        let one = branches.first().map_or_else(
            || "step(..)".to_owned(),
            |branch| format!("{}(..)", branch_name(branch)),
        );
        report(
            mac.path.span(),
            format!(
                "`sagaflow::join!` needs two or more branches; it runs steps concurrently, and one step needs no join; write `{one}.await?`"
            ),
        );
        ok = false;
    }
    ok.then_some(branches)
}

fn branch_name(branch: &Branch) -> String {
    super::names::type_string(&branch.step)
}
