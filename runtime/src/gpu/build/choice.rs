//! Which kernel runs a convolution, decided from its shape and the device's texture limits alone,
//! so the policy can be read and tested without a GPU.

use cnnc_ir::graph::Conv2d;

use crate::gpu::kernels::{DirectVariant, UnrolledConv, TEXTURE_WIDTH};
use crate::gpu::record::{texture_rows, TexelFormat};

/// What the device and the options allow for textures.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextureLimits {
    /// Whether kernels may read through textures at all (`PlanOptions::textures`).
    pub enabled: bool,
    /// The device's largest 2-D texture side, in texels.
    pub max_dimension: usize,
}

impl TextureLimits {
    /// Whether a tensor of `floats` floats fits one texture of `format`.
    pub fn fits(&self, floats: usize, format: TexelFormat) -> bool {
        self.enabled
            && TEXTURE_WIDTH as usize <= self.max_dimension
            && texture_rows(floats.div_ceil(format.floats())) <= self.max_dimension
    }
}

/// A convolution layer as the choice sees it.
#[derive(Clone, Debug)]
pub(crate) struct ConvShape<'c> {
    pub conv: &'c Conv2d,
    /// Batch items per dispatch.
    pub chunk: usize,
    /// `[IC, IH, IW]` and `[OC, OH, OW]` of one item.
    pub input: [usize; 3],
    pub output: [usize; 3],
    /// A residual add is fused into the layer.
    pub residual: bool,
    /// The result goes into a concat's slice.
    pub into_concat: bool,
}

/// The kernel for a convolution and how it is specialised.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConvChoice {
    /// A 1×1 convolution as a GEMM over quads of positions; with a stride, over a subsampled copy
    /// of the input.
    Pointwise { textured: bool, subsample: bool },
    /// A small convolution of one group written out for its shape ([`UnrolledConv`]), as training
    /// runs it.
    Unrolled,
    /// The direct convolution.
    Direct {
        variant: DirectVariant,
        /// Output channels per invocation.
        oc_tile: usize,
        /// Extents baked into the source (short convolutions).
        bake_shape: bool,
        /// The residual add and activation run as an elementwise pass after the convolution.
        separate_residual: bool,
    },
}

/// Chooses the kernel for a convolution:
/// - a 1×1 convolution with one group and no padding is a GEMM when 4 consecutive output positions
///   are 4 consecutive floats (positions per image a multiple of 4);
/// - where `unrolled` allows, a small convolution of one group (at most 16 outputs and 2,400
///   weights, a window larger than 1×1, LeNet's) is written out for its shape with its weights in a
///   uniform buffer, unless a residual add is fused or the result goes into a concat's slice:
///   LeNet's first convolution at batch 64 takes 3.7 ms so on lavapipe against 11.5 ms through
///   textures;
/// - textures where the input and the laid-out weights fit one (vectorised fetches on CPU drivers);
/// - tiles of 16 output channels where the texture kernel can (groups of 16, or one group of at least
///   16 with a padded last tile), else 4 where groups allow, else one padded tile of 16 for a single
///   group (LeNet's 6 outputs: each input tap loaded once for all of them, 3× faster on lavapipe than
///   a channel at a time), else 1; tiles never straddle groups;
/// - vec4 stores where positions per image are a multiple of 4;
/// - with the scalar-store texture epilogue, a fused residual is slow to compile on CPU drivers (four
///   scalar loads per channel on top of four scalar stores), so the residual add and activation run
///   as an elementwise pass instead, unless the result goes into a concat's slice;
/// - a convolution of at most 32 taps per output (depthwise) does too little per invocation to hide
///   the integer work of run-time extents: its extents are baked, at the price of a pipeline per size.
pub(crate) fn choose_conv(shape: &ConvShape, textures: TextureLimits, unrolled: bool) -> ConvChoice {
    let c = shape.conv;
    let ([ic, ih, iw], [oc, oh, ow]) = (shape.input, shape.output);
    let positions = oh * ow;
    if c.kernel == [1, 1] && c.padding == Default::default() && c.groups == 1 && positions % 4 == 0 {
        let input_floats = shape.chunk * ic * positions;
        let weight_floats = ic * oc.next_multiple_of(16);
        let textured =
            textures.fits(input_floats, TexelFormat::Vec4) && textures.fits(weight_floats, TexelFormat::Vec4);
        return ConvChoice::Pointwise { textured, subsample: c.stride != [1, 1] };
    }
    let fits = || UnrolledConv::fits(shape.chunk, shape.input, shape.output, c).is_some();
    if unrolled && !shape.residual && !shape.into_concat && fits() {
        return ConvChoice::Unrolled;
    }
    let ocg = oc / c.groups;
    let taps = ic / c.groups * c.kernel[0] * c.kernel[1];
    let textured = textures.fits(shape.chunk * ic * ih * iw, TexelFormat::Scalar)
        && textures.fits((oc * taps).next_multiple_of(16) * 4, TexelFormat::Vec4);
    let oc_tile = match ocg {
        _ if textured && (ocg.is_multiple_of(16) || (c.groups == 1 && ocg >= 16)) => 16,
        _ if ocg.is_multiple_of(4) => 4,
        _ if textured && c.groups == 1 => 16,
        _ => 1,
    };
    let variant = match (textured, positions % 4 == 0) {
        (false, _) => DirectVariant::Buffer,
        (true, true) => DirectVariant::TextureVec4,
        (true, false) => DirectVariant::Texture,
    };
    let separate_residual = variant == DirectVariant::Texture && shape.residual && !shape.into_concat;
    ConvChoice::Direct { variant, oc_tile, bake_shape: taps <= 32, separate_residual }
}

