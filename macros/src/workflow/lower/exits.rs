//! What pure code can do besides fall through: its exits (`return`,
//! `?`, `break`, `continue`) and the variables it must or may assign.

use std::collections::BTreeSet;

use syn::visit::{self, Visit};
use syn::{Expr, Stmt};

use super::ir::{EXIT_ANY, EXIT_ERR, EXIT_OK, NodeId};
use super::visitors::{pattern_names, single_ident};

/// What pure code assigns (`x = ..`) on every path that goes on after it.
#[derive(Debug, PartialEq)]
pub(crate) enum Assigned {
    /// These names, declared outside it.
    Names(BTreeSet<String>),
    /// It never goes on (`return`, a panic): anything.
    Diverges,
}

impl Assigned {
    pub(crate) fn none() -> Self {
        Assigned::Names(BTreeSet::new())
    }

    /// Both, one after the other.
    pub(crate) fn then(self, next: Assigned) -> Assigned {
        match (self, next) {
            (Assigned::Names(mut a), Assigned::Names(b)) => {
                a.extend(b);
                Assigned::Names(a)
            }
            _ => Assigned::Diverges,
        }
    }

    /// One or the other.
    pub(crate) fn or(self, other: Assigned) -> Assigned {
        match (self, other) {
            (Assigned::Names(a), Assigned::Names(b)) => {
                Assigned::Names(a.intersection(&b).cloned().collect())
            }
            (Assigned::Diverges, other) | (other, Assigned::Diverges) => other,
        }
    }

    /// Without what a nested scope declares under these names.
    pub(crate) fn without(self, shadowed: &BTreeSet<String>) -> Assigned {
        match self {
            Assigned::Names(names) => {
                Assigned::Names(names.difference(shadowed).cloned().collect())
            }
            Assigned::Diverges => Assigned::Diverges,
        }
    }
}

// Input:  `if c { x = 1; } else { match n { 0 => x = 2, _ => return Ok(0) } }`
// Output: `Names({x})`
/// The variables pure code assigns on every path out of it but `return`s
/// and panics (which leave the workflow). A `break` or `continue` counts as
/// assigning nothing, since the loop's next code may read the old value;
/// loops, closures and calls too: a def missed only keeps a variable stored.
pub(crate) fn must_assign(expr: &Expr) -> Assigned {
    match expr {
        Expr::Assign(assign) => {
            let value = must_assign(&assign.right);
            match single_ident(&assign.left) {
                Some(name) => value.then(Assigned::Names(BTreeSet::from([name.to_string()]))),
                None => value,
            }
        }
        Expr::If(expr_if) => {
            let cond = must_assign(&expr_if.cond);
            let branches = match &expr_if.else_branch {
                Some((_, otherwise)) => {
                    block_must_assign(&expr_if.then_branch).or(must_assign(otherwise))
                }
                None => Assigned::none(),
            };
            cond.then(branches)
        }
        Expr::Match(expr_match) => {
            let arms = expr_match
                .arms
                .iter()
                .map(|arm| must_assign(&arm.body).without(&pattern_names(&arm.pat)))
                .reduce(Assigned::or)
                // A match without arms never goes on.
                .unwrap_or(Assigned::Diverges);
            must_assign(&expr_match.expr).then(arms)
        }
        Expr::Block(block) if block.label.is_none() => block_must_assign(&block.block),
        Expr::Unsafe(block) => block_must_assign(&block.block),
        Expr::Paren(paren) => must_assign(&paren.expr),
        Expr::Return(_) => Assigned::Diverges,
        Expr::Macro(expr_macro) if is_panic(&expr_macro.mac) => Assigned::Diverges,
        _ => Assigned::none(),
    }
}

/// [`must_assign`] of a block: its statements in order, less its own `let`s.
pub(crate) fn block_must_assign(block: &syn::Block) -> Assigned {
    let mut assigned = Assigned::none();
    let mut shadowed = BTreeSet::new();
    for stmt in &block.stmts {
        let next = match stmt {
            Stmt::Local(local) => {
                let value = local
                    .init
                    .as_ref()
                    .map_or_else(Assigned::none, |init| must_assign(&init.expr));
                let value = value.without(&shadowed);
                shadowed.extend(pattern_names(&local.pat));
                value
            }
            Stmt::Expr(expr, _) => must_assign(expr).without(&shadowed),
            Stmt::Macro(stmt_macro) if is_panic(&stmt_macro.mac) => Assigned::Diverges,
            _ => Assigned::none(),
        };
        assigned = assigned.then(next);
        if assigned == Assigned::Diverges {
            break;
        }
    }
    assigned
}

