//! Stage 1 — parsing: spec text (YAML or DSL) into the AST, and loading imports.

pub mod ast;
pub mod expr;
pub mod load;
pub mod yaml;
pub mod yaml_tree;
