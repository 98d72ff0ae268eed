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
//! - `let PAT = { ..; value };`, `let PAT = if c { ..; a } else { b };` and
//!   `let PAT = match e { p => { ..; a } .. };` with steps inside
//!   → `let __valueN; if c { ..; __valueN = a; } else { __valueN = b; } let PAT = __valueN;`
//!   (each tail of the value, nested blocks included, assigns the variable;
//!   a tail that is a step is the step's statement `__valueN = step(..).await?;`)
//! - a bare block `{ .. }` with steps, as a statement
//!   → `match () { () => { .. } }`, so it lowers as a one-arm `match`
//!
//! The output's variable is named after nothing the user can write (it
//! starts with `__step`), is typed by the step (`<step as Step>::Output`),
//! and is used at once, so no state keeps it. A value's variable
//! (`__valueN`) is assigned after the last step of its branch and read
//! right after the branches, so no state keeps it either.
//!
//! Then [`hoist_arguments`] evaluates every computed argument of a step
//! call before the call's statement, so it is stored with the state that
//! runs the step (see there).
//!
//! [`check`]: super::check

use proc_macro2::Span;
use quote::{ToTokens, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprCall, Ident, Macro, Stmt, Token};

use super::join::is_join;
use super::lower::{
    assignment_right, condition_lets, contains_step, is_compound, is_panic, step_call,
};
use super::names::wait_name;

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

    /// The variable a value's branches assign (`__valueN`).
    fn value_var(&mut self, span: Span) -> Ident {
        self.next += 1;
        Ident::new(&format!("__value{}", self.next), span)
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
            Stmt::Local(local)
                if local.init.as_ref().is_some_and(|init| {
                    init.diverge
                        .as_ref()
                        .is_none_or(|(_, otherwise)| !contains_step(&**otherwise))
                        && is_branching(unparenthesized(&init.expr))
                        && contains_step(&*init.expr)
                }) =>
            {
                self.value_bound(local)
            }
            Stmt::Local(mut local)
                if local
                    .init
                    .as_ref()
                    .is_some_and(|init| nested_step(&init.expr)) =>
            {
                // `let total = price(..).await? * qty;`: the step first.
                let init = local.init.as_mut().expect("matched above");
                let mut before = Vec::new();
                self.lift_within(&mut init.expr, &mut before);
                before.push(Stmt::Local(local));
                before
            }
            Stmt::Expr(Expr::Block(block), semi)
                if block.label.is_none() && block.block.stmts.iter().any(contains_step) =>
            {
                vec![Stmt::Expr(one_arm_match(block), semi)]
            }
            Stmt::Expr(expr, semi) => {
                let (mut before, expr) = self.expression(expr);
                before.push(Stmt::Expr(expr, semi));
                before
            }
            other => vec![other],
        }
    }

    // Input:  `let (a, b): (u32, u32) = if c { let r = step(..).await?; (r, 1) } else { (0, 0) };`
    // Output: `let __value1: (u32, u32);`
    //         `if c { let r = step(..).await?; __value1 = (r, 1); } else { __value1 = (0, 0); }`
    //         `let (a, b): (u32, u32) = __value1;`
    /// Rewrites a `let` whose value is a block, `if` or `match` with steps
    /// into a variable each branch assigns, then the `let` of that variable.
    fn value_bound(&mut self, mut local: syn::Local) -> Vec<Stmt> {
        let init = local.init.as_mut().expect("matched by the caller");
        // `match step(..).await? {..}` and `if let P = step(..).await? {..}`:
        // the step first; a value without other steps is then plain code.
        let mut expr = std::mem::replace(&mut *init.expr, syn::parse_quote!(()));
        // `let Some(x) = (match .. {..}) else {..}`: the parentheses only
        // keep the `else` apart from the match.
        while let Expr::Paren(paren) = expr {
            expr = *paren.expr;
        }
        let (mut before, expr) = self.expression(expr);
        if !contains_step(&expr) {
            *init.expr = expr;
            before.push(Stmt::Local(local));
            return before;
        }
        *init.expr = expr;
        let value = self.value_var(init.expr.span());
        let declare: Stmt = match &local.pat {
            syn::Pat::Type(typed) => {
                let ty = &typed.ty;
                syn::parse_quote!(let #value: #ty;)
            }
            _ => syn::parse_quote!(let #value;),
        };
        let expr = std::mem::replace(&mut *init.expr, syn::parse_quote!(#value));
        let mut block = Block {
            brace_token: Default::default(),
            stmts: vec![declare, assign_value(expr, &value), Stmt::Local(local)],
        };
        // The branches now hold statements the rewrite has not seen
        // (`__valueN = match step(..).await? {..};`): rewrite them too. The
        // rewrite leaves what it already rewrote unchanged.
        self.visit_block_mut(&mut block);
        before.extend(block.stmts);
        before
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
            // A let chain (`while let P = a && b`) stays: its bindings do not
            // survive the rewrite, and the lowering says so.
            Expr::While(expr_while)
                if contains_step(&*expr_while.cond)
                    && (matches!(&*expr_while.cond, Expr::Let(_))
                        || condition_lets(&expr_while.cond).is_empty()) =>
            {
                let syn::ExprWhile {
                    attrs,
                    label,
                    cond,
                    body,
                    ..
                } = expr_while;
                // `break` leaves this loop whatever loops the body holds.
                self.next += 1;
                let label = label.unwrap_or_else(|| syn::Label {
                    name: syn::Lifetime::new(&format!("'__while{}", self.next), Span::call_site()),
                    colon_token: Default::default(),
                });
                let name = &label.name;
                let mut looped: syn::ExprLoop = match *cond {
                    Expr::Let(condition) => {
                        let (pat, value) = (condition.pat, condition.expr);
                        syn::parse_quote! {
                            #label loop {
                                match #value {
                                    #pat => #body
                                    _ => break #name,
                                }
                            }
                        }
                    }
                    cond => {
                        let stmts = &body.stmts;
                        syn::parse_quote! {
                            #label loop {
                                if !(#cond) {
                                    break #name;
                                }
                                #(#stmts)*
                            }
                        }
                    }
                };
                looped.attrs = attrs;
                // The condition, now the first statement of each round, is
                // rewritten as any statement (the rest is already).
                self.visit_block_mut(&mut looped.body);
                (Vec::new(), Expr::Loop(looped))
            }
            mut other => {
                let mut before = Vec::new();
                match lifted_part(&mut other) {
                    Some(Part::Evaluated(part)) => self.lift(part, &mut before, &mut true),
                    Some(Part::Value(part)) => self.lift_within(part, &mut before),
                    None => {}
                }
                (before, other)
            }
        }
    }

    /// [`Self::lift`] on `expr`, but a step call that is `expr` itself
    /// (`let x = step(other(..).await?).await?`) keeps its place: only the
    /// steps in its arguments go before it.
    fn lift_within(&mut self, expr: &mut Expr, before: &mut Vec<Stmt>) {
        let mut clean = true;
        match liftable_step_mut(expr) {
            Some(args) => {
                for arg in args.iter_mut() {
                    self.lift(arg, before, &mut clean);
                }
            }
            None => self.lift(expr, before, &mut clean),
        }
    }

    // Input:  `Ok(quote(&order).await?.total + fee)`
    // Output: `let __step1 = quote(&order).await?;` pushed to `before`,
    //         and `Ok(__step1.total + fee)`
    /// Lifts the step calls nested in `expr` into `let`s before its
    /// statement, in the order they run, while nothing before them in the
    /// statement can have an effect or leave it (`clean`): names, literals,
    /// fields, operators, and the calls' own arguments. A step after a call,
    /// a `?`, a macro or a branch stays where it is, for the lowering to
    /// report: lifting it would run it before that code.
    fn lift(&mut self, expr: &mut Expr, before: &mut Vec<Stmt>, clean: &mut bool) {
        if let Some(args) = liftable_step_mut(expr) {
            // The step's own arguments go with it: only what ran before
            // them decides.
            let was_clean = *clean;
            for arg in args.iter_mut() {
                self.lift(arg, before, clean);
            }
            if was_clean && !args.iter().any(contains_step) {
                // `mut`: the output stands for a temporary, which a method
                // after it may change (`next(..).await?.pop()`).
                let output = self.output(expr.span());
                let call = std::mem::replace(expr, syn::parse_quote!(#output));
                before.push(syn::parse_quote!(let mut #output = #call;));
                *clean = true;
            }
            return;
        }
        match expr {
            Expr::Path(_) | Expr::Lit(_) => {}
            Expr::Let(inner) => self.lift(&mut inner.expr, before, clean),
            Expr::Paren(inner) => self.lift(&mut inner.expr, before, clean),
            Expr::Reference(inner) => self.lift(&mut inner.expr, before, clean),
            Expr::Field(inner) => self.lift(&mut inner.base, before, clean),
            Expr::Unary(inner) => self.lift(&mut inner.expr, before, clean),
            Expr::Cast(inner) => self.lift(&mut inner.expr, before, clean),
            Expr::Index(index) => {
                self.lift(&mut index.expr, before, clean);
                self.lift(&mut index.index, before, clean);
            }
            Expr::Tuple(tuple) => {
                for elem in tuple.elems.iter_mut() {
                    self.lift(elem, before, clean);
                }
            }
            Expr::Array(array) => {
                for elem in array.elems.iter_mut() {
                    self.lift(elem, before, clean);
                }
            }
            Expr::Struct(literal) => {
                for field in literal.fields.iter_mut() {
                    self.lift(&mut field.expr, before, clean);
                }
                if let Some(rest) = &mut literal.rest {
                    self.lift(rest, before, clean);
                }
            }
            // `a && step(..).await?`: the right runs only if `a` holds, so
            // it becomes `let __valueN: bool; if a { __valueN = step(..).await?; }
            // else { __valueN = false; }` before the statement.
            Expr::Binary(binary)
                if matches!(binary.op, syn::BinOp::And(_) | syn::BinOp::Or(_))
                    && contains_step(&*binary.right) =>
            {
                // In a let chain (`if let P = a && step(..).await?`) the
                // left's bindings are for the body: the step stays.
                if !*clean || !condition_lets(&binary.left).is_empty() {
                    *clean = false;
                    return;
                }
                let value = self.value_var(binary.span());
                let (left, right) = (&binary.left, &binary.right);
                let (then, otherwise): (Expr, Expr) = match binary.op {
                    syn::BinOp::And(_) => (syn::parse_quote!(#right), syn::parse_quote!(false)),
                    _ => (syn::parse_quote!(true), syn::parse_quote!(#right)),
                };
                let mut block: Block = syn::parse_quote!({
                    let #value: bool;
                    if #left {
                        #value = #then;
                    } else {
                        #value = #otherwise;
                    }
                });
                self.visit_block_mut(&mut block);
                before.extend(block.stmts);
                *expr = syn::parse_quote!(#value);
            }
            Expr::Binary(binary) => {
                self.lift(&mut binary.left, before, clean);
                // The right of `&&` and `||` may not run at all.
                if matches!(binary.op, syn::BinOp::And(_) | syn::BinOp::Or(_)) {
                    *clean = false;
                } else {
                    self.lift(&mut binary.right, before, clean);
                }
            }
            Expr::Call(call) => {
                self.lift(&mut call.func, before, clean);
                for arg in call.args.iter_mut() {
                    self.lift(arg, before, clean);
                }
                *clean = false;
            }
            Expr::MethodCall(call) => {
                self.lift(&mut call.receiver, before, clean);
                for arg in call.args.iter_mut() {
                    self.lift(arg, before, clean);
                }
                // `x.clone()` changes nothing and cannot leave: a step
                // after it may still go first.
                if !(call.method == "clone" && call.args.is_empty()) {
                    *clean = false;
                }
            }
            Expr::Try(inner) => {
                self.lift(&mut inner.expr, before, clean);
                *clean = false;
            }
            Expr::Return(ret) => {
                if let Some(value) = &mut ret.expr {
                    self.lift(value, before, clean);
                }
            }
            _ => *clean = false,
        }
    }
}

/// The part of an expression statement whose nested steps can run before
/// the statement (see [`lifted_part`]).
enum Part<'a> {
    /// Evaluated once, before anything else of the statement: an `if`'s
    /// condition, a `match`'s scrutinee, a `for`'s collection. A step that
    /// is the whole part goes before the statement too.
    Evaluated(&'a mut Expr),
    /// The value of an assignment, or the whole expression: a step that is
    /// the whole part is a step statement the lowering knows.
    Value(&'a mut Expr),
}

// Input:  `Ok(price(..).await? * 2)`, `x += price(..).await? * 2`, `if ready(..).await? { .. }`
// Output: the part whose nested steps can run before the statement
/// The part of an expression statement the statement evaluates first, or
/// whole, and that holds a step not already in a form the lowering knows.
/// `None` for a step statement itself, loops' and branches' bodies (the
/// lowering's), and a `while` condition (evaluated each round).
fn lifted_part(expr: &mut Expr) -> Option<Part<'_>> {
    if matches!(
        expr,
        Expr::While(_) | Expr::Loop(_) | Expr::Block(_) | Expr::Unsafe(_)
    ) {
        return None;
    }
    let whole = !matches!(
        expr,
        Expr::If(_) | Expr::Match(_) | Expr::ForLoop(_) | Expr::Assign(_)
    ) && !matches!(expr, Expr::Binary(binary) if is_compound(&binary.op));
    if whole {
        return nested_step(expr).then_some(Part::Value(expr));
    }
    match expr {
        Expr::If(expr_if) => {
            contains_step(&*expr_if.cond).then_some(Part::Evaluated(&mut expr_if.cond))
        }
        Expr::Match(expr_match) => {
            contains_step(&*expr_match.expr).then_some(Part::Evaluated(&mut expr_match.expr))
        }
        Expr::ForLoop(expr_for) => {
            contains_step(&*expr_for.expr).then_some(Part::Evaluated(&mut expr_for.expr))
        }
        Expr::Assign(assign) => {
            nested_step(&assign.right).then_some(Part::Value(&mut assign.right))
        }
        Expr::Binary(binary) => {
            nested_step(&binary.right).then_some(Part::Value(&mut binary.right))
        }
        _ => None,
    }
}

/// Whether `expr` holds a step that is not `expr` itself: a step in an
/// expression, or in a step call's arguments.
fn nested_step(expr: &Expr) -> bool {
    match step_call(expr) {
        Some((call, _, _)) => call.args.iter().any(contains_step),
        None => contains_step(expr),
    }
}

/// The arguments of `expr` when it is a step call, a signal wait or a
/// child workflow (`path(..).await`, with or without `?`): what can be
/// bound with `let`. A timer, which has no value, is not.
fn liftable_step_mut(expr: &mut Expr) -> Option<&mut Punctuated<Expr, Token![,]>> {
    let (_, path, _) = step_call(expr)?;
    if wait_name(path).is_some_and(|wait| wait.starts_with("sleep")) {
        return None;
    }
    let inner = match expr {
        Expr::Try(expr_try) => &mut *expr_try.expr,
        other => other,
    };
    match inner {
        Expr::Await(expr_await) => match &mut *expr_await.base {
            Expr::Call(call) => Some(&mut call.args),
            _ => None,
        },
        _ => None,
    }
}

/// `expr` without the parentheses around it.
fn unparenthesized(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(paren) = expr {
        expr = &paren.expr;
    }
    expr
}

/// Whether `expr` is a block, `if` or `match`: an expression whose value
/// is the value of one of its tails.
fn is_branching(expr: &Expr) -> bool {
    match expr {
        Expr::Block(block) => block.label.is_none(),
        Expr::If(_) | Expr::Match(_) => true,
        _ => false,
    }
}

// Input:  `{ ..; a }` (also `if`/`match`), `__value1`
// Output: `{ ..; __value1 = a; }`; a tail without steps is assigned whole
/// The statement that runs `expr` and assigns its value to `value`: in each
/// tail when `expr` branches and has steps, else as one assignment. A tail
/// that diverges (`return`, `break`, `continue`, `panic!`) stays as it is.
fn assign_value(expr: Expr, value: &Ident) -> Stmt {
    let semi = Some(Default::default());
    if !is_branching(&expr) || !contains_step(&expr) {
        if diverges(&expr) {
            return Stmt::Expr(expr, semi);
        }
        return Stmt::Expr(syn::parse_quote!(#value = #expr), semi);
    }
    let expr = match expr {
        Expr::Block(mut block) => {
            assign_tail(&mut block.block, value);
            Expr::Block(block)
        }
        Expr::If(mut expr_if) => {
            assign_tail(&mut expr_if.then_branch, value);
            if let Some((_, otherwise)) = &mut expr_if.else_branch
                && let Expr::Block(block) = &mut **otherwise
            {
                assign_tail(&mut block.block, value);
            } else if let Some((_, otherwise)) = &mut expr_if.else_branch {
                let inner = std::mem::replace(&mut **otherwise, syn::parse_quote!({}));
                let assigned = assign_value(inner, value);
                **otherwise = match assigned {
                    Stmt::Expr(Expr::If(nested), _) => Expr::If(nested),
                    other => syn::parse_quote!({ #other }),
                };
            }
            Expr::If(expr_if)
        }
        Expr::Match(mut expr_match) => {
            for arm in &mut expr_match.arms {
                let body = std::mem::replace(&mut *arm.body, syn::parse_quote!({}));
                *arm.body = match body {
                    Expr::Block(mut block) if block.label.is_none() => {
                        assign_tail(&mut block.block, value);
                        Expr::Block(block)
                    }
                    other if diverges(&other) => other,
                    other => {
                        let assigned = assign_value(other, value);
                        syn::parse_quote!({ #assigned })
                    }
                };
                arm.comma = Some(Default::default());
            }
            Expr::Match(expr_match)
        }
        _ => unreachable!("checked by is_branching"),
    };
    Stmt::Expr(expr, semi)
}

/// Makes the tail of `block` (its last statement, without `;`) assign `value`.
fn assign_tail(block: &mut Block, value: &Ident) {
    if let Some(Stmt::Expr(_, None)) = block.stmts.last()
        && let Some(Stmt::Expr(tail, None)) = block.stmts.pop()
    {
        block.stmts.push(assign_value(tail, value));
    }
}

/// Whether `expr` never has a value: `return`, `break`, `continue`, or a
/// panicking macro.
fn diverges(expr: &Expr) -> bool {
    match expr {
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => true,
        Expr::Macro(expr_macro) => is_panic(&expr_macro.mac),
        _ => false,
    }
}

// Input:  `{ let r = step(..).await?; total += r; }`
// Output: `match () { () => { let r = step(..).await?; total += r; } }`
/// A bare block as a one-arm `match`, which the lowering knows.
fn one_arm_match(block: syn::ExprBlock) -> Expr {
    let span = block.block.brace_token.span.join();
    syn::parse_quote_spanned!(span=> match () { () => #block })
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
            && contains_step(&*inner.cond)
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

// Input:  `charge(&order, quote(&order), format!("{}", order.id)).await?;`
// Output: `let __charge1_arg1: StepArg<<charge as Step>::Args, 1> = hoist(quote(&order));`
//         `let __charge1_arg2: StepArg<<charge as Step>::Args, 2> = hoist(format!("{}", order.id));`
//         `charge(&order, __charge1_arg1, __charge1_arg2).await?;`
/// Evaluates every computed argument of a step call (also of a join's
/// branches) into a local before the call's statement.
///
/// A step's state evaluates its arguments each time it runs: on every
/// retry, and in every process that resumes it. An argument that is a
/// stored variable, a field of one, a literal or a copy of one
/// ([`determined`]) has the same value each time. A computed one (a call,
/// a macro, any other method) might not: a clock, a random number, an id,
/// the order of a `HashMap`. As a local it is computed once, between the
/// previous step and this one, and committed with the step's state before
/// the step's first attempt, so every attempt of the step gets the same
/// value, whatever the code computing it reads. The local is typed by the
/// step's owned parameter type (`&Order` stores `Order`, `&str` stores
/// `String`), and a reference to a copyable value is copied into it.
pub fn hoist_arguments(body: &mut Block) {
    Hoister { next: 0 }.visit_block_mut(body);
}

struct Hoister {
    /// The number of step calls whose arguments were hoisted so far.
    next: usize,
}

impl Hoister {
    // Input:  a statement of a block
    // Output: the `let`s of its step call's computed arguments (the call now uses them)
    fn statement(&mut self, stmt: &mut Stmt) -> Vec<Stmt> {
        let mut before = Vec::new();
        match stmt {
            Stmt::Local(local) => {
                if let Some(init) = &mut local.init {
                    self.expression(&mut init.expr, &mut before);
                }
            }
            Stmt::Expr(expr, _) => {
                if let Some(right) = assignment_right(expr) {
                    self.expression(right, &mut before);
                } else {
                    self.expression(expr, &mut before);
                }
            }
            Stmt::Macro(stmt_macro) if is_join(&stmt_macro.mac) => {
                self.join(&mut stmt_macro.mac, &mut before);
            }
            _ => {}
        }
        before
    }

    /// Hoists the arguments of `expr` if it is a step call or a join
    /// (with or without `?`), the only forms whose statement is a step.
    fn expression(&mut self, expr: &mut Expr, before: &mut Vec<Stmt>) {
        let inner = match expr {
            Expr::Try(expr_try) => &mut *expr_try.expr,
            other => other,
        };
        match inner {
            Expr::Await(expr_await) => {
                if let Expr::Call(call) = &mut *expr_await.base {
                    self.call(call, before);
                }
            }
            Expr::Macro(expr_macro) if is_join(&expr_macro.mac) => {
                self.join(&mut expr_macro.mac, before);
            }
            _ => {}
        }
    }

    /// Hoists the arguments of each branch of `sagaflow::join!(..)`; a join
    /// that does not parse is left for the lowering to report.
    fn join(&mut self, mac: &mut Macro, before: &mut Vec<Stmt>) {
        let Ok(mut branches) =
            Punctuated::<Expr, Token![,]>::parse_terminated.parse2(mac.tokens.clone())
        else {
            return;
        };
        for branch in branches.iter_mut() {
            if let Expr::Call(call) = branch {
                self.call(call, before);
            }
        }
        mac.tokens = branches.into_token_stream();
    }

    fn call(&mut self, call: &mut ExprCall, before: &mut Vec<Stmt>) {
        let Expr::Path(func) = &*call.func else {
            return;
        };
        let step = &func.path;
        // Waits store what they need themselves (a child's input, a timer's
        // deadline), and a method path is not a step.
        if func.qself.is_some() || wait_name(step).is_some() || step.segments.is_empty() {
            return;
        }
        let name = step
            .segments
            .last()
            .map(|segment| segment.ident.to_string())
            .unwrap_or_default();
        let mut hoisted = false;
        for (index, arg) in call.args.iter_mut().enumerate() {
            let (value, by_ref) = match &*arg {
                Expr::Reference(reference) if reference.mutability.is_none() => {
                    ((*reference.expr).clone(), true)
                }
                other => (other.clone(), false),
            };
            if determined(&value) {
                continue;
            }
            if !hoisted {
                self.next += 1;
                hoisted = true;
            }
            let span = arg.span();
            let local = Ident::new(&argument_local(&name, self.next, index), span);
            let position = proc_macro2::Literal::usize_unsuffixed(index);
            before.push(syn::parse_quote_spanned! {span=>
                // The step only as a type (of a qualified path), so a plain
                // `async fn` there is one error, as in the state's resume code.
                let #local: ::sagaflow::__private::StepArg<<#step as ::sagaflow::__private::Step>::Args, #position> = ::sagaflow::__private::hoist(#value);
            });
            *arg = if by_ref {
                syn::parse2(quote_spanned!(span=> &#local)).expect("a reference parses")
            } else {
                syn::parse2(quote_spanned!(span=> #local)).expect("a path parses")
            };
        }
    }
}

/// The name of the local holding argument `index` of the `call`-th step
/// call with computed arguments, a call of `step`: `__notify1_arg0`.
fn argument_local(step: &str, call: usize, index: usize) -> String {
    format!("__{step}{call}_arg{index}")
}

/// Whether `name` is one [`argument_local`] makes: the code generator marks
/// the states storing one, whose entry is written before the step runs.
pub fn is_argument_local(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("__") else {
        return false;
    };
    let Some((step_call, index)) = rest.rsplit_once("_arg") else {
        return false;
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let step = step_call.trim_end_matches(|c: char| c.is_ascii_digit());
    digits(index) && !step.is_empty() && step.len() < step_call.len()
}

/// Methods that copy or view a value without reading anything else.
const COPIES: &[&str] = &[
    "clone",
    "to_owned",
    "to_string",
    "to_vec",
    "into",
    "as_str",
    "as_slice",
    "as_ref",
    "as_deref",
    "len",
    "is_empty",
];

/// Whether an argument's value follows from the stored variables alone: a
/// variable or constant, a literal, fields, indexes, operators, tuples and
/// struct literals of those, and copies of them ([`COPIES`]).
fn determined(expr: &Expr) -> bool {
    match expr {
        Expr::Path(_) | Expr::Lit(_) => true,
        Expr::Field(field) => determined(&field.base),
        Expr::Index(index) => determined(&index.expr) && determined(&index.index),
        Expr::Paren(paren) => determined(&paren.expr),
        Expr::Group(group) => determined(&group.expr),
        Expr::Reference(reference) => determined(&reference.expr),
        Expr::Unary(unary) => determined(&unary.expr),
        Expr::Binary(binary) => determined(&binary.left) && determined(&binary.right),
        Expr::Cast(cast) => determined(&cast.expr),
        Expr::Tuple(tuple) => tuple.elems.iter().all(determined),
        Expr::Array(array) => array.elems.iter().all(determined),
        Expr::Struct(literal) => {
            literal.rest.is_none() && literal.fields.iter().all(|field| determined(&field.expr))
        }
        Expr::MethodCall(method) => {
            method.args.is_empty()
                && method.turbofish.is_none()
                && COPIES.contains(&method.method.to_string().as_str())
                && determined(&method.receiver)
        }
        _ => false,
    }
}

impl VisitMut for Hoister {
    fn visit_block_mut(&mut self, block: &mut Block) {
        visit_mut::visit_block_mut(self, block);
        let stmts = std::mem::take(&mut block.stmts);
        for mut stmt in stmts {
            let before = self.statement(&mut stmt);
            block.stmts.extend(before);
            block.stmts.push(stmt);
        }
    }

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

    fn hoisted(body: proc_macro2::TokenStream) -> String {
        let mut block: Block = syn::parse2(quote!({ #body })).expect("a block");
        hoist_arguments(&mut block);
        let file: syn::File = syn::parse2(quote!(fn f() #block)).expect("a fn");
        prettyplease::unparse(&file)
    }

    #[test]
    fn computed_arguments_are_hoisted_and_determined_ones_stay() {
        assert_eq!(
            hoisted(quote! {
                let paid = charge(&order, order.id + 1, label.clone(), &quote(&order), format!("{}", order.id)).await?;
                ship(&order, [paid, 2], Line { id: order.id }).await?;
            }),
            same(quote! {
                let __charge1_arg3: ::sagaflow::__private::StepArg<<charge as ::sagaflow::__private::Step>::Args, 3> = ::sagaflow::__private::hoist(quote(&order));
                let __charge1_arg4: ::sagaflow::__private::StepArg<<charge as ::sagaflow::__private::Step>::Args, 4> = ::sagaflow::__private::hoist(format!("{}", order.id));
                let paid = charge(&order, order.id + 1, label.clone(), &__charge1_arg3, __charge1_arg4).await?;
                ship(&order, [paid, 2], Line { id: order.id }).await?;
            })
        );
    }

    #[test]
    fn arguments_of_join_branches_and_assignments_are_hoisted_in_nested_blocks() {
        assert_eq!(
            hoisted(quote! {
                for item in items {
                    total += book(&item, now()).await?;
                }
                let (a, b) = sagaflow::join!(fly(&trip), stay(&trip, nights(&trip)))?;
                sagaflow::sleep(Duration::from_secs(1)).await;
                let later = || notify(format!("x"));
            }),
            same(quote! {
                for item in items {
                    let __book1_arg1: ::sagaflow::__private::StepArg<<book as ::sagaflow::__private::Step>::Args, 1> = ::sagaflow::__private::hoist(now());
                    total += book(&item, __book1_arg1).await?;
                }
                let __stay2_arg1: ::sagaflow::__private::StepArg<<stay as ::sagaflow::__private::Step>::Args, 1> = ::sagaflow::__private::hoist(nights(&trip));
                let (a, b) = sagaflow::join!(fly(&trip), stay(&trip, __stay2_arg1))?;
                sagaflow::sleep(Duration::from_secs(1)).await;
                let later = || notify(format!("x"));
            })
        );
    }

    #[test]
    fn argument_locals_are_recognised_by_name() {
        assert!(is_argument_local(&argument_local("notify", 1, 0)));
        assert!(is_argument_local("__charge_payment12_arg3"));
        assert!(!is_argument_local("__step1"));
        assert!(!is_argument_local("__for1_items"));
        assert!(!is_argument_local("label_arg0"));
        assert!(!is_argument_local("__notify_arg0"));
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
                    let __step2 = next_job(n).await?;
                    match __step2 {
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
