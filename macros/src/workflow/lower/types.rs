//! The types of the variables a state stores, read off the code that
//! binds them, and the bindings of patterns.

use proc_macro2::Span;
use syn::{Expr, Ident, Pat, Stmt, Type};

use super::calls::{helper_type, is_compound, is_unsuffixed_number, operator_trait};
use super::ir::{Binding, BindingId, NodeId, VarType};
use super::lowerer::Lowerer;
use super::visitors::{
    condition_lets, is_binding_name, pattern_bindings, pattern_names, pattern_types, single_ident,
};

impl Lowerer<'_> {
    /// A variable the lowering adds (a `for` loop's collection and position).
    pub(crate) fn synthetic(&mut self, name: String, ty: VarType, node: NodeId) -> BindingId {
        let id = self.bindings.len();
        self.bindings.push(Binding {
            ident: Ident::new(&name, Span::call_site()),
            ty,
            is_ref: false,
            declared_at: Some(node),
            deferred: false,
        });
        self.nodes[node].defs.insert(id);
        id
    }

    /// Binds the patterns of the `let`s of a condition (`while let`, let chains).
    pub(crate) fn bind_lets(&mut self, cond: &Expr, node: NodeId) {
        for expr_let in condition_lets(cond) {
            let ty = self.type_of(&expr_let.expr);
            self.bind(&expr_let.pat, ty, node);
        }
    }

    /// The type of a scrutinee that is a plain variable, or `v.pop()` on a
    /// typed `Vec`/`VecDeque` (for `while let Some(x) = queue.pop()`).
    pub(crate) fn type_of(&self, expr: &Expr) -> VarType {
        if let Expr::MethodCall(call) = expr
            && call.args.is_empty()
            && matches!(
                call.method.to_string().as_str(),
                "pop" | "pop_front" | "pop_back" | "pop_first" | "pop_last"
            )
        {
            return match self.type_of(&call.receiver) {
                ty @ VarType::Written(_) => match ty.element() {
                    VarType::Written(element) => {
                        VarType::Written(syn::parse_quote!(Option<#element>))
                    }
                    _ => VarType::Unknown,
                },
                _ => VarType::Unknown,
            };
        }
        match single_ident(expr).and_then(|name| self.resolve(&name.to_string())) {
            Some(id) => self.bindings[id].ty.clone(),
            None => VarType::Unknown,
        }
    }

    /// Declares the bindings of `pat` (matched against a value of type `ty`)
    /// in the current scope, defined by `node`.
    // Input:  `order`, `order.clone()`, with `order: Order` a parameter
    // Output: `Order`; `Unknown` for any other expression
    /// The type of a copy or clone of a local whose type is known.
    pub(crate) fn copied_type(&self, expr: &Expr) -> VarType {
        self.value_type(expr, &[])
    }

    // Input:  `match __step1 { Some(qty) => qty, None => return Ok(0) }`, with
    //         `__step1: StepOutput(lookup)`
    // Output: `Part(StepOutput(lookup), Some)`
    /// The type of a copy of a local (see [`Self::copied_type`]), also when
    /// it is the value of a block, `if` or `match`: the first tail whose
    /// type is known names it (every tail has the value's type). `bound`
    /// holds the names the enclosing patterns and `let`s bind there.
    pub(crate) fn value_type(&self, expr: &Expr, bound: &[(String, VarType)]) -> VarType {
        match expr {
            Expr::MethodCall(call) if call.method == "clone" && call.args.is_empty() => {
                self.value_type(&call.receiver, bound)
            }
            // The methods whose type their name says: `ToString` always
            // gives a `String`; `len` and `is_empty` are std's convention.
            Expr::MethodCall(call) if call.args.is_empty() => {
                match call.method.to_string().as_str() {
                    "to_string" => VarType::Written(syn::parse_quote!(::std::string::String)),
                    "len" => VarType::Written(syn::parse_quote!(usize)),
                    "is_empty" => VarType::Written(syn::parse_quote!(bool)),
                    _ => VarType::Unknown,
                }
            }
            // `n as u64`: the type written.
            Expr::Cast(cast) => VarType::Written((*cast.ty).clone()),
            // `format!(..)` is a `String`.
            Expr::Macro(expr_macro)
                if expr_macro
                    .mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|last| last.ident == "format") =>
            {
                VarType::Written(syn::parse_quote!(::std::string::String))
            }
            Expr::Paren(paren) => self.value_type(&paren.expr, bound),
            // `price * qty`: the operator trait's output for the operands'
            // types; an unsuffixed literal takes the other side's type.
            Expr::Binary(binary) if !is_compound(&binary.op) => {
                let Some(op) = operator_trait(&binary.op) else {
                    // Comparisons, `&&` and `||`.
                    return VarType::Written(syn::parse_quote!(bool));
                };
                let left = self.value_type(&binary.left, bound);
                let right = self.value_type(&binary.right, bound);
                let (left, right) = match (left, right) {
                    (VarType::Unknown, right) if is_unsuffixed_number(&binary.left) => {
                        (right.clone(), right)
                    }
                    (left, VarType::Unknown) if is_unsuffixed_number(&binary.right) => {
                        (left.clone(), left)
                    }
                    other => other,
                };
                if matches!(left, VarType::Unknown) || matches!(right, VarType::Unknown) {
                    return VarType::Unknown;
                }
                VarType::Operated(Box::new(left), op, Box::new(right))
            }
            // The deterministic helpers (`sagaflow::uuid()` ..), `String::new()`
            // and `String::from(..)`.
            Expr::Call(call) => helper_type(&call.func, call.args.len()),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Bool(_),
                ..
            }) => VarType::Written(syn::parse_quote!(bool)),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(int),
                ..
            }) if !int.suffix().is_empty() => {
                let suffix = Ident::new(int.suffix(), int.span());
                VarType::Written(syn::parse_quote!(#suffix))
            }
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Float(float),
                ..
            }) if !float.suffix().is_empty() => {
                let suffix = Ident::new(float.suffix(), float.span());
                VarType::Written(syn::parse_quote!(#suffix))
            }
            // `Receipt { order, slot }`: a struct named by one capitalised
            // segment is taken as its own type (`Shape::Circle { .. }` may be
            // a variant). A generic struct whose arguments rustc infers
            // (`Page { items }`) gets rustc's "missing generics" on the state.
            Expr::Struct(literal)
                if literal.qself.is_none()
                    && literal.path.segments.len() == 1
                    && literal.path.segments[0].arguments.is_none()
                    && literal.path.segments[0].ident != "Self"
                    && literal.path.segments[0]
                        .ident
                        .to_string()
                        .starts_with(|c: char| c.is_ascii_uppercase()) =>
            {
                let path = &literal.path;
                VarType::Written(syn::parse_quote!(#path))
            }
            Expr::Block(block) if block.label.is_none() => self.tail_type(&block.block, bound),
            Expr::If(expr_if) => {
                let mut inner = bound.to_vec();
                for expr_let in condition_lets(&expr_if.cond) {
                    let ty = self.type_of(&expr_let.expr);
                    inner.extend(pattern_types(&expr_let.pat, ty));
                }
                let then = self.tail_type(&expr_if.then_branch, &inner);
                match (&then, &expr_if.else_branch) {
                    (VarType::Unknown, Some((_, otherwise))) => self.value_type(otherwise, bound),
                    _ => then,
                }
            }
            Expr::Match(expr_match) => {
                let ty = self.type_of(&expr_match.expr);
                expr_match
                    .arms
                    .iter()
                    .map(|arm| {
                        let mut inner = bound.to_vec();
                        inner.extend(pattern_types(&arm.pat, ty.clone()));
                        self.value_type(&arm.body, &inner)
                    })
                    .find(|ty| !matches!(ty, VarType::Unknown))
                    .unwrap_or(VarType::Unknown)
            }
            other => {
                let Some(name) = single_ident(other).map(|name| name.to_string()) else {
                    return VarType::Unknown;
                };
                if let Some((_, ty)) = bound.iter().rev().find(|(bound, _)| *bound == name) {
                    return ty.clone();
                }
                self.resolve(&name)
                    .map(|id| &self.bindings[id])
                    .filter(|binding| !binding.is_ref)
                    .map_or(VarType::Unknown, |binding| binding.ty.clone())
            }
        }
    }

    /// The type of the value of `block` (see [`Self::value_type`]); the
    /// block's own `let`s shadow what they bind, with types not named.
    pub(crate) fn tail_type(&self, block: &syn::Block, bound: &[(String, VarType)]) -> VarType {
        let mut inner = bound.to_vec();
        for stmt in &block.stmts {
            if let Stmt::Local(local) = stmt {
                let names = pattern_names(&local.pat);
                inner.extend(names.into_iter().map(|name| (name, VarType::Unknown)));
            }
        }
        match block.stmts.last() {
            Some(Stmt::Expr(tail, None)) => self.value_type(tail, &inner),
            _ => VarType::Unknown,
        }
    }

    pub(crate) fn bind(&mut self, pat: &Pat, ty: VarType, node: NodeId) -> Vec<BindingId> {
        let mut ids = Vec::new();
        self.bind_into(pat, ty, node, &mut ids);
        ids
    }

    pub(crate) fn bind_into(
        &mut self,
        pat: &Pat,
        ty: VarType,
        node: NodeId,
        ids: &mut Vec<BindingId>,
    ) {
        let mut found = Vec::new();
        pattern_bindings(pat, ty, &mut found);
        for (pat_ident, ty) in found {
            if !is_binding_name(&pat_ident.ident) {
                continue;
            }
            let is_ref =
                pat_ident.by_ref.is_some() || matches!(&ty, VarType::Written(Type::Reference(_)));
            let id = self.bindings.len();
            self.bindings.push(Binding {
                ident: pat_ident.ident.clone(),
                ty,
                is_ref,
                declared_at: Some(node),
                deferred: false,
            });
            self.scopes.last_mut().expect("a scope").push(id);
            self.nodes[node].defs.insert(id);
            ids.push(id);
        }
    }
}
