//! The lowering's walk: the `Lowerer` over a body's statements and
//! blocks, the entry point [`lower`], and what the other parts share.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proc_macro2::Span;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Expr, Stmt};

use super::super::Errors;
use super::super::names::wait_name;
use super::super::parse::{SignalDecl, WorkflowFn};
use super::calls::{
    assignment, assignment_right, child_value_type, place_root, replace_call, step_call,
    wait_value_type,
};
use super::ir::{
    Binding, BindingId, Block, EdgeKind, Item, Machine, Node, NodeId, NodeKind, START, Site,
    VarType,
};
use super::visitors::SpanOf;
use super::visitors::{Uses, contains_step, first_step_span, single_ident};

// Input:  the parsed function (`let reservation = reserve_inventory(&order).await?; ..`)
// Output: `Machine { sites: [ReserveInventory1, ..], stored: [[order], [order], ..], edges, .. }`
/// Lowers the body. Pushes every unsupported construct and every variable the
/// state cannot hold to `errors`; returns `None` if there were any.
pub fn lower(func: &WorkflowFn, errors: &mut Errors) -> Option<Machine> {
    let mut lowerer = Lowerer {
        errors,
        signals: func.options.signals.as_deref(),
        failed: false,
        bindings: Vec::new(),
        scopes: vec![Vec::new()],
        nodes: Vec::new(),
        sites: Vec::new(),
        location: Vec::new(),
        items: Vec::new(),
        loops: Vec::new(),
        for_loops: 0,
    };
    for kind in [
        NodeKind::ExitOk,
        NodeKind::ExitErr,
        NodeKind::ExitAny,
        NodeKind::Start,
    ] {
        lowerer.node(kind);
    }
    for param in &func.params {
        let id = lowerer.bindings.len();
        lowerer.bindings.push(Binding {
            ident: param.name.clone(),
            ty: VarType::Written(param.ty.clone()),
            is_ref: false,
            declared_at: None,
            deferred: false,
        });
        lowerer.scopes[0].push(id);
    }
    let (body, _) = lowerer.block(
        &func.body.stmts,
        true,
        vec![(START, EdgeKind::Normal)],
        true,
    );
    let params: Vec<BindingId> = (0..func.params.len()).collect();
    lowerer.finish(body, params)
}

pub(crate) type Preds = Vec<(NodeId, EdgeKind)>;

/// What a `for` loop with steps iterates.
pub(crate) enum ForSource {
    /// An owned collection, collected into a stored `Vec` of this element type.
    Collection(VarType),
    /// A range `a..b` of this element type, stored as a `Range`.
    Range(VarType),
}

/// Methods whose result borrows the collection they are called on.
pub(crate) const BORROWING: [&str; 14] = [
    "iter",
    "iter_mut",
    "chars",
    "char_indices",
    "bytes",
    "lines",
    "keys",
    "values",
    "values_mut",
    "windows",
    "chunks",
    "split",
    "split_whitespace",
    "drain",
];

pub(crate) struct Lowerer<'a> {
    pub(crate) errors: &'a mut Errors,
    /// The signals the workflow declares, if it declares them: they type
    /// the waits for them.
    pub(crate) signals: Option<&'a [SignalDecl]>,
    pub(crate) failed: bool,
    pub(crate) bindings: Vec<Binding>,
    pub(crate) scopes: Vec<Vec<BindingId>>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) sites: Vec<Site>,
    pub(crate) location: Vec<(usize, usize)>,
    pub(crate) items: Vec<Stmt>,
    /// The loops with steps around the statement being lowered, innermost last.
    pub(crate) loops: Vec<LoopContext>,
    /// How many `for` loops with steps were lowered: names their stored variables.
    pub(crate) for_loops: usize,
}

/// Where `break` and `continue` lead in a loop with steps.
pub(crate) struct LoopContext {
    pub(crate) label: Option<String>,
    pub(crate) head: NodeId,
    pub(crate) exit: NodeId,
}

