//! One plain function per op over NCHW tensors. Sums accumulate in f64.

use cnnc_ir::graph::{Activation, Conv2d, Pool2d};

use crate::tensor::{Element, Tensor};

pub(super) fn nchw<T>(t: &Tensor<T>) -> (usize, usize, usize, usize) {
    match t.shape[..] {
        [n, c, h, w] => (n, c, h, w),
        _ => unreachable!("checked graphs give image ops [N, C, H, W] inputs, found {:?}", t.shape),
    }
}

/// Runs `f(index, chunk)` over `out` in chunks of `chunk` elements, spread across the cores.
pub(super) fn parallel_chunks<T: Send>(out: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunks = out.len() / chunk.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.max(1));
    if threads <= 1 || out.len() < 1 << 14 {
        for (i, c) in out.chunks_mut(chunk.max(1)).enumerate() {
            f(i, c);
        }
        return;
    }
    let per_thread = chunks.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, part) in out.chunks_mut(per_thread * chunk).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (i, c) in part.chunks_mut(chunk).enumerate() {
                    f(t * per_thread + i, c);
                }
            });
        }
    });
}

/// The `[lo, hi)` range of output positions whose input position `o * stride + offset` lies in `[0, len)`.
pub(super) fn valid_range(len: usize, out: usize, stride: usize, offset: isize) -> (usize, usize) {
    let (len, stride) = (len as isize, stride as isize);
    let lo = if offset >= 0 { 0 } else { (-offset + stride - 1) / stride };
    let hi = if len - offset <= 0 { 0 } else { (len - offset + stride - 1) / stride };
    (lo.clamp(0, out as isize) as usize, hi.clamp(0, out as isize) as usize)
}

pub fn conv2d<T: Element>(x: &Tensor<T>, c: &Conv2d, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Tensor<T> {
    let (n, ic, h, wd) = nchw(x);
    let [kh, kw] = c.kernel;
    let [sy, sx] = c.stride;
    let [dy, dx] = c.dilation;
    let oh = (h + c.padding.top + c.padding.bottom - dy * (kh - 1) - 1) / sy + 1;
    let ow = (wd + c.padding.left + c.padding.right - dx * (kw - 1) - 1) / sx + 1;
    let (oc, groups) = (c.out_channels, c.groups);
    let (icg, ocg) = (ic / groups, oc / groups);
    let mut out = vec![T::default(); n * oc * oh * ow];
    parallel_chunks(&mut out, oh * ow, |plane, dst| {
        let (bn, o) = (plane / oc, plane % oc);
        let g = o / ocg;
        let mut acc = vec![b.map_or(0.0, |b| b.data[o].to_f64()); oh * ow];
        for ci in 0..icg {
            let src = &x.data[(bn * ic + g * icg + ci) * h * wd..][..h * wd];
            for ky in 0..kh {
                let y_off = (ky * dy) as isize - c.padding.top as isize;
                let (y_lo, y_hi) = valid_range(h, oh, sy, y_off);
                for kx in 0..kw {
                    let wv = w.data[((o * icg + ci) * kh + ky) * kw + kx].to_f64();
                    let x_off = (kx * dx) as isize - c.padding.left as isize;
                    let (x_lo, x_hi) = valid_range(wd, ow, sx, x_off);
                    for oy in y_lo..y_hi {
                        let row = &src[((oy * sy) as isize + y_off) as usize * wd..][..wd];
                        let acc_row = &mut acc[oy * ow..][..ow];
                        for ox in x_lo..x_hi {
                            acc_row[ox] += wv * row[((ox * sx) as isize + x_off) as usize].to_f64();
                        }
                    }
                }
            }
        }
        for (d, a) in dst.iter_mut().zip(acc) {
            *d = T::from_f64(a);
        }
    });
    Tensor::new(vec![n, oc, oh, ow], out)
}

pub fn linear<T: Element>(x: &Tensor<T>, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Tensor<T> {
    let (out_f, in_f) = (w.shape[0], w.shape[1]);
    let rows = x.len() / in_f;
    let mut out = vec![T::default(); rows * out_f];
    parallel_chunks(&mut out, out_f, |r, dst| {
        let xs = &x.data[r * in_f..][..in_f];
        for (o, d) in dst.iter_mut().enumerate() {
            let ws = &w.data[o * in_f..][..in_f];
            let dot: f64 = xs.iter().zip(ws).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
            *d = T::from_f64(dot + b.map_or(0.0, |b| b.data[o].to_f64()));
        }
    });
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("rank ≥ 1") = out_f;
    Tensor::new(shape, out)
}

pub fn batch_norm<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: &Tensor<T>,
    mean: &Tensor<T>,
    var: &Tensor<T>,
    eps: f64,
) -> Tensor<T> {
    let (_, c, h, wd) = nchw(x);
    let plane = h * wd;
    // Folded per channel as PyTorch's inference kernel folds it, then one multiply-add in f64 (as
    // exact as its fused one).
    let (alpha, beta) = crate::fold::batch_norm_affine(w, b, mean, var, eps);
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / plane) % c;
            T::from_f64(v.to_f64() * alpha[ch] + beta[ch])
        })
        .collect();
    Tensor::new(x.shape.clone(), data)
}

