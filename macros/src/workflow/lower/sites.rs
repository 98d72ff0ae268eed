//! Suspension points: a step, a `join!`, a child workflow, a timer or a
//! signal as one site of the machine.

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{Expr, ExprCall, Ident, Pat, Path, Stmt};

use super::super::names::wait_name;
use super::super::parse::SignalDecl;
use super::calls::{option_inner, replace_call, turbofish};
use super::ir::{EXIT_ERR, EdgeKind, Item, NodeId, NodeKind, Site, SiteKind, VarType};
use super::lowerer::{Lowerer, Preds};
use super::visitors::SpanOf;
use super::visitors::{camel_case, contains_step, first_step_span, single_ident};

impl Lowerer<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn site(
        &mut self,
        call: &ExprCall,
        path: &Path,
        has_try: bool,
        stmt: Stmt,
        preds: Preds,
        items: &mut Vec<Item>,
        bind: impl FnOnce(&mut Self, NodeId),
    ) -> Preds {
        let index = self.sites.len();
        let kind = self.site_kind(call, path, has_try, &stmt);
        let uses = self.uses_of(|uses| {
            for arg in &call.args {
                uses.visit_expr(arg);
            }
        });
        let preds = if matches!(kind, SiteKind::Step) {
            preds
        } else {
            // A wait's arguments are evaluated by the code that enters its
            // state, so they are not stored in the state.
            let eval = self.node(NodeKind::Pure);
            self.connect(preds, eval);
            self.nodes[eval].uses = uses.clone();
            vec![(eval, EdgeKind::Normal)]
        };
        let node = self.node(NodeKind::Step(index));
        self.connect(preds, node);
        if matches!(kind, SiteKind::Step) {
            self.nodes[node].uses = uses;
        }
        bind(self, node);
        if has_try {
            self.nodes[node].succ.push((EXIT_ERR, EdgeKind::StepErr));
        }
        // A child's state is named after the child workflow, not `child`.
        let named = match &kind {
            SiteKind::Child { workflow, .. } => workflow.clone(),
            _ => path.clone(),
        };
        let last = named.segments.last().expect("a path has a segment");
        let variant = Ident::new(
            &format!("{}{}", camel_case(&last.ident.to_string()), index + 1),
            last.ident.span(),
        );
        let mut location = self.location.clone();
        location.last_mut().expect("inside a block").1 = 0;
        self.sites.push(Site {
            kind,
            step: path.clone(),
            span: last.ident.span(),
            variant,
            args: call.args.iter().cloned().collect(),
            stmt,
            node,
            location,
        });
        items.push(Item::Step { site: index });
        vec![(node, EdgeKind::Normal)]
    }

    // Input:  `let (flight, hotel) = sagaflow::join!(book_flight(&trip), book_hotel(&trip))?;`
    // Output: a `Join{n}` site with its branches; `flight`, `hotel` bound to the steps' outputs
    /// Lowers a statement that is a join (`let pat = join!(..)?;`,
    /// `x = join!(..)?;`, `join!(..)?;`); `None` for any other statement.
    pub(crate) fn join_stmt(
        &mut self,
        stmt: &Stmt,
        tail: bool,
        preds: &mut Preds,
        items: &mut Vec<Item>,
    ) -> Option<Preds> {
        let (mac, has_try, replaced, target) = match stmt {
            Stmt::Local(local) => {
                let init = local.init.as_ref().filter(|init| init.diverge.is_none())?;
                let (mac, has_try) = super::super::join::join_call(&init.expr)?;
                let mut replaced = stmt.clone();
                if let Stmt::Local(local) = &mut replaced
                    && let Some(init) = local.init.as_mut()
                {
                    replace_call(&mut init.expr);
                }
                (mac, has_try, replaced, None)
            }
            Stmt::Expr(Expr::Assign(assign), _) if single_ident(&assign.left).is_some() => {
                let (mac, has_try) = super::super::join::join_call(&assign.right)?;
                let mut replaced = stmt.clone();
                if let Stmt::Expr(Expr::Assign(assign), _) = &mut replaced {
                    replace_call(&mut assign.right);
                }
                let name = single_ident(&assign.left).map(Ident::to_string);
                (mac, has_try, replaced, name)
            }
            other => {
                let (mac, has_try) = super::super::join::join_stmt(other)?;
                if tail && !matches!(other, Stmt::Macro(_)) {
                    self.error(
                        mac.path.span_of(),
                        "a join's result cannot be the workflow's value directly; the workflow returns `Result<T, E>` built from its steps' outputs; write `let (a, b) = sagaflow::join!(..)?; Ok((a, b))`",
                    );
                }
                let replaced: Stmt = if has_try {
                    syn::parse_quote!(__result?;)
                } else {
                    syn::parse_quote!(let _ = __result;)
                };
                (mac, has_try, replaced, None)
            }
        };
        let branches = match super::super::join::branches(mac, None) {
            Some(branches) => branches,
            None => {
                // `check` reported why.
                self.failed = true;
                Vec::new()
            }
        };
        for branch in &branches {
            for arg in &branch.args {
                if contains_step(arg) {
                    self.error(
                        first_step_span(arg),
                        "a step cannot be called in the arguments of a join's branch; the workflow must stop at that step before the join starts; bind its output first: `let value = step(..).await?;`",
                    );
                }
            }
        }
        let index = self.sites.len();
        let uses = self.uses_of(|uses| {
            for branch in &branches {
                for arg in &branch.args {
                    uses.visit_expr(arg);
                }
            }
        });
        let node = self.node(NodeKind::Step(index));
        self.connect(std::mem::take(preds), node);
        self.nodes[node].uses = uses;
        let steps: Vec<Path> = branches.iter().map(|branch| branch.step.clone()).collect();
        match (stmt, target) {
            (Stmt::Local(local), _) => {
                let ty = if has_try {
                    VarType::JoinOutput(steps)
                } else {
                    VarType::JoinResult(steps)
                };
                self.bind(&local.pat, ty, node);
            }
            (_, Some(name)) => {
                if let Some(id) = self.resolve(&name) {
                    self.nodes[node].defs.insert(id);
                    self.nodes[node].assigns.insert(id);
                }
            }
            _ => {}
        }
        if has_try {
            self.nodes[node].succ.push((EXIT_ERR, EdgeKind::StepErr));
        }
        let span = mac
            .path
            .segments
            .last()
            .map_or_else(|| mac.path.span_of(), |segment| segment.ident.span());
        let variant = Ident::new(&format!("Join{}", index + 1), span);
        let mut location = self.location.clone();
        location.last_mut().expect("inside a block").1 = 0;
        self.sites.push(Site {
            kind: SiteKind::Join { branches },
            step: mac.path.clone(),
            span,
            variant,
            args: Vec::new(),
            stmt: replaced,
            node,
            location,
        });
        items.push(Item::Step { site: index });
        Some(vec![(node, EdgeKind::Normal)])
    }

    // Input:  `sagaflow::signal_timeout::<bool>("approval", wait)` (a call at a suspension point)
    // Output: `SiteKind::Signal { name: "approval", value: Some(bool), timeout: Some(wait) }`
    /// What the suspension point at `call` waits for; reports misuse of a wait.
    pub(crate) fn site_kind(
        &mut self,
        call: &ExprCall,
        path: &Path,
        has_try: bool,
        stmt: &Stmt,
    ) -> SiteKind {
        let Some(wait) = wait_name(path) else {
            return SiteKind::Step;
        };
        let span = path
            .segments
            .last()
            .map_or_else(Span::call_site, |s| s.ident.span());
        if wait == "child" {
            return self.child_kind(call, span);
        }
        if has_try {
            self.error(
                span,
                format!(
                    "`sagaflow::{wait}(..)` cannot fail, so `?` does not apply; a durable wait ends when its time comes or its signal arrives; remove the `?`"
                ),
            );
        }
        let expected = if wait == "signal_timeout" { 2 } else { 1 };
        let args: Vec<&Expr> = call.args.iter().collect();
        if args.len() != expected {
            let usage = match wait.as_str() {
                "sleep" => "sagaflow::sleep(Duration::from_secs(60)).await",
                "sleep_until" => "sagaflow::sleep_until(time).await",
                "signal" => "let value: T = sagaflow::signal(\"name\").await",
                _ => {
                    "let value: Option<T> = sagaflow::signal_timeout(\"name\", Duration::from_secs(60)).await"
                }
            };
            self.error(
                span,
                format!("`sagaflow::{wait}` takes {expected} argument(s); write `{usage};`"),
            );
            return SiteKind::Sleep {
                until: false,
                arg: syn::parse_quote!(::std::time::Duration::ZERO),
            };
        }
        match wait.as_str() {
            "sleep" | "sleep_until" => SiteKind::Sleep {
                until: wait == "sleep_until",
                arg: args[0].clone(),
            },
            _ => {
                let name = match args[0] {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(name),
                        ..
                    }) => name.clone(),
                    other => {
                        self.error_spanned(
                            other,
                            format!(
                                "the name of a signal must be a string literal; the instance is woken by that name, which the state machine records; write `sagaflow::{wait}(\"approval\"{})`",
                                if expected == 2 { ", timeout" } else { "" }
                            ),
                        );
                        syn::LitStr::new("_", Span::call_site())
                    }
                };
                let mut value = turbofish(path);
                if value.is_none()
                    && let Stmt::Local(local) = stmt
                    && let Pat::Type(pat_type) = &local.pat
                {
                    let ty = (*pat_type.ty).clone();
                    value = if expected == 2 {
                        option_inner(&ty)
                    } else {
                        Some(ty)
                    };
                }
                let declared = self
                    .declared_signal(&name.value())
                    .map(|signal| signal.ty.clone());
                SiteKind::Signal {
                    name,
                    value,
                    declared,
                    timeout: (expected == 2).then(|| args[1].clone()),
                }
            }
        }
    }

    /// The declared signal named `name`, when the workflow declares its
    /// signals and that one (`check` reports a wait for another).
    pub(crate) fn declared_signal(&self, name: &str) -> Option<&SignalDecl> {
        self.signals?.iter().find(|signal| signal.text() == name)
    }

    // Input:  `sagaflow::signal_timeout("approval", d)` with `signals(approval: Decision)`
    // Output: `Option<Decision>`, the type of the wait's value
    /// The type of a wait's value from the workflow's declaration, for a
    /// `let` that writes none.
    pub(crate) fn declared_value(&self, call: &ExprCall, path: &Path) -> Option<VarType> {
        let wait = wait_name(path)?;
        let Some(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(name),
            ..
        })) = call.args.first()
        else {
            return None;
        };
        let ty = &self.declared_signal(&name.value())?.ty;
        Some(VarType::Written(match wait.as_str() {
            "signal" => ty.clone(),
            "signal_timeout" => syn::parse_quote!(Option<#ty>),
            _ => return None,
        }))
    }

    // Input:  `sagaflow::child(ship_order, order.clone())`
    // Output: `SiteKind::Child { workflow: ship_order, input: order.clone() }`
    /// A child workflow's suspension point; reports a call of another shape.
    pub(crate) fn child_kind(&mut self, call: &ExprCall, span: Span) -> SiteKind {
        let args: Vec<&Expr> = call.args.iter().collect();
        let workflow = match args.first() {
            Some(Expr::Path(path)) if path.qself.is_none() && args.len() == 2 => {
                Some(path.path.clone())
            }
            _ => None,
        };
        match workflow {
            Some(workflow) => SiteKind::Child {
                workflow,
                input: args[1].clone(),
            },
            None => {
                self.error(
                    span,
                    "`sagaflow::child` takes the child workflow's name and its input; the child is another `#[workflow] async fn`, named by the unit struct it generates; write `let output = sagaflow::child(ship_order, input).await?;`",
                );
                SiteKind::Child {
                    workflow: syn::parse_quote!(__unknown_child),
                    input: syn::parse_quote!(()),
                }
            }
        }
    }
}
