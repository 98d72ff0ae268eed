//! The attribute macros of sagaflow. Use them through the `sagaflow` crate.
use proc_macro::TokenStream;

/// Declares a saga step.
#[proc_macro_attribute]
pub fn step(_args: TokenStream, item: TokenStream) -> TokenStream { item }
/// Declares a compensation.
#[proc_macro_attribute]
pub fn compensate(_args: TokenStream, item: TokenStream) -> TokenStream { item }
/// Declares a workflow.
#[proc_macro_attribute]
pub fn workflow(_args: TokenStream, item: TokenStream) -> TokenStream { item }