/// A running max as PyTorch's max pooling takes it: `b` replaces `a` when `b > a` or `b` is NaN,
/// so NaN stays once seen and of equal values the first is kept (−0.0 before 0.0 stays −0.0;
/// `f64::max` returns the other operand for NaN and either zero for ±0.0).
pub fn max_nan(a: f64, b: f64) -> f64 {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// One activation function on one value, in f64.
pub fn activate(a: Activation, x: f64) -> f64 {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    match a {
        // `x` itself where not negative: NaN stays NaN and −0.0 stays −0.0, as in PyTorch.
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::LeakyRelu { slope } => {
            if x >= 0.0 {
                x
            } else {
                x * slope
            }
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Tanh => x.tanh(),
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
    }
}

/// `a` over `x`. Hard-swish multiplies before it divides, as PyTorch does, and the product is
/// rounded to the data's type first, so that `FLT_MAX · 6` overflows to ∞ in float32 data as it does
/// in PyTorch instead of coming back to `FLT_MAX` in f64.
pub fn activation<T: Element>(x: &Tensor<T>, a: Activation) -> Tensor<T> {
    let apply = |x: f64| match a {
        Activation::HardSwish => overflowed::<T>(x * (x + 3.0).clamp(0.0, 6.0)) / 6.0,
        _ => activate(a, x),
    };
    Tensor::new(x.shape.clone(), x.data.iter().map(|v| T::from_f64(apply(v.to_f64()))).collect())
}

/// `v` (computed in f64), or ±∞ where `T`'s arithmetic would have overflowed: PyTorch's float32
/// kernels sum and multiply in float32, so a sum of `FLT_MAX`s is ∞ there, and an average of
/// them too.
pub fn overflowed<T: Element>(v: f64) -> f64 {
    let rounded = T::from_f64(v).to_f64();
    if rounded.is_infinite() {
        rounded
    } else {
        v
    }
}

/// The sum of `values` in f64, or, where adding them in order in `T`'s arithmetic overflows, that
/// sum (±∞ or NaN): PyTorch's float32 pooling adds a window's values in float32, so `FLT_MAX,
/// FLT_MAX, -FLT_MAX, -FLT_MAX` averages to ∞ there, not to 0.
pub fn summed<T: Element>(values: impl Iterator<Item = f64>) -> f64 {
    let (mut wide, mut narrow) = (0f64, 0f64);
    for v in values {
        wide += v;
        narrow = T::from_f64(narrow + v).to_f64();
    }
    // Where T's sum is not finite it is PyTorch's (∞, or NaN from ∞ − ∞ on the way), even when
    // the f64 sum is infinite too with another sign or value.
    if narrow.is_finite() {
        wide
    } else {
        narrow
    }
}

pub(super) fn pooled<T>(x: &Tensor<T>, p: &Pool2d) -> (usize, usize) {
    let (_, _, h, w) = nchw(x);
    let dim = |len: usize, k: usize, s: usize, lo: usize, hi: usize, d: usize| {
        cnnc_ir::window::output_len(len, k, s, (lo, hi), d, p.ceil_mode).expect("checked by the shape rules")
    };
    (
        dim(h, p.kernel[0], p.stride[0], p.padding.top, p.padding.bottom, p.dilation[0]),
        dim(w, p.kernel[1], p.stride[1], p.padding.left, p.padding.right, p.dilation[1]),
    )
}

pub fn max_pool<T: Element>(x: &Tensor<T>, p: &Pool2d) -> Tensor<T> {
    let (n, c, h, w) = nchw(x);
    let (oh, ow) = pooled(x, p);
    let mut out = vec![T::default(); n * c * oh * ow];
    parallel_chunks(&mut out, oh * ow, |plane, dst| {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let best = window_argmax(src, [h, w], p, [oy, ox]).map_or(f64::NEG_INFINITY, |at| src[at].to_f64());
                dst[oy * ow + ox] = T::from_f64(best);
            }
        }
    });
    Tensor::new(vec![n, c, oh, ow], out)
}

