//! Syntax visitors the lowering and the other stages share: finding steps,
//! the names code uses and binds, format captures.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{Expr, Ident, Pat, Stmt, Type};

use super::ir::{BindingId, Part, VarType};

/// The names `pat` binds.
pub(crate) fn pattern_names(pat: &Pat) -> BTreeSet<String> {
    let mut found = Vec::new();
    pattern_bindings(pat, VarType::Unknown, &mut found);
    found.iter().map(|(pat, _)| pat.ident.to_string()).collect()
}

pub(crate) fn single_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident(),
        _ => None,
    }
}

pub(crate) fn is_binding_name(ident: &Ident) -> bool {
    let name = ident.to_string();
    let name = name.trim_start_matches("r#");
    name.starts_with(|c: char| c.is_lowercase() || c == '_') && name != "_"
}

/// `reserve_inventory` → `ReserveInventory`.
pub fn camel_case(name: &str) -> String {
    name.trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

pub(crate) trait SpanOf {
    fn span_of(&self) -> Span;
}

impl<T: ToTokens> SpanOf for T {
    fn span_of(&self) -> Span {
        syn::spanned::Spanned::span(self)
    }
}

/// Finds step calls (`path(args).await`) outside closures, async blocks and
/// nested items (those are reported by `check`).
#[derive(Default)]
pub struct StepFinder {
    /// Span of the first step call found.
    pub found: Option<Span>,
}

impl<'ast> Visit<'ast> for StepFinder {
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if self.found.is_none() && super::super::join::is_join(mac) {
            self.found = Some(mac.path.span_of());
        }
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.found.is_some() {
            return;
        }
        match expr {
            Expr::Await(expr_await) => {
                if let Expr::Call(call) = &*expr_await.base
                    && let Expr::Path(_) = &*call.func
                {
                    self.found = Some(call.func.span_of());
                    return;
                }
                visit::visit_expr(self, expr);
            }
            Expr::Closure(_) | Expr::Async(_) => {}
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

pub(crate) fn contains_step<T: StepSearch + ?Sized>(node: &T) -> bool {
    node.first_step().is_some()
}

pub(crate) fn first_step_span<T: StepSearch + ?Sized>(node: &T) -> Span {
    node.first_step().unwrap_or_else(Span::call_site)
}

pub(crate) trait StepSearch {
    fn first_step(&self) -> Option<Span>;
}

impl StepSearch for Expr {
    fn first_step(&self) -> Option<Span> {
        let mut finder = StepFinder::default();
        finder.visit_expr(self);
        finder.found
    }
}

impl StepSearch for Stmt {
    fn first_step(&self) -> Option<Span> {
        let mut finder = StepFinder::default();
        finder.visit_stmt(self);
        finder.found
    }
}

/// The variables of the enclosing scopes an expression uses, resolved
/// lexically; closures' captures and format-string captures count.
pub(crate) struct Uses<'a> {
    pub(crate) visible: &'a BTreeMap<String, BindingId>,
    pub(crate) shadowed: Vec<HashSet<String>>,
    pub(crate) found: BTreeSet<BindingId>,
}

impl Uses<'_> {
    pub(crate) fn resolve(&mut self, name: &str) {
        if self.shadowed.iter().any(|scope| scope.contains(name)) {
            return;
        }
        if let Some(&id) = self.visible.get(name) {
            self.found.insert(id);
        }
    }

    pub(crate) fn shadow(&mut self, pat: &Pat) {
        let mut names = PatNames::default();
        names.visit_pat(pat);
        self.shadowed.last_mut().expect("a scope").extend(names.0);
    }

    pub(crate) fn scan_tokens(&mut self, tokens: TokenStream) {
        let mut after_dot = false;
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    if !after_dot {
                        self.resolve(&ident.to_string());
                    }
                    after_dot = false;
                }
                TokenTree::Punct(punct) => after_dot = punct.as_char() == '.',
                TokenTree::Group(group) => {
                    self.scan_tokens(group.stream());
                    after_dot = false;
                }
                TokenTree::Literal(literal) => {
                    for name in format_captures(&literal.to_string()) {
                        self.resolve(&name);
                    }
                    after_dot = false;
                }
            }
        }
    }
}

