//! Parameters of the training families: the backward kernels (`conv_grad_input`, `conv_flip` (the
//! flipped weights of a stride-1 input gradient run as a forward convolution), `conv_grad_weight`,
//! `channel_sum`, `linear_grad`, `activation_grad`, `pool_grad`, `pool_grad_pairs`, `gate_grad`, `dropout`,
//! the batch-norm passes), the loss (`cross_entropy`, which also sums the step's loss), the optimizer step
//! (`optimizer`) and the second pass of split reductions (`reduce_partials`). Every result element
//! is written by one invocation that sums in a fixed order: no atomics, so a step is deterministic.
//! Long reductions are split into partial sums over chunks of at most [`CHUNK`] positions, added by
//! `reduce_partials`: each invocation's loops stay short (lavapipe cuts loops off after about 65,000
//! iterations) and more invocations keep a GPU busy.

use cnnc_ir::graph::{Activation, Conv2d, Pad4, Pool2d};

use super::pool::tiles_in_pairs;
use super::{activation_consts, dim, grid_1d, u, Const, Family, Kernel, KernelParams};

/// The most positions one invocation of a split reduction sums.
pub const CHUNK: usize = 4096;

/// How a reduction over `len` positions per item is split: chunks per item.
pub fn chunks(len: usize) -> usize {
    len.div_ceil(CHUNK).max(1)
}

/// A convolution's extents, as the gradient kernels read them: batch, `[IC, IH, IW]`, `[OC, OH, OW]`.
/// The weight gradient is written as partial sums per (weight element, item, chunk of output rows):
/// [`ConvGrad::partials`] of them per element, one invocation computing a row of KW taps for 4 output
/// channels.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGrad {
    pub n: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub conv: Conv2d,
    /// The weight gradient (else the input gradient).
    pub weight: bool,
}

impl ConvGrad {
    /// Output rows per chunk of the weight gradient's partial sums, and chunks per item.
    pub fn row_chunks(&self) -> (usize, usize) {
        let [_, oh, ow] = self.output;
        let rows = (CHUNK / ow.max(1)).clamp(1, oh.max(1));
        (rows, oh.div_ceil(rows).max(1))
    }

    /// Partial sums per weight element (items × row chunks).
    pub fn partials(&self) -> usize {
        self.n * self.row_chunks().1
    }
}

impl ConvGrad {
    /// The input gradient as a forward convolution of the output gradient with the flipped weights
    /// ([`ConvFlip`]), where that is one: stride 1 and no side padded by more than the kernel's
    /// extent less one (the transposed padding must not be negative). Output channels become input
    /// channels and the padding becomes `dilation · (kernel − 1) − padding` on each side; the result
    /// has the input's size. A forward convolution shares each load among several outputs and
    /// channels, which the gather of `conv_grad_input` cannot.
    pub fn as_forward(&self) -> Option<Conv2d> {
        let c = &self.conv;
        if c.stride != [1, 1] {
            return None;
        }
        let reach = |k: usize, d: usize, pad: usize| (d * (k - 1)).checked_sub(pad);
        let (kh, kw, dy, dx) = (c.kernel[0], c.kernel[1], c.dilation[0], c.dilation[1]);
        let padding = Pad4 {
            top: reach(kh, dy, c.padding.top)?,
            bottom: reach(kh, dy, c.padding.bottom)?,
            left: reach(kw, dx, c.padding.left)?,
            right: reach(kw, dx, c.padding.right)?,
        };
        Some(Conv2d { in_channels: c.out_channels, out_channels: c.in_channels, padding, bias: false, ..c.clone() })
    }
}