/// The index in one `[H, W]` plane of output `[oy, ox]`'s maximum: the first largest in scan order
/// (PyTorch's tie rule: a later equal value does not replace it), or the last NaN; `None` for a
/// window wholly in the padding. Max pooling's forward takes its value and its backward routes the
/// gradient there.
pub(super) fn window_argmax<T: Element>(
    src: &[T],
    [h, w]: [usize; 2],
    p: &Pool2d,
    [oy, ox]: [usize; 2],
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for ky in 0..p.kernel[0] {
        let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize - p.padding.top as isize;
        if iy < 0 || iy >= h as isize {
            continue;
        }
        for kx in 0..p.kernel[1] {
            let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize - p.padding.left as isize;
            if ix >= 0 && ix < w as isize {
                let at = iy as usize * w + ix as usize;
                let value = src[at].to_f64();
                if best.is_none_or(|(_, v)| value > v || value.is_nan()) {
                    best = Some((at, value));
                }
            }
        }
    }
    best.map(|(at, _)| at)
}

/// Average pooling with PyTorch's divisor rules: windows are clipped to the padded input, and with
/// `count_include_pad` the divisor counts the padding inside that clipped window.
pub fn avg_pool<T: Element>(x: &Tensor<T>, p: &Pool2d) -> Tensor<T> {
    let (n, c, h, w) = nchw(x);
    let (oh, ow) = pooled(x, p);
    let mut out = vec![T::default(); n * c * oh * ow];
    parallel_chunks(&mut out, oh * ow, |plane, dst| {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            let y0 = (oy * p.stride[0]) as isize - p.padding.top as isize;
            let y1 = (y0 + p.kernel[0] as isize).min((h + p.padding.bottom) as isize);
            let (ys, ye) = (y0.max(0), y1.min(h as isize));
            for ox in 0..ow {
                let x0 = (ox * p.stride[1]) as isize - p.padding.left as isize;
                let x1 = (x0 + p.kernel[1] as isize).min((w + p.padding.right) as isize);
                let (xs, xe) = (x0.max(0), x1.min(w as isize));
                let cells = (ys..ye).flat_map(|iy| (xs..xe).map(move |ix| src[iy as usize * w + ix as usize].to_f64()));
                let sum = summed::<T>(cells);
                let count = if p.count_include_pad { (y1 - y0) * (x1 - x0) } else { (ye - ys) * (xe - xs) };
                dst[oy * ow + ox] = T::from_f64(overflowed::<T>(sum) / count.max(1) as f64);
            }
        }
    });
    Tensor::new(vec![n, c, oh, ow], out)
}

