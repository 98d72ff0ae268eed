//! Placeholder: replaced by the real expansion.
use proc_macro2::TokenStream;

/// Expands the attribute; errors become `compile_error!` beside the item.
pub fn expand(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
