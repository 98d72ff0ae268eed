//! Stage 2½: rewrites the forms that test or destructure a step's output in
//! place into a `let` of the output followed by the same code on it, so the
//! lowering sees only the step statements it knows. Runs after [`check`],
//! which reports on the body as written.
//!
//! - `let PAT = step(..).await? else { .. };`
//!   → `let __stepN = step(..).await?; let PAT = __stepN else { .. };`
//! - `if let PAT = step(..).await? { .. } else { .. }` (also after `else`)
//!   → `let __stepN = step(..).await?; if let PAT = __stepN { .. } else { .. }`
//! - `match step(..).await? { .. }`
//!   → `let __stepN = step(..).await?; match __stepN { .. }`
//! - `'l: while let PAT = step(..).await? { body }`
//!   → `'l: loop { let __stepN = step(..).await?; match __stepN { PAT => { body } _ => break 'l } }`
//!
//! The output's variable is named after nothing the user can write (it
//! starts with `__step`), is typed by the step (`<step as Step>::Output`),
//! and is used at once, so no state keeps it.
//!
//! [`check`]: super::check

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Ident, Stmt};

use super::lower::step_call;

/// Rewrites `body` in place.
pub fn desugar(body: &mut Block) {
    Desugar { next: 0 }.visit_block_mut(body);
}

struct Desugar {
    /// The number of the next output variable.
    next: usize,
}

impl Desugar {
    fn output(&mut self, span: Span) -> Ident {
        self.next += 1;
        Ident::new(&format!("__step{}", self.next), span)
    }