/// Adaptive pooling: output cell `i` covers `[floor(i·in/out), ceil((i+1)·in/out))`.
pub fn adaptive_pool<T: Element>(x: &Tensor<T>, size: [usize; 2], max: bool) -> Tensor<T> {
    let (n, c, h, w) = nchw(x);
    let [oh, ow] = size;
    let mut out = vec![T::default(); n * c * oh * ow];
    parallel_chunks(&mut out, oh * ow, |plane, dst| {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            let (ys, ye) = (oy * h / oh, ((oy + 1) * h).div_ceil(oh));
            for ox in 0..ow {
                let (xs, xe) = (ox * w / ow, ((ox + 1) * w).div_ceil(ow));
                let cells = (ys..ye).flat_map(|iy| (xs..xe).map(move |ix| src[iy * w + ix].to_f64()));
                dst[oy * ow + ox] = T::from_f64(if max {
                    cells.fold(f64::NEG_INFINITY, max_nan)
                } else {
                    overflowed::<T>(summed::<T>(cells)) / ((ye - ys) * (xe - xs)) as f64
                });
            }
        }
    });
    Tensor::new(vec![n, c, oh, ow], out)
}

/// Concatenation along dim 1 (channels or features).
pub fn concat<T: Element>(inputs: &[&Tensor<T>]) -> Tensor<T> {
    let n = inputs[0].batch();
    let mut shape = inputs[0].shape.clone();
    shape[1] = inputs.iter().map(|t| t.shape[1]).sum();
    let mut data = Vec::with_capacity(inputs.iter().map(|t| t.len()).sum());
    for b in 0..n {
        for t in inputs {
            data.extend_from_slice(&t.data[b * t.item_len()..][..t.item_len()]);
        }
    }
    Tensor::new(shape, data)
}

pub fn add<T: Element>(inputs: &[&Tensor<T>]) -> Tensor<T> {
    let data =
        (0..inputs[0].len()).map(|i| T::from_f64(inputs.iter().map(|t| t.data[i].to_f64()).sum::<f64>())).collect();
    Tensor::new(inputs[0].shape.clone(), data)
}

/// NumPy broadcasting of several shapes (the batch dim included): the result's shape and, per
/// input, the stride of each result dim in that input (0 where the input is broadcast).
pub(super) fn broadcast(shapes: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let padded = |s: &[usize]| -> Vec<usize> {
        let mut d = vec![1; rank - s.len()];
        d.extend(s);
        d
    };
    let shape: Vec<usize> = (0..rank).map(|i| shapes.iter().map(|s| padded(s)[i]).max().unwrap_or(1)).collect();
    let strides = shapes
        .iter()
        .map(|s| {
            let d = padded(s);
            let mut strides = vec![0; rank];
            let mut acc = 1;
            for i in (0..rank).rev() {
                strides[i] = if d[i] == 1 { 0 } else { acc };
                acc *= d[i];
            }
            strides
        })
        .collect();
    (shape, strides)
}

