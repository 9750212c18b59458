//! Backward rules, one plain function per op, in f64: given the forward's operands (and output where
//! cheaper) and the gradient `dy` of the op's output, the gradient of an input or a parameter. Each
//! element of a result is accumulated by one loop in a fixed order, so results do not depend on
//! threads. Conventions at kinks and ties are PyTorch's (cited per rule); the gradient tests check
//! every rule against finite differences.

use cnnc_ir::graph::{Activation, Conv2d, Pool2d};

use super::ops::{broadcast, for_each_broadcast, nchw, parallel_chunks, pooled, valid_range, window_argmax};
use crate::Tensor;

type T64 = Tensor<f64>;

/// `∂L/∂x` of a convolution: each input plane gathers `w · dy` over the taps that read it.
pub fn conv2d_input(dy: &T64, c: &Conv2d, w: &T64, x_shape: &[usize]) -> T64 {
    let (n, ic, h, wd) = (x_shape[0], x_shape[1], x_shape[2], x_shape[3]);
    let (_, oc, oh, ow) = nchw(dy);
    let ([kh, kw], [sy, sx], [dly, dlx]) = (c.kernel, c.stride, c.dilation);
    let (icg, ocg) = (ic / c.groups, oc / c.groups);
    let mut dx = vec![0f64; n * ic * h * wd];
    parallel_chunks(&mut dx, h * wd, |plane, dst| {
        let (b, ci) = (plane / ic, plane % ic);
        let (g, cig) = (ci / icg, ci % icg);
        for o in g * ocg..(g + 1) * ocg {
            let dyp = &dy.data[(b * oc + o) * oh * ow..][..oh * ow];
            for ky in 0..kh {
                let y_off = (ky * dly) as isize - c.padding.top as isize;
                let (y_lo, y_hi) = valid_range(h, oh, sy, y_off);
                for kx in 0..kw {
                    let wv = w.data[((o * icg + cig) * kh + ky) * kw + kx];
                    let x_off = (kx * dlx) as isize - c.padding.left as isize;
                    let (x_lo, x_hi) = valid_range(wd, ow, sx, x_off);
                    for oy in y_lo..y_hi {
                        let iy = ((oy * sy) as isize + y_off) as usize;
                        for ox in x_lo..x_hi {
                            let ix = ((ox * sx) as isize + x_off) as usize;
                            dst[iy * wd + ix] += wv * dyp[oy * ow + ox];
                        }
                    }
                }
            }
        }
    });
    Tensor::new(x_shape.to_vec(), dx)
}

/// `∂L/∂w` of a convolution, `[O, C/groups, kh, kw]`: each output channel's filter sums `dy · x`
/// over the batch and positions.
pub fn conv2d_weight(dy: &T64, c: &Conv2d, x: &T64) -> T64 {
    let (n, ic, h, wd) = nchw(x);
    let (_, oc, oh, ow) = nchw(dy);
    let ([kh, kw], [sy, sx], [dly, dlx]) = (c.kernel, c.stride, c.dilation);
    let (icg, ocg) = (ic / c.groups, oc / c.groups);
    let mut dw = vec![0f64; oc * icg * kh * kw];
    parallel_chunks(&mut dw, icg * kh * kw, |o, dst| {
        let g = o / ocg;
        for b in 0..n {
            let dyp = &dy.data[(b * oc + o) * oh * ow..][..oh * ow];
            for cig in 0..icg {
                let src = &x.data[(b * ic + g * icg + cig) * h * wd..][..h * wd];
                for ky in 0..kh {
                    let y_off = (ky * dly) as isize - c.padding.top as isize;
                    let (y_lo, y_hi) = valid_range(h, oh, sy, y_off);
                    for kx in 0..kw {
                        let x_off = (kx * dlx) as isize - c.padding.left as isize;
                        let (x_lo, x_hi) = valid_range(wd, ow, sx, x_off);
                        let mut sum = 0f64;
                        for oy in y_lo..y_hi {
                            let row = &src[((oy * sy) as isize + y_off) as usize * wd..][..wd];
                            for ox in x_lo..x_hi {
                                sum += dyp[oy * ow + ox] * row[((ox * sx) as isize + x_off) as usize];
                            }
                        }
                        dst[(cig * kh + ky) * kw + kx] += sum;
                    }
                }
            }
        }
    });
    Tensor::new(vec![oc, icg, kh, kw], dw)
}