impl KernelParams for ConvGrad {
    fn kernel(&self) -> Kernel {
        let c = &self.conv;
        let (rows, k) = self.row_chunks();
        let ([ic, ih, iw], [oc, oh, ow]) = (self.input, self.output);
        let mut consts = vec![
            ("KH", u(c.kernel[0])),
            ("KW", u(c.kernel[1])),
            ("DY", u(c.dilation[0])),
            ("DX", u(c.dilation[1])),
            ("N", dim(self.n)),
            ("IC", dim(ic)),
            ("IH", dim(ih)),
            ("IW", dim(iw)),
            ("OC", dim(oc)),
            ("OH", dim(oh)),
            ("OW", dim(ow)),
            ("ICG", dim(ic / c.groups)),
            ("OCG", dim(oc / c.groups)),
            ("SY", dim(c.stride[0])),
            ("SX", dim(c.stride[1])),
            ("PT", dim(c.padding.top)),
            ("PL", dim(c.padding.left)),
            ("ACT", Const::U(0)),
            ("ACT_ARG", Const::F(0.0)),
        ];
        // Channels per invocation, within a group: 4 where a group has as many.
        let tile = |per_group: usize| if per_group >= 4 { 4 } else { 1 };
        let (family, results) = if self.weight {
            let o_tile = tile(oc / c.groups);
            consts.extend([("ROWS", u(rows)), ("O_TILE", u(o_tile)), ("K", dim(k))]);
            // One invocation per tile of output channels and row of KW taps.
            let tiles = c.groups * (oc / c.groups).div_ceil(o_tile);
            (Family::ConvGradWeight, tiles * (ic / c.groups) * c.kernel[0] * self.partials())
        } else {
            let c_tile = tile(ic / c.groups);
            consts.push(("C_TILE", u(c_tile)));
            // One invocation per tile of input channels and input position.
            (Family::ConvGradInput, self.n * c.groups * (ic / c.groups).div_ceil(c_tile) * ih * iw)
        };
        // An input gradient of at most 32 products per element (depthwise) does too little to hide
        // the divisions by run-time extents that locate it: its extents are baked, as the forward's.
        let bake_shape = !self.weight && (oc / c.groups) * c.kernel[0] * c.kernel[1] <= 32;
        Kernel { bake_shape, ..Kernel::new(family, consts, grid_1d(results as u64)) }
    }

    fn samples() -> Vec<ConvGrad> {
        let conv = Conv2d {
            in_channels: 4,
            out_channels: 6,
            kernel: [3, 2],
            stride: [2, 1],
            padding: Pad4 { top: 1, bottom: 0, left: 1, right: 1 },
            dilation: [1, 2],
            groups: 2,
            bias: true,
        };
        // Two groups (tiles of one channel), and one group (tiles of four, the last one partial).
        let single = Conv2d { groups: 1, ..conv.clone() };
        [(false, &conv), (true, &conv), (false, &single), (true, &single)]
            .map(|(weight, c)| ConvGrad { n: 2, input: [4, 7, 6], output: [6, 4, 5], conv: c.clone(), weight })
            .to_vec()
    }
}

/// The weights of a stride-1 convolution's input gradient run as a forward convolution of the output
/// gradient (see [`ConvGrad::as_forward`]): input and output channels swapped within each group, taps
/// flipped, `[IC, OC / groups, KH, KW]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvFlip {
    pub conv: Conv2d,
}

impl KernelParams for ConvFlip {
    fn kernel(&self) -> Kernel {
        let c = &self.conv;
        let (icg, ocg) = (c.in_channels / c.groups, c.out_channels / c.groups);
        let len = c.in_channels * ocg * c.kernel[0] * c.kernel[1];
        let mut consts = vec![
            ("KH", u(c.kernel[0])),
            ("KW", u(c.kernel[1])),
            ("ICG", dim(icg)),
            ("OCG", dim(ocg)),
            ("LEN", dim(len)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::ConvFlip, consts, grid_1d(len as u64))
    }

    fn samples() -> Vec<ConvFlip> {
        let conv = Conv2d {
            in_channels: 4,
            out_channels: 6,
            kernel: [3, 2],
            stride: [1, 1],
            padding: Pad4::uniform(1),
            dilation: [1, 1],
            groups: 2,
            bias: false,
        };
        vec![ConvFlip { conv }]
    }
}

/// Partial per-channel sums of `[N, C, P]` (bias gradients), [`ChannelSum::partials`] per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSum {
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
}

impl ChannelSum {
    /// Partial sums per channel (items × chunks).
    pub fn partials(&self) -> usize {
        self.n * chunks(self.positions)
    }
}

impl KernelParams for ChannelSum {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("CHUNK", u(CHUNK)),
            ("N", dim(self.n)),
            ("C", dim(self.channels)),
            ("P", dim(self.positions)),
            ("K", dim(chunks(self.positions))),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::ChannelSum, consts, grid_1d((self.channels * self.partials()) as u64))
    }

    fn samples() -> Vec<ChannelSum> {
        vec![ChannelSum { n: 3, channels: 5, positions: 7 }]
    }
}