/// Calls `f(result index, offset in each input)` for every element of a broadcast, in row-major order.
pub(super) fn for_each_broadcast(shape: &[usize], strides: &[Vec<usize>], mut f: impl FnMut(usize, &[usize])) {
    let len: usize = shape.iter().product();
    let mut index = vec![0usize; shape.len()];
    let mut offsets = vec![0usize; strides.len()];
    for at in 0..len {
        for (o, s) in offsets.iter_mut().zip(strides) {
            *o = index.iter().zip(s).map(|(i, s)| i * s).sum();
        }
        f(at, &offsets);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// Elementwise product with NumPy broadcasting (the batch dim included).
pub fn mul<T: Element>(inputs: &[&Tensor<T>]) -> Tensor<T> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
    let (shape, strides) = broadcast(&shapes);
    let mut data = Vec::with_capacity(shape.iter().product());
    for_each_broadcast(&shape, &strides, |_, offsets| {
        let product: f64 = inputs.iter().zip(offsets).map(|(t, o)| t.data[*o].to_f64()).product();
        data.push(T::from_f64(product));
    });
    Tensor::new(shape, data)
}

/// `view(n, g, c/g, h, w).transpose(1, 2)`.
pub fn channel_shuffle<T: Element>(x: &Tensor<T>, groups: usize) -> Tensor<T> {
    let (n, c, h, w) = nchw(x);
    let per_group = c / groups;
    let plane = h * w;
    let mut out = vec![T::default(); x.len()];
    for b in 0..n {
        for i in 0..groups {
            for j in 0..per_group {
                let (from, to) = (b * c + i * per_group + j, b * c + j * groups + i);
                out[to * plane..][..plane].copy_from_slice(&x.data[from * plane..][..plane]);
            }
        }
    }
    Tensor::new(x.shape.clone(), out)
}

pub fn chunk<T: Element>(x: &Tensor<T>, chunks: usize, index: usize) -> Tensor<T> {
    let (n, c, h, w) = nchw(x);
    let per = c / chunks;
    let block = per * h * w;
    let mut data = Vec::with_capacity(n * block);
    for b in 0..n {
        data.extend_from_slice(&x.data[(b * c + index * per) * h * w..][..block]);
    }
    Tensor::new(vec![n, per, h, w], data)
}

/// PyTorch's `local_response_norm`: `x / (k + alpha/size · Σ x²)^beta` over a window of `size`
/// channels starting `size/2` before the channel.
pub fn lrn<T: Element>(x: &Tensor<T>, size: usize, alpha: f64, beta: f64, k: f64) -> Tensor<T> {
    let (n, c, h, w) = nchw(x);
    let plane = h * w;
    let mut out = vec![T::default(); x.len()];
    for b in 0..n {
        for ch in 0..c {
            let lo = ch.saturating_sub(size / 2);
            let hi = (ch + (size - 1) / 2 + 1).min(c);
            for p in 0..plane {
                // As PyTorch's local_response_norm composes it in float32: squares, their average
                // over the window, · alpha + k, ^ beta; each step overflows where T's would.
                let squares = (lo..hi).map(|cc| overflowed::<T>(x.data[(b * c + cc) * plane + p].to_f64().powi(2)));
                let average = overflowed::<T>(summed::<T>(squares)) / size as f64;
                let base = overflowed::<T>(overflowed::<T>(average * alpha) + k);
                let v = x.data[(b * c + ch) * plane + p].to_f64();
                out[(b * c + ch) * plane + p] = T::from_f64(v / overflowed::<T>(base.powf(beta)));
            }
        }
    }
    Tensor::new(x.shape.clone(), out)
}

/// Softmax over dim 1.
pub fn softmax<T: Element>(x: &Tensor<T>) -> Tensor<T> {
    let n = x.batch();
    let c = x.shape[1];
    let inner = x.item_len() / c;
    let mut out = vec![T::default(); x.len()];
    for b in 0..n {
        for p in 0..inner {
            let at = |ch: usize| (b * c + ch) * inner + p;
            let max = (0..c).map(|ch| x.data[at(ch)].to_f64()).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..c).map(|ch| (x.data[at(ch)].to_f64() - max).exp()).sum();
            for ch in 0..c {
                out[at(ch)] = T::from_f64((x.data[at(ch)].to_f64() - max).exp() / sum);
            }
        }
    }
    Tensor::new(x.shape.clone(), out)
}

