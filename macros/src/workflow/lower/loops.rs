//! Loops with suspension points (`loop`, `while`, `for`): their heads,
//! back edges, and what a `for` iterates over across steps.

use syn::visit::Visit;
use syn::{Expr, Ident, Pat, Type};

use super::super::names::type_string;
use super::calls::expr_text;
use super::exits::Exits;
use super::ir::{EdgeKind, LoopHead, LoopItem, NodeKind, VarType};
use super::lowerer::{BORROWING, ForSource, LoopContext, Lowerer, Preds};
use super::visitors::{contains_step, first_step_span, single_ident};

impl Lowerer<'_> {
    // Input:  `'outer: for item in items { let r = reserve(&item).await?; reserved.push(r); }`
    // Output: `LoopItem { head: ForEach { items: __for1_items, next: __for1_next, .. }, body, .. }`;
    //         CFG: preds → init → head ⇄ body (back edges `Branch`), head → exit
    pub(crate) fn lower_loop(&mut self, expr: &Expr, preds: Preds) -> (LoopItem, Preds) {
        let (label, body) = match expr {
            Expr::Loop(expr_loop) => (&expr_loop.label, &expr_loop.body),
            Expr::While(expr_while) => (&expr_while.label, &expr_while.body),
            Expr::ForLoop(expr_for) => (&expr_for.label, &expr_for.body),
            _ => unreachable!("called on loops"),
        };
        let head = self.node(NodeKind::Pure);
        let exit = self.node(NodeKind::Pure);
        // The loop's own bindings (the pattern of `for` and `while let`).
        self.scopes.push(Vec::new());
        let (head_ir, body_preds) = match expr {
            Expr::Loop(_) => {
                self.connect(preds, head);
                (LoopHead::Loop, vec![(head, EdgeKind::Normal)])
            }
            Expr::While(expr_while) => {
                // A condition with steps is a `loop` by now (`desugar`),
                // but for a let chain.
                let cond = &*expr_while.cond;
                if contains_step(cond) {
                    self.error(
                        first_step_span(cond),
                        "a step in a `while` condition that is a let chain (`while let P = .. && ..`) is not supported; the bindings of the chain cannot be carried into the loop's body around the step; write the loop with the step in its body: `loop { let value = step(..).await?; let P = value else { break }; .. }`",
                    );
                }
                self.connect(preds, head);
                self.nodes[head].uses = self.uses_of(|uses| uses.visit_expr(cond));
                let mut exits = Exits::default();
                exits.visit_expr(cond);
                self.exit_edges(head, &exits, false);
                self.bind_lets(cond, head);
                self.nodes[head].succ.push((exit, EdgeKind::Branch));
                (
                    LoopHead::While(cond.clone()),
                    vec![(head, EdgeKind::Branch)],
                )
            }
            Expr::ForLoop(expr_for) => {
                let collection = &*expr_for.expr;
                if contains_step(collection) {
                    self.error(
                        first_step_span(collection),
                        "a step cannot be called in a `for` loop's collection; the workflow must stop at the step before the loop starts; bind the step's output first: `let items = step(..).await?; for item in items { .. }`",
                    );
                }
                let init = self.node(NodeKind::Pure);
                self.connect(preds, init);
                self.nodes[init].uses = self.uses_of(|uses| uses.visit_expr(collection));
                let mut exits = Exits::default();
                exits.visit_expr(collection);
                self.exit_edges(init, &exits, false);
                self.connect(vec![(init, EdgeKind::Normal)], head);
                self.for_loops += 1;
                let number = self.for_loops;
                let (head_ir, element) = match self.for_source(&expr_for.pat, collection) {
                    Some(ForSource::Range(element)) => {
                        let rest = self.synthetic(
                            format!("__for{number}_range"),
                            VarType::RangeOf(Box::new(element.clone())),
                            init,
                        );
                        self.nodes[head].uses.insert(rest);
                        self.nodes[head].defs.insert(rest);
                        let head_ir = LoopHead::ForRange {
                            pat: (*expr_for.pat).clone(),
                            range: collection.clone(),
                            rest,
                        };
                        (head_ir, element)
                    }
                    source => {
                        // On an error, `_` keeps the pattern's bindings from
                        // being reported again as unnameable.
                        let element = match source {
                            Some(ForSource::Collection(element)) => element,
                            _ => VarType::Written(syn::parse_quote!(_)),
                        };
                        let items = self.synthetic(
                            format!("__for{number}_items"),
                            VarType::VecOf(Box::new(element.clone())),
                            init,
                        );
                        let next = self.synthetic(
                            format!("__for{number}_next"),
                            VarType::Written(syn::parse_quote!(usize)),
                            init,
                        );
                        self.nodes[head].uses.extend([items, next]);
                        self.nodes[head].defs.insert(next);
                        let head_ir = LoopHead::ForEach {
                            pat: (*expr_for.pat).clone(),
                            collection: collection.clone(),
                            items,
                            next,
                        };
                        (head_ir, element)
                    }
                };
                self.bind(&expr_for.pat, element, head);
                self.nodes[head].succ.push((exit, EdgeKind::Branch));
                (head_ir, vec![(head, EdgeKind::Branch)])
            }
            _ => unreachable!("called on loops"),
        };
        self.loops.push(LoopContext {
            label: label.as_ref().map(|label| label.name.ident.to_string()),
            head,
            exit,
        });
        self.location.last_mut().expect("inside a block").1 = 0;
        let (body, dangling) = self.block(&body.stmts, false, body_preds, false);
        self.loops.pop();
        self.scopes.pop();
        // The end of the body goes round again: a back edge.
        for (from, _) in dangling {
            self.nodes[from].succ.push((head, EdgeKind::Branch));
        }
        let exits = self
            .nodes
            .iter()
            .any(|node| node.succ.iter().any(|(to, _)| *to == exit));
        let item = LoopItem {
            label: label.clone(),
            head: head_ir,
            body,
            entry: head,
            exit,
            exits,
        };
        let dangling = if exits {
            vec![(exit, EdgeKind::Normal)]
        } else {
            Vec::new()
        };
        (item, dangling)
    }

    // Input:  `items`, `items.clone()`, `0..count` (the typed collection of a `for` with steps)
    // Output: the element type, or an error saying which collection to write
    /// What a `for` loop with steps iterates: the collection must be owned and
    /// its type nameable, since the loop stores it between steps.
    pub(crate) fn for_source(&mut self, pat: &Pat, collection: &Expr) -> Option<ForSource> {
        let mut expr = collection;
        while let Expr::Paren(paren) = expr {
            expr = &paren.expr;
        }
        let pat = type_string(pat);
        let borrowed = |this: &mut Self, written: &str| {
            let mut root = expr;
            loop {
                match root {
                    Expr::Reference(reference) => root = &reference.expr,
                    Expr::MethodCall(call) => root = &call.receiver,
                    Expr::Paren(paren) => root = &paren.expr,
                    _ => break,
                }
            }
            let items = single_ident(root).map_or_else(|| "items".to_owned(), Ident::to_string);
            this.error_spanned(
                collection,
                format!(
                    "`for` over `{written}` borrows the collection, but a loop with steps stores the collection and its position in the workflow's state between steps, and a state holds owned values; iterate over an owned collection: `for {pat} in {items}.clone() {{ .. }}`, or over indexes: `for index in 0..{items}.len() {{ .. }}`"
                ),
            );
            None
        };
        let unnameable = |this: &mut Self| {
            this.error_spanned(
                collection,
                format!(
                    "cannot name the type of the collection this `for` loop iterates; a loop with steps stores the collection in the workflow's state between steps, so the state declares a field for it; bind it with its type first: `let items: Vec<Item> = ..; for {pat} in items {{ .. }}`"
                ),
            );
            None
        };
        if let Expr::Range(range) = expr {
            if matches!(range.limits, syn::RangeLimits::Closed(_)) {
                let bound = |bound: &Option<Box<Expr>>| bound.as_ref().map(type_string);
                let (start, end) = (bound(&range.start), bound(&range.end));
                self.error_spanned(
                    collection,
                    format!(
                        "an inclusive range `a..=b` in a `for` loop with steps is not supported; the loop stores the rest of its range between steps as a `Range`; write the exclusive range `{}..{} + 1`",
                        start.as_deref().unwrap_or("a"),
                        end.as_deref().unwrap_or("b"),
                    ),
                );
                return None;
            }
            let (Some(start), Some(end)) = (&range.start, &range.end) else {
                self.error_spanned(
                    collection,
                    "a `for` loop with steps needs a range with both bounds; the loop stores the rest of its range between steps; write `start..end`",
                );
                return None;
            };
            let element = self.bound_type(start).or_else(|| self.bound_type(end));
            return match element {
                Some(element) => Some(ForSource::Range(element)),
                None => {
                    self.error_spanned(
                        collection,
                        "cannot name the type of this range's bounds; a loop with steps stores the rest of its range in the workflow's state; give a bound a type: `0u32..count`, or a variable annotated `let count: u32 = ..;`",
                    );
                    None
                }
            };
        }
        let root = match expr {
            Expr::Reference(_) => return borrowed(self, &expr_text(expr)),
            Expr::MethodCall(call) => {
                let mut receiver = &*call.receiver;
                let mut methods = vec![call.method.to_string()];
                while let Expr::MethodCall(inner) = receiver {
                    methods.push(inner.method.to_string());
                    receiver = &inner.receiver;
                }
                if matches!(receiver, Expr::Reference(_))
                    || methods
                        .iter()
                        .any(|method| BORROWING.contains(&method.as_str()))
                {
                    return borrowed(self, &expr_text(expr));
                }
                if !matches!(
                    call.method.to_string().as_str(),
                    "clone" | "into_iter" | "to_owned"
                ) || !call.args.is_empty()
                {
                    return unnameable(self);
                }
                &*call.receiver
            }
            other => other,
        };
        let Some(id) = single_ident(root).and_then(|name| self.resolve(&name.to_string())) else {
            return unnameable(self);
        };
        let binding = &self.bindings[id];
        if binding.is_ref || matches!(binding.ty, VarType::Written(Type::Reference(_))) {
            return borrowed(self, &expr_text(expr));
        }
        if matches!(binding.ty, VarType::Unknown) {
            let name = binding.ident.to_string();
            self.error_spanned(
                collection,
                format!(
                    "cannot name the type of `{name}`, which this `for` loop iterates; a loop with steps stores the collection in the workflow's state between steps, so the state declares a field for it; annotate it: `let {name}: Vec<Item> = ..;`"
                ),
            );
            return None;
        }
        Some(ForSource::Collection(binding.ty.element()))
    }

    /// The type of a range bound: a typed variable, a suffixed literal, a cast, or `.len()`.
    pub(crate) fn bound_type(&self, bound: &Expr) -> Option<VarType> {
        match bound {
            Expr::Paren(paren) => self.bound_type(&paren.expr),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(int),
                ..
            }) if !int.suffix().is_empty() => {
                Some(VarType::Written(syn::parse_str(int.suffix()).ok()?))
            }
            Expr::Cast(cast) => Some(VarType::Written((*cast.ty).clone())),
            Expr::MethodCall(call) if call.method == "len" && call.args.is_empty() => {
                Some(VarType::Written(syn::parse_quote!(usize)))
            }
            Expr::Binary(binary) => self
                .bound_type(&binary.left)
                .or_else(|| self.bound_type(&binary.right)),
            other => match self.type_of(other) {
                VarType::Unknown => None,
                ty => Some(ty),
            },
        }
    }
}