/// A linear layer's input gradient (`weight: false`) or weight gradient, over `rows` rows, for the
/// `part` output features from `row0` (all `out_features` from 0, or one block of the rows of a
/// weight too large for one storage binding, whose block alone the weight binding then holds).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrad {
    pub rows: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub weight: bool,
    /// With `weight`: also the bias gradient `[OUT]` (the block's entries), into the fourth binding.
    pub bias: bool,
    pub row0: usize,
    pub part: usize,
    /// Without `weight`: adds to the input gradient instead of writing it (a block after the first).
    pub accumulate: bool,
    /// Without `weight`: the input is a ReLU's output, bound fourth (`[rows, in_features]`), and the
    /// result is the gradient of the ReLU's input (zero where that output is `<= 0`), saving the
    /// ReLU's own dispatch.
    pub relu_mask: bool,
    /// Binds the output gradient `[rows, out_features]` as a uniform buffer
    /// ([`Family::LinearGradUniformDy`]); only where it fits one uniform binding.
    pub uniform_dy: bool,
}

impl LinearGrad {
    /// The gradient over all of a linear layer's output features.
    pub fn whole(rows: usize, in_features: usize, out_features: usize, weight: bool, bias: bool) -> LinearGrad {
        let (row0, part) = (0, out_features);
        let (accumulate, relu_mask, uniform_dy) = (false, false, false);
        LinearGrad { rows, in_features, out_features, weight, bias, row0, part, accumulate, relu_mask, uniform_dy }
    }

    /// The result's rows: the block's output features (weight gradient) or the input's rows.
    fn result_rows(&self) -> usize {
        if self.weight {
            self.part
        } else {
            self.rows
        }
    }

    /// Groups of 256 columns (64 invocations of 4) across the result.
    fn col_groups(&self) -> usize {
        self.in_features.div_ceil(4).div_ceil(64).max(1)
    }

    /// Result rows per workgroup: 16, or all of them if fewer.
    fn tile(&self) -> usize {
        self.result_rows().clamp(1, 16)
    }
}

impl KernelParams for LinearGrad {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("MODE", Const::U(u32::from(self.weight))),
            ("BIAS", Const::B(self.weight && self.bias)),
            ("RELU_MASK", Const::B(!self.weight && self.relu_mask)),
            ("ACCUMULATE", Const::B(!self.weight && self.accumulate)),
            ("VEC_K", Const::B(self.in_features.is_multiple_of(4))),
            ("TILE", u(self.tile())),
            ("COL_GROUPS", u(self.col_groups())),
            ("DY4", u((self.rows * self.out_features).div_ceil(4))),
            ("R", dim(self.rows)),
            ("K", dim(self.in_features)),
            ("OUT", dim(self.out_features)),
            ("ROW0", dim(self.row0)),
            ("PART", dim(self.part)),
        ];
        consts.extend(activation_consts(None));
        // One invocation per 4 columns of `tile` rows of the result, a workgroup's 64 sharing the rows;
        // the workgroups (column groups × row tiles) on grid_1d's grid, whatever their number.
        let workgroups = self.col_groups() * self.result_rows().div_ceil(self.tile());
        let grid = grid_1d(workgroups as u64 * 64);
        // Extents baked: with them in the `shape` uniform, lavapipe (Mesa 22.3) made a new variant of
        // this shader at every dispatch, about 0.4 MB more memory and 2 ms more each time, so a long
        // run grew without bound (`tests/memory.rs`). A model has few linear layers, so few pipelines.
        let family = if self.uniform_dy { Family::LinearGradUniformDy } else { Family::LinearGrad };
        Kernel { bake_shape: true, ..Kernel::new(family, consts, grid) }
    }

    fn samples() -> Vec<LinearGrad> {
        // Extents that are and are not multiples of 4 (the vec4 paths and the scalar ones), and a
        // block of rows added to an input gradient through a ReLU's mask.
        let mut samples: Vec<LinearGrad> = [(false, 7, 5), (true, 7, 5), (false, 8, 12), (true, 8, 12)]
            .map(|(weight, in_features, out_features)| LinearGrad::whole(3, in_features, out_features, weight, weight))
            .to_vec();
        let block = LinearGrad {
            row0: 4,
            part: 4,
            accumulate: true,
            relu_mask: true,
            ..LinearGrad::whole(3, 8, 12, false, false)
        };
        samples.push(block);
        let uniform: Vec<LinearGrad> = samples.iter().map(|s| LinearGrad { uniform_dy: true, ..s.clone() }).collect();
        samples.extend(uniform);
        samples
    }
}

