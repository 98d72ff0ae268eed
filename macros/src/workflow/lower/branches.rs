//! `if` and `match` whose arms hold suspension points.

use syn::visit::Visit;
use syn::{Expr, Stmt};

use super::exits::Exits;
use super::ir::{EdgeKind, IfItem, MatchItem, NodeKind};
use super::lowerer::{Lowerer, Preds};
use super::visitors::{condition_lets, contains_step, first_step_span};

impl Lowerer<'_> {
    pub(crate) fn lower_if(
        &mut self,
        expr_if: &syn::ExprIf,
        ret: bool,
        preds: Preds,
    ) -> (IfItem, Preds) {
        let mut item = IfItem {
            conds: Vec::new(),
            blocks: Vec::new(),
            else_block: None,
        };
        let mut dangling = Vec::new();
        let mut preds = preds;
        let mut current = expr_if;
        loop {
            if contains_step(&*current.cond) {
                let message = if condition_lets(&current.cond).is_empty() {
                    "a step cannot be called here in an `if` condition: code before it in the condition (a call, a `?`, a macro) would have to run after it; bind the step's output first: `let output = step(..).await?; if .. {}`"
                } else {
                    "a step in an `if` let chain after its `let` (`if let P = .. && step(..).await? {`) is not supported; the step would have to run before the chain binds what it uses; nest it: `if let P = .. { if step(..).await? { .. } }`"
                };
                self.error(first_step_span(&*current.cond), message);
            }
            let cond = self.node(NodeKind::Pure);
            self.connect(preds, cond);
            self.nodes[cond].uses = self.uses_of(|uses| uses.visit_expr(&current.cond));
            let mut exits = Exits::default();
            exits.visit_expr(&current.cond);
            self.exit_edges(cond, &exits, false);
            self.scopes.push(Vec::new());
            // `if let P = a && let Q = b`: every `let` of the chain binds.
            self.bind_lets(&current.cond, cond);
            self.location.last_mut().expect("inside a block").1 = item.blocks.len();
            let (block, out) = self.block(
                &current.then_branch.stmts,
                ret,
                vec![(cond, EdgeKind::Branch)],
                false,
            );
            self.scopes.pop();
            item.conds.push((*current.cond).clone());
            item.blocks.push(block);
            dangling.extend(out);
            match &current.else_branch {
                Some((_, else_expr)) => match &**else_expr {
                    Expr::If(next) => {
                        preds = vec![(cond, EdgeKind::Branch)];
                        current = next;
                    }
                    Expr::Block(block) => {
                        self.location.last_mut().expect("inside a block").1 = item.blocks.len();
                        let (block, out) = self.block(
                            &block.block.stmts,
                            ret,
                            vec![(cond, EdgeKind::Branch)],
                            false,
                        );
                        item.else_block = Some(block);
                        dangling.extend(out);
                        break;
                    }
                    other => {
                        let stmts = vec![Stmt::Expr(other.clone(), None)];
                        let (block, out) =
                            self.block(&stmts, ret, vec![(cond, EdgeKind::Branch)], false);
                        item.else_block = Some(block);
                        dangling.extend(out);
                        break;
                    }
                },
                None => {
                    dangling.push((cond, EdgeKind::Branch));
                    break;
                }
            }
        }
        (item, dangling)
    }

    pub(crate) fn lower_match(
        &mut self,
        expr_match: &syn::ExprMatch,
        ret: bool,
        preds: Preds,
    ) -> (MatchItem, Preds) {
        if contains_step(&*expr_match.expr) {
            self.error(
                first_step_span(&*expr_match.expr),
                "a step cannot be called in a `match` scrutinee; the workflow must stop at the step before it chooses an arm; bind the step's result first: `let result = step(..).await; match result { .. }`",
            );
        }
        let scrutinee = self.node(NodeKind::Pure);
        self.connect(preds, scrutinee);
        self.nodes[scrutinee].uses = self.uses_of(|uses| uses.visit_expr(&expr_match.expr));
        let ty = self.type_of(&expr_match.expr);
        let mut item = MatchItem {
            expr: (*expr_match.expr).clone(),
            arms: Vec::new(),
        };
        let mut dangling = Vec::new();
        // One arm without a guard always matches: no choice is made there.
        let choice = if expr_match.arms.len() == 1 && expr_match.arms[0].guard.is_none() {
            EdgeKind::Normal
        } else {
            EdgeKind::Branch
        };
        for (index, arm) in expr_match.arms.iter().enumerate() {
            let arm_node = self.node(NodeKind::Pure);
            self.nodes[scrutinee].succ.push((arm_node, choice));
            self.scopes.push(Vec::new());
            self.bind(&arm.pat, ty.clone(), arm_node);
            if let Some((_, guard)) = &arm.guard
                && contains_step(&**guard)
            {
                self.error(
                    first_step_span(&**guard),
                    "a step, timer or signal cannot be awaited in a `match` guard; the workflow must stop there before it chooses an arm, and a guard is part of choosing; await it before the `match` and test its output in the guard: `let fired = ..; match x { a if fired => .. }`",
                );
            }
            if let Some((_, guard)) = &arm.guard {
                // The guard reads the arm's own bindings after they are bound.
                let uses = self.uses_of(|uses| uses.visit_expr(guard));
                let defs = &self.nodes[arm_node].defs;
                self.nodes[arm_node].uses = uses.difference(defs).copied().collect();
            }
            self.location.last_mut().expect("inside a block").1 = index;
            let preds = vec![(arm_node, EdgeKind::Normal)];
            let (block, out) = match &*arm.body {
                Expr::Block(block) if block.label.is_none() => {
                    self.block(&block.block.stmts, ret, preds, false)
                }
                other => {
                    let stmts = if ret {
                        vec![Stmt::Expr(other.clone(), None)]
                    } else {
                        vec![Stmt::Expr(other.clone(), Some(Default::default()))]
                    };
                    self.block(&stmts, ret, preds, false)
                }
            };
            self.scopes.pop();
            dangling.extend(out);
            item.arms.push((
                arm.attrs.clone(),
                arm.pat.clone(),
                arm.guard.as_ref().map(|(_, g)| (**g).clone()),
                block,
            ));
        }
        (item, dangling)
    }
}
