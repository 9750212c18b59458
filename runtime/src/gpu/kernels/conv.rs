//! Parameters of the convolution families: the direct convolution (`conv2d`, `conv2d_tex`,
//! `conv2d_tex_vec4`) and the 1×1 convolution as a GEMM (`pointwise`, `pointwise_tex`).

use cnnc_ir::graph::{Activation, Conv2d, Pad4};

use super::{activation_consts, dim, epilogue_consts, u, Const, Family, Kernel, KernelParams, TEXTURE_WIDTH};

/// What a convolution does to its result before storing it: the fused residual add (of a tensor of
/// the output's shape), then the activation.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Epilogue {
    pub activation: Option<Activation>,
    pub residual: bool,
}

/// How the direct convolution reads and stores.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DirectVariant {
    /// Input and weights in storage buffers (tensors too large for a texture).
    Buffer,
    /// Input and weights through textures, scalar stores.
    Texture,
    /// Through textures, with vec4 residual loads and stores (positions per image a multiple of 4).
    TextureVec4,
}

/// The direct convolution: each invocation computes 4 output positions of `oc_tile` output
/// channels, looping over the taps of its group's input channels.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectConv {
    pub variant: DirectVariant,
    /// Batch items per dispatch.
    pub n: usize,
    /// `[IC, IH, IW]` of one item.
    pub input: [usize; 3],
    /// `[OC, OH, OW]` of one item.
    pub output: [usize; 3],
    /// Kernel, stride, padding (top and left are read; the output size already accounts for the
    /// rest), dilation and groups.
    pub conv: Conv2d,
    /// Output channels per invocation: 16 (texture variants), 4 or 1; tiles never straddle groups.
    pub oc_tile: usize,
    /// Channels of the tensor written and the first of this result there (a concat's slice).
    pub out_c: usize,
    pub out_offset: usize,
    pub has_bias: bool,
    pub epilogue: Epilogue,
    /// Bake the extents into the source as well (short convolutions; see `Kernel::bake_shape`).
    pub bake_shape: bool,
}

impl DirectConv {
    /// Taps per output: input channels per group × kernel area.
    pub fn taps(&self) -> usize {
        self.input[0] / self.conv.groups * self.conv.kernel[0] * self.conv.kernel[1]
    }
}

impl KernelParams for DirectConv {
    fn kernel(&self) -> Kernel {
        let c = &self.conv;
        let ([ic, ih, iw], [oc, oh, ow]) = (self.input, self.output);
        let mut consts = vec![
            ("KH", u(c.kernel[0])),
            ("KW", u(c.kernel[1])),
            ("SY", dim(c.stride[0])),
            ("SX", dim(c.stride[1])),
            ("PT", dim(c.padding.top)),
            ("PL", dim(c.padding.left)),
            ("DY", u(c.dilation[0])),
            ("DX", u(c.dilation[1])),
            ("OC_TILE", u(self.oc_tile)),
            ("PARTIAL_TILE", Const::B(oc % self.oc_tile != 0)),
            ("IC", dim(ic)),
            ("IH", dim(ih)),
            ("IW", dim(iw)),
            ("OC", dim(oc)),
            ("OW", dim(ow)),
            ("ICG", dim(ic / c.groups)),
            ("OCG", dim(oc / c.groups)),
            ("OUT_C", dim(self.out_c)),
            ("OUT_OFFSET", dim(self.out_offset)),
            ("PIXELS", dim(self.n * oh * ow)),
            ("PLANE", dim(oh * ow)),
            ("IN_PLANE", dim(ih * iw)),
            ("IN_LEN", dim(self.n * ic * ih * iw)),
            ("K", dim(self.taps())),
        ];
        let family = match self.variant {
            DirectVariant::Buffer => Family::Conv2d,
            DirectVariant::Texture => Family::Conv2dTex,
            DirectVariant::TextureVec4 => Family::Conv2dTexVec4,
        };
        if family != Family::Conv2d {
            consts.push(("TEX_W", Const::U(TEXTURE_WIDTH)));
        }
        consts.push(("HAS_BIAS", Const::B(self.has_bias)));
        consts.extend(epilogue_consts(self.epilogue.activation, self.epilogue.residual));
        let pixel_tiles = (self.n * oh * ow).div_ceil(4);
        let workgroups = [pixel_tiles.div_ceil(64) as u32, oc.div_ceil(self.oc_tile) as u32, 1];
        Kernel { bake_shape: self.bake_shape, ..Kernel::new(family, consts, workgroups) }
    }