/// `dx = dy · f'(x)` over `len` elements; without an activation, a copy of `dy`.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationGrad {
    pub len: usize,
    pub activation: Option<Activation>,
}

impl KernelParams for ActivationGrad {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![("LEN", dim(self.len))];
        consts.extend(activation_consts(self.activation));
        Kernel::new(Family::ActivationGrad, consts, grid_1d(self.len as u64))
    }

    fn samples() -> Vec<ActivationGrad> {
        [
            None,
            Some(Activation::Relu),
            Some(Activation::LeakyRelu { slope: 0.1 }),
            Some(Activation::Gelu),
            Some(Activation::HardSwish),
        ]
        .map(|activation| ActivationGrad { len: 10, activation })
        .to_vec()
    }
}

/// The input gradient of max or average pooling over `nc` planes.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolGrad {
    pub nc: usize,
    /// `[IH, IW]` and `[OH, OW]`.
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub window: Pool2d,
    pub is_max: bool,
    /// The input is a ReLU's output, and the result is the gradient of the ReLU's input (zero
    /// where the input is `<= 0`), saving the ReLU's own dispatch.
    pub relu_mask: bool,
}

impl PoolGrad {
    /// Whether the windows tile the input exactly (stride equal to the kernel, no padding or
    /// dilation, no rows or columns left over): then one invocation per window reads it once and
    /// writes each of its elements, instead of one per element looking up its window.
    pub fn tiles(&self) -> bool {
        let ([ih, iw], [oh, ow], p) = (self.input, self.output, &self.window);
        p.stride == p.kernel
            && p.dilation == [1, 1]
            && p.padding == Pad4::uniform(0)
            && ih == oh * p.kernel[0]
            && iw == ow * p.kernel[1]
    }

    /// Whether the windows are 2×2 at stride 2 and tile the input: then each invocation reads and
    /// writes its window as two vec2s ([`Family::PoolGradPairs`]).
    pub fn pairs(&self) -> bool {
        tiles_in_pairs(&self.window, self.input, self.output)
    }
}

impl KernelParams for PoolGrad {
    fn kernel(&self) -> Kernel {
        let ([ih, iw], [oh, ow], p) = (self.input, self.output, &self.window);
        let tiled = self.tiles();
        let mut consts = vec![
            ("TILED", Const::B(tiled)),
            ("KH", u(p.kernel[0])),
            ("KW", u(p.kernel[1])),
            ("DY", u(p.dilation[0])),
            ("DX", u(p.dilation[1])),
            ("MAX", Const::B(self.is_max)),
            ("COUNT_PAD", Const::B(p.count_include_pad)),
            ("RELU_MASK", Const::B(self.relu_mask)),
            ("NC", dim(self.nc)),
            ("IH", dim(ih)),
            ("IW", dim(iw)),
            ("OH", dim(oh)),
            ("OW", dim(ow)),
            ("SY", dim(p.stride[0])),
            ("SX", dim(p.stride[1])),
            ("PT", dim(p.padding.top)),
            ("PL", dim(p.padding.left)),
            ("PB", dim(p.padding.bottom)),
            ("PR", dim(p.padding.right)),
        ];
        consts.extend(activation_consts(None));
        // A few taps per invocation: the extents are baked so that locating an element costs no
        // divisions by run-time values (a pooling layer's shape is one of few in a model).
        let invocations = if tiled { self.nc * oh * ow } else { self.nc * ih * iw };
        let family = if self.pairs() { Family::PoolGradPairs } else { Family::PoolGrad };
        Kernel { bake_shape: true, ..Kernel::new(family, consts, grid_1d(invocations as u64)) }
    }

    fn samples() -> Vec<PoolGrad> {
        let window = Pool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: Pad4::uniform(1),
            dilation: [1, 1],
            ceil_mode: true,
            count_include_pad: false,
        };
        let tiling = Pool2d { kernel: [2, 2], stride: [2, 2], padding: Pad4::uniform(0), ceil_mode: false, ..window };
        let mut samples: Vec<PoolGrad> = [true, false]
            .map(|is_max| PoolGrad {
                nc: 4,
                input: [7, 7],
                output: [4, 4],
                window: window.clone(),
                is_max,
                relu_mask: is_max,
            })
            .to_vec();
        // 2×2 tiles (`pool_grad_pairs`), max and average, and 3×3 tiles (`pool_grad`'s TILED case).
        for is_max in [true, false] {
            let window = tiling.clone();
            samples.push(PoolGrad { nc: 4, input: [8, 6], output: [4, 3], window, is_max, relu_mask: true });
        }
        let threes = Pool2d { kernel: [3, 3], stride: [3, 3], ..tiling };
        samples.push(PoolGrad { nc: 4, input: [9, 6], output: [3, 2], window: threes, is_max: true, relu_mask: true });
        samples
    }
}