/// `∂L/∂b` of a per-channel bias or shift, `[C]`: `dy` summed over the batch and positions (dim 1
/// is the channel, as for convolutions, batch-norm and linear layers).
pub fn channel_sum(dy: &T64) -> T64 {
    let c = dy.shape[1];
    let inner = dy.item_len() / c;
    let mut sums = vec![0f64; c];
    for b in 0..dy.batch() {
        for (ch, sum) in sums.iter_mut().enumerate() {
            *sum += dy.data[(b * c + ch) * inner..][..inner].iter().sum::<f64>();
        }
    }
    Tensor::new(vec![c], sums)
}

/// `∂L/∂x` of `x · wᵀ + b` over the last dim: `dy · w`.
pub fn linear_input(dy: &T64, w: &T64, x_shape: &[usize]) -> T64 {
    let (out_f, in_f) = (w.shape[0], w.shape[1]);
    let mut dx = vec![0f64; dy.len() / out_f * in_f];
    parallel_chunks(&mut dx, in_f, |r, dst| {
        for (o, g) in dy.data[r * out_f..][..out_f].iter().enumerate() {
            for (d, wv) in dst.iter_mut().zip(&w.data[o * in_f..][..in_f]) {
                *d += g * wv;
            }
        }
    });
    Tensor::new(x_shape.to_vec(), dx)
}

/// `∂L/∂w` of a linear layer, `[out, in]`: `dyᵀ · x` summed over rows.
pub fn linear_weight(dy: &T64, x: &T64, in_f: usize) -> T64 {
    let out_f = *dy.shape.last().expect("rank ≥ 1");
    let rows = dy.len() / out_f;
    let mut dw = vec![0f64; out_f * in_f];
    parallel_chunks(&mut dw, in_f, |o, dst| {
        for r in 0..rows {
            let g = dy.data[r * out_f + o];
            for (d, xv) in dst.iter_mut().zip(&x.data[r * in_f..][..in_f]) {
                *d += g * xv;
            }
        }
    });
    Tensor::new(vec![out_f, in_f], dw)
}

/// The derivative of an activation at `x`. At kinks PyTorch's choices: relu′(0) = 0, relu6 and
/// hardsigmoid pass the gradient only strictly inside their linear range, leaky relu′(0) = slope,
/// hardswish′(x) = x/3 + ½ on [−3, 3] (`hardswish_backward`). At NaN too: relu, relu6 and
/// hardswish pass the gradient (slope 1), leaky relu gives its slope, hardsigmoid 0.
pub fn activation_slope(a: Activation, x: f64) -> f64 {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    match a {
        // PyTorch's `threshold_backward` and `hardtanh_backward` zero the gradient where the
        // comparison holds, so NaN lets it through.
        Activation::Relu => f64::from(u8::from(x > 0.0 || x.is_nan())),
        Activation::Relu6 => f64::from(u8::from((x > 0.0 && x < 6.0) || x.is_nan())),
        Activation::LeakyRelu { slope } => {
            if x > 0.0 {
                1.0
            } else {
                slope
            }
        }
        Activation::Silu => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        Activation::Sigmoid => {
            let s = sigmoid(x);
            s * (1.0 - s)
        }
        Activation::HardSwish => {
            if x < -3.0 {
                0.0
            } else if x <= 3.0 {
                x / 3.0 + 0.5
            } else {
                1.0
            }
        }
        Activation::HardSigmoid => {
            if x > -3.0 && x < 3.0 {
                1.0 / 6.0
            } else {
                0.0
            }
        }
        Activation::Tanh => 1.0 - x.tanh().powi(2),
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + x * pdf
        }
    }
}

