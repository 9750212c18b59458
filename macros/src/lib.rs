//! `model!("specs/lenet.yaml")`: the spec, compiled and checked when the crate builds, expands to
//! the module `cnnc build` writes for it — a struct named after the model with one field per layer,
//! constructors and a `forward`. The path is relative to the calling crate's `CARGO_MANIFEST_DIR`;
//! the expansion `include_str!`s the spec, so Cargo rebuilds when it changes. A spec error becomes a
//! compile error at the call, with the spec's file:line:column and the text `cnnc check` prints.
//!
//! The generated code uses the `cnnc_runtime` crate, which the calling crate must depend on.

mod expand;

use proc_macro::TokenStream;

/// Expands to the Rust module for the model spec at the given path (relative to the calling
/// crate's `CARGO_MANIFEST_DIR`): `pub mod <model> { pub struct <Model> { .. } }` and a `pub use`
/// of the struct.
#[proc_macro]
pub fn model(input: TokenStream) -> TokenStream {
    let path = syn::parse_macro_input!(input as syn::LitStr);
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    match expand::expand(&path.value(), std::path::Path::new(&dir)) {
        Ok(tokens) => tokens.into(),
        Err(message) => syn::Error::new(path.span(), message).to_compile_error().into(),
    }
}
