//! Stage 1b: a parameter or local named like the workflow itself
//! (`async fn order(order: Order)`). The workflow is also a unit struct of
//! that name, which no `let` or parameter pattern in the module can shadow
//! (rustc's E0530), so in the generated code that variable takes another
//! name, `order_sagaflow_local`; the state stores it under its own name (`order`),
//! which is also the name `sagaflow show`, the state machine and the
//! fingerprint use.
//!
//! As in ordinary Rust, the parameter shadows the function in the body, so
//! every `order` the body reads or binds is the variable: paths of one
//! segment, patterns, struct shorthands (`Receipt { order }`), the tokens of
//! macro calls and the `{order}` of format strings. Fields (`x.order`),
//! longer paths (`order::Item`) and types are left as they are.

use proc_macro2::{Group, TokenStream, TokenTree};
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Pat};

use super::parse::WorkflowFn;

/// What the variable's name ends with in the generated code.
const SUFFIX: &str = "_sagaflow_local";

// Input:  `async fn order(order: Order) { reserve(&order).await?; .. }`
// Output: `async fn order(order_sagaflow_local: Order) { reserve(&order_sagaflow_local).await?; .. }`
/// Renames a parameter or local named like the workflow, and every use of
/// it in the body; leaves a body that binds no such name untouched.
pub fn rename_own_name(func: &mut WorkflowFn) {
    let name = func.name.to_string();
    let bound = func.params.iter().any(|param| param.name == name) || {
        let mut binds = Binds {
            name: &name,
            found: false,
        };
        binds.visit_block(&func.body);
        binds.found
    };
    if !bound {
        return;
    }
    for param in &mut func.params {
        if param.name == name {
            param.name = renamed(&param.name);
        }
    }
    Rename { name: &name }.visit_block_mut(&mut func.body);
}

/// The name a variable is stored and shown under: `order` for
/// `order_sagaflow_local`, any other name as it is.
pub fn shown(ident: &Ident) -> String {
    let name = ident.to_string();
    match name.strip_suffix(SUFFIX) {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => name,
    }
}

fn renamed(ident: &Ident) -> Ident {
    Ident::new(&format!("{ident}{SUFFIX}"), ident.span())
}

/// Whether a pattern in the body binds `name`.
struct Binds<'a> {
    name: &'a str,
    found: bool,
}

impl<'ast> Visit<'ast> for Binds<'_> {
    fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
        self.found |= pat.ident == self.name;
        syn::visit::visit_pat_ident(self, pat);
    }
}

struct Rename<'a> {
    name: &'a str,
}

impl Rename<'_> {
    fn is_name(&self, ident: &Ident) -> bool {
        *ident == self.name
    }

    // Input:  the tokens of `format!("{order} {}", order.id)`
    // Output: `format!("{order_sagaflow_local} {}", order_sagaflow_local.id)`
    /// A macro's tokens: each `name` not after `.` or `::` and not before
    /// `::`, and `{name}` / `{name:..}` in string literals.
    fn tokens(&self, tokens: TokenStream) -> TokenStream {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let punct = |tree: Option<&TokenTree>, ch: char| matches!(tree, Some(TokenTree::Punct(punct)) if punct.as_char() == ch);
        let mut out = Vec::with_capacity(trees.len());
        for (i, tree) in trees.iter().enumerate() {
            let before = i.checked_sub(1).and_then(|j| trees.get(j));
            let after = trees.get(i + 1);
            let renamed = match tree {
                TokenTree::Ident(ident)
                    if self.is_name(ident)
                        && !punct(before, '.')
                        && !punct(before, ':')
                        && !punct(after, ':') =>
                {
                    TokenTree::Ident(renamed(ident))
                }
                TokenTree::Group(group) => {
                    let mut inner = Group::new(group.delimiter(), self.tokens(group.stream()));
                    inner.set_span(group.span());
                    TokenTree::Group(inner)
                }
                TokenTree::Literal(literal) => self.literal(literal),
                other => other.clone(),
            };
            out.push(renamed);
        }
        out.into_iter().collect()
    }

    /// A string literal naming `{name}` or `{name:..}` as a format argument.
    fn literal(&self, literal: &proc_macro2::Literal) -> TokenTree {
        let Ok(syn::Lit::Str(text)) = syn::parse_str::<syn::Lit>(&literal.to_string()) else {
            return TokenTree::Literal(literal.clone());
        };
        let value = text.value();
        let plain = format!("{{{}}}", self.name);
        let formatted = format!("{{{}:", self.name);
        if !value.contains(&plain) && !value.contains(&formatted) {
            return TokenTree::Literal(literal.clone());
        }
        let value = value
            .replace(&plain, &format!("{{{}{SUFFIX}}}", self.name))
            .replace(&formatted, &format!("{{{}{SUFFIX}:", self.name));
        let mut new = proc_macro2::Literal::string(&value);
        new.set_span(literal.span());
        TokenTree::Literal(new)
    }
}

impl VisitMut for Rename<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Path(path) = expr
            && path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
            && self.is_name(ident)
        {
            let ident = renamed(ident);
            *expr = syn::parse_quote!(#ident);
            return;
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_pat_mut(&mut self, pat: &mut Pat) {
        if let Pat::Ident(pat_ident) = pat
            && self.is_name(&pat_ident.ident)
        {
            pat_ident.ident = renamed(&pat_ident.ident);
        }
        visit_mut::visit_pat_mut(self, pat);
    }

    // `Receipt { order }` is `Receipt { order: order }`: the field keeps
    // its name.
    fn visit_field_value_mut(&mut self, field: &mut syn::FieldValue) {
        if field.colon_token.is_none()
            && matches!(&field.member, syn::Member::Named(ident) if self.is_name(ident))
        {
            field.colon_token = Some(Default::default());
        }
        visit_mut::visit_field_value_mut(self, field);
    }

    fn visit_field_pat_mut(&mut self, field: &mut syn::FieldPat) {
        if field.colon_token.is_none()
            && matches!(&field.member, syn::Member::Named(ident) if self.is_name(ident))
        {
            field.colon_token = Some(Default::default());
        }
        visit_mut::visit_field_pat_mut(self, field);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = self.tokens(std::mem::take(&mut mac.tokens));
    }

    // A nested fn does not see the workflow's variables.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn renamed_body(body: TokenStream) -> String {
        let mut block: syn::Block = syn::parse2(quote!({ #body })).expect("a block");
        Rename { name: "order" }.visit_block_mut(&mut block);
        quote!(#block).to_string()
    }

    #[test]
    fn every_read_and_binding_of_the_name_is_renamed_and_nothing_else() {
        let body = renamed_body(quote! {
            let total = order.total + order::TAX;
            let receipt = Receipt { order, total };
            let Receipt { order, .. } = receipt;
            tracing::info!("{order} {order:?} {}", order.id);
            let o: order = x.order;
        });
        let expected = quote! {{
            let total = order_sagaflow_local.total + order::TAX;
            let receipt = Receipt { order: order_sagaflow_local, total };
            let Receipt { order: order_sagaflow_local, .. } = receipt;
            tracing::info!("{order_sagaflow_local} {order_sagaflow_local:?} {}", order_sagaflow_local.id);
            let o: order = x.order;
        }};
        assert_eq!(body, expected.to_string());
    }

    #[test]
    fn the_stored_name_is_the_name_as_written() {
        assert_eq!(
            shown(&Ident::new(
                "order_sagaflow_local",
                proc_macro2::Span::call_site()
            )),
            "order"
        );
        assert_eq!(
            shown(&Ident::new("total", proc_macro2::Span::call_site())),
            "total"
        );
    }
}