/// Whether PyTorch's backward of `a` writes 0 at `x` whatever the incoming gradient, an infinite or
/// NaN one too (`threshold_backward`, `hardtanh_backward`, `hardsigmoid_backward` and
/// `hardswish_backward` select 0 there rather than multiply).
pub fn blocks_gradient(a: Activation, x: f64) -> bool {
    match a {
        Activation::Relu => x <= 0.0,
        Activation::Relu6 => x <= 0.0 || x >= 6.0,
        Activation::HardSwish => x < -3.0,
        Activation::HardSigmoid => x <= -3.0 || x >= 3.0 || x.is_nan(),
        _ => false,
    }
}

/// The kinks of `a`: the inputs where its derivative jumps (none for the smooth activations).
pub fn kinks(a: Activation) -> &'static [f64] {
    match a {
        Activation::Relu | Activation::LeakyRelu { .. } => &[0.0],
        Activation::Relu6 => &[0.0, 6.0],
        Activation::HardSwish | Activation::HardSigmoid => &[-3.0, 3.0],
        Activation::Silu | Activation::Sigmoid | Activation::Tanh | Activation::Gelu => &[],
    }
}

/// Whether `a` is piecewise linear with pieces its output tells apart exactly, rounding included:
/// ReLU, ReLU6 (a clamp) and leaky ReLU with a slope of at least 0 ([`input_on_piece`]). Not
/// hardsigmoid, whose `(x + 3) / 6` can round an input just below 3 to the output 1 of the piece
/// above; not hardswish, whose output is not monotone; the smooth activations have no pieces.
pub fn is_piecewise_linear(a: Activation) -> bool {
    match a {
        Activation::Relu | Activation::Relu6 => true,
        Activation::LeakyRelu { slope } => slope >= 0.0,
        _ => false,
    }
}

/// For a piecewise-linear activation ([`is_piecewise_linear`]), an input on the piece that gave
/// output `y`: its gradient ([`activation`]) is the one of every input there. NaN stays NaN. `None`
/// for the other activations.
pub fn input_on_piece(a: Activation, y: f64) -> Option<f64> {
    if !is_piecewise_linear(a) {
        return None;
    }
    if y.is_nan() {
        return Some(y);
    }
    Some(match a {
        Activation::Relu6 if y >= 6.0 => 7.0,
        _ if y > 0.0 => 1.0,
        _ => -1.0,
    })
}

/// How far `x` is from the pieces of `a` that `other` lies on: its distance to the nearest kink
/// between the two (infinite where either is NaN, so that no rounding error explains it).
pub fn distance_to_piece(a: Activation, x: f64, other: f64) -> f64 {
    let (lo, hi) = if x < other { (x, other) } else { (other, x) };
    let crossed = kinks(a).iter().filter(|k| lo <= **k && **k <= hi);
    crossed.map(|k| (x - k).abs()).fold(f64::INFINITY, f64::min)
}

/// Whether inputs `x` and `other` get different gradients through `a` ([`blocks_gradient`],
/// [`activation_slope`]): they lie on different pieces.
pub fn on_other_pieces(a: Activation, x: f64, other: f64) -> bool {
    let gradient = |v: f64| (blocks_gradient(a, v), activation_slope(a, v).to_bits());
    gradient(x) != gradient(other)
}

/// `∂L/∂x` of an activation: `dy · f′(x)`, or 0 where the activation blocks the gradient
/// ([`blocks_gradient`]).
pub fn activation(dy: &T64, x: &T64, a: Activation) -> T64 {
    let dx = |(g, v): (&f64, &f64)| if blocks_gradient(a, *v) { 0.0 } else { g * activation_slope(a, *v) };
    Tensor::new(x.shape.clone(), dy.data.iter().zip(&x.data).map(dx).collect())
}

/// `∂L/∂x` of max pooling: each output's gradient goes to the first largest input of its window in
/// scan order (PyTorch's tie rule: a later equal value does not replace the maximum), or to its
/// last NaN (PyTorch's `val > max || isnan(val)`).
pub fn max_pool(dy: &T64, x: &T64, p: &Pool2d) -> T64 {
    let (_, _, h, w) = nchw(x);
    let (oh, ow) = pooled(x, p);
    let mut dx = vec![0f64; x.len()];
    parallel_chunks(&mut dx, h * w, |plane, dst| {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                if let Some(at) = window_argmax(src, [h, w], p, [oy, ox]) {
                    dst[at] += dy.data[(plane * oh + oy) * ow + ox];
                }
            }
        }
    });
    Tensor::new(x.shape.clone(), dx)
}

