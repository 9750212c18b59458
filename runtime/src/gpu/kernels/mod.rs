//! The WGSL kernel families and how each is specialised: one parameter struct per family (in the
//! submodules) is the single source of the constants its WGSL reads, its workgroup grid and the
//! samples the naga test validates. Parameters that shape a kernel's inner loops
//! are baked into the source as `const`s, so the shader compiler sees fixed loop bounds and strides;
//! the convolutions read their tensor extents from a small uniform instead ([`Const::Dim`]), so
//! layers that differ only in size share one compiled pipeline. On CPU drivers every distinct
//! pipeline costs a fraction of a second of compiling before its first result.

mod batch;
mod conv;
mod copy;
mod elementwise;
mod grad;
mod linear;
mod norm;
mod pointwise_grad;
mod pool;
mod unrolled;

use std::fmt::Write as _;

use cnnc_ir::graph::Activation;

pub use batch::BatchFromBytes;
pub use conv::{DirectConv, DirectVariant, Epilogue, Pointwise};
pub use copy::{ChannelCopy, ChunkGrad};
pub use elementwise::{Elementwise, ElementwiseOp};
pub use grad::{
    chunks, ActivationGrad, BatchNormKernel, BatchNormPass, ChannelSum, ConvFlip, ConvGrad, CrossEntropyKernel,
    DropoutKernel, GateGrad, LinearGrad, LossSum, OptimizerKernel, PoolGrad, ReducePartials, UpdateRule,
};
pub use linear::Linear;
pub use norm::{Lrn, LrnGrad, Softmax, SoftmaxGrad};
pub use pointwise_grad::{is_pointwise, PointwiseGradWeight, PointwiseRows, PointwiseWeights};
pub use pool::{AdaptivePool, AdaptivePoolGrad, Pool};
pub use unrolled::{UnrolledConv, UnrolledWeightGrad};

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const CONV_TAPS: &str = include_str!("../../../shaders/conv_taps.wgsl");
const EPILOGUE: &str = include_str!("../../../shaders/epilogue.wgsl");
const WINDOW_SOURCE: &str = include_str!("../../../shaders/window_source.wgsl");
const CONV_STORE: &str = include_str!("../../../shaders/conv_store.wgsl");
const CONV_STORE_VEC4: &str = include_str!("../../../shaders/conv_store_vec4.wgsl");
const CHANNEL_ELEMENT: &str = include_str!("../../../shaders/channel_element.wgsl");
const LINEAR_GRAD_DY_STORAGE: &str = include_str!("../../../shaders/linear_grad_dy_storage.wgsl");
const LINEAR_GRAD_DY_UNIFORM: &str = include_str!("../../../shaders/linear_grad_dy_uniform.wgsl");
const REDUCE_PARTIALS_ONE: &str = include_str!("../../../shaders/reduce_partials_one.wgsl");
const REDUCE_PARTIALS_SPLIT: &str = include_str!("../../../shaders/reduce_partials_split.wgsl");

/// What a kernel binds at one slot of its bind group.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A read-only storage buffer.
    Read,
    /// A sampled 2-D float texture, read with `textureLoad`.
    Texture,
    /// The read-write storage buffer the kernel writes.
    Output,
    /// A uniform buffer: the kernel's [`Const::Dim`] extents when it is the last slot (made by the
    /// arena), else data the kernel reads at constant offsets (the unrolled convolution's weights).
    Uniform,
}

