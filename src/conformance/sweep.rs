//! The backward sweep: convolutions, poolings, linear layers and batch-norms with attributes drawn
//! from a fixed stream, each one step of a small model, so that the backward kernels meet shapes no
//! one wrote down by hand. The
//! stream is fixed (not proptest's) because the cases are also exported to PyTorch
//! (`cnnc conformance --export-backward`) and compared with its float64 steps, so they must be the
//! same cases on every run.

use cnnc_compiler::graph::{Activation, Conv2d, Op, Pad4, Pool2d};

use super::backward::{case, flat_head, BackwardCase};
use super::net::{act, conv, linear, max_pool, ACTIVATIONS};

/// Convolution cases drawn.
const CONVOLUTIONS: u64 = 16;
/// Pooling cases drawn (windowed and adaptive).
const POOLINGS: u64 = 12;
/// Linear cases drawn.
const LINEARS: u64 = 6;
/// Batch-norm cases drawn.
const BATCH_NORMS: u64 = 6;

/// SplitMix64: a small fixed stream of draws.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn flip(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// Every sweep case: convolutions (a trainable 1×1 convolution before each, so its input gradient
/// is needed too), poolings and batch-norms (after a trainable 1×1 convolution), each under a flat
/// linear head, and stacks of two linear layers.
pub fn cases() -> Vec<BackwardCase> {
    let mut cases: Vec<BackwardCase> = (0..CONVOLUTIONS).map(convolution).collect();
    cases.extend((0..POOLINGS).map(pooling));
    cases.extend((0..LINEARS).map(linear_layers));
    cases.extend((0..BATCH_NORMS).map(batch_norm));
    cases
}

/// Two linear layers of drawn widths (multiples of 4, for the vec4 loads, or not), each with or
/// without a bias, an activation drawn between them, at batches of 1 to 5.
fn linear_layers(index: u64) -> BackwardCase {
    let mut d = Draws(0x11EA + index);
    let (input, hidden, classes) = (d.range(1, 24), d.range(1, 24), d.range(2, 7));
    let (bias1, bias2) = (d.flip(), d.flip());
    let a = ACTIVATIONS[d.range(0, ACTIVATIONS.len() - 1)];
    let batch = d.range(1, 5);
    let name = format!(
        "sweep {index}: linear {input} -> {hidden}{} -> {classes}{}, {a:?} between, batch {batch}",
        if bias1 { " (bias)" } else { "" },
        if bias2 { " (bias)" } else { "" }
    );
    case("linear_grad", &name, &[input], batch, move |n, x| {
        let y = n.apply(x, linear(hidden, bias1));
        let y = n.apply(y, act(a));
        n.apply(y, linear(classes, bias2))
    })
}

/// Batch-norm in training mode over drawn channels and extents (at least two values per channel),
/// with drawn `eps` and `momentum`, a ReLU after it or not.
fn batch_norm(index: u64) -> BackwardCase {
    let mut d = Draws(0xB0B0 + index);
    let (channels, h, w) = (d.range(1, 6), d.range(1, 7), d.range(1, 7));
    let batch = d.range(2, 4);
    let eps = [1e-5, 1e-3, 0.1][d.range(0, 2)];
    let momentum = [0.1, 0.01, 0.5, 1.0][d.range(0, 3)];
    let relu = d.flip();
    let name = format!(
        "sweep {index}: batch-norm of {channels} channels on {h}x{w}, batch {batch}, eps {eps}, momentum \
         {momentum}{}",
        if relu { ", then ReLU" } else { "" }
    );
    case("batch_norm_grad", &name, &[channels, h, w], batch, move |n, x| {
        let y = n.apply(x, Op::Conv2d(conv(channels, 1)));
        let mut y = n.apply(y, Op::BatchNorm { channels: 0, eps, momentum });
        if relu {
            y = n.apply(y, act(Activation::Relu));
        }
        flat_head(n, y)
    })
}

