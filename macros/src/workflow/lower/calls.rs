//! Reading calls and operators: which call is a step or a wait, the types
//! of their values and of operators, assignments and the places they write.

use syn::{Expr, ExprCall, Ident, Path, PathArguments, Type};

use super::super::names::{type_string, wait_name};
use super::ir::VarType;
use super::visitors::single_ident;

/// `step(args).await?` or `step(args).await`: the call, the path, whether `?` follows.
pub fn step_call(expr: &Expr) -> Option<(&ExprCall, &Path, bool)> {
    let (inner, has_try) = match expr {
        Expr::Try(expr_try) => (&*expr_try.expr, true),
        other => (other, false),
    };
    let Expr::Await(expr_await) = inner else {
        return None;
    };
    let Expr::Call(call) = &*expr_await.base else {
        return None;
    };
    let Expr::Path(path) = &*call.func else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    Some((call, &path.path, has_try))
}

/// The type of `sagaflow::child(wf, ..).await`, with or without `?`.
pub(crate) fn child_value_type(call: &ExprCall, has_try: bool) -> VarType {
    match call.args.first() {
        Some(Expr::Path(path)) if path.qself.is_none() => {
            let workflow = path.path.clone();
            if has_try {
                VarType::ChildOutput(workflow)
            } else {
                VarType::ChildResult(workflow)
            }
        }
        _ => VarType::Unknown,
    }
}

/// `T` of `sagaflow::signal::<T>`, if written.
pub(crate) fn turbofish(path: &Path) -> Option<Type> {
    let PathArguments::AngleBracketed(args) = &path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

/// `T` of a type written `Option<T>`.
pub(crate) fn option_inner(ty: &Type) -> Option<Type> {
    match VarType::Written(ty.clone()).payload("Some") {
        VarType::Written(inner) => Some(inner),
        _ => None,
    }
}

/// The type of the value a signal wait with a turbofish returns:
/// `T` for `signal::<T>`, `Option<T>` for `signal_timeout::<T>`.
pub(crate) fn wait_value_type(path: &Path) -> Option<VarType> {
    let wait = wait_name(path)?;
    let ty = turbofish(path)?;
    Some(VarType::Written(match wait.as_str() {
        "signal" => ty,
        "signal_timeout" => syn::parse_quote!(Option<#ty>),
        _ => return None,
    }))
}

pub(crate) fn replace_call(expr: &mut Expr) {
    match expr {
        Expr::Try(expr_try) => replace_call(&mut expr_try.expr),
        other => *other = syn::parse_quote!(__result),
    }
}

/// `items.iter()` rather than `items . iter()`: method chains as people write them.
pub(crate) fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::MethodCall(call) => format!(
            "{}.{}({})",
            expr_text(&call.receiver),
            call.method,
            type_string(&call.args)
        ),
        Expr::Reference(reference) => format!(
            "&{}{}",
            if reference.mutability.is_some() {
                "mut "
            } else {
                ""
            },
            expr_text(&reference.expr)
        ),
        Expr::Field(field) => format!("{}.{}", expr_text(&field.base), type_string(&field.member)),
        other => type_string(other),
    }
}

// Input:  `total += book(&item).await?`, `order.total = price(..).await?`
// Output: the place, the value, and whether it is a plain `=`
/// The parts of an assignment or a compound assignment.
pub(crate) fn assignment(expr: &Expr) -> Option<(&Expr, &Expr, bool)> {
    match expr {
        Expr::Assign(assign) => Some((&assign.left, &assign.right, true)),
        Expr::Binary(binary) if is_compound(&binary.op) => {
            Some((&binary.left, &binary.right, false))
        }
        _ => None,
    }
}

/// The value of an assignment or a compound assignment, to rewrite.
pub fn assignment_right(expr: &mut Expr) -> Option<&mut Expr> {
    match expr {
        Expr::Assign(assign) => Some(&mut assign.right),
        Expr::Binary(binary) if is_compound(&binary.op) => Some(&mut binary.right),
        _ => None,
    }
}

/// Whether `op` is a compound assignment (`+=`, `-=`, `|=`, ...).
pub fn is_compound(op: &syn::BinOp) -> bool {
    use syn::BinOp;
    matches!(
        op,
        BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_)
    )
}

// Input:  `total`, `order.lines[2].qty`, `(*counts)[i]`
// Output: the local the place is in: `total`, `order`, `counts`
/// The variable a place expression writes into.
pub(crate) fn place_root(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Field(field) => place_root(&field.base),
        Expr::Index(index) => place_root(&index.expr),
        Expr::Paren(paren) => place_root(&paren.expr),
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => place_root(&unary.expr),
        other => single_ident(other),
    }
}

/// The type of a call with `args` arguments of `sagaflow::uuid`,
/// `sagaflow::now` or `sagaflow::random` (the deterministic helpers, none),
/// `String::new` (none) or `String::from` (one); `Unknown` for any other.
pub(crate) fn helper_type(func: &Expr, args: usize) -> VarType {
    let Expr::Path(path) = func else {
        return VarType::Unknown;
    };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    if path.qself.is_some() || segments.len() != 2 {
        return VarType::Unknown;
    }
    match (segments[0].as_str(), segments[1].as_str(), args) {
        ("sagaflow", "uuid", 0) | ("String", "new", 0) | ("String", "from", 1) => {
            VarType::Written(syn::parse_quote!(::std::string::String))
        }
        ("sagaflow", "now", 0) => VarType::Written(syn::parse_quote!(::std::time::SystemTime)),
        ("sagaflow", "random", 0) => VarType::Written(syn::parse_quote!(u64)),
        _ => VarType::Unknown,
    }
}

/// The `std::ops` trait of an arithmetic or bit operator; `None` for a
/// comparison, `&&` and `||`, whose value is a `bool`.
pub(crate) fn operator_trait(op: &syn::BinOp) -> Option<&'static str> {
    use syn::BinOp;
    Some(match op {
        BinOp::Add(_) => "Add",
        BinOp::Sub(_) => "Sub",
        BinOp::Mul(_) => "Mul",
        BinOp::Div(_) => "Div",
        BinOp::Rem(_) => "Rem",
        BinOp::BitAnd(_) => "BitAnd",
        BinOp::BitOr(_) => "BitOr",
        BinOp::BitXor(_) => "BitXor",
        BinOp::Shl(_) => "Shl",
        BinOp::Shr(_) => "Shr",
        _ => return None,
    })
}

/// Whether `expr` is a number literal without a type suffix (`2`, `0.5`),
/// whose type rustc infers from the other operand.
pub(crate) fn is_unsuffixed_number(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => int.suffix().is_empty(),
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(float),
            ..
        }) => float.suffix().is_empty(),
        Expr::Paren(paren) => is_unsuffixed_number(&paren.expr),
        _ => false,
    }
}