/// Where each output of max pooling over `x` (`[N, C, H, W]`) takes its value from: the index in
/// `x` of its window's first largest element, or last NaN ([`max_pool`]'s rule); `None` for a window
/// wholly in the padding.
pub fn max_pool_argmax(x: &T64, p: &Pool2d) -> Vec<Option<usize>> {
    let (n, c, h, w) = nchw(x);
    let (oh, ow) = pooled(x, p);
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            out.extend((0..ow).map(|ox| window_argmax(src, [h, w], p, [oy, ox]).map(|at| plane * h * w + at)));
        }
    }
    out
}

/// `∂L/∂x` of average pooling: each output's gradient, divided by the forward's divisor, spread
/// over its window (the same clipping and `count_include_pad` rules as the forward).
pub fn avg_pool(dy: &T64, x_shape: &[usize], p: &Pool2d) -> T64 {
    let (h, w) = (x_shape[2], x_shape[3]);
    let (oh, ow) = (dy.shape[2], dy.shape[3]);
    let mut dx = vec![0f64; x_shape.iter().product()];
    parallel_chunks(&mut dx, h * w, |plane, dst| {
        for oy in 0..oh {
            let y0 = (oy * p.stride[0]) as isize - p.padding.top as isize;
            let y1 = (y0 + p.kernel[0] as isize).min((h + p.padding.bottom) as isize);
            let (ys, ye) = (y0.max(0), y1.min(h as isize));
            for ox in 0..ow {
                let x0 = (ox * p.stride[1]) as isize - p.padding.left as isize;
                let x1 = (x0 + p.kernel[1] as isize).min((w + p.padding.right) as isize);
                let (xs, xe) = (x0.max(0), x1.min(w as isize));
                let count = if p.count_include_pad { (y1 - y0) * (x1 - x0) } else { (ye - ys) * (xe - xs) };
                let share = dy.data[(plane * oh + oy) * ow + ox] / count.max(1) as f64;
                for iy in ys..ye {
                    for ix in xs..xe {
                        dst[iy as usize * w + ix as usize] += share;
                    }
                }
            }
        }
    });
    Tensor::new(x_shape.to_vec(), dx)
}

/// `∂L/∂x` of adaptive pooling (cells as in the forward): averages spread evenly, maxima go to the
/// first largest input of the cell, or its last NaN (as [`max_pool`]).
pub fn adaptive_pool(dy: &T64, x: &T64, size: [usize; 2], max: bool) -> T64 {
    let (_, _, h, w) = nchw(x);
    let [oh, ow] = size;
    let mut dx = vec![0f64; x.len()];
    parallel_chunks(&mut dx, h * w, |plane, dst| {
        let src = &x.data[plane * h * w..][..h * w];
        for oy in 0..oh {
            let (ys, ye) = (oy * h / oh, ((oy + 1) * h).div_ceil(oh));
            for ox in 0..ow {
                let (xs, xe) = (ox * w / ow, ((ox + 1) * w).div_ceil(ow));
                let g = dy.data[(plane * oh + oy) * ow + ox];
                let cells = (ys..ye).flat_map(|iy| (xs..xe).map(move |ix| iy * w + ix));
                if max {
                    let mut best = None;
                    for at in cells {
                        if best.is_none_or(|b: usize| src[at] > src[b] || src[at].is_nan()) {
                            best = Some(at);
                        }
                    }
                    if let Some(at) = best {
                        dst[at] += g;
                    }
                } else {
                    let share = g / ((ye - ys) * (xe - xs)) as f64;
                    for at in cells {
                        dst[at] += share;
                    }
                }
            }
        }
    });
    Tensor::new(x.shape.clone(), dx)
}