/// Cross-entropy over `[N, K]` logits, per item: its share of the loss and its row of dlogits; on
/// the last head's dispatch, also the step's loss and hits summed into the loss history.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyKernel {
    pub n: usize,
    pub classes: usize,
    pub label_smoothing: f64,
    pub class_weights: bool,
    /// The head's weight in the loss (1 for the output), scaling its share and its dlogits.
    pub weight: f64,
    /// Where the head's `n` shares start in the shares buffer.
    pub offset: usize,
    /// Where the items' hits go in the shares buffer, after all heads' shares.
    pub hits: usize,
    /// Whether this head (the output's) writes the items' hits.
    pub count_hits: bool,
    /// On the last head's dispatch: the step's loss, bound sixth (`hyper`) and seventh (`history`).
    pub sum: Option<LossSum>,
}

/// The step's loss: the shares (items × heads) added in order into the loss history, and the
/// output head's hits into the slot `cap` later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSum {
    /// Shares to add: items × heads.
    pub shares: usize,
    /// Slots of the history's loss half; the hit counts fill the half after it.
    pub cap: usize,
}

impl KernelParams for CrossEntropyKernel {
    fn kernel(&self) -> Kernel {
        let sum = self.sum.unwrap_or(LossSum { shares: 0, cap: 0 });
        let mut consts = vec![
            ("EPS", Const::F(self.label_smoothing as f32)),
            ("HAS_WEIGHTS", Const::B(self.class_weights)),
            ("WEIGHT", Const::F(self.weight as f32)),
            ("COUNT_HITS", Const::B(self.count_hits)),
            ("SUM", Const::B(self.sum.is_some())),
            ("N", dim(self.n)),
            ("K", dim(self.classes)),
            ("OFFSET", dim(self.offset)),
            ("HITS", dim(self.hits)),
            ("SHARES", dim(sum.shares)),
            ("CAP", dim(sum.cap)),
        ];
        consts.extend(activation_consts(None));
        // Extents baked, as `LinearGrad`'s are: lavapipe made a shader variant at every dispatch of
        // the smoothed and weighted loss otherwise (`tests/memory.rs`). One workgroup, so that the
        // sum can follow the shares without a dispatch of its own.
        Kernel { bake_shape: true, ..Kernel::new(Family::CrossEntropy, consts, [1, 1, 1]) }
    }

    fn samples() -> Vec<CrossEntropyKernel> {
        [false, true]
            .map(|last| CrossEntropyKernel {
                n: 4,
                classes: 10,
                label_smoothing: 0.1,
                class_weights: last,
                weight: 0.3,
                offset: 4,
                hits: 8,
                count_hits: last,
                sum: last.then_some(LossSum { shares: 8, cap: 64 }),
            })
            .to_vec()
    }
}

/// The second pass of a split reduction: result `r` is `Σ_m partials[(offset + r)·m_count + m]`,
/// `partials` `[.., m_count]` with `m_count` = [`ReducePartials::partials`], written to `out[r]`,
/// or with [`ReducePartials::split`] to two destinations.
#[derive(Clone, Debug, PartialEq)]
pub struct ReducePartials {
    pub results: usize,
    pub partials: usize,
    pub offset: usize,
    /// `Some(h)`: results `0..h` go to the first destination and the rest, from its start, to a
    /// second (a weight gradient and its bias gradient in one dispatch).
    pub split: Option<usize>,
}

impl KernelParams for ReducePartials {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![("R", dim(self.results)), ("M", dim(self.partials)), ("OFFSET", dim(self.offset))];
        let family = match self.split {
            Some(head) => {
                consts.push(("HEAD", dim(head)));
                Family::ReducePartialsSplit
            }
            None => Family::ReducePartials,
        };
        consts.extend(activation_consts(None));
        Kernel::new(family, consts, grid_1d(self.results as u64))
    }

    fn samples() -> Vec<ReducePartials> {
        let one = ReducePartials { results: 5, partials: 3, offset: 2, split: None };
        vec![ReducePartials { split: Some(3), ..one.clone() }, one]
    }
}