/// A kernel family: its WGSL body and the slots of its bind group.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Family {
    Conv2d,
    Conv2dTex,
    /// `Conv2dTex` with vec4 residual loads and output stores (positions per image a multiple of 4).
    Conv2dTexVec4,
    Pointwise,
    PointwiseTex,
    Linear,
    Pool,
    /// [`Family::Pool`] for 2×2 windows at stride 2 that tile the input ([`Pool::pairs`]).
    PoolPairs,
    AdaptivePool,
    Elementwise,
    Copy,
    Lrn,
    Softmax,
    /// Training: the backward kernels, the loss and the optimizer step.
    ConvGradInput,
    ConvGradWeight,
    ChannelSum,
    LinearGrad,
    /// [`Family::LinearGrad`] with the output gradient bound as a uniform buffer (where it fits one
    /// uniform binding): lavapipe loads it once for a whole workgroup, not once per invocation.
    LinearGradUniformDy,
    ActivationGrad,
    PoolGrad,
    /// [`Family::PoolGrad`] for 2×2 windows at stride 2 that tile the input ([`PoolGrad::pairs`]).
    PoolGradPairs,
    CrossEntropy,
    Optimizer,
    BatchNormPartials,
    BatchNormStats,
    BatchNormApply,
    BatchNormGrad,
    Dropout,
    GateGrad,
    ReducePartials,
    /// `reduce_partials` into two destinations ([`ReducePartials::split`]).
    ReducePartialsSplit,
    ChunkGrad,
    SoftmaxGrad,
    LrnGrad,
    AdaptivePoolGrad,
    ConvFlip,
    /// A small convolution written out for its exact shape ([`UnrolledConv`]).
    Conv2dUnrolled,
    /// A small convolution's weight gradient written out for its shape ([`UnrolledWeightGrad`]).
    ConvGradWeightUnrolled,
    /// A training batch made from images held on the device as bytes ([`BatchFromBytes`]).
    BatchFromBytes,
    /// A 1×1 convolution's weights laid out for [`Family::Pointwise`] at each training step.
    PointwiseWeights,
    /// A 1×1 convolution's weight gradient as a GEMM.
    PointwiseGradWeight,
    /// The pointwise GEMM for positions per item that are not a multiple of 4 ([`PointwiseRows`]).
    PointwiseRows,
}

impl Family {
    /// Every family, for validation and conformance.
    pub const ALL: [Family; 42] = [
        Family::Conv2d,
        Family::Conv2dTex,
        Family::Conv2dTexVec4,
        Family::Pointwise,
        Family::PointwiseTex,
        Family::Linear,
        Family::Pool,
        Family::PoolPairs,
        Family::AdaptivePool,
        Family::Elementwise,
        Family::Copy,
        Family::Lrn,
        Family::Softmax,
        Family::ConvGradInput,
        Family::ConvGradWeight,
        Family::ChannelSum,
        Family::LinearGrad,
        Family::LinearGradUniformDy,
        Family::ActivationGrad,
        Family::PoolGrad,
        Family::PoolGradPairs,
        Family::CrossEntropy,
        Family::Optimizer,
        Family::BatchNormPartials,
        Family::BatchNormStats,
        Family::BatchNormApply,
        Family::BatchNormGrad,
        Family::Dropout,
        Family::GateGrad,
        Family::ReducePartials,
        Family::ReducePartialsSplit,
        Family::ChunkGrad,
        Family::SoftmaxGrad,
        Family::LrnGrad,
        Family::AdaptivePoolGrad,
        Family::ConvFlip,
        Family::Conv2dUnrolled,
        Family::ConvGradWeightUnrolled,
        Family::BatchFromBytes,
        Family::PointwiseWeights,
        Family::PointwiseGradWeight,
        Family::PointwiseRows,
    ];

