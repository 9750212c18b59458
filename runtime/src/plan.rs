//! The compiler's layer-plan types, which generated model code spells out as literals and hands to
//! [`crate::gpu::Builder`].

pub use cnnc_compiler::graph::{
    Activation, Conv2d, FoldedBatchNorm, Meta, Op, Pad4, Param, ParamKind, Pool2d, Shape, WeightTable,
};
pub use cnnc_compiler::passes::{ConcatTarget, Layer, Operand, ValueLayout};