/// The optimizer's update rule, as the kernel bakes it.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRule {
    Sgd { momentum: bool, dampening: f64, nesterov: bool, weight_decay: f64 },
    Adam { beta2: f64, eps: f64, weight_decay: f64, decoupled: bool },
}

/// One optimizer step over a parameter tensor or pack of `len` elements, a multiple of 4 (packs are;
/// see `gpu/train/pack.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerKernel {
    pub len: usize,
    pub rule: UpdateRule,
}

impl KernelParams for OptimizerKernel {
    fn kernel(&self) -> Kernel {
        let (kind, momentum, dampening, nesterov, wd, beta2, eps, decoupled) = match self.rule {
            UpdateRule::Sgd { momentum, dampening, nesterov, weight_decay } => {
                (0, momentum, dampening, nesterov, weight_decay, 0.0, 0.0, false)
            }
            UpdateRule::Adam { beta2, eps, weight_decay, decoupled } => {
                (1, false, 0.0, false, weight_decay, beta2, eps, decoupled)
            }
        };
        let mut consts = vec![
            ("KIND", Const::U(kind)),
            ("NESTEROV", Const::B(nesterov)),
            ("DECOUPLED", Const::B(decoupled)),
            ("MOMENTUM_ON", Const::B(momentum)),
            ("WD", Const::F(wd as f32)),
            // 1 − d and 1 − β₂ in f64, then rounded once as torch.optim passes them: f32(1 − f32(0.999))
            // is 1.3e-5 below 0.001, which would bias every second moment.
            ("ONE_MINUS_DAMPENING", Const::F((1.0 - dampening) as f32)),
            ("BETA2", Const::F(beta2 as f32)),
            ("ONE_MINUS_BETA2", Const::F((1.0 - beta2) as f32)),
            ("EPS_ADAM", Const::F(eps as f32)),
            ("LEN4", dim(self.len / 4)),
        ];
        consts.extend(activation_consts(None));
        debug_assert!(self.len.is_multiple_of(4), "optimizer over {} floats, not a multiple of 4", self.len);
        Kernel::new(Family::Optimizer, consts, grid_1d(self.len.div_ceil(4) as u64))
    }

    fn samples() -> Vec<OptimizerKernel> {
        vec![
            OptimizerKernel {
                len: 12,
                rule: UpdateRule::Sgd { momentum: true, dampening: 0.1, nesterov: true, weight_decay: 1e-4 },
            },
            OptimizerKernel {
                len: 12,
                rule: UpdateRule::Adam { beta2: 0.999, eps: 1e-8, weight_decay: 1e-2, decoupled: true },
            },
        ]
    }
}

/// Which pass of batch-norm in training mode over `[N, C, P]` (see the WGSL files of each).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BatchNormPass {
    /// Partial sums of the shifted input and its squares per (channel, item, chunk).
    ForwardPartials,
    /// The statistics from the partial sums, and the running-statistic update (per channel).
    Stats,
    /// `y = x·scale + shift` (per element).
    Apply,
    /// Partial sums of `dy` and `dy·x̂` per (channel, item, chunk).
    BackwardPartials,
    /// The input gradient (per element).
    InputGrad,
}

/// One pass of batch-norm in training mode.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormKernel {
    pub pass: BatchNormPass,
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNormKernel {
    /// Partial sums per channel and quantity (items × chunks).
    pub fn partials(&self) -> usize {
        self.n * chunks(self.positions)
    }
}

