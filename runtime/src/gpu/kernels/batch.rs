//! Parameters of `batch_from_bytes`: a training batch made on the device from images held there
//! as bytes (see `GpuTrainer::holding`).

use super::{activation_consts, dim, grid_1d, u, Family, Kernel, KernelParams};

/// Makes `n` items of `[channels, out_h, out_w]` floats from held `[channels, h, w]` byte images,
/// each placed and normalised as its placement and the byte table say.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchFromBytes {
    pub n: usize,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl KernelParams for BatchFromBytes {
    fn kernel(&self) -> Kernel {
        let len = self.n * self.channels * self.out_h * self.out_w;
        let mut consts = vec![
            ("C", u(self.channels)),
            ("H", u(self.h)),
            ("W", u(self.w)),
            ("OUT_H", u(self.out_h)),
            ("OUT_W", u(self.out_w)),
            ("LEN", dim(len)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::BatchFromBytes, consts, grid_1d(len as u64))
    }

    fn samples() -> Vec<BatchFromBytes> {
        vec![BatchFromBytes { n: 2, channels: 3, h: 6, w: 5, out_h: 4, out_w: 4 }]
    }
}