    fn samples() -> Vec<DirectConv> {
        let conv = Conv2d {
            in_channels: 4,
            out_channels: 20,
            kernel: [3, 3],
            stride: [2, 2],
            padding: Pad4::uniform(1),
            dilation: [1, 1],
            groups: 2,
            bias: true,
        };
        let sample = |variant, oc_tile, activation, bake_shape| DirectConv {
            variant,
            n: 2,
            input: [4, 9, 9],
            output: [20, 5, 5],
            conv: conv.clone(),
            oc_tile,
            out_c: 24,
            out_offset: 4,
            has_bias: true,
            epilogue: Epilogue { activation, residual: true },
            bake_shape,
        };
        let mut samples = Vec::new();
        for bake_shape in [false, true] {
            samples.push(sample(DirectVariant::Buffer, 4, Some(Activation::Relu), bake_shape));
            samples.push(sample(DirectVariant::Texture, 16, Some(Activation::Relu), bake_shape));
            samples.push(sample(DirectVariant::TextureVec4, 16, Some(Activation::Relu), bake_shape));
        }
        // An activation baked into the epilogue rather than given as bounds.
        samples.push(sample(DirectVariant::TextureVec4, 16, Some(Activation::Silu), false));
        samples
    }
}

/// A 1×1 convolution with one group and no padding, as a GEMM over positions in quads: input
/// `[IC, P]` per item (subsampled first when strided), weights laid out `[IC][OC16]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pointwise {
    /// Input and weights through vec4 textures (else storage buffers).
    pub textured: bool,
    pub n: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Output positions per item (a multiple of 4).
    pub positions: usize,
    pub out_c: usize,
    pub out_offset: usize,
    pub has_bias: bool,
    pub epilogue: Epilogue,
}

impl KernelParams for Pointwise {
    fn kernel(&self) -> Kernel {
        let (ic, oc, oc16) = (self.in_channels, self.out_channels, self.out_channels.next_multiple_of(16));
        let mut consts;
        let family = if self.textured {
            consts = vec![
                ("N", dim(self.n)),
                ("IC", dim(ic)),
                ("OC", dim(oc)),
                ("OC16", dim(oc16)),
                ("P4", dim(self.positions / 4)),
                ("OUT_C", dim(self.out_c)),
                ("OUT_OFFSET", dim(self.out_offset)),
                ("PARTIAL_TILE", Const::B(oc % 16 != 0)),
                ("TEX_W", Const::U(TEXTURE_WIDTH)),
                ("HAS_BIAS", Const::B(self.has_bias)),
            ];
            consts.extend(epilogue_consts(self.epilogue.activation, self.epilogue.residual));
            Family::PointwiseTex
        } else {
            // Extents in the `shape` uniform: one pipeline for every layer with the same epilogue
            // (training lays out and runs every 1×1 convolution and its input gradient this way).
            consts = vec![
                ("N", dim(self.n)),
                ("IC", dim(ic)),
                ("OC", dim(oc)),
                ("P4", dim(self.positions / 4)),
                ("OC8", dim(oc16)),
                ("OUT_C", dim(self.out_c)),
                ("OUT_OFFSET", dim(self.out_offset)),
                ("HAS_BIAS", Const::B(self.has_bias)),
                ("HAS_RESIDUAL", Const::B(self.epilogue.residual)),
            ];
            consts.extend(activation_consts(self.epilogue.activation));
            Family::Pointwise
        };
        let tiles = self.n * self.positions / 4;
        Kernel::new(family, consts, [tiles.div_ceil(64) as u32, oc.div_ceil(16) as u32, 1])
    }

    fn samples() -> Vec<Pointwise> {
        let sample = |textured| Pointwise {
            textured,
            n: 2,
            in_channels: 8,
            out_channels: 20,
            positions: 16,
            out_c: 24,
            out_offset: 2,
            has_bias: true,
            epilogue: Epilogue { activation: Some(Activation::Relu), residual: true },
        };
        vec![sample(false), sample(true)]
    }
}