#[cfg(test)]
mod tests {
    use cnnc_ir::graph::Pad4;

    use super::*;

    const DEVICE: TextureLimits = TextureLimits { enabled: true, max_dimension: 8192 };

    fn conv(ic: usize, oc: usize, k: usize, stride: usize, pad: usize, groups: usize) -> Conv2d {
        Conv2d {
            in_channels: ic,
            out_channels: oc,
            kernel: [k, k],
            stride: [stride, stride],
            padding: Pad4::uniform(pad),
            dilation: [1, 1],
            groups,
            bias: false,
        }
    }

    fn choose(c: &Conv2d, size: usize, out: usize, residual: bool, limits: TextureLimits) -> ConvChoice {
        let shape = ConvShape {
            conv: c,
            chunk: 1,
            input: [c.in_channels, size, size],
            output: [c.out_channels, out, out],
            residual,
            into_concat: false,
        };
        choose_conv(&shape, limits, true)
    }

    fn direct(variant: DirectVariant, oc_tile: usize, bake_shape: bool, separate_residual: bool) -> ConvChoice {
        ConvChoice::Direct { variant, oc_tile, bake_shape, separate_residual }
    }

    #[test]
    fn the_kernel_follows_the_shape() {
        use DirectVariant::*;
        let cases = [
            // ResNet's stem: 7×7, stride 2, 147 taps; 112×112 positions take vec4 stores.
            (conv(3, 64, 7, 2, 3, 1), 224, 112, false, direct(TextureVec4, 16, false, false)),
            // A 1×1 bottleneck expansion: the GEMM, through textures.
            (conv(64, 256, 1, 1, 0, 1), 56, 56, false, ConvChoice::Pointwise { textured: true, subsample: false }),
            // A strided 1×1 projection: the GEMM over a subsampled input.
            (conv(256, 512, 1, 2, 0, 1), 56, 28, false, ConvChoice::Pointwise { textured: true, subsample: true }),
            // A 1×1 on a 7×7 map (49 positions): the direct kernel, scalar stores, residual apart.
            (conv(512, 2048, 1, 1, 0, 1), 7, 7, true, direct(Texture, 16, false, true)),
            // Depthwise 3×3: one channel per group, 9 taps, extents baked.
            (conv(32, 32, 3, 1, 1, 32), 112, 112, false, direct(TextureVec4, 1, true, false)),
            // 20 outputs in one group: a padded last tile of 16.
            (conv(3, 20, 3, 1, 1, 1), 9, 9, false, direct(Texture, 16, true, false)),
            // LeNet's convolutions: small, of one group, written out for their shapes.
            (conv(3, 6, 5, 1, 0, 1), 32, 28, false, ConvChoice::Unrolled),
            (conv(6, 16, 5, 1, 0, 1), 14, 10, false, ConvChoice::Unrolled),
            // The same with a residual add fused: the direct kernel, one padded tile of 16.
            (conv(3, 6, 5, 1, 0, 1), 32, 28, true, direct(TextureVec4, 16, false, false)),
            // 17 outputs, or 2,592 weights: too many to write out.
            (conv(3, 17, 3, 1, 1, 1), 9, 9, false, direct(Texture, 16, true, false)),
            (conv(18, 16, 3, 1, 1, 1), 9, 9, false, direct(Texture, 16, false, false)),
            // Two groups of 6 outputs: tiles of 1 (6 is not a multiple of 4, and tiles stay in a group).
            (conv(4, 12, 3, 1, 0, 2), 6, 4, false, direct(TextureVec4, 1, true, false)),
            // Two groups of 8 outputs: tiles of 4.
            (conv(4, 16, 3, 1, 0, 2), 6, 4, false, direct(TextureVec4, 4, true, false)),
        ];
        for (i, (c, size, out, residual, want)) in cases.into_iter().enumerate() {
            assert_eq!(choose(&c, size, out, residual, DEVICE), want, "case {i}");
        }
    }