/// Groups (or depthwise), rectangular kernels, strides, dilation, asymmetric padding, bias.
fn convolution(index: u64) -> BackwardCase {
    let mut d = Draws(0xC04E + index);
    let depthwise = d.range(0, 3) == 0;
    let groups = if depthwise { d.range(2, 6) } else { d.range(1, 3) };
    let (icg, ocg) = if depthwise { (1, d.range(1, 2)) } else { (d.range(1, 4), d.range(1, 4)) };
    let (kh, kw) = (d.range(1, 5), d.range(1, 5));
    let stride = [d.range(1, 3), d.range(1, 3)];
    let dilation = d.range(1, 2);
    let padding = Pad4 {
        top: d.range(0, kh - 1),
        bottom: d.range(0, kh - 1),
        left: d.range(0, kw - 1),
        right: d.range(0, kw - 1),
    };
    let bias = d.flip();
    let input = [groups * icg, dilation * (kh - 1) + 1 + d.range(0, 6), dilation * (kw - 1) + 1 + d.range(0, 6)];
    let op = Conv2d {
        in_channels: 0,
        out_channels: groups * ocg,
        kernel: [kh, kw],
        stride,
        padding,
        dilation: [dilation, dilation],
        groups,
        bias,
    };
    let name = format!(
        "sweep {index}: {}x{} from {input:?}, groups {groups}, stride {stride:?}, dilation {dilation}, padding \
         {}/{}/{}/{}{}",
        kh,
        kw,
        padding.top,
        padding.bottom,
        padding.left,
        padding.right,
        if bias { ", bias" } else { "" }
    );
    case("conv_grad", &name, &input, d.range(1, 3), move |n, x| {
        let channels = n.shape(x).dims()[0];
        let y = n.apply(x, Op::Conv2d(conv(channels, 1)));
        let y = n.apply(y, Op::Conv2d(op.clone()));
        flat_head(n, y)
    })
}

/// Max (dilated) or average (padding counted or not) windows with `ceil_mode` and padding up to half
/// the kernel as PyTorch allows, or adaptive pooling to any size.
fn pooling(index: u64) -> BackwardCase {
    let mut d = Draws(0x9001 + index);
    let channels = d.range(1, 4);
    let is_max = d.flip();
    let batch = d.range(1, 3);
    let (op, input, name) = if d.range(0, 3) == 0 {
        let (h, w, oh, ow) = (d.range(1, 9), d.range(1, 9), d.range(1, 4), d.range(1, 4));
        let op = if is_max { Op::AdaptiveMaxPool { size: [oh, ow] } } else { Op::AdaptiveAvgPool { size: [oh, ow] } };
        let kind = if is_max { "max" } else { "average" };
        (op, [channels, h, w], format!("sweep {index}: adaptive {kind} [{h}, {w}] to [{oh}, {ow}]"))
    } else {
        let (kh, kw) = (d.range(1, 4), d.range(1, 4));
        let stride = [d.range(1, 3), d.range(1, 3)];
        let (top, left) = (d.range(0, 2).min(kh / 2), d.range(0, 2).min(kw / 2));
        let dilation = if is_max { d.range(1, 2) } else { 1 };
        let window = Pool2d {
            kernel: [kh, kw],
            stride,
            padding: Pad4 { top, bottom: top, left, right: left },
            dilation: [dilation, dilation],
            ceil_mode: d.flip(),
            count_include_pad: d.flip(),
        };
        let input = [channels, dilation * (kh - 1) + 1 + d.range(0, 6), dilation * (kw - 1) + 1 + d.range(0, 6)];
        let name = format!(
            "sweep {index}: {} {kh}x{kw} on {input:?}, stride {stride:?}, padding {top}/{left}, dilation {dilation}{}{}",
            if is_max { "max" } else { "average" },
            if window.ceil_mode { ", ceil_mode" } else { "" },
            if !is_max && !window.count_include_pad { ", padding not counted" } else { "" }
        );
        let op = if is_max { max_pool(window) } else { Op::AvgPool(window) };
        (op, input, name)
    };
    let family = if matches!(op, Op::AdaptiveMaxPool { .. } | Op::AdaptiveAvgPool { .. }) {
        "adaptive_pool_grad"
    } else {
        "pool_grad"
    };
    case(family, &name, &input, batch, move |n, x| {
        let y = n.apply(x, Op::Conv2d(conv(channels, 1)));
        let y = n.apply(y, op.clone());
        flat_head(n, y)
    })
}
