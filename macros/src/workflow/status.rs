//! In a workflow that declares its query type (`query = OrderStatus`),
//! every `sagaflow::set_status(..)` of the body is given that type, so a
//! status of another type is a compile error on the value set: the type
//! `handle.query()` returns is the type the body sets. Runs after
//! [`check`](super::check), which reads the body as written.

use quote::{ToTokens, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, PathArguments, Type};

// Input:  `sagaflow::set_status(OrderStatus::Paid)`, with `query = OrderStatus`
// Output: `::sagaflow::__private::set_status::<OrderStatus, _>(OrderStatus::Paid)`
/// Rewrites every `sagaflow::set_status` call in `body` (closures
/// included) to set a `query`.
pub fn type_status_calls(body: &mut Block, query: &Type) {
    StatusCalls { query }.visit_block_mut(body);
}

struct StatusCalls<'a> {
    query: &'a Type,
}

impl VisitMut for StatusCalls<'_> {
    fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
        visit_mut::visit_expr_call_mut(self, call);
        let Expr::Path(func) = &*call.func else {
            return;
        };
        let segments = &func.path.segments;
        let is_set_status = func.qself.is_none()
            && segments.len() == 2
            && segments[0].ident == "sagaflow"
            && segments[1].ident == "set_status";
        if !is_set_status {
            return;
        }
        // A type the user wrote (`set_status::<T>(..)`) is the value's.
        let value = match &segments[1].arguments {
            PathArguments::AngleBracketed(args) => args.args.to_token_stream(),
            _ => quote_spanned!(segments[1].ident.span()=> _),
        };
        let query = self.query;
        let span = segments[1].ident.span();
        *call.func =
            syn::parse_quote_spanned!(span=> ::sagaflow::__private::set_status::<#query, #value>);
    }
}