    #[test]
    fn small_convolutions_are_written_out_only_where_allowed() {
        let shape = ConvShape {
            conv: &conv(3, 6, 5, 1, 0, 1),
            chunk: 64,
            input: [3, 32, 32],
            output: [6, 28, 28],
            residual: false,
            into_concat: false,
        };
        assert_eq!(choose_conv(&shape, DEVICE, true), ConvChoice::Unrolled);
        assert_eq!(choose_conv(&shape, DEVICE, false), direct(DirectVariant::TextureVec4, 16, false, false));
        let into_concat = ConvShape { into_concat: true, ..shape };
        assert_eq!(choose_conv(&into_concat, DEVICE, true), direct(DirectVariant::TextureVec4, 16, false, false));
        use crate::gpu::build::UnrolledPolicy;
        assert!(!UnrolledPolicy::LargeBatches.allows(31) && UnrolledPolicy::LargeBatches.allows(32));
        assert!(UnrolledPolicy::Always.allows(1) && !UnrolledPolicy::Never.allows(1000));
    }

    #[test]
    fn without_textures_the_buffer_kernels_run() {
        let off = TextureLimits { enabled: false, ..DEVICE };
        assert_eq!(
            choose(&conv(3, 64, 7, 2, 3, 1), 224, 112, false, off),
            direct(DirectVariant::Buffer, 4, false, false)
        );
        assert_eq!(
            choose(&conv(64, 256, 1, 1, 0, 1), 56, 56, false, off),
            ConvChoice::Pointwise { textured: false, subsample: false }
        );
        // A tensor taller than the device's largest texture falls back as well.
        let small = TextureLimits { enabled: true, max_dimension: 4096 };
        assert_eq!(
            choose(&conv(64, 64, 3, 1, 1, 1), 512, 512, true, small),
            direct(DirectVariant::Buffer, 4, false, false)
        );
    }

    #[test]
    fn a_texture_fits_by_rows_of_the_fixed_width() {
        let limits = TextureLimits { enabled: true, max_dimension: 4096 };
        assert!(limits.fits(4096 * 4095, TexelFormat::Scalar));
        assert!(!limits.fits(4096 * 4096 + 1, TexelFormat::Scalar));
        assert!(limits.fits(4 * 4096 * 4095, TexelFormat::Vec4));
        assert!(!TextureLimits { enabled: true, max_dimension: 2048 }.fits(16, TexelFormat::Scalar));
    }
}