impl Lowerer<'_> {
    pub(crate) fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.failed = true;
        self.errors.at(span, message);
    }

    pub(crate) fn error_spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.failed = true;
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn node(&mut self, kind: NodeKind) -> NodeId {
        self.nodes.push(Node {
            kind,
            uses: BTreeSet::new(),
            defs: BTreeSet::new(),
            assigns: BTreeSet::new(),
            succ: Vec::new(),
        });
        self.nodes.len() - 1
    }

    pub(crate) fn connect(&mut self, preds: Preds, to: NodeId) {
        for (from, kind) in preds {
            self.nodes[from].succ.push((to, kind));
        }
    }

    pub(crate) fn visible(&self) -> BTreeMap<String, BindingId> {
        let mut visible = BTreeMap::new();
        for scope in &self.scopes {
            for &id in scope {
                visible.insert(self.bindings[id].ident.to_string(), id);
            }
        }
        visible
    }

    pub(crate) fn uses_of(&self, visit_with: impl FnOnce(&mut Uses)) -> BTreeSet<BindingId> {
        let visible = self.visible();
        let mut uses = Uses {
            visible: &visible,
            shadowed: vec![HashSet::new()],
            found: BTreeSet::new(),
        };
        visit_with(&mut uses);
        uses.found
    }

    pub(crate) fn resolve(&self, name: &str) -> Option<BindingId> {
        self.visible().get(name).copied()
    }

    /// Lowers the statements of a block in a new scope.
    pub(crate) fn block(
        &mut self,
        stmts: &[Stmt],
        ret: bool,
        mut preds: Preds,
        top: bool,
    ) -> (Block, Preds) {
        self.scopes.push(Vec::new());
        let mut items = Vec::new();
        for (i, stmt) in stmts.iter().enumerate() {
            let tail = i + 1 == stmts.len() && matches!(stmt, Stmt::Expr(_, None));
            if top && matches!(stmt, Stmt::Item(_)) {
                self.items.push(stmt.clone());
                continue;
            }
            self.location.push((items.len(), 0));
            preds = self.stmt(stmt, tail, ret, preds, &mut items);
            self.location.pop();
        }
        self.scopes.pop();
        (Block { items, ret }, preds)
    }

    pub(crate) fn stmt(
        &mut self,
        stmt: &Stmt,
        tail: bool,
        ret: bool,
        preds: Preds,
        items: &mut Vec<Item>,
    ) -> Preds {
        let mut preds = preds;
        if let Some(preds) = self.join_stmt(stmt, tail, &mut preds, items) {
            return preds;
        }
        match stmt {
            Stmt::Local(local) => {
                if let Some(init) = &local.init
                    && init.diverge.is_none()
                    && let Some((call, path, has_try)) = step_call(&init.expr)
                {
                    let ty = match wait_value_type(path).or_else(|| self.declared_value(call, path))
                    {
                        Some(ty) => ty,
                        None if wait_name(path).as_deref() == Some("child") => {
                            child_value_type(call, has_try)
                        }
                        None if wait_name(path).is_some() => VarType::Unknown,
                        None if has_try => VarType::StepOutput(path.clone()),
                        None => VarType::StepResult(path.clone()),
                    };
                    let mut replaced = stmt.clone();
                    if let Stmt::Local(local) = &mut replaced {
                        let init = local.init.as_mut().expect("checked above");
                        replace_call(&mut init.expr);
                    }
                    return self.site(call, path, has_try, replaced, preds, items, |this, node| {
                        this.bind(&local.pat, ty, node);
                    });
                }
            }
            Stmt::Expr(expr, semi) => {
                if let Some((call, path, has_try)) = step_call(expr) {
                    if tail {
                        self.error(
                            call.func.span_of(),
                            "a step's result cannot be the workflow's value directly; the workflow returns `Result<T, E>` built from its steps' outputs; write `let output = step(..).await?; Ok(output)`",
                        );
                    }
                    let replaced: Stmt = if has_try {
                        syn::parse_quote!(__result?;)
                    } else {
                        syn::parse_quote!(let _ = __result;)
                    };
                    return self.site(call, path, has_try, replaced, preds, items, |_, _| {});
                }
                if let Some((left, right, plain)) = assignment(expr)
                    && let Some(root) = place_root(left)
                    && let Some((call, path, has_try)) = step_call(right)
                {
                    let mut replaced = stmt.clone();
                    if let Stmt::Expr(expr, _) = &mut replaced
                        && let Some(right) = assignment_right(expr)
                    {
                        replace_call(right);
                    }
                    let target = self.resolve(&root.to_string());
                    // `x = ..` replaces `x`; `x += ..`, `x.field = ..` and
                    // `x[i] = ..` read it (and `i`) after the step too.
                    let replaces = plain && single_ident(left).is_some();
                    let read = if replaces {
                        BTreeSet::new()
                    } else {
                        self.uses_of(|uses| uses.visit_expr(left))
                    };
                    // `x = step(..).await?` types a `let x;` by the step's output.
                    let output = (replaces && has_try && wait_name(path).is_none())
                        .then(|| VarType::StepOutput(path.clone()));
                    return self.site(call, path, has_try, replaced, preds, items, |this, node| {
                        this.nodes[node].uses.extend(read);
                        if let Some(id) = target {
                            this.nodes[node].defs.insert(id);
                            this.nodes[node].assigns.insert(id);
                            if let Some(output) = output
                                && matches!(this.bindings[id].ty, VarType::Unknown)
                            {
                                this.bindings[id].ty = output;
                            }
                        }
                    });
                }
                if contains_step(expr) {
                    match expr {
                        Expr::If(expr_if) => {
                            let _ = semi;
                            let (item, dangling) = self.lower_if(expr_if, tail && ret, preds);
                            items.push(Item::If(item));
                            return dangling;
                        }
                        Expr::Match(expr_match) => {
                            let (item, dangling) = self.lower_match(expr_match, tail && ret, preds);
                            items.push(Item::Match(item));
                            return dangling;
                        }
                        Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                            let (item, dangling) = self.lower_loop(expr, preds);
                            items.push(Item::Loop(item));
                            return dangling;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let Stmt::Local(local) = stmt
            && let Some(init) = &local.init
            && matches!(
                &*init.expr,
                Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_)
            )
            && contains_step(&*init.expr)
        {
            let keyword = match &*init.expr {
                Expr::Loop(expr_loop) => expr_loop.loop_token.span,
                Expr::While(expr_while) => expr_while.while_token.span,
                Expr::ForLoop(expr_for) => expr_for.for_token.span,
                _ => unreachable!("matched above"),
            };
            self.error(
                keyword,
                "a loop with steps whose value is bound with `let` is not supported; the value of `break value` cannot be carried across the loop's steps; declare the variable first and assign it before `break`: `let x: Type; loop { ..; x = value; break; }`",
            );
        } else if let Stmt::Local(local) = stmt
            && let Some(init) = &local.init
            && let Some((_, otherwise)) = &init.diverge
            && contains_step(&**otherwise)
        {
            self.error(
                first_step_span(&**otherwise),
                "a step inside the `else` of `let .. else` is not supported; the `else` block cannot resume after a step; use a `match` whose other arm runs the step and returns: `let x = match value { Some(x) => x, None => { step(..).await?; return Err(..); } };`",
            );
        } else if contains_step(stmt) {
            self.error(
                first_step_span(stmt),
                "this step call cannot run before the rest of its statement: a step nested in an expression (`Ok(step(..).await?)`, `price(..).await? * qty`, `f(step(..).await?)`) runs first, as a `let` of its own, which the macro does only when nothing before it in the statement can have an effect or leave early; here a call (other than `.clone()`), a `?` or a macro comes before it; bind the step's output first and use it: `let output = step(..).await?;`",
            );
        }
        self.pure(stmt, tail, ret, preds, items)
    }
}
