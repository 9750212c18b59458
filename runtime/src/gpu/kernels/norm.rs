//! Parameters of the normalisation families over channels, local response normalisation and
//! softmax, and of their input gradients.

use cnnc_ir::graph::Activation;

use super::{activation_consts, dim, grid_1d, u, Const, Family, Kernel, KernelParams};

/// PyTorch's `LocalResponseNorm` over `[N, C, P]`: `x / (k + α/size · Σ x²)^β` over a window of
/// `size` channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Lrn {
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
    pub activation: Option<Activation>,
}

impl KernelParams for Lrn {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("N", u(self.n)),
            ("C", u(self.channels)),
            ("P", u(self.positions)),
            ("SIZE", u(self.size)),
            ("ALPHA", Const::F(self.alpha as f32)),
            ("BETA", Const::F(self.beta as f32)),
            ("K", Const::F(self.k as f32)),
        ];
        consts.extend(activation_consts(self.activation));
        Kernel::new(Family::Lrn, consts, grid_1d((self.n * self.channels * self.positions) as u64))
    }

    fn samples() -> Vec<Lrn> {
        vec![Lrn {
            n: 2,
            channels: 6,
            positions: 9,
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
            activation: Some(Activation::Relu),
        }]
    }
}

/// Softmax over the channels of `[N, C, P]`, one invocation per position.
#[derive(Clone, Debug, PartialEq)]
pub struct Softmax {
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
}

impl KernelParams for Softmax {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![("N", u(self.n)), ("C", u(self.channels)), ("P", u(self.positions))];
        consts.extend(activation_consts(None));
        Kernel::new(Family::Softmax, consts, grid_1d((self.n * self.positions) as u64))
    }

    fn samples() -> Vec<Softmax> {
        vec![Softmax { n: 2, channels: 10, positions: 1 }]
    }
}

/// The input gradient of [`Lrn`] over `[N, C, P]` from `dy` and the forward's input, one invocation
/// per element (the formula is in `lrn_grad.wgsl` and `cpu::backward::lrn`).
#[derive(Clone, Debug, PartialEq)]
pub struct LrnGrad {
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl KernelParams for LrnGrad {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("SIZE", u(self.size)),
            ("ALPHA", Const::F(self.alpha as f32)),
            ("BETA", Const::F(self.beta as f32)),
            ("K", Const::F(self.k as f32)),
            ("N", dim(self.n)),
            ("C", dim(self.channels)),
            ("P", dim(self.positions)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::LrnGrad, consts, grid_1d((self.n * self.channels * self.positions) as u64))
    }

    fn samples() -> Vec<LrnGrad> {
        vec![LrnGrad { n: 2, channels: 6, positions: 9, size: 4, alpha: 1e-4, beta: 0.75, k: 2.0 }]
    }
}

/// The input gradient of [`Softmax`] over `[N, C, P]` from `dy` and the forward's output `y`:
/// `y · (dy − Σ_c dy_c · y_c)`, one invocation per (item, position).
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxGrad {
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
}

impl KernelParams for SoftmaxGrad {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![("N", dim(self.n)), ("C", dim(self.channels)), ("P", dim(self.positions))];
        consts.extend(activation_consts(None));
        Kernel::new(Family::SoftmaxGrad, consts, grid_1d((self.n * self.positions) as u64))
    }

    fn samples() -> Vec<SoftmaxGrad> {
        vec![SoftmaxGrad { n: 2, channels: 10, positions: 3 }]
    }
}