impl KernelParams for BatchNormKernel {
    fn kernel(&self) -> Kernel {
        let (n, c, p) = (self.n, self.channels, self.positions);
        let mut consts = match self.pass {
            BatchNormPass::ForwardPartials | BatchNormPass::BackwardPartials => vec![
                ("MODE", Const::U(u32::from(self.pass == BatchNormPass::BackwardPartials))),
                ("CHUNK", u(CHUNK)),
                ("EPS", Const::F(self.eps as f32)),
            ],
            BatchNormPass::Stats => {
                vec![("EPS", Const::F(self.eps as f32)), ("MOMENTUM", Const::F(self.momentum as f32))]
            }
            BatchNormPass::Apply => Vec::new(),
            BatchNormPass::InputGrad => vec![("EPS", Const::F(self.eps as f32))],
        };
        consts.extend([("N", dim(n)), ("C", dim(c)), ("P", dim(p))]);
        if matches!(self.pass, BatchNormPass::ForwardPartials | BatchNormPass::BackwardPartials | BatchNormPass::Stats)
        {
            consts.push(("K", dim(chunks(p))));
        }
        consts.extend(activation_consts(None));
        let (family, results) = match self.pass {
            BatchNormPass::ForwardPartials | BatchNormPass::BackwardPartials => {
                (Family::BatchNormPartials, c * self.partials())
            }
            BatchNormPass::Stats => (Family::BatchNormStats, c),
            BatchNormPass::Apply => (Family::BatchNormApply, n * c * p),
            BatchNormPass::InputGrad => (Family::BatchNormGrad, n * c * p),
        };
        if matches!(self.pass, BatchNormPass::Apply | BatchNormPass::InputGrad) {
            // (positions, channels, items) where the grid allows and a workgroup's 64 invocations
            // are at least a quarter busy (not after a linear layer, P = 1): no divisions per element.
            let grid3 = p >= 16 && p.div_ceil(64) <= 65_535 && c <= 65_535 && n <= 65_535;
            consts.push(("GRID3", Const::B(grid3)));
            if grid3 {
                return Kernel::new(family, consts, [p.div_ceil(64) as u32, c as u32, n as u32]);
            }
        }
        Kernel::new(family, consts, grid_1d(results as u64))
    }

    fn samples() -> Vec<BatchNormKernel> {
        use BatchNormPass::*;
        let mut samples: Vec<BatchNormKernel> = [ForwardPartials, Stats, Apply, BackwardPartials, InputGrad]
            .map(|pass| BatchNormKernel { pass, n: 2, channels: 3, positions: 5000, eps: 1e-5, momentum: 0.1 })
            .to_vec();
        // More channels than the grid holds along y: the one-dimensional grid.
        samples.extend([Apply, InputGrad].map(|pass| BatchNormKernel {
            pass,
            n: 2,
            channels: 70_000,
            positions: 1,
            eps: 1e-5,
            momentum: 0.1,
        }));
        samples
    }
}

/// Dropout (`per_item: false`) or stochastic depth over `len` elements of `item` elements per batch
/// item, with the step's key at `key` of the keys buffer; forward and backward alike.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutKernel {
    pub len: usize,
    pub item: usize,
    pub p: f64,
    pub per_item: bool,
    pub key: usize,
}

impl KernelParams for DropoutKernel {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("KEY", u(self.key)),
            ("P_DROP", Const::F(self.p as f32)),
            ("PER_ITEM", Const::B(self.per_item)),
            ("LEN", dim(self.len)),
            ("ITEM", dim(self.item)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::Dropout, consts, grid_1d(self.len as u64))
    }

    fn samples() -> Vec<DropoutKernel> {
        [false, true].map(|per_item| DropoutKernel { len: 12, item: 6, p: 0.3, per_item, key: 1 }).to_vec()
    }
}

/// The gradient of a per-channel gate `[N, C, 1, 1]` of a broadcast product over `positions`.
#[derive(Clone, Debug, PartialEq)]
pub struct GateGrad {
    pub nc: usize,
    pub positions: usize,
}

impl KernelParams for GateGrad {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![("NC", dim(self.nc)), ("P", dim(self.positions))];
        consts.extend(activation_consts(None));
        Kernel::new(Family::GateGrad, consts, grid_1d(self.nc as u64))
    }

    fn samples() -> Vec<GateGrad> {
        vec![GateGrad { nc: 6, positions: 9 }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_gradients_cover_any_number_of_rows_within_the_grid_limits() {
        // 2,000,000 rows of input gradient: 125,000 tiles of 16, past one grid dimension's 65,535.
        let kernel = LinearGrad::whole(2_000_000, 4, 3, false, false).kernel();
        assert_eq!(kernel.workgroups, [65_535, 2, 1]);
        // 300 columns: two groups of 256 per tile of the weight gradient's 40 rows (3 tiles).
        let grad = LinearGrad::whole(8, 300, 40, true, true);
        assert_eq!((grad.col_groups(), grad.tile()), (2, 16));
        assert_eq!(grad.kernel().workgroups, [6, 1, 1]);
    }
}
