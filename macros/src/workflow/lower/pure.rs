//! Pure code between suspension points: one node of the graph, its uses
//! and definitions, and the edges its exits take.

use std::collections::BTreeSet;

use syn::visit::Visit;
use syn::{Expr, Pat, Stmt};

use super::exits::{Assigned, Exits, exit_of, may_assign, must_assign};
use super::ir::{EXIT_ERR, EdgeKind, Item, NodeId, NodeKind, VarType};
use super::lowerer::{Lowerer, Preds};
use super::visitors::single_ident;

impl Lowerer<'_> {
    pub(crate) fn pure(
        &mut self,
        stmt: &Stmt,
        tail: bool,
        ret: bool,
        preds: Preds,
        items: &mut Vec<Item>,
    ) -> Preds {
        let node = self.node(NodeKind::Pure);
        self.connect(preds, node);
        let mut exits = Exits::default();
        let mut direct_exit = None;
        match stmt {
            Stmt::Local(local) => {
                let uses = self.uses_of(|uses| {
                    if let Some(init) = &local.init {
                        uses.visit_expr(&init.expr);
                        if let Some((_, diverge)) = &init.diverge {
                            uses.visit_expr(diverge);
                        }
                    }
                });
                if let Some(init) = &local.init {
                    exits.visit_expr(&init.expr);
                    if let Some((_, diverge)) = &init.diverge {
                        exits.visit_expr(diverge);
                    }
                }
                self.nodes[node].uses = uses;
                let is_ref = local
                    .init
                    .as_ref()
                    .is_some_and(|init| matches!(&*init.expr, Expr::Reference(_)));
                let ty = local
                    .init
                    .as_ref()
                    .map_or(VarType::Unknown, |init| self.copied_type(&init.expr));
                let ids = self.bind(&local.pat, ty, node);
                if let Pat::Ident(_) = &local.pat {
                    for id in ids {
                        self.bindings[id].is_ref |= is_ref;
                        self.bindings[id].deferred = local.init.is_none();
                    }
                }
            }
            Stmt::Expr(Expr::Assign(assign), _) if single_ident(&assign.left).is_some() => {
                let name = single_ident(&assign.left).expect("checked").to_string();
                let uses = self.uses_of(|uses| uses.visit_expr(&assign.right));
                exits.visit_expr(&assign.right);
                self.nodes[node].uses = uses;
                if let Some(id) = self.resolve(&name) {
                    self.nodes[node].defs.insert(id);
                    self.nodes[node].assigns.insert(id);
                    // `let x; .. x = y;` types `x` as a copy of `y`.
                    if matches!(self.bindings[id].ty, VarType::Unknown) {
                        self.bindings[id].ty = self.copied_type(&assign.right);
                    }
                }
            }
            Stmt::Expr(Expr::Return(ret_expr), _) => {
                let uses = self.uses_of(|uses| uses.visit_stmt(stmt));
                self.nodes[node].uses = uses;
                if let Some(value) = &ret_expr.expr {
                    exits.visit_expr(value);
                }
                direct_exit = Some(exit_of(ret_expr.expr.as_deref()));
            }
            Stmt::Expr(expr, None) if tail && ret => {
                let uses = self.uses_of(|uses| uses.visit_expr(expr));
                self.nodes[node].uses = uses;
                exits.visit_expr(expr);
                direct_exit = Some(exit_of(Some(expr)));
            }
            Stmt::Item(_) => {}
            _ => {
                let uses = self.uses_of(|uses| uses.visit_stmt(stmt));
                self.nodes[node].uses = uses;
                exits.visit_stmt(stmt);
                // `if c { x = 1; } else { x = 2; }`: what it assigns on every
                // path that goes on defines it here (liveness: no state
                // before holds it); what it may assign, the segment declares.
                if let Stmt::Expr(expr, _) = stmt {
                    let mut may = BTreeSet::new();
                    may_assign(expr, &mut may);
                    for name in &may {
                        if let Some(id) = self.resolve(name) {
                            self.nodes[node].assigns.insert(id);
                        }
                    }
                    if let Assigned::Names(names) = must_assign(expr) {
                        for name in &names {
                            if let Some(id) = self.resolve(name) {
                                self.nodes[node].defs.insert(id);
                            }
                        }
                    }
                }
            }
        }
        let direct_jump = matches!(stmt, Stmt::Expr(Expr::Break(_) | Expr::Continue(_), _));
        let jumps = self.exit_edges(node, &exits, direct_jump);
        items.push(Item::Pure {
            stmt: stmt.clone(),
            tail,
        });
        match direct_exit {
            Some(exit) => {
                self.nodes[node].succ.push((exit, EdgeKind::Normal));
                Vec::new()
            }
            None if direct_jump => Vec::new(),
            None if exits.returns.is_empty() && !exits.has_try && jumps == 0 => {
                vec![(node, EdgeKind::Normal)]
            }
            None => vec![(node, EdgeKind::Branch)],
        }
    }

    /// Adds the edges of the `return`s, `?`s, `break`s and `continue`s found
    /// in a node's pure code; returns how many jumps lead out of it to a loop
    /// with steps. `direct`: the statement is itself the `break`/`continue`.
    pub(crate) fn exit_edges(&mut self, node: NodeId, exits: &Exits, direct: bool) -> usize {
        for exit in &exits.returns {
            self.nodes[node].succ.push((*exit, EdgeKind::Branch));
        }
        if exits.has_try {
            self.nodes[node].succ.push((EXIT_ERR, EdgeKind::Branch));
        }
        let mut count = 0;
        for jump in &exits.jumps {
            let target = match &jump.label {
                None => self.loops.last(),
                Some(label) => self
                    .loops
                    .iter()
                    .rev()
                    .find(|context| context.label.as_deref() == Some(label.as_str())),
            };
            // A jump to no loop with steps targets an outer pure block; rustc judges it.
            let Some(target) = target else { continue };
            let (to, kind) = if jump.is_continue {
                (target.head, EdgeKind::Branch)
            } else if direct {
                (target.exit, EdgeKind::Normal)
            } else {
                (target.exit, EdgeKind::Branch)
            };
            if let Some(value) = &jump.value {
                self.error_spanned(
                    value,
                    "`break` with a value out of a loop with steps is not supported; the loop's value cannot be carried across its steps; assign a variable declared before the loop, then `break`: `let x: Type; loop { ..; x = value; break; }`",
                );
            }
            self.nodes[node].succ.push((to, kind));
            count += 1;
        }
        count
    }
}
