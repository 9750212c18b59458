//! Training's 1×1 convolutions (stride 1, no padding, one group) as GEMMs: their weights laid out
//! on the device for the pointwise kernel ([`PointwiseWeights`]), which then runs the forward and
//! the input gradient (or [`PointwiseRows`], where positions per item are not a multiple of 4), and
//! the weight gradient ([`PointwiseGradWeight`]). On lavapipe these layers
//! took 70 % of MobileNetV2's training step through the generic convolution kernels, which load a
//! value for every multiply-add or two.

use cnnc_ir::graph::{Activation, Conv2d, Pad4};

use super::grad::{chunks, CHUNK};
use super::{activation_consts, dim, grid_1d, u, Const, Family, Kernel, KernelParams};

/// Whether a training convolution runs as a GEMM: a 1×1 window, stride 1, no padding and one group.
pub fn is_pointwise(conv: &Conv2d) -> bool {
    conv.kernel == [1, 1] && conv.stride == [1, 1] && conv.padding == Pad4::default() && conv.groups == 1
}

/// `[OC][IC]` weights laid out for the pointwise GEMM: transposed to `[IC][OC16]` (the forward), or
/// kept `[OC][IC16]` (the input gradient, a GEMM from the output gradient's `OC` channels to the
/// input's `IC`); rows padded with zeros to a multiple of 16 columns.
#[derive(Clone, Debug, PartialEq)]
pub struct PointwiseWeights {
    pub out_channels: usize,
    pub in_channels: usize,
    pub transpose: bool,
}

impl PointwiseWeights {
    /// The laid-out weights' rows and padded columns.
    pub fn extents(&self) -> (usize, usize) {
        let (rows, cols) = self.gemm_channels();
        (rows, cols.next_multiple_of(16))
    }

    /// The GEMM these weights serve: its input and output channels (the output gradient's `OC` in and
    /// the input's `IC` out, for the input gradient).
    pub fn gemm_channels(&self) -> (usize, usize) {
        if self.transpose {
            (self.in_channels, self.out_channels)
        } else {
            (self.out_channels, self.in_channels)
        }
    }

    /// Floats of the laid-out weights.
    pub fn floats(&self) -> usize {
        let (rows, cols16) = self.extents();
        rows * cols16
    }
}

impl KernelParams for PointwiseWeights {
    fn kernel(&self) -> Kernel {
        let ((rows, cols), cols16) = (self.gemm_channels(), self.extents().1);
        let mut consts = vec![
            ("TRANSPOSE", Const::B(self.transpose)),
            ("ROWS", dim(rows)),
            ("COLS", dim(cols)),
            ("COLS16", dim(cols16)),
            ("LEN", dim(self.floats())),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::PointwiseWeights, consts, grid_1d(self.floats() as u64))
    }

    fn samples() -> Vec<PointwiseWeights> {
        [true, false].map(|transpose| PointwiseWeights { out_channels: 20, in_channels: 6, transpose }).to_vec()
    }
}

/// A 1×1 convolution's weight gradient `[OC][IC]` over `n` items of `positions` positions, as
/// partial sums per (weight, item, chunk of positions): [`PointwiseGradWeight::partials`] of them.
#[derive(Clone, Debug, PartialEq)]
pub struct PointwiseGradWeight {
    pub n: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub positions: usize,
}

impl PointwiseGradWeight {
    /// Partial sums per weight element (items × chunks).
    pub fn partials(&self) -> usize {
        self.n * chunks(self.positions)
    }
}

impl KernelParams for PointwiseGradWeight {
    fn kernel(&self) -> Kernel {
        // Invocations along the larger side, so that fewer of a workgroup's 64 idle.
        let lanes_out = self.out_channels > self.in_channels;
        let (lanes, tiled) =
            if lanes_out { (self.out_channels, self.in_channels) } else { (self.in_channels, self.out_channels) };
        let mut consts = vec![
            ("CHUNK", u(CHUNK)),
            ("LANES_OUT", Const::B(lanes_out)),
            ("N", dim(self.n)),
            ("IC", dim(self.in_channels)),
            ("OC", dim(self.out_channels)),
            ("P", dim(self.positions)),
            ("K", dim(chunks(self.positions))),
        ];
        consts.extend(activation_consts(None));
        // 64 invocations of 4 channels each, by 16 channels, by items and chunks.
        let workgroups = [lanes.div_ceil(256) as u32, tiled.div_ceil(16) as u32, self.partials() as u32];
        Kernel::new(Family::PointwiseGradWeight, consts, workgroups)
    }

    fn samples() -> Vec<PointwiseGradWeight> {
        [(6, 5, 7), (5, 20, 7)]
            .map(|(in_channels, out_channels, positions)| PointwiseGradWeight {
                n: 2,
                in_channels,
                out_channels,
                positions,
            })
            .to_vec()
    }
}

/// The pointwise GEMM for any number of positions per item (`pointwise_rows.wgsl`): input
/// `[N, in_channels, P]`, weights `[in_channels][out_channels rounded up to 16]` as
/// [`PointwiseWeights`] lays them out (transposed for a forward, as they are for an input gradient),
/// plus `bias` where there is one, then `activation`, into `[N, out_channels, P]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PointwiseRows {
    pub n: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub positions: usize,
    pub has_bias: bool,
    pub activation: Option<Activation>,
}

impl KernelParams for PointwiseRows {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("HAS_BIAS", Const::B(self.has_bias)),
            ("N", dim(self.n)),
            ("IC", dim(self.in_channels)),
            ("OC", dim(self.out_channels)),
            ("OC8", dim(self.out_channels.next_multiple_of(16))),
            ("P", dim(self.positions)),
        ];
        consts.extend(activation_consts(self.activation));
        // One invocation per 4 positions, by tiles of 16 output channels.
        let quads = (self.n * self.positions).div_ceil(4);
        Kernel::new(
            Family::PointwiseRows,
            consts,
            [quads.div_ceil(64) as u32, self.out_channels.div_ceil(16) as u32, 1],
        )
    }

    fn samples() -> Vec<PointwiseRows> {
        vec![PointwiseRows {
            n: 3,
            in_channels: 5,
            out_channels: 20,
            positions: 7,
            has_bias: true,
            activation: Some(Activation::Relu),
        }]
    }
}
