//! Parameters of the copy family: channel slices (concat, chunk) and channel shuffles; and of the
//! chunk's input gradient (`chunk_grad`).

use super::{activation_consts, dim, grid_1d, u, Family, Kernel, KernelParams};

/// Copies `channels` channels of `positions` positions per item from channel `in_offset` of an
/// `in_c`-channel tensor to channel `out_offset` of an `out_c`-channel one; with `shuffle_groups`
/// > 0, output channel `j` reads the channel ShuffleNet's shuffle puts there.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelCopy {
    pub n: usize,
    pub channels: usize,
    pub positions: usize,
    pub in_c: usize,
    pub out_c: usize,
    pub in_offset: usize,
    pub out_offset: usize,
    /// Groups of a channel shuffle; 0 for a plain copy.
    pub shuffle_groups: usize,
}

impl KernelParams for ChannelCopy {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("N", u(self.n)),
            ("C", u(self.channels)),
            ("P", u(self.positions)),
            ("IN_C", u(self.in_c)),
            ("OUT_C", u(self.out_c)),
            ("IN_OFFSET", u(self.in_offset)),
            ("OUT_OFFSET", u(self.out_offset)),
            ("SHUFFLE_GROUPS", u(self.shuffle_groups)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::Copy, consts, grid_1d((self.n * self.channels * self.positions) as u64))
    }

    fn samples() -> Vec<ChannelCopy> {
        let sample = |shuffle_groups| ChannelCopy {
            n: 2,
            channels: 4,
            positions: 9,
            in_c: 8,
            out_c: 6,
            in_offset: 4,
            out_offset: 2,
            shuffle_groups,
        };
        vec![sample(0), sample(2)]
    }
}

/// A chunk's input gradient over `[N, C, P]`: its output's gradient (`[N, per, P]`) in channels
/// `offset..offset + per`, zeros elsewhere.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkGrad {
    pub n: usize,
    /// Channels of the chunked input.
    pub channels: usize,
    pub positions: usize,
    /// Channels of this chunk, and its first.
    pub per: usize,
    pub offset: usize,
}

impl KernelParams for ChunkGrad {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("N", dim(self.n)),
            ("C", dim(self.channels)),
            ("P", dim(self.positions)),
            ("PER", dim(self.per)),
            ("OFFSET", dim(self.offset)),
        ];
        consts.extend(activation_consts(None));
        Kernel::new(Family::ChunkGrad, consts, grid_1d((self.n * self.channels * self.positions) as u64))
    }

    fn samples() -> Vec<ChunkGrad> {
        vec![ChunkGrad { n: 2, channels: 6, positions: 5, per: 2, offset: 2 }]
    }
}