    /// The family's WGSL file.
    pub fn body(self) -> &'static str {
        match self {
            Family::Conv2d => include_str!("../../../shaders/conv2d.wgsl"),
            Family::Conv2dTex | Family::Conv2dTexVec4 => include_str!("../../../shaders/conv2d_tex.wgsl"),
            Family::Pointwise => include_str!("../../../shaders/pointwise.wgsl"),
            Family::PointwiseTex => include_str!("../../../shaders/pointwise_tex.wgsl"),
            Family::Linear => include_str!("../../../shaders/linear.wgsl"),
            Family::Pool => include_str!("../../../shaders/pool.wgsl"),
            Family::PoolPairs => include_str!("../../../shaders/pool_pairs.wgsl"),
            Family::AdaptivePool => include_str!("../../../shaders/adaptive_pool.wgsl"),
            Family::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Family::Copy => include_str!("../../../shaders/copy.wgsl"),
            Family::Lrn => include_str!("../../../shaders/lrn.wgsl"),
            Family::Softmax => include_str!("../../../shaders/softmax.wgsl"),
            Family::ConvGradInput => include_str!("../../../shaders/conv_grad_input.wgsl"),
            Family::ConvGradWeight => include_str!("../../../shaders/conv_grad_weight.wgsl"),
            Family::ChannelSum => include_str!("../../../shaders/channel_sum.wgsl"),
            Family::LinearGrad | Family::LinearGradUniformDy => include_str!("../../../shaders/linear_grad.wgsl"),
            Family::ActivationGrad => include_str!("../../../shaders/activation_grad.wgsl"),
            Family::PoolGrad => include_str!("../../../shaders/pool_grad.wgsl"),
            Family::PoolGradPairs => include_str!("../../../shaders/pool_grad_pairs.wgsl"),
            Family::CrossEntropy => include_str!("../../../shaders/cross_entropy.wgsl"),
            Family::Optimizer => include_str!("../../../shaders/optimizer.wgsl"),
            Family::BatchNormPartials => include_str!("../../../shaders/batch_norm_partials.wgsl"),
            Family::BatchNormStats => include_str!("../../../shaders/batch_norm_train.wgsl"),
            Family::BatchNormApply => include_str!("../../../shaders/batch_norm_apply.wgsl"),
            Family::BatchNormGrad => include_str!("../../../shaders/batch_norm_grad.wgsl"),
            Family::Dropout => include_str!("../../../shaders/dropout.wgsl"),
            Family::GateGrad => include_str!("../../../shaders/gate_grad.wgsl"),
            Family::ReducePartials | Family::ReducePartialsSplit => {
                include_str!("../../../shaders/reduce_partials.wgsl")
            }
            Family::ChunkGrad => include_str!("../../../shaders/chunk_grad.wgsl"),
            Family::SoftmaxGrad => include_str!("../../../shaders/softmax_grad.wgsl"),
            Family::LrnGrad => include_str!("../../../shaders/lrn_grad.wgsl"),
            Family::AdaptivePoolGrad => include_str!("../../../shaders/adaptive_pool_grad.wgsl"),
            Family::ConvFlip => include_str!("../../../shaders/conv_flip.wgsl"),
            Family::BatchFromBytes => include_str!("../../../shaders/batch_from_bytes.wgsl"),
            Family::PointwiseWeights => include_str!("../../../shaders/pointwise_weights.wgsl"),
            Family::PointwiseGradWeight => include_str!("../../../shaders/pointwise_grad_weight.wgsl"),
            Family::PointwiseRows => include_str!("../../../shaders/pointwise_rows.wgsl"),
            // Generated for each shape: `Kernel::generated`.
            Family::Conv2dUnrolled | Family::ConvGradWeightUnrolled => "",
        }
    }

    /// WGSL shared with other families that this one needs before its body.
    pub fn shared(self) -> &'static [&'static str] {
        match self {
            Family::Conv2d | Family::Conv2dTex => &[EPILOGUE, CONV_TAPS, CONV_STORE],
            Family::Conv2dTexVec4 => &[EPILOGUE, CONV_TAPS, CONV_STORE_VEC4],
            Family::PointwiseTex => &[EPILOGUE],
            Family::BatchNormApply | Family::BatchNormGrad => &[CHANNEL_ELEMENT],
            Family::ConvGradInput | Family::PoolGrad => &[WINDOW_SOURCE],
            Family::LinearGrad => &[LINEAR_GRAD_DY_STORAGE],
            Family::LinearGradUniformDy => &[LINEAR_GRAD_DY_UNIFORM],
            Family::ReducePartials => &[REDUCE_PARTIALS_ONE],
            Family::ReducePartialsSplit => &[REDUCE_PARTIALS_SPLIT],
            _ => &[],
        }
    }

    /// The bind group's slots, in binding order.
    pub fn slots(self) -> &'static [Slot] {
        use Slot::*;
        match self {
            Family::Conv2d => &[Read, Read, Read, Read, Output, Uniform],
            Family::Pointwise => &[Read, Read, Read, Read, Output, Uniform],
            Family::Elementwise => &[Read, Read, Read, Read, Output],
            Family::Conv2dTex | Family::Conv2dTexVec4 | Family::PointwiseTex => {
                &[Texture, Texture, Read, Read, Output, Uniform]
            }
            Family::Linear => &[Read, Read, Read, Output],
            Family::PointwiseRows => &[Read, Read, Read, Output, Uniform],
            Family::BatchFromBytes => &[Read, Read, Read, Output, Uniform],
            Family::Conv2dUnrolled => &[Read, Uniform, Read, Output],
            Family::LinearGrad => &[Read, Read, Output, Output, Uniform],
            Family::LinearGradUniformDy => &[Uniform, Read, Output, Output, Uniform],
            Family::ConvGradWeightUnrolled => &[Read, Read, Output],
            Family::ReducePartialsSplit => &[Read, Output, Output, Uniform],
            Family::Pool | Family::PoolPairs | Family::AdaptivePool | Family::Copy | Family::Lrn | Family::Softmax => {
                &[Read, Output]
            }
            Family::ConvGradInput
            | Family::ConvGradWeight
            | Family::ActivationGrad
            | Family::PoolGrad
            | Family::PoolGradPairs
            | Family::Dropout
            | Family::GateGrad
            | Family::SoftmaxGrad
            | Family::LrnGrad
            | Family::AdaptivePoolGrad
            | Family::PointwiseGradWeight
            | Family::BatchNormApply => &[Read, Read, Output, Uniform],
            Family::ChannelSum
            | Family::ReducePartials
            | Family::ChunkGrad
            | Family::ConvFlip
            | Family::PointwiseWeights => &[Read, Output, Uniform],
            Family::CrossEntropy => &[Read, Read, Read, Output, Output, Read, Output, Uniform],
            Family::Optimizer => &[Read, Read, Output, Output, Output, Uniform],
            Family::BatchNormPartials => &[Read, Read, Read, Output, Uniform],
            Family::BatchNormStats => &[Read, Read, Read, Read, Output, Output, Output, Uniform],
            Family::BatchNormGrad => &[Read, Read, Read, Read, Read, Read, Output, Uniform],
        }
    }

    /// The name used in conformance tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Conv2d => "conv2d",
            Family::Conv2dTex => "conv2d_tex",
            Family::Conv2dTexVec4 => "conv2d_tex_vec4",
            Family::Pointwise => "pointwise",
            Family::PointwiseTex => "pointwise_tex",
            Family::Linear => "linear",
            Family::Pool | Family::PoolPairs => "pool",
            Family::AdaptivePool => "adaptive_pool",
            Family::Elementwise => "elementwise",
            Family::Copy => "copy",
            Family::Lrn => "lrn",
            Family::Softmax => "softmax",
            Family::ConvGradInput => "conv_grad_input",
            Family::ConvGradWeight => "conv_grad_weight",
            Family::ChannelSum => "channel_sum",
            Family::LinearGrad | Family::LinearGradUniformDy => "linear_grad",
            Family::ActivationGrad => "activation_grad",
            Family::PoolGrad | Family::PoolGradPairs => "pool_grad",
            Family::CrossEntropy => "cross_entropy",
            Family::Optimizer => "optimizer",
            Family::BatchNormPartials => "batch_norm_partials",
            Family::BatchNormStats => "batch_norm_stats",
            Family::BatchNormApply => "batch_norm_apply",
            Family::BatchNormGrad => "batch_norm_grad",
            Family::Dropout => "dropout",
            Family::GateGrad => "gate_grad",
            Family::ReducePartials | Family::ReducePartialsSplit => "reduce_partials",
            Family::ChunkGrad => "chunk_grad",
            Family::SoftmaxGrad => "softmax_grad",
            Family::LrnGrad => "lrn_grad",
            Family::AdaptivePoolGrad => "adaptive_pool_grad",
            Family::ConvFlip => "conv_flip",
            Family::Conv2dUnrolled => "conv2d_unrolled",
            Family::ConvGradWeightUnrolled => "conv_grad_weight_unrolled",
            Family::BatchFromBytes => "batch_from_bytes",
            Family::PointwiseWeights => "pointwise_weights",
            Family::PointwiseGradWeight => "pointwise_grad_weight",
            Family::PointwiseRows => "pointwise_rows",
        }
    }
}

