//! The IR types a layer plan and a checked graph are made of, which generated model code spells out
//! as literals and hands to [`crate::gpu::build`] and [`crate::gpu::GpuTrainer`].

pub use cnnc_ir::graph::{
    Activation, AuxLoss, Conv2d, FoldedBatchNorm, Fused, Graph, Meta, Node, NodeId, Op, Pad4, Param, ParamKind, Pool2d,
    Resize, Shape, WeightTable,
};
pub use cnnc_ir::plan::{ConcatTarget, Layer, LayerPlan, Operand, PlanError, SlotId, ValidPlan, ValueId, ValueLayout};
pub use cnnc_ir::span::{FileId, Span};
