//! The code a state's segment runs: the rest of the body after its step,
//! block by block and round its loops ([`continuation`]), each item as
//! written or, for a step, as the transition to its state ([`Emit`]), with
//! `return` rewritten to complete the workflow. Apart because it is the
//! one part that re-emits the user's code.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Pat, Stmt};

use super::super::lower::{Block, Item, LoopHead, LoopItem, Machine, NodeId, SiteKind};
use super::types::type_tokens;

// Input:  the site's location `[(2, 1), (0, 0)]` (item 2, branch 1, then item 0)
// Output: `{ { <stmt with __result>; <rest of the branch> }; <rest of the body> }`
/// The pure code a state runs after its step: the rest of the innermost
/// block, then of each enclosing block, nested so scopes stay right. A loop
/// around the step finishes the current iteration first, then goes round.
pub(super) fn continuation(machine: &Machine, state: &Ident, index: usize) -> TokenStream {
    let emit = Emit {
        machine,
        state,
        segment: &machine.segments[index],
        unassigned: &machine.unassigned[index],
    };
    if index == 0 {
        return emit.items(&machine.body, 0);
    }
    let site = &machine.sites[index - 1];
    let mut levels: Vec<(&Block, usize)> = Vec::new();
    let mut block = &machine.body;
    for (depth, &(item, branch)) in site.location.iter().enumerate() {
        levels.push((block, item));
        if depth + 1 < site.location.len() {
            block = child(&block.items[item], branch);
        }
    }
    let (inner, item) = levels.pop().expect("a site is in a block");
    let stmt = &site.stmt;
    let rest = emit.items(inner, item + 1);
    let mut code = quote!(#stmt #rest);
    let mut falls_through = inner.falls_through(item + 1);
    while let Some((block, item)) = levels.pop() {
        if let Item::Loop(item_loop) = &block.items[item] {
            // The rest of the iteration, then the loop from its head; what
            // follows the loop only if this segment can leave it.
            // Each part only if the segment reaches it: unreachable code may
            // name variables this segment never declares.
            let label = &item_loop.label;
            let leaves = emit.segment.contains(&item_loop.exit);
            let rest = if leaves {
                emit.items(block, item + 1)
            } else {
                TokenStream::new()
            };
            let looped = if emit.segment.contains(&item_loop.entry) {
                let iteration = emit.iteration(item_loop);
                quote! {
                    let mut __resuming = ::sagaflow::__private::Some(__result);
                    #label loop {
                        if let ::sagaflow::__private::Some(__result) = __resuming.take() {
                            #code
                        } else {
                            #iteration
                        }
                    }
                }
            } else {
                // The rest of this iteration never goes round: the loop is
                // only the target of its `break`s.
                quote!(#label loop { #code })
            };
            code = quote! {
                { #looped };
                #rest
            };
            falls_through = leaves && block.falls_through(item + 1);
            continue;
        }
        // Code after a diverging block is unreachable and may name variables
        // this segment never declares: leave it out.
        let rest = if falls_through {
            emit.items(block, item + 1)
        } else {
            TokenStream::new()
        };
        falls_through = falls_through && block.falls_through(item + 1);
        code = quote!({ #code }; #rest);
    }
    code
}

fn child(item: &Item, branch: usize) -> &Block {
    match item {
        Item::If(item_if) => item_if
            .blocks
            .get(branch)
            .or(item_if.else_block.as_ref())
            .expect("a branch"),
        Item::Match(item_match) => &item_match.arms[branch].3,
        Item::Loop(item_loop) => &item_loop.body,
        _ => unreachable!("sites are nested only in `if`, `match` and loops"),
    }
}

/// What emitting the code of one state's segment needs.
struct Emit<'a> {
    machine: &'a Machine,
    state: &'a Ident,
    /// The CFG nodes the segment runs: code after a loop is emitted only if
    /// the segment can leave the loop (else it may name undeclared variables).
    segment: &'a BTreeSet<NodeId>,
    /// The `let x;` declarations to leave out (see [`Machine::unassigned`]).
    unassigned: &'a BTreeSet<String>,
}

impl Emit<'_> {
    /// The items of `block` from `from` on, as a segment runs them: pure code as
    /// written, a step as the transition to its state.
    fn items(&self, block: &Block, from: usize) -> TokenStream {
        let (machine, state) = (self.machine, self.state);
        let mut out = TokenStream::new();
        for item in &block.items[from.min(block.items.len())..] {
            match item {
                Item::Pure {
                    stmt: Stmt::Local(local),
                    ..
                } if local.init.is_none()
                    && matches!(&local.pat, Pat::Ident(pat) if self.unassigned.contains(&pat.ident.to_string())) =>
                    {}
                Item::Pure { stmt, tail } => {
                    let mut stmt = stmt.clone();
                    ReturnRewriter.visit_stmt_mut(&mut stmt);
                    match (&stmt, tail) {
                        (Stmt::Expr(expr, None), true) if block.ret => {
                            out.extend(quote!(return ::sagaflow::__private::complete(#expr);));
                        }
                        (Stmt::Expr(expr, None), true) => out.extend(quote!(#expr;)),
                        _ => out.extend(quote!(#stmt)),
                    }
                }
                Item::Step { site: index } => {
                    let site = &machine.sites[*index];
                    let variant = &site.variant;
                    let fields = machine.stored[index + 1]
                        .iter()
                        .map(|&id| &machine.bindings[id].ident);
                    let timer = site.kind.timer().map(|(arg, until)| {
                        let mut arg = arg.clone();
                        ReturnRewriter.visit_expr_mut(&mut arg);
                        let span = syn::spanned::Spanned::span(&arg);
                        let timer = if until {
                            quote_spanned!(span=> ::sagaflow::__private::Timer::at(#arg))
                        } else {
                            quote_spanned!(span=> ::sagaflow::__private::Timer::after(#arg))
                        };
                        // Evaluated before the fields move into the state.
                        quote!(let __timer = #timer;)
                    });
                    let timer_field = timer.as_ref().map(|_| quote!(__timer,));
                    let slots = match &site.kind {
                        SiteKind::Join { branches } => {
                            let count = branches.len();
                            Some(quote!(__branches: ::sagaflow::__private::JoinSlots::new(#count),))
                        }
                        _ => None,
                    };
                    let child = match &site.kind {
                        SiteKind::Child { workflow, input } => {
                            let mut input = input.clone();
                            ReturnRewriter.visit_expr_mut(&mut input);
                            let span = syn::spanned::Spanned::span(workflow);
                            let start = quote_spanned!(span=> ::sagaflow::__private::child_input::<<#workflow as ::sagaflow::__private::Workflow>::Input>(
                                <#workflow as ::sagaflow::__private::Workflow>::NAME,
                                #input,
                            ));
                            // Evaluated before the fields move into the state.
                            Some(quote!(let __child = #start;))
                        }
                        _ => None,
                    };
                    let child_field = child.as_ref().map(|_| quote!(__child,));
                    out.extend(quote! {
                        #timer
                        #child
                        return ::sagaflow::__private::Ok(::sagaflow::__private::Transition::Next(#state::#variant { #(#fields,)* #timer_field #slots #child_field }));
                    });
                    break;
                }
                Item::If(item_if) => {
                    let mut branches = TokenStream::new();
                    for (i, (cond, branch)) in item_if.conds.iter().zip(&item_if.blocks).enumerate()
                    {
                        let mut cond = cond.clone();
                        ReturnRewriter.visit_expr_mut(&mut cond);
                        let body = self.items(branch, 0);
                        if i > 0 {
                            branches.extend(quote!(else));
                        }
                        branches.extend(quote!(if #cond { #body }));
                    }
                    if let Some(else_block) = &item_if.else_block {
                        let body = self.items(else_block, 0);
                        branches.extend(quote!(else { #body }));
                    }
                    out.extend(quote!(#branches;));
                    if !block.falls_through_item(item) {
                        break;
                    }
                }
                Item::Match(item_match) => {
                    let mut scrutinee = item_match.expr.clone();
                    ReturnRewriter.visit_expr_mut(&mut scrutinee);
                    let arms = item_match.arms.iter().map(|(attrs, pat, guard, body)| {
                        let body = self.items(body, 0);
                        let guard = guard.as_ref().map(|guard| {
                            let mut guard = guard.clone();
                            ReturnRewriter.visit_expr_mut(&mut guard);
                            quote!(if #guard)
                        });
                        quote!(#(#attrs)* #pat #guard => { #body })
                    });
                    out.extend(quote!(match #scrutinee { #(#arms)* };));
                    if !block.falls_through_item(item) {
                        break;
                    }
                }
                Item::Loop(item_loop) => {
                    out.extend(self.loop_init(item_loop));
                    let label = &item_loop.label;
                    let iteration = self.iteration(item_loop);
                    out.extend(quote!(#label loop { #iteration };));
                    if !self.segment.contains(&item_loop.exit) {
                        break;
                    }
                }
            }
        }
        out
    }

    // Input:  `for item in items { .. }` with steps
    // Output: `let mut __for1_items: Vec<Item> = items.into_iter().collect(); let mut __for1_next: usize = 0;`
    /// What runs once, when control enters the loop from above.
    fn loop_init(&self, item_loop: &LoopItem) -> TokenStream {
        let bindings = &self.machine.bindings;
        match &item_loop.head {
            LoopHead::Loop | LoopHead::While(_) => TokenStream::new(),
            LoopHead::ForEach {
                collection,
                items,
                next,
                ..
            } => {
                let mut collection = collection.clone();
                ReturnRewriter.visit_expr_mut(&mut collection);
                let items_ty = type_tokens(&bindings[*items].ty);
                let (items, next) = (&bindings[*items].ident, &bindings[*next].ident);
                quote! {
                    let mut #items: #items_ty = ::std::iter::Iterator::collect(
                        ::std::iter::IntoIterator::into_iter(#collection),
                    );
                    let mut #next: usize = 0;
                }
            }
            LoopHead::ForRange { range, rest, .. } => {
                let mut range = range.clone();
                ReturnRewriter.visit_expr_mut(&mut range);
                let ty = type_tokens(&bindings[*rest].ty);
                let rest = &bindings[*rest].ident;
                quote!(let mut #rest: #ty = #range;)
            }
        }
    }

    // Input:  `for item in items { <body> }` with steps
    // Output: `if __for1_next >= __for1_items.len() { break; }
    //          let item = Clone::clone(&__for1_items[__for1_next]); __for1_next += 1; <body>`
    /// One iteration from the head: the condition or the next element, then
    /// the body. The `break` here is directly inside the generated `loop`.
    fn iteration(&self, item_loop: &LoopItem) -> TokenStream {
        let bindings = &self.machine.bindings;
        let body = self.items(&item_loop.body, 0);
        match &item_loop.head {
            LoopHead::Loop => body,
            LoopHead::While(cond) => {
                let mut cond = cond.clone();
                ReturnRewriter.visit_expr_mut(&mut cond);
                quote!(if #cond { #body } else { break; })
            }
            LoopHead::ForEach {
                pat, items, next, ..
            } => {
                let (items, next) = (&bindings[*items].ident, &bindings[*next].ident);
                let element = quote_spanned!(syn::spanned::Spanned::span(pat)=>
                    ::std::clone::Clone::clone(&#items[#next])
                );
                quote! {
                    if #next >= #items.len() {
                        break;
                    }
                    let #pat = #element;
                    #next += 1;
                    #body
                }
            }
            LoopHead::ForRange { pat, rest, .. } => {
                let rest = &bindings[*rest].ident;
                quote! {
                    let #pat = match ::std::iter::Iterator::next(&mut #rest) {
                        ::sagaflow::__private::Some(element) => element,
                        ::sagaflow::__private::None => break,
                    };
                    #body
                }
            }
        }
    }
}

// Input:  `return Err(e)` in the body (not in closures, async blocks or items)
// Output: `return ::sagaflow::__private::complete(Err(e))`
struct ReturnRewriter;

impl VisitMut for ReturnRewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Return(ret) => {
                if let Some(value) = &mut ret.expr {
                    self.visit_expr_mut(value);
                    let inner = value.clone();
                    **value = syn::parse_quote!(::sagaflow::__private::complete(#inner));
                }
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