/// Width in texels of every texture the kernels read (a value or a weight laid out row by row):
/// rows are 64 KiB (rgba32float) or 16 KiB (r32float), multiples of the 256-byte row alignment that
/// buffer-to-texture copies need.
pub const TEXTURE_WIDTH: u32 = 4096;

/// A kernel parameter's value: baked into the source as a `const`, or passed at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    U(u32),
    B(bool),
    F(f32),
    /// An extent read from the kernel's `shape` uniform at run time (`shape.NAME`), not baked: the
    /// pipeline is compiled once for every layer that differs only in such values. Parameters that
    /// shape the inner loops (kernel size, dilation, tile, fused work) stay baked so the compiler can
    /// unroll and fold them.
    Dim(u32),
    /// A float in the `shape` uniform.
    DimF(f32),
}

/// One specialised kernel: family, constants, and the workgroup grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub family: Family,
    pub consts: Vec<(&'static str, Const)>,
    pub workgroups: [u32; 3],
    /// Whether the [`Const::Dim`] values are baked too (`shape` becomes a WGSL `const`), for kernels
    /// whose invocations do too little work to hide computing with run-time extents.
    pub bake_shape: bool,
    /// The body written for this kernel alone, in place of its family's WGSL file.
    pub generated: Option<String>,
}