    // Input:  one statement of a block
    // Output: the statements it becomes (itself when nothing changes)
    fn statement(&mut self, stmt: Stmt) -> Vec<Stmt> {
        match stmt {
            Stmt::Local(mut local)
                if local.init.as_ref().is_some_and(|init| {
                    init.diverge.is_some() && step_call(&init.expr).is_some()
                }) =>
            {
                let init = local.init.as_mut().expect("matched above");
                let output = self.output(init.expr.span());
                let call = std::mem::replace(&mut *init.expr, syn::parse_quote!(#output));
                vec![syn::parse_quote!(let #output = #call;), Stmt::Local(local)]
            }
            Stmt::Expr(expr, semi) => {
                let (mut before, expr) = self.expression(expr);
                before.push(Stmt::Expr(expr, semi));
                before
            }
            other => vec![other],
        }
    }

    // Input:  an expression statement
    // Output: the `let`s to put before it, and the expression on them
    fn expression(&mut self, expr: Expr) -> (Vec<Stmt>, Expr) {
        match expr {
            Expr::If(mut expr_if) if let_of_step(&expr_if.cond) => {
                let output = self.output(expr_if.cond.span());
                let Expr::Let(condition) = &mut *expr_if.cond else {
                    unreachable!("matched above")
                };
                let call = std::mem::replace(&mut *condition.expr, syn::parse_quote!(#output));
                (
                    vec![syn::parse_quote!(let #output = #call;)],
                    Expr::If(expr_if),
                )
            }
            Expr::Match(mut expr_match) if step_call(&expr_match.expr).is_some() => {
                let output = self.output(expr_match.expr.span());
                let call = std::mem::replace(&mut *expr_match.expr, syn::parse_quote!(#output));
                (
                    vec![syn::parse_quote!(let #output = #call;)],
                    Expr::Match(expr_match),
                )
            }
            Expr::While(expr_while) if let_of_step(&expr_while.cond) => {
                let syn::ExprWhile {
                    attrs,
                    label,
                    cond,
                    body,
                    ..
                } = expr_while;
                let Expr::Let(condition) = *cond else {
                    unreachable!("matched above")
                };
                let output = self.output(condition.expr.span());
                let call = condition.expr;
                let pat = condition.pat;
                // `break` leaves this loop whatever loops the body holds.
                let label = label.unwrap_or_else(|| syn::Label {
                    name: syn::Lifetime::new(&format!("'__while{}", self.next), Span::call_site()),
                    colon_token: Default::default(),
                });
                let name = &label.name;
                let mut looped: syn::ExprLoop = syn::parse_quote! {
                    #label loop {
                        let #output = #call;
                        match #output {
                            #pat => #body
                            _ => break #name,
                        }
                    }
                };
                looped.attrs = attrs;
                (Vec::new(), Expr::Loop(looped))
            }
            other => (Vec::new(), other),
        }
    }
}

/// Whether an `if`/`while` condition is `let PAT = step(..).await?`.
fn let_of_step(cond: &Expr) -> bool {
    matches!(cond, Expr::Let(condition) if step_call(&condition.expr).is_some())
}

impl VisitMut for Desugar {
    fn visit_block_mut(&mut self, block: &mut Block) {
        // The inner blocks first, so a rewritten statement's own blocks
        // (an `if`'s branches, a loop's body) are rewritten too.
        visit_mut::visit_block_mut(self, block);
        let stmts = std::mem::take(&mut block.stmts);
        block.stmts = stmts
            .into_iter()
            .flat_map(|stmt| self.statement(stmt))
            .collect();
    }

    fn visit_expr_if_mut(&mut self, expr_if: &mut syn::ExprIf) {
        visit_mut::visit_expr_if_mut(self, expr_if);
        // `else if let PAT = step(..)` becomes `else { let ..; if let .. }`.
        if let Some((_, otherwise)) = &mut expr_if.else_branch
            && let Expr::If(inner) = &**otherwise
            && let_of_step(&inner.cond)
        {
            let inner = std::mem::replace(&mut **otherwise, syn::parse_quote!({}));
            let (before, inner) = self.expression(inner);
            **otherwise = syn::parse_quote!({ #(#before)* #inner });
        }
    }

    // Closures, async blocks and nested items are not the workflow's body:
    // a step in them is an error `check` has reported.
    fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
    fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn desugared(body: proc_macro2::TokenStream) -> String {
        let mut block: Block = syn::parse2(quote!({ #body })).expect("a block");
        desugar(&mut block);
        let file: syn::File = syn::parse2(quote!(fn f() #block)).expect("a fn");
        prettyplease::unparse(&file)
    }

    fn same(expected: proc_macro2::TokenStream) -> String {
        let file: syn::File = syn::parse2(quote!(fn f() { #expected })).expect("a fn");
        prettyplease::unparse(&file)
    }

    #[test]
    fn let_else_on_a_step_binds_the_output_first() {
        assert_eq!(
            desugared(quote! {
                let Some(qty) = parse_qty(&line).await? else { return Ok(0) };
                reserve(qty).await?;
            }),
            same(quote! {
                let __step1 = parse_qty(&line).await?;
                let Some(qty) = __step1 else { return Ok(0) };
                reserve(qty).await?;
            })
        );
    }

    #[test]
    fn if_let_and_else_if_let_on_steps_bind_the_outputs_first() {
        assert_eq!(
            desugared(quote! {
                if let Some(p) = discount(&order).await? {
                    apply(p).await?;
                } else if let Some(c) = coupon(&order).await? {
                    apply(c).await?;
                }
            }),
            same(quote! {
                let __step2 = discount(&order).await?;
                if let Some(p) = __step2 {
                    apply(p).await?;
                } else {
                    let __step1 = coupon(&order).await?;
                    if let Some(c) = __step1 {
                        apply(c).await?;
                    }
                }
            })
        );
    }

    #[test]
    fn match_on_a_step_binds_the_output_first() {
        assert_eq!(
            desugared(quote! {
                match charge(&order).await? {
                    Paid::Now => ship(&order).await?,
                    Paid::Later => {}
                }
            }),
            same(quote! {
                let __step1 = charge(&order).await?;
                match __step1 {
                    Paid::Now => ship(&order).await?,
                    Paid::Later => {}
                }
            })
        );
    }

    #[test]
    fn while_let_on_a_step_is_a_loop_that_calls_it_each_round() {
        assert_eq!(
            desugared(quote! {
                while let Some(job) = next_job(n).await? {
                    run(job).await?;
                }
            }),
            same(quote! {
                '__while1: loop {
                    let __step1 = next_job(n).await?;
                    match __step1 {
                        Some(job) => {
                            run(job).await?;
                        }
                        _ => break '__while1,
                    }
                }
            })
        );
    }

    #[test]
    fn other_code_and_closures_are_left_alone() {
        let body = quote! {
            let x = reserve(&order).await?;
            if let Some(y) = maybe { println!("{y}"); }
            let f = || async { if let Some(z) = look().await { z } else { 0 } };
        };
        assert_eq!(desugared(body.clone()), same(body));
    }
}
