//! What a path or a type in the body names, as the stages ask it: the
//! text of a type as people write it, and the durable waits `#[workflow]`
//! knows. A leaf: it imports no other stage.

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::Path;

/// `Vec<u8>` rather than `Vec < u8 >`: tokens joined as people write them.
pub fn type_string(tokens: &impl ToTokens) -> String {
    let mut out = String::new();
    let tokens: Vec<TokenTree> = tokens.to_token_stream().into_iter().collect();
    write_tokens(&tokens, &mut out);
    out
}

fn write_tokens(tokens: &[TokenTree], out: &mut String) {
    let mut previous: Option<&TokenTree> = None;
    for token in tokens {
        let space = match (previous, token) {
            (None, _) => false,
            (Some(TokenTree::Punct(p)), _) if matches!(p.as_char(), '<' | '&' | ':' | '\'') => {
                // `as ::x`: keep the space before a leading `::`, not inside it
                false
            }
            (Some(_), TokenTree::Punct(p)) if matches!(p.as_char(), '<' | '>' | ',' | ';') => false,
            (Some(TokenTree::Ident(_)), TokenTree::Punct(p)) if p.as_char() == ':' => false,
            (Some(TokenTree::Punct(p)), TokenTree::Punct(q))
                if p.as_char() == '>' && q.as_char() == ':' =>
            {
                false
            }
            (Some(TokenTree::Ident(_) | TokenTree::Punct(_)), TokenTree::Group(g))
                if g.delimiter() != proc_macro2::Delimiter::Brace
                    && !matches!(previous, Some(TokenTree::Punct(p)) if matches!(p.as_char(), ',' | '=')) =>
            {
                matches!(previous, Some(TokenTree::Ident(i)) if i == "dyn" || i == "impl" || i == "as" || i == "mut")
            }
            _ => true,
        };
        if space {
            out.push(' ');
        }
        match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                    proc_macro2::Delimiter::Bracket => ("[", "]"),
                    proc_macro2::Delimiter::Brace => ("{ ", " }"),
                    proc_macro2::Delimiter::None => ("", ""),
                };
                out.push_str(open);
                let inner: Vec<TokenTree> = group.stream().into_iter().collect();
                write_tokens(&inner, out);
                out.push_str(close);
            }
            other => out.push_str(&other.to_string()),
        }
        previous = Some(token);
    }
}

/// The durable waits `#[workflow]` knows, by their last path segment.
const WAITS: [&str; 5] = ["sleep", "sleep_until", "signal", "signal_timeout", "child"];

/// `sagaflow::sleep`, `::sagaflow::signal`, ...: the wait's name, if `path` is one.
pub fn wait_name(path: &Path) -> Option<String> {
    let [first, last] = [path.segments.first()?, path.segments.last()?];
    if path.segments.len() != 2 || first.ident != "sagaflow" {
        return None;
    }
    let name = last.ident.to_string();
    WAITS.contains(&name.as_str()).then_some(name)
}