pub fn channel_affine<T: Element>(x: &Tensor<T>, scale: &[f64], shift: &[f64]) -> Tensor<T> {
    let (_, c, h, w) = nchw(x);
    let plane = h * w;
    // The constants in the data's type, as a float32 model holds them (a scale of 1e39 is ∞).
    let narrow = |v: &[f64]| v.iter().map(|s| T::from_f64(*s).to_f64()).collect::<Vec<f64>>();
    let (scale, shift) = (narrow(scale), narrow(shift));
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| T::from_f64(v.to_f64() * scale[(i / plane) % c] + shift[(i / plane) % c]))
        .collect();
    Tensor::new(x.shape.clone(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnnc_ir::graph::Pad4;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec())
    }

    /// Signed zeros and a zero variance as PyTorch gives them (torch 2.x): `relu(-0.0)` is −0.0,
    /// and eval batch-norm with variance 0 and eps 0 is NaN (its folded shift is `0 · ∞`).
    #[test]
    fn relu_keeps_negative_zero_and_batch_norm_folds_as_pytorch() {
        let relu = activation(&t(&[3], &[-0.0, 0.0, -2.0]), Activation::Relu);
        assert_eq!(
            relu.data.iter().map(|v| v.is_sign_negative()).collect::<Vec<_>>(),
            [true, false, false],
            "{:?}",
            relu.data
        );
        let one = t(&[1], &[1.0]);
        let bn = batch_norm(
            &t(&[1, 1, 1, 2], &[1.0, -1.0]),
            &one,
            &t(&[1], &[0.0]),
            &t(&[1], &[0.0]),
            &t(&[1], &[0.0]),
            0.0,
        );
        assert!(bn.data.iter().all(|v| v.is_nan()), "{:?}", bn.data);
    }

    #[test]
    fn conv_handles_padding_stride_and_groups() {
        // 1×1×3×3 input, 2×2 kernel of ones, padding 1, stride 2: sums of the corners' neighbourhoods.
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let c = Conv2d {
            in_channels: 1,
            out_channels: 1,
            kernel: [2, 2],
            stride: [2, 2],
            padding: Pad4::uniform(1),
            dilation: [1, 1],
            groups: 1,
            bias: false,
        };
        let y = conv2d(&x, &c, &t(&[1, 1, 2, 2], &[1., 1., 1., 1.]), None);
        assert_eq!(y.shape, vec![1, 1, 2, 2]);
        assert_eq!(y.data, vec![1., 5., 11., 28.]);
        // Depthwise: each channel scaled by its own weight, plus bias.
        let x = t(&[1, 2, 1, 2], &[1., 2., 3., 4.]);
        let c = Conv2d {
            in_channels: 2,
            out_channels: 2,
            kernel: [1, 1],
            stride: [1, 1],
            padding: Pad4::default(),
            dilation: [1, 1],
            groups: 2,
            bias: true,
        };
        let y = conv2d(&x, &c, &t(&[2, 1, 1, 1], &[10., -1.]), Some(&t(&[2], &[0.5, 0.0])));
        assert_eq!(y.data, vec![10.5, 20.5, -3., -4.]);
    }

    #[test]
    fn pooling_follows_pytorch() {
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let p = Pool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: Pad4::default(),
            dilation: [1, 1],
            ceil_mode: true,
            count_include_pad: true,
        };
        assert_eq!(max_pool(&x, &p).data, vec![5., 6., 8., 9.]);
        // ceil_mode windows hanging off the input divide by the cells inside it.
        assert_eq!(avg_pool(&x, &p).data, vec![3., 4.5, 7.5, 9.]);
        let p = Pool2d { padding: Pad4::uniform(1), ceil_mode: false, ..p };
        assert_eq!(avg_pool(&x, &p).data, vec![0.25, 1.25, 2.75, 7.]);
        let p = Pool2d { count_include_pad: false, ..p };
        assert_eq!(avg_pool(&x, &p).data, vec![1., 2.5, 5.5, 7.]);
        assert_eq!(adaptive_pool(&x, [2, 2], false).data, vec![3., 4., 6., 7.]);
    }

    #[test]
    fn shuffle_chunk_mul_and_lrn() {
        let x = t(&[1, 4, 1, 1], &[0., 1., 2., 3.]);
        assert_eq!(channel_shuffle(&x, 2).data, vec![0., 2., 1., 3.]);
        assert_eq!(chunk(&x, 2, 1).data, vec![2., 3.]);
        let gate = t(&[1, 4, 1, 1], &[1., 2., 3., 4.]);
        let img = t(&[1, 4, 1, 2], &[1., 1., 1., 1., 1., 1., 1., 1.]);
        assert_eq!(mul(&[&img, &gate]).data, vec![1., 1., 2., 2., 3., 3., 4., 4.]);
        let y = lrn(&t(&[1, 2, 1, 1], &[1., 2.]), 2, 1.0, 1.0, 1.0);
        assert!((y.data[0] - 1.0 / (1.0 + 0.5)).abs() < 1e-6);
        assert!((y.data[1] - 2.0 / (1.0 + 2.5)).abs() < 1e-6);
    }
}
