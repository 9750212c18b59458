//! The IR types a layer plan is made of, which generated model code spells out as literals and hands
//! to [`crate::gpu::build`].

pub use cnnc_ir::graph::{
    Activation, Conv2d, FoldedBatchNorm, Meta, Op, Pad4, Param, ParamKind, Pool2d, Shape, WeightTable,
};
pub use cnnc_ir::plan::{ConcatTarget, Layer, LayerPlan, Operand, PlanError, SlotId, ValidPlan, ValueId, ValueLayout};
pub use cnnc_ir::span::{FileId, Span};