impl Kernel {
    /// A kernel whose [`Const::Dim`] values, if any, are passed at run time.
    pub fn new(family: Family, consts: Vec<(&'static str, Const)>, workgroups: [u32; 3]) -> Kernel {
        Kernel { family, consts, workgroups, bake_shape: false, generated: None }
    }

    /// The full WGSL source: constants, the `shape` uniform's declaration (or constant), shared
    /// helpers, the family's body. Unless the shape is baked, layers whose kernels differ only in
    /// [`Const::Dim`] values have equal sources.
    pub fn source(&self) -> String {
        let mut src = String::new();
        for (name, value) in &self.consts {
            let _ = match value {
                Const::U(v) => writeln!(src, "const {name}: u32 = {v}u;"),
                Const::B(v) => writeln!(src, "const {name}: bool = {v};"),
                Const::F(v) => writeln!(src, "const {name}: f32 = {v:?};"),
                Const::Dim(_) | Const::DimF(_) => Ok(()),
            };
        }
        let fields: Vec<(&str, &str, String)> = self
            .shape_fields()
            .map(|(name, bits, float)| {
                if float {
                    (name, "f32", format!("{:?}", f32::from_bits(bits)))
                } else {
                    (name, "u32", format!("{bits}u"))
                }
            })
            .collect();
        if !fields.is_empty() {
            src.push_str("struct Shape {\n");
            for (name, ty, _) in &fields {
                let _ = writeln!(src, "    {name}: {ty},");
            }
            src.push_str("}\n");
            if self.bake_shape {
                let values: Vec<&str> = fields.iter().map(|(_, _, value)| value.as_str()).collect();
                let _ = writeln!(src, "const shape = Shape({});", values.join(", "));
            } else {
                let binding = self.family.slots().len() - 1;
                let _ = writeln!(src, "@group(0) @binding({binding}) var<uniform> shape: Shape;");
            }
        }
        src.push_str(COMMON);
        for shared in self.family.shared() {
            src.push_str(shared);
        }
        src.push_str(self.generated.as_deref().unwrap_or(self.family.body()));
        src
    }

    /// The `shape` uniform's contents: the [`Const::Dim`] and [`Const::DimF`] values in order (floats
    /// as their bits), padded to 16 bytes.
    pub fn shape_uniform(&self) -> Vec<u32> {
        let mut values: Vec<u32> = self.shape_fields().map(|(_, bits, _)| bits).collect();
        values.resize(values.len().next_multiple_of(4), 0);
        values
    }

    /// The [`Const::Dim`] and [`Const::DimF`] parameters in order, the `shape` struct's fields: name,
    /// the 32 bits the uniform holds, and whether they are a float.
    fn shape_fields(&self) -> impl Iterator<Item = (&'static str, u32, bool)> + '_ {
        self.consts.iter().filter_map(|(name, value)| match value {
            Const::Dim(d) => Some((*name, *d, false)),
            Const::DimF(f) => Some((*name, f.to_bits(), true)),
            _ => None,
        })
    }
}

/// The activation constants (`ACT`, `ACT_ARG`) for a fused activation.
pub fn activation_consts(act: Option<Activation>) -> [(&'static str, Const); 2] {
    let (code, arg) = match act {
        None => (0, 0.0),
        Some(Activation::Relu) => (1, 0.0),
        Some(Activation::Relu6) => (2, 0.0),
        Some(Activation::LeakyRelu { slope }) => (3, slope as f32),
        Some(Activation::Silu) => (4, 0.0),
        Some(Activation::Sigmoid) => (5, 0.0),
        Some(Activation::HardSwish) => (6, 0.0),
        Some(Activation::HardSigmoid) => (7, 0.0),
        Some(Activation::Tanh) => (8, 0.0),
        Some(Activation::Gelu) => (9, 0.0),
    };
    [("ACT", Const::U(code)), ("ACT_ARG", Const::F(arg))]
}

/// The convolutions' epilogue parameters: the activation (none, ReLU and ReLU6 as bounds in the
/// `shape` uniform, so layers that differ only in those share one compiled pipeline; others baked;
/// see `epilogue.wgsl`) and whether a residual is added (baked: as a run-time flag it made every
/// pipeline slower to compile).
pub fn epilogue_consts(act: Option<Activation>, residual: bool) -> Vec<(&'static str, Const)> {
    let bounds = match act {
        None => Some((0, 0.0)),
        Some(Activation::Relu) => Some((1, 0.0)),
        Some(Activation::Relu6) => Some((3, 6.0)),
        Some(_) => None,
    };
    let mut consts = match bounds {
        Some(_) => vec![("ACT", Const::U(10)), ("ACT_ARG", Const::F(0.0))],
        None => activation_consts(act).to_vec(),
    };
    let (bits, high) = bounds.unwrap_or((0, 0.0));
    consts.extend([("BOUNDS", Const::Dim(bits)), ("LOW", Const::DimF(0.0)), ("HIGH", Const::DimF(high))]);
    consts.push(("HAS_RESIDUAL", Const::B(residual)));
    consts
}

/// A 1-D grid of `invocations` threads in workgroups of 64, folded into y past 65,535 workgroups
/// (the shaders index `gid.x + gid.y · 65535 · 64`).
pub fn grid_1d(invocations: u64) -> [u32; 3] {
    let groups = invocations.div_ceil(64).max(1);
    if groups <= 65_535 {
        [groups as u32, 1, 1]
    } else {
        [65_535, groups.div_ceil(65_535) as u32, 1]
    }
}

/// A family's parameters: everything its WGSL constants and grid are made from.
pub trait KernelParams {
    /// The specialised kernel: family, constants (in the order the WGSL declares them) and grid.
    fn kernel(&self) -> Kernel;

    /// Parameters that exercise every path of the family's WGSL, for validating it without a device.
    fn samples() -> Vec<Self>
    where
        Self: Sized;
}

/// Every family's sample kernels.
pub fn samples() -> Vec<Kernel> {
    fn of<P: KernelParams>() -> Vec<Kernel> {
        P::samples().iter().map(P::kernel).collect()
    }
    [
        of::<DirectConv>(),
        of::<Pointwise>(),
        of::<Linear>(),
        of::<Pool>(),
        of::<AdaptivePool>(),
        of::<Elementwise>(),
        of::<ChannelCopy>(),
        of::<Lrn>(),
        of::<Softmax>(),
        of::<ConvGrad>(),
        of::<ChannelSum>(),
        of::<LinearGrad>(),
        of::<ActivationGrad>(),
        of::<PoolGrad>(),
        of::<CrossEntropyKernel>(),
        of::<OptimizerKernel>(),
        of::<BatchNormKernel>(),
        of::<ReducePartials>(),
        of::<DropoutKernel>(),
        of::<GateGrad>(),
        of::<ChunkGrad>(),
        of::<SoftmaxGrad>(),
        of::<LrnGrad>(),
        of::<AdaptivePoolGrad>(),
        of::<ConvFlip>(),
        of::<UnrolledConv>(),
        of::<UnrolledWeightGrad>(),
        of::<BatchFromBytes>(),
        of::<PointwiseWeights>(),
        of::<PointwiseGradWeight>(),
        of::<PointwiseRows>(),
    ]
    .concat()
}

/// A `u32` constant from a size (the compiler bounds tensors far below `u32::MAX` elements; a
/// hand-written plan with larger ones would wrap here).
pub(crate) fn u(v: usize) -> Const {
    Const::U(v as u32)
}

/// A run-time extent ([`Const::Dim`]) from a size.
pub(crate) fn dim(v: usize) -> Const {
    Const::Dim(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel family is valid WGSL, as naga (wgpu's shader compiler front end) sees it, for
    /// each family's samples (which include constants that switch a path off, and the convolutions
    /// with their extents baked as well as in a uniform).
    #[test]
    fn every_shader_validates_with_naga() {
        let kernels = samples();
        for family in Family::ALL {
            assert!(kernels.iter().any(|k| k.family == family), "{} has no sample", family.name());
        }
        for kernel in kernels {
            let family = kernel.family;
            let source = kernel.source();
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{}: {}", family.name(), e.emit_to_string(&source)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{}: {e:?}", family.name()));
        }
    }

    #[test]
    fn large_grids_fold_into_y() {
        assert_eq!(grid_1d(64), [1, 1, 1]);
        assert_eq!(grid_1d(65), [2, 1, 1]);
        assert_eq!(grid_1d(65_535 * 64 + 1), [65_535, 2, 1]);
    }
}
