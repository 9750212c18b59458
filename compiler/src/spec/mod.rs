//! Stage 1 — parsing: spec text (YAML or the DSL) into the AST, and loading imports.

pub mod ast;
pub mod dsl;
pub mod expr;
pub mod load;
pub mod print;
pub mod settings;
pub mod tokens;
pub mod yaml;
pub mod yaml_tree;