/// The names a format string captures: `"{label} {x:?}"` → `label`, `x`.
pub fn format_captures(literal: &str) -> Vec<String> {
    if !(literal.starts_with('"') || literal.starts_with("r\"") || literal.starts_with("r#")) {
        return Vec::new();
    }
    let mut names = Vec::new();
    let chars: Vec<char> = literal.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '{' {
            if chars.get(i + 1) == Some(&'{') {
                i += 2;
                continue;
            }
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            if end < chars.len()
                && matches!(chars[end], '}' | ':')
                && name.starts_with(|c: char| c.is_alphabetic() || c == '_')
            {
                names.push(name);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[derive(Default)]
pub(crate) struct PatNames(Vec<String>);

impl<'ast> Visit<'ast> for PatNames {
    fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
        if is_binding_name(&pat.ident) {
            self.0.push(pat.ident.to_string());
        }
        visit::visit_pat_ident(self, pat);
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
        {
            self.resolve(&ident.to_string());
        }
        visit::visit_expr_path(self, path);
    }

    // `x = value` writes `x` without reading it: a `let x;` assigned in
    // pure code is not live before it.
    fn visit_expr_assign(&mut self, assign: &'ast syn::ExprAssign) {
        if single_ident(&assign.left).is_some() {
            self.visit_expr(&assign.right);
        } else {
            visit::visit_expr_assign(self, assign);
        }
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.shadowed.push(HashSet::new());
        visit::visit_block(self, block);
        self.shadowed.pop();
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.shadow(&local.pat);
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        self.shadowed.push(HashSet::new());
        for input in &closure.inputs {
            self.shadow(input);
        }
        self.visit_expr(&closure.body);
        self.shadowed.pop();
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.shadowed.push(HashSet::new());
        self.shadow(&arm.pat);
        if let Some((_, guard)) = &arm.guard {
            self.visit_expr(guard);
        }
        self.visit_expr(&arm.body);
        self.shadowed.pop();
    }

    fn visit_expr_for_loop(&mut self, for_loop: &'ast syn::ExprForLoop) {
        self.visit_expr(&for_loop.expr);
        self.shadowed.push(HashSet::new());
        self.shadow(&for_loop.pat);
        self.visit_block(&for_loop.body);
        self.shadowed.pop();
    }

    fn visit_expr_let(&mut self, expr_let: &'ast syn::ExprLet) {
        self.visit_expr(&expr_let.expr);
        self.shadow(&expr_let.pat);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The `let`s of a condition: `let P = e`, or each of a chain `a && let P = e`.
pub(crate) fn condition_lets(cond: &Expr) -> Vec<&syn::ExprLet> {
    match cond {
        Expr::Let(expr_let) => vec![expr_let],
        Expr::Binary(binary) if matches!(binary.op, syn::BinOp::And(_)) => {
            let mut lets = condition_lets(&binary.left);
            lets.extend(condition_lets(&binary.right));
            lets
        }
        Expr::Paren(paren) => condition_lets(&paren.expr),
        _ => Vec::new(),
    }
}

/// The names `pat` binds against a value of type `ty`, with their types
/// (not named for a binding by reference: a copy of it is not its type).
pub(crate) fn pattern_types(pat: &Pat, ty: VarType) -> Vec<(String, VarType)> {
    let mut found = Vec::new();
    pattern_bindings(pat, ty, &mut found);
    found
        .into_iter()
        .map(|(pat_ident, ty)| {
            let by_ref =
                pat_ident.by_ref.is_some() || matches!(&ty, VarType::Written(Type::Reference(_)));
            let ty = if by_ref { VarType::Unknown } else { ty };
            (pat_ident.ident.to_string(), ty)
        })
        .collect()
}

/// The identifiers `pat` binds, matched against a value of type `ty`, each
/// with its type as far as the macro can name it, in binding order.
// Input:  `(Some(a), b)` against `StepOutput(split)`
// Output: `a: Part(Part(StepOutput(split), Element(0)), Some)`, `b: Part(StepOutput(split), Element(1))`
pub(crate) fn pattern_bindings<'p>(
    pat: &'p Pat,
    ty: VarType,
    out: &mut Vec<(&'p syn::PatIdent, VarType)>,
) {
    match pat {
        Pat::Ident(pat_ident) => {
            if let Some((_, sub)) = &pat_ident.subpat {
                pattern_bindings(sub, ty.clone(), out);
            }
            out.push((pat_ident, ty));
        }
        Pat::Type(pat_type) => {
            pattern_bindings(&pat_type.pat, VarType::Written((*pat_type.ty).clone()), out)
        }
        Pat::Paren(paren) => pattern_bindings(&paren.pat, ty, out),
        Pat::Tuple(tuple) => {
            let elems = match &ty {
                VarType::JoinOutput(steps) if steps.len() == tuple.elems.len() => steps
                    .iter()
                    .map(|step| VarType::StepOutput(step.clone()))
                    .collect(),
                VarType::Written(Type::Tuple(types)) if types.elems.len() == tuple.elems.len() => {
                    types
                        .elems
                        .iter()
                        .map(|ty| VarType::Written(ty.clone()))
                        .collect()
                }
                VarType::Unknown => vec![VarType::Unknown; tuple.elems.len()],
                known => (0..tuple.elems.len())
                    .map(|index| VarType::Part(Box::new(known.clone()), Part::Element(index)))
                    .collect(),
            };
            for (pat, ty) in tuple.elems.iter().zip(elems) {
                pattern_bindings(pat, ty, out);
            }
        }
        Pat::TupleStruct(tuple) => {
            let variant = tuple
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            // `Some`, `Ok` and `Err` as written, or through their
            // enum's name: another enum's variant of that name is not
            // one of them.
            let std_variant = match tuple.path.segments.len() {
                1 => true,
                2 => matches!(
                    tuple.path.segments[0].ident.to_string().as_str(),
                    "Option" | "Result"
                ),
                _ => false,
            };
            let payload = if tuple.elems.len() == 1 && std_variant {
                ty.payload(&variant)
            } else {
                VarType::Unknown
            };
            for pat in &tuple.elems {
                pattern_bindings(pat, payload.clone(), out);
            }
        }
        Pat::Struct(pat_struct) => {
            for field in &pat_struct.fields {
                pattern_bindings(&field.pat, VarType::Unknown, out);
            }
        }
        Pat::Slice(slice) => {
            for pat in &slice.elems {
                pattern_bindings(pat, VarType::Unknown, out);
            }
        }
        Pat::Reference(reference) => pattern_bindings(&reference.pat, VarType::Unknown, out),
        Pat::Or(or) => {
            if let Some(first) = or.cases.first() {
                pattern_bindings(first, ty, out);
            }
        }
        _ => {}
    }
}