/// Whether a macro is one that panics.
pub(crate) fn is_panic(mac: &syn::Macro) -> bool {
    mac.path.segments.last().is_some_and(|last| {
        matches!(
            last.ident.to_string().as_str(),
            "panic" | "unreachable" | "todo" | "unimplemented"
        )
    })
}

/// Every variable pure code may assign (`x = ..`), outside closures and
/// nested items; a name a nested `let` or pattern shadows is kept too, which
/// at worst declares an unused variable.
pub(crate) fn may_assign(expr: &Expr, out: &mut BTreeSet<String>) {
    struct Assigns<'a>(&'a mut BTreeSet<String>);
    impl<'ast> Visit<'ast> for Assigns<'_> {
        fn visit_expr_assign(&mut self, assign: &'ast syn::ExprAssign) {
            if let Some(name) = single_ident(&assign.left) {
                self.0.insert(name.to_string());
            }
            visit::visit_expr_assign(self, assign);
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    Assigns(out).visit_expr(expr);
}

pub(crate) fn exit_of(value: Option<&Expr>) -> NodeId {
    if let Some(Expr::Call(call)) = value
        && let Expr::Path(path) = &*call.func
        && let Some(last) = path.path.segments.last()
    {
        if last.ident == "Ok" {
            return EXIT_OK;
        }
        if last.ident == "Err" {
            return EXIT_ERR;
        }
    }
    EXIT_ANY
}

/// `return`s, `?`s, and `break`s and `continue`s that leave the code, in
/// pure code (not inside closures, async blocks or items).
#[derive(Default)]
pub(crate) struct Exits {
    pub(crate) returns: Vec<NodeId>,
    pub(crate) has_try: bool,
    pub(crate) jumps: Vec<Jump>,
    /// Loops and labelled blocks inside the code: their label, whether a loop.
    pub(crate) inner: Vec<(Option<String>, bool)>,
}

/// A `break` or `continue` that leaves the code it is found in.
pub(crate) struct Jump {
    pub(crate) label: Option<String>,
    pub(crate) is_continue: bool,
    /// `break value`, when a value is given.
    pub(crate) value: Option<syn::ExprBreak>,
}

impl Exits {
    pub(crate) fn inside(&mut self, label: Option<&syn::Label>, is_loop: bool, expr: &Expr) {
        self.inner
            .push((label.map(|label| label.name.ident.to_string()), is_loop));
        visit::visit_expr(self, expr);
        self.inner.pop();
    }

    pub(crate) fn jump(
        &mut self,
        label: Option<&syn::Lifetime>,
        is_continue: bool,
        value: Option<syn::ExprBreak>,
    ) {
        let label = label.map(|label| label.ident.to_string());
        let inner = match &label {
            None => self.inner.iter().any(|(_, is_loop)| *is_loop),
            Some(label) => self
                .inner
                .iter()
                .any(|(inner, _)| inner.as_deref() == Some(label.as_str())),
        };
        if !inner {
            self.jumps.push(Jump {
                label,
                is_continue,
                value,
            });
        }
    }
}

impl<'ast> Visit<'ast> for Exits {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Loop(expr_loop) => self.inside(expr_loop.label.as_ref(), true, expr),
            Expr::While(expr_while) => self.inside(expr_while.label.as_ref(), true, expr),
            Expr::ForLoop(expr_for) => self.inside(expr_for.label.as_ref(), true, expr),
            Expr::Block(block) if block.label.is_some() => {
                self.inside(block.label.as_ref(), false, expr)
            }
            Expr::Break(expr_break) => {
                let value = expr_break.expr.as_ref().map(|_| expr_break.clone());
                self.jump(expr_break.label.as_ref(), false, value);
                visit::visit_expr(self, expr);
            }
            Expr::Continue(expr_continue) => {
                self.jump(expr_continue.label.as_ref(), true, None);
            }
            Expr::Return(ret) => {
                self.returns.push(exit_of(ret.expr.as_deref()));
                visit::visit_expr(self, expr);
            }
            Expr::Try(_) => {
                self.has_try = true;
                visit::visit_expr(self, expr);
            }
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