/// `∂L/∂(input i)` of a broadcast product: `dy` times the other inputs, summed over the dims input
/// `i` was broadcast along.
pub fn mul(dy: &T64, inputs: &[&T64], i: usize) -> T64 {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
    let (shape, strides) = broadcast(&shapes);
    let mut dx = vec![0f64; inputs[i].len()];
    for_each_broadcast(&shape, &strides, |at, offsets| {
        let others: f64 =
            inputs.iter().zip(offsets).enumerate().filter(|(j, _)| *j != i).map(|(_, (t, o))| t.data[*o]).product();
        dx[offsets[i]] += dy.data[at] * others;
    });
    Tensor::new(inputs[i].shape.clone(), dx)
}

/// Channels `offset..offset + len` of `dy` (dim 1): the gradient of one concat input.
pub fn channel_slice(dy: &T64, offset: usize, len: usize) -> T64 {
    let (n, c) = (dy.batch(), dy.shape[1]);
    let inner = dy.item_len() / c;
    let mut data = Vec::with_capacity(n * len * inner);
    for b in 0..n {
        data.extend_from_slice(&dy.data[(b * c + offset) * inner..][..len * inner]);
    }
    let mut shape = dy.shape.clone();
    shape[1] = len;
    Tensor::new(shape, data)
}

/// `∂L/∂x` of `chunk`: `dy` in its channels, zero elsewhere.
pub fn chunk(dy: &T64, x_shape: &[usize], chunks: usize, index: usize) -> T64 {
    let (c, inner) = (x_shape[1], x_shape[2..].iter().product::<usize>());
    let per = c / chunks;
    let mut dx = vec![0f64; x_shape.iter().product()];
    for b in 0..x_shape[0] {
        dx[(b * c + index * per) * inner..][..per * inner].copy_from_slice(&dy.data[b * per * inner..][..per * inner]);
    }
    Tensor::new(x_shape.to_vec(), dx)
}

/// `∂L/∂x` of batch-norm in training mode (batch statistics; `mean` and biased `var` per channel as
/// the forward used them): `γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂))`, means over batch and positions.
pub fn batch_norm_input(dy: &T64, x: &T64, gamma: &T64, mean: &[f64], var: &[f64], eps: f64) -> T64 {
    let (n, c, h, w) = nchw(x);
    let (plane, count) = (h * w, (n * h * w) as f64);
    let mut dx = vec![0f64; x.len()];
    for ch in 0..c {
        let inv_std = 1.0 / (var[ch] + eps).sqrt();
        let planes = || (0..n).map(move |b| (b * c + ch) * plane);
        let (mut sum_dy, mut sum_dy_xhat) = (0f64, 0f64);
        for at in planes() {
            for p in at..at + plane {
                sum_dy += dy.data[p];
                sum_dy_xhat += dy.data[p] * (x.data[p] - mean[ch]) * inv_std;
            }
        }
        let scale = gamma.data[ch] * inv_std;
        for at in planes() {
            let span = at..at + plane;
            for ((d, g), v) in dx[span.clone()].iter_mut().zip(&dy.data[span.clone()]).zip(&x.data[span]) {
                let xhat = (v - mean[ch]) * inv_std;
                *d = scale * (g - sum_dy / count - xhat * sum_dy_xhat / count);
            }
        }
    }
    Tensor::new(x.shape.clone(), dx)
}

/// `∂L/∂γ` of batch-norm in training mode: `Σ dy · x̂` per channel.
pub fn batch_norm_weight(dy: &T64, x: &T64, mean: &[f64], var: &[f64], eps: f64) -> T64 {
    let (n, c, h, w) = nchw(x);
    let plane = h * w;
    let sums = (0..c)
        .map(|ch| {
            let inv_std = 1.0 / (var[ch] + eps).sqrt();
            (0..n)
                .flat_map(|b| (b * c + ch) * plane..(b * c + ch + 1) * plane)
                .map(|p| dy.data[p] * (x.data[p] - mean[ch]) * inv_std)
                .sum()
        })
        .collect();
    Tensor::new(vec![c], sums)
}

