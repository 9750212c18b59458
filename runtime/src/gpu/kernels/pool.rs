//! Parameters of the pooling families: sliding windows (`pool`) and adaptive windows
//! (`adaptive_pool`), and the adaptive windows' input gradient (`adaptive_pool_grad`; the sliding
//! windows' is `pool_grad`, with the training kernels).

use cnnc_ir::graph::{Activation, Pad4, Pool2d};

use super::{activation_consts, dim, grid_1d, u, Const, Family, Kernel, KernelParams};

/// Whether pooling `[IH, IW]` to `[OH, OW]` through `window` is 2×2 windows at stride 2 that tile
/// the input exactly (no padding or dilation, `IH = 2·OH`, `IW = 2·OW`): then each window's rows are
/// one aligned pair of floats each, for the `pool_pairs` and `pool_grad_pairs` kernels.
pub(super) fn tiles_in_pairs(window: &Pool2d, [ih, iw]: [usize; 2], [oh, ow]: [usize; 2]) -> bool {
    window.kernel == [2, 2]
        && window.stride == [2, 2]
        && window.dilation == [1, 1]
        && window.padding == Pad4::uniform(0)
        && ih == 2 * oh
        && iw == 2 * ow
}

/// A max or average pooling window sliding over `[C, IH, IW]` items, one invocation per output.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub n: usize,
    /// `[C, IH, IW]` of one item.
    pub input: [usize; 3],
    /// `[OH, OW]`.
    pub output: [usize; 2],
    /// Kernel, stride, padding, dilation, and (average only) whether padding counts in the divisor.
    pub window: Pool2d,
    /// The maximum (else the average).
    pub is_max: bool,
    pub out_c: usize,
    pub out_offset: usize,
    pub activation: Option<Activation>,
}

impl KernelParams for Pool {
    fn kernel(&self) -> Kernel {
        let ([c, ih, iw], [oh, ow], p) = (self.input, self.output, &self.window);
        let mut consts = vec![
            ("N", u(self.n)),
            ("C", u(c)),
            ("IH", u(ih)),
            ("IW", u(iw)),
            ("OH", u(oh)),
            ("OW", u(ow)),
            ("KH", u(p.kernel[0])),
            ("KW", u(p.kernel[1])),
            ("SY", u(p.stride[0])),
            ("SX", u(p.stride[1])),
            ("PT", u(p.padding.top)),
            ("PB", u(p.padding.bottom)),
            ("PL", u(p.padding.left)),
            ("PR", u(p.padding.right)),
            ("DY", u(p.dilation[0])),
            ("DX", u(p.dilation[1])),
            ("IS_MAX", Const::B(self.is_max)),
            ("COUNT_INCLUDE_PAD", Const::B(p.count_include_pad)),
            ("OUT_C", u(self.out_c)),
            ("OUT_OFFSET", u(self.out_offset)),
        ];
        consts.extend(activation_consts(self.activation));
        let family = if self.pairs() { Family::PoolPairs } else { Family::Pool };
        Kernel::new(family, consts, grid_1d((self.n * c * oh * ow) as u64))
    }

    fn samples() -> Vec<Pool> {
        let window = Pool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: Pad4::uniform(1),
            dilation: [1, 1],
            ceil_mode: true,
            count_include_pad: false,
        };
        let sample = |is_max| Pool {
            n: 2,
            input: [3, 7, 7],
            output: [4, 4],
            window: window.clone(),
            is_max,
            out_c: 5,
            out_offset: 2,
            activation: Some(Activation::Relu),
        };
        let pairs = |is_max| Pool {
            input: [3, 8, 6],
            output: [4, 3],
            window: Pool2d { kernel: [2, 2], stride: [2, 2], padding: Pad4::uniform(0), ..window.clone() },
            ..sample(is_max)
        };
        vec![sample(true), sample(false), pairs(true), pairs(false)]
    }
}

impl Pool {
    /// Whether the windows are 2×2 at stride 2 and tile the input ([`Family::PoolPairs`]).
    pub fn pairs(&self) -> bool {
        let [_, ih, iw] = self.input;
        tiles_in_pairs(&self.window, [ih, iw], self.output)
    }
}

/// Adaptive average or max pooling of `[C, IH, IW]` items to `[C, OH, OW]`, PyTorch's windows
/// (`start = ⌊i·IH/OH⌋`, `end = ⌈(i+1)·IH/OH⌉`).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptivePool {
    pub n: usize,
    pub input: [usize; 3],
    pub output: [usize; 2],
    pub is_max: bool,
    pub out_c: usize,
    pub out_offset: usize,
    pub activation: Option<Activation>,
}

impl KernelParams for AdaptivePool {
    fn kernel(&self) -> Kernel {
        let ([c, ih, iw], [oh, ow]) = (self.input, self.output);
        let mut consts = vec![
            ("N", u(self.n)),
            ("C", u(c)),
            ("IH", u(ih)),
            ("IW", u(iw)),
            ("OH", u(oh)),
            ("OW", u(ow)),
            ("IS_MAX", Const::B(self.is_max)),
            ("OUT_C", u(self.out_c)),
            ("OUT_OFFSET", u(self.out_offset)),
        ];
        consts.extend(activation_consts(self.activation));
        Kernel::new(Family::AdaptivePool, consts, grid_1d((self.n * c * oh * ow) as u64))
    }

    fn samples() -> Vec<AdaptivePool> {
        let sample = |is_max| AdaptivePool {
            n: 2,
            input: [3, 13, 11],
            output: [7, 7],
            is_max,
            out_c: 6,
            out_offset: 3,
            activation: Some(Activation::Relu),
        };
        vec![sample(false), sample(true)]
    }
}

/// The input gradient of [`AdaptivePool`] over `nc` planes of `[IH, IW]`: each input element gathers
/// from the cells that hold it (neighbouring cells overlap when the sizes do not divide); a max
/// cell's gradient goes to its first largest element in scan order (PyTorch's tie rule).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptivePoolGrad {
    pub nc: usize,
    /// `[IH, IW]` and `[OH, OW]`.
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub is_max: bool,
}

impl KernelParams for AdaptivePoolGrad {
    fn kernel(&self) -> Kernel {
        let ([ih, iw], [oh, ow]) = (self.input, self.output);
        let mut consts = vec![
            ("MAX", Const::B(self.is_max)),
            ("NC", dim(self.nc)),
            ("IH", dim(ih)),
            ("IW", dim(iw)),
            ("OH", dim(oh)),
            ("OW", dim(ow)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::AdaptivePoolGrad, consts, grid_1d((self.nc * ih * iw) as u64))
    }

    fn samples() -> Vec<AdaptivePoolGrad> {
        [true, false].map(|is_max| AdaptivePoolGrad { nc: 4, input: [13, 11], output: [5, 7], is_max }).to_vec()
    }
}
