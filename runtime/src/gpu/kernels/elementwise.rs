//! Parameters of the elementwise family: per-channel affine, sums and broadcast products.

use cnnc_ir::graph::Activation;

use super::{activation_consts, grid_1d, u, Const, Family, Kernel, KernelParams};

/// What the elementwise kernel computes from `x` (and `other`, `scale`, `shift`) before the
/// activation; the values are the WGSL's `OP` codes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ElementwiseOp {
    /// `x · scale[c] + shift[c]` (batch-norm at inference, channel affine, a lone activation).
    Affine = 0,
    /// `x + other`.
    Add = 1,
    /// `x · other`, `other` broadcast over positions when it has one per channel.
    Mul = 2,
    /// `x` itself (a lone activation): unlike `x · 1 + 0`, it keeps −0.0, as PyTorch does.
    Identity = 3,
}

/// One elementwise pass over `[N, C, P]`, four elements per invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Elementwise {
    pub op: ElementwiseOp,
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
    /// Positions per channel of `other`: `positions`, or 1 for a per-channel gate.
    pub other_positions: usize,
    pub activation: Option<Activation>,
}

impl KernelParams for Elementwise {
    fn kernel(&self) -> Kernel {
        let (n, c, p) = (self.n, self.channels, self.positions);
        let mut consts = vec![
            ("N", u(n)),
            ("C", u(c)),
            ("P", u(p)),
            ("OP", Const::U(self.op as u32)),
            ("OTHER_P", u(self.other_positions)),
        ];
        consts.extend(activation_consts(self.activation));
        Kernel::new(Family::Elementwise, consts, grid_1d((n * c * p).div_ceil(4) as u64))
    }

    fn samples() -> Vec<Elementwise> {
        let sample = |op, other_positions| Elementwise {
            op,
            n: 2,
            channels: 3,
            positions: 10,
            other_positions,
            activation: Some(Activation::Relu),
        };
        vec![
            sample(ElementwiseOp::Affine, 10),
            sample(ElementwiseOp::Add, 10),
            sample(ElementwiseOp::Mul, 1),
            sample(ElementwiseOp::Identity, 10),
        ]
    }
}