/// `∂L/∂x` of PyTorch's `local_response_norm` `y_c = x_c · D_c^−β`, `D_c = k + α/size · Σ_{j∈W(c)} x_j²`:
/// `dy_j · D_j^−β − 2αβ/size · x_j · Σ_{c: j∈W(c)} dy_c · x_c · D_c^(−β−1)`.
pub fn lrn(dy: &T64, x: &T64, size: usize, alpha: f64, beta: f64, k: f64) -> T64 {
    let (n, c, h, w) = nchw(x);
    let plane = h * w;
    let at = |b: usize, ch: usize, p: usize| (b * c + ch) * plane + p;
    let window = |ch: usize| ch.saturating_sub(size / 2)..(ch + (size - 1) / 2 + 1).min(c);
    let mut dx = vec![0f64; x.len()];
    for b in 0..n {
        for p in 0..plane {
            let d: Vec<f64> = (0..c)
                .map(|ch| k + alpha / size as f64 * window(ch).map(|j| x.data[at(b, j, p)].powi(2)).sum::<f64>())
                .collect();
            for j in 0..c {
                // Channels whose window holds j: c − size/2 ≤ j ≤ c + (size−1)/2.
                let readers = j.saturating_sub((size - 1) / 2)..(j + size / 2 + 1).min(c);
                let cross: f64 =
                    readers.map(|ch| dy.data[at(b, ch, p)] * x.data[at(b, ch, p)] * d[ch].powf(-beta - 1.0)).sum();
                dx[at(b, j, p)] = dy.data[at(b, j, p)] * d[j].powf(-beta)
                    - 2.0 * alpha * beta / size as f64 * x.data[at(b, j, p)] * cross;
            }
        }
    }
    Tensor::new(x.shape.clone(), dx)
}

/// `∂L/∂x` of a softmax over dim 1 with output `y`: `y · (dy − Σ_c dy_c · y_c)`.
pub fn softmax(dy: &T64, y: &T64) -> T64 {
    let (n, c) = (y.batch(), y.shape[1]);
    let inner = y.item_len() / c;
    let mut dx = vec![0f64; y.len()];
    for b in 0..n {
        for p in 0..inner {
            let at = |ch: usize| (b * c + ch) * inner + p;
            let dot: f64 = (0..c).map(|ch| dy.data[at(ch)] * y.data[at(ch)]).sum();
            for ch in 0..c {
                dx[at(ch)] = y.data[at(ch)] * (dy.data[at(ch)] - dot);
            }
        }
    }
    Tensor::new(y.shape.clone(), dx)
}

/// `∂L/∂x` of a per-channel affine: `dy · scale`.
pub fn channel_affine(dy: &T64, scale: &[f64]) -> T64 {
    let (c, inner) = (dy.shape[1], dy.item_len() / dy.shape[1]);
    let data = dy.data.iter().enumerate().map(|(i, g)| g * scale[(i / inner) % c]).collect();
    Tensor::new(dy.shape.clone(), data)
}

#[cfg(test)]
mod tests {
    use cnnc_ir::graph::Pad4;

    use super::*;

    const NAN: f64 = f64::NAN;

    fn window(kernel: [usize; 2], stride: [usize; 2], ceil_mode: bool) -> Pool2d {
        let padding = Pad4::uniform(0);
        Pool2d { kernel, stride, padding, dilation: [1, 1], ceil_mode, count_include_pad: true }
    }

    /// The values are PyTorch's (torch 2.x, `x.grad` after `f(x).sum().backward()`).
    #[test]
    fn special_values_take_pytorchs_gradients() {
        let x = [NAN, -1.0, 0.0, 2.0, f64::INFINITY, f64::NEG_INFINITY, 6.0, 7.0];
        let slopes = |a| x.map(|v| activation_slope(a, v));
        assert_eq!(slopes(Activation::Relu), [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(slopes(Activation::Relu6), [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(slopes(Activation::LeakyRelu { slope: 0.1 }), [0.1, 0.1, 0.1, 1.0, 1.0, 0.1, 1.0, 1.0]);
        assert_eq!(slopes(Activation::HardSigmoid)[0], 0.0);
        assert_eq!(slopes(Activation::HardSwish)[0], 1.0);
        // Where the gradient is blocked, an infinite or NaN gradient gives 0, not NaN.
        let dy = Tensor::new(vec![3], vec![f64::INFINITY, NAN, f64::NEG_INFINITY]);
        let below = Tensor::new(vec![3], vec![-1.0, 0.0, -5.0]);
        assert_eq!(activation(&dy, &below, Activation::Relu).data, [0.0; 3]);
        assert_eq!(activation(&dy, &below, Activation::Relu6).data, [0.0; 3]);
        assert_eq!(activation(&dy, &Tensor::new(vec![3], vec![-4.0; 3]), Activation::HardSwish).data, [0.0; 3]);
        assert_eq!(activation(&dy, &Tensor::new(vec![3], vec![3.0; 3]), Activation::HardSigmoid).data, [0.0; 3]);

        // Max pooling: a window's gradient goes to its last NaN.
        let pool = |data: Vec<f64>, h: usize, w: usize, p: Pool2d| {
            let x = Tensor::new(vec![1, 1, h, w], data);
            let (oh, ow) = pooled(&x, &p);
            max_pool(&Tensor::new(vec![1, 1, oh, ow], vec![1.0; oh * ow]), &x, &p).data
        };
        let row = vec![NAN, 3.0, NAN, 1.0, f64::NEG_INFINITY, f64::NEG_INFINITY, 2.0, NAN];
        assert_eq!(pool(row, 1, 8, window([1, 2], [1, 2], false)), [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        let square = vec![1.0, NAN, NAN, 2.0, NAN, 0.0, 0.0, 0.0];
        assert_eq!(pool(square, 2, 4, window([2, 2], [2, 2], false)), [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let overlapping = vec![1.0, NAN, NAN, 2.0, 3.0];
        assert_eq!(pool(overlapping, 1, 5, window([1, 3], [1, 2], true)), [0.0, 0.0, 2.0, 0.0, 0.0]);
        let x = Tensor::new(vec![1, 1, 1, 6], vec![1.0, NAN, NAN, 2.0, 5.0, NAN]);
        let adaptive = adaptive_pool(&Tensor::new(vec![1, 1, 1, 2], vec![1.0; 2]), &x, [1, 2], true).data;
        assert_eq!(adaptive, [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    }

    /// The output of each piecewise-linear activation tells its input's piece: the stand-in input
    /// gets the gradient of every input there, kinks, infinities and NaN included.
    #[test]
    fn an_output_names_its_inputs_piece() {
        let inputs =
            [NAN, -7.0, -3.0, -2.9, -1e-9, 0.0, 1e-9, 2.9, 3.0, 5.9, 6.0, 6.1, f64::INFINITY, f64::NEG_INFINITY];
        let pieces = [
            Activation::Relu,
            Activation::Relu6,
            Activation::LeakyRelu { slope: 0.1 },
            Activation::LeakyRelu { slope: 0.0 },
        ];
        for a in pieces {
            for x in inputs {
                let y = crate::cpu::ops::activate(a, x);
                let stand_in = input_on_piece(a, y).unwrap_or_else(|| panic!("{a:?} has pieces"));
                assert!(!on_other_pieces(a, x, stand_in), "{a:?}: {x} gave {y}, taken for {stand_in}");
            }
        }
        // Hardsigmoid's output 1 comes from an input just below 3 too, on the piece below.
        assert_eq!(crate::cpu::ops::activate(Activation::HardSigmoid, 3.0 - f64::EPSILON), 1.0);
        for a in
            [Activation::HardSigmoid, Activation::HardSwish, Activation::Silu, Activation::LeakyRelu { slope: -0.5 }]
        {
            assert_eq!(input_on_piece(a, 0.5), None, "{a:?}");
        }
        assert!(on_other_pieces(Activation::Relu6, 5.9, 6.0) && !on_other_pieces(Activation::Relu6, 0.1, 5.9));
        // The distance to the kink crossed, not to the nearest one.
        assert_eq!(distance_to_piece(Activation::Relu6, 5.75, -1.0), 5.75);
        assert_eq!(distance_to_piece(Activation::Relu6, 5.75, 7.0), 0.25);
        assert_eq!(distance_to_piece(Activation::Relu, NAN, 1.0), f64::INFINITY);
    }
}
