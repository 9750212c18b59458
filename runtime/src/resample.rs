//! Resizing and cropping of planar 8-bit images `[C, H, W]` as torchvision does it on PIL images:
//! PIL's antialiased bilinear filter (`Image.resize(..., BILINEAR)`), torchvision's `Resize(size)`
//! (the shorter side becomes `size`) or `Resize((h, w))` (exactly h×w), and `CenterCrop`. Both
//! `cnnc run`'s image input and the datasets' transforms use these, so an image is prepared the
//! same way everywhere.

use cnnc_ir::graph::Resize;

/// PIL's filter weights for one output pixel of a resampling pass: the first input index and the
/// normalised weights of the triangle (bilinear) filter, widened by the scale when shrinking.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // bilinear support 1.0, widened
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5).floor().max(0.0)) as usize;
            let xmax = ((center + support + 0.5).floor() as usize).min(in_size);
            let mut k: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) / filter_scale).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, k)
        })
        .collect()
}

/// PIL's fixed-point precision for 8-bit images (`PRECISION_BITS` in `Resample.c`): weights are
/// integers scaled by 2²², and a sum is rounded by adding half of that before the shift.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The weights of `coefficients` as PIL's `normalize_coeffs_8bpc` turns them into integers.
fn fixed_point(coeffs: Vec<(usize, Vec<f64>)>) -> Vec<(usize, Vec<i64>)> {
    let one = f64::from(1u32 << PRECISION_BITS);
    coeffs
        .into_iter()
        .map(|(start, k)| {
            (start, k.iter().map(|w| if *w < 0.0 { (-0.5 + w * one) as i64 } else { (0.5 + w * one) as i64 }).collect())
        })
        .collect()
}

/// A weighted sum back to 8 bits, as PIL's `clip8`: round half up in fixed point, then clamp.
fn clip8(sum: i64) -> u8 {
    ((sum + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `image` (`[C, H, W]` bytes) to `[C, nh, nw]` exactly as Pillow's antialiased bilinear
/// filter does on 8-bit images: two passes, each in Pillow's 22-bit fixed point and rounded to 8
/// bits (so exact .5 ties round as Pillow's do). The horizontal pass comes first unless the height
/// shrinks by more than twice as many pixels as the width (Pillow 13's order; Pillow 12 and older
/// always go horizontal first, and differ by a level on some pixels of such resizes).
pub fn resize(image: &[u8], [c, h, w]: [usize; 3], nh: usize, nw: usize) -> Vec<u8> {
    let vertical_first = h > nh && (h - nh) as i64 > 2 * (w as i64 - nw as i64);
    if vertical_first {
        let tall = vertical(image, [c, h, w], nh);
        horizontal(&tall, [c, nh, w], nw)
    } else {
        let wide = horizontal(image, [c, h, w], nw);
        vertical(&wide, [c, h, nw], nh)
    }
}

/// One horizontal pass: every row of `[C, H, W]` resampled to `nw` pixels.
fn horizontal(image: &[u8], [_, _, w]: [usize; 3], nw: usize) -> Vec<u8> {
    if nw == w {
        return image.to_vec();
    }
    let coeffs = fixed_point(coefficients(w, nw));
    let mut out = Vec::with_capacity(image.len() / w * nw);
    for row in image.chunks(w) {
        out.extend(
            coeffs
                .iter()
                .map(|(start, k)| clip8(k.iter().zip(&row[*start..]).map(|(weight, v)| weight * i64::from(*v)).sum())),
        );
    }
    out
}

/// One vertical pass: every column of `[C, H, W]` resampled to `nh` pixels.
fn vertical(image: &[u8], [_, h, w]: [usize; 3], nh: usize) -> Vec<u8> {
    if nh == h {
        return image.to_vec();
    }
    let coeffs = fixed_point(coefficients(h, nh));
    let mut out = Vec::with_capacity(image.len() / h * nh);
    for plane in image.chunks(h * w) {
        for (start, k) in &coeffs {
            out.extend((0..w).map(|x| {
                clip8(k.iter().enumerate().map(|(i, weight)| weight * i64::from(plane[(start + i) * w + x])).sum())
            }));
        }
    }
    out
}

/// The `h`×`w` window of `image` whose top-left pixel is (`top`, `left`); it must lie inside.
pub fn crop(image: &[u8], [c, ih, iw]: [usize; 3], top: usize, left: usize, h: usize, w: usize) -> Vec<u8> {
    assert!(top + h <= ih && left + w <= iw, "the window lies inside the image");
    let mut out = Vec::with_capacity(c * h * w);
    for plane in image.chunks(ih * iw) {
        for y in top..top + h {
            out.extend_from_slice(&plane[y * iw + left..][..w]);
        }
    }
    out
}

/// The most bytes a resized image may take (256 MiB, as a decoded one).
pub const MAX_RESIZED_BYTES: u64 = 256 << 20;

/// `(height, width)` of an `h`×`w` image after `resize`: with [`Resize::ShorterSide`] the shorter
/// side becomes `size` and the longer keeps the aspect ratio, truncated (torchvision's
/// `Resize(size)`); with [`Resize::Exact`] the size given. `None` when that image would take more
/// than [`MAX_RESIZED_BYTES`] with `c` channels (a 1×100,000 strip resized to 256, say).
pub fn resized([c, h, w]: [usize; 3], resize: Resize) -> Option<(usize, usize)> {
    let (nh, nw) = match resize {
        Resize::ShorterSide(size) => {
            let (long, short) = (h.max(w) as u64, h.min(w).max(1) as u64);
            let longer = usize::try_from((size as u64).checked_mul(long)? / short).ok()?;
            if w <= h {
                (longer, size)
            } else {
                (size, longer)
            }
        }
        Resize::Exact([rh, rw]) => (rh, rw),
    };
    ((nh as u64).checked_mul(nw as u64)?.checked_mul(c as u64)? <= MAX_RESIZED_BYTES).then_some((nh, nw))
}

/// Why an image of `shape` cannot be resized by `resize` ([`resized`]), or `None` when it can.
pub fn refuse_resize(shape: [usize; 3], resize: Resize) -> Option<String> {
    resized(shape, resize).is_none().then(|| {
        format!(
            "it is {}×{} pixels, and `resize: {resize}` would make it take more than {} MiB",
            shape[1],
            shape[2],
            MAX_RESIZED_BYTES >> 20
        )
    })
}

/// Why an image of `shape` does not come out `h`×`w` through `resize` and no centre crop, or
/// `None` when it does (or when a centre crop follows, which always makes `h`×`w`).
///
/// With `resize: N` alone only images of the input's aspect ratio fit; without `resize` only
/// images of the input's size. Others are refused rather than cropped: torchvision's transforms
/// would hand the model a tensor of another size.
pub fn misfit(shape: [usize; 3], resize: Option<Resize>, centre_crop: bool, h: usize, w: usize) -> Option<String> {
    if centre_crop {
        return None;
    }
    let (ih, iw) = match resize {
        Some(r) => resized(shape, r)?,
        None => (shape[1], shape[2]),
    };
    if (ih, iw) == (h, w) {
        return None;
    }
    let size = if h == w { h.to_string() } else { format!("[{h}, {w}]") };
    Some(match resize {
        Some(r) => format!(
            "it is {}×{} pixels (height × width), which `resize: {r}` makes {ih}×{iw}, but the model takes {h}×{w}; \
             add `crop: {size}` to the spec's `preprocess` (torchvision's CenterCrop), or resize to exactly \
             `[{h}, {w}]`",
            shape[1], shape[2]
        ),
        // A square input: resize the shorter side and take the centre. Another: resize to it
        // exactly, since a centre crop of another shape would pad most images with zeros.
        None if h == w => format!(
            "it is {ih}×{iw} pixels (height × width), but the model takes {h}×{w}; add `resize: {h}, crop: {h}` to \
             the spec's `preprocess` (torchvision's Resize and CenterCrop), or resize the image"
        ),
        None => format!(
            "it is {ih}×{iw} pixels (height × width), but the model takes {h}×{w}; add `resize: [{h}, {w}]` to the \
             spec's `preprocess` (torchvision's Resize((h, w))), or resize the image"
        ),
    })
}

/// Prepares an image for a model whose items are `[C, h, w]`, as torchvision's evaluation
/// transforms do: with `resize`, the size [`resized`] gives; then, when `centre_crop` is set, the
/// centre `h`×`w` window as `CenterCrop` takes it: offsets rounded half to even (its Python
/// `round`), and an image smaller than the window padded with zeros first, the odd pixel of
/// padding after the image (`(size - side) // 2` before, the rest after).
///
/// # Panics
/// When [`resized`] refuses the image's resize, or without a centre crop the image does not come
/// out `h`×`w` ([`misfit`]); callers check both first.
pub fn fit(
    image: Vec<u8>,
    shape: [usize; 3],
    resize_to: Option<Resize>,
    centre_crop: bool,
    h: usize,
    w: usize,
) -> Vec<u8> {
    let [c, mut ih, mut iw] = shape;
    let mut image = image;
    if let Some(size) = resize_to {
        let (nh, nw) = resized(shape, size).expect("the caller checked the resized size (`resized`)");
        image = resize(&image, [c, ih, iw], nh, nw);
        (ih, iw) = (nh, nw);
    }
    if centre_crop {
        if ih < h || iw < w {
            let (nh, nw) = (ih.max(h), iw.max(w));
            image = pad(&image, [c, ih, iw], (nh - ih) / 2, (nw - iw) / 2, nh, nw);
            (ih, iw) = (nh, nw);
        }
        let top = ((ih - h) as f64 / 2.0).round_ties_even() as usize;
        let left = ((iw - w) as f64 / 2.0).round_ties_even() as usize;
        image = crop(&image, [c, ih, iw], top, left, h, w);
    } else {
        assert_eq!((ih, iw), (h, w), "the caller checked the size (`misfit`)");
    }
    image
}

/// `image` placed at (`top`, `left`) on a zero `[C, nh, nw]` canvas at least as large.
fn pad(image: &[u8], [c, ih, iw]: [usize; 3], top: usize, left: usize, nh: usize, nw: usize) -> Vec<u8> {
    let mut out = vec![0; c * nh * nw];
    for (plane, target) in image.chunks(ih * iw).zip(out.chunks_mut(nh * nw)) {
        for (y, row) in plane.chunks(iw).enumerate() {
            target[(top + y) * nw + left..][..iw].copy_from_slice(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_averages_and_identity_copies() {
        // Halving a row of [0, 100, 200, 50] with the widened triangle filter.
        assert_eq!(coefficients(4, 2)[0].0, 0);
        let row = [0u8, 100, 200, 50];
        // As PIL's Image.resize((2, 1), BILINEAR) gives: [71, 121].
        assert_eq!(resize(&row, [1, 1, 4], 1, 2), vec![71, 121]);
        assert_eq!(resize(&row, [1, 1, 4], 1, 4), row.to_vec());
    }

    const PIL_ROW: [u8; 6] = [6, 17, 28, 40, 51, 63];

    #[test]
    fn matches_pil_on_a_two_axis_resize() {
        // A 53×37 ramp pattern resized to 23×17; the expected row comes from PIL 11 (BILINEAR).
        let (w, h) = (53usize, 37usize);
        let plane: Vec<u8> = (0..w * h).map(|i| ((i % w) * 5 + (i / w) * 3) as u8).collect();
        let two = [plane.clone(), plane].concat();
        let out = resize(&two, [2, h, w], 17, 23);
        assert_eq!(out.len(), 2 * 17 * 23);
        assert_eq!(out[..6], PIL_ROW);
        assert_eq!(out[17 * 23..][..6], PIL_ROW, "each channel is resized alike");
    }

    #[test]
    fn fitting_resizes_the_shorter_side_then_takes_the_centre() {
        // 1×4×6: resize(2) makes it 2×3, then the centre 2×2 (left offset Python's round(0.5) = 0).
        let image: Vec<u8> = (0..24).collect();
        let out = fit(image.clone(), [1, 4, 6], Some(Resize::ShorterSide(2)), true, 2, 2);
        let small = resize(&image, [1, 4, 6], 2, 3);
        assert_eq!(out, vec![small[0], small[1], small[3], small[4]]);
        // 1×1×8 to width 5: left offset round(1.5) = 2, as torchvision's CenterCrop takes it.
        let row: Vec<u8> = (0..8).collect();
        assert_eq!(fit(row, [1, 1, 8], None, true, 1, 5), vec![2, 3, 4, 5, 6]);
        assert_eq!(fit(image.clone(), [1, 4, 6], None, false, 4, 6), image, "a fitting image is kept");
        let exact = fit(image.clone(), [1, 4, 6], Some(Resize::Exact([3, 2])), false, 3, 2);
        assert_eq!(exact, resize(&image, [1, 4, 6], 3, 2), "Resize((3, 2)) ignores the aspect ratio");
        assert_eq!(crop(&image, [1, 4, 6], 1, 2, 2, 3), vec![8, 9, 10, 14, 15, 16]);
        assert_eq!(fit(vec![9; 4], [1, 2, 2], None, true, 3, 3), vec![9, 9, 0, 9, 9, 0, 0, 0, 0], "zeros after");
    }

    #[test]
    fn an_image_that_would_not_come_out_at_the_input_size_is_refused() {
        let shorter = Some(Resize::ShorterSide(32));
        assert_eq!(misfit([3, 32, 48], shorter, true, 32, 32), None, "a centre crop makes any image fit");
        assert_eq!(misfit([3, 64, 64], shorter, false, 32, 32), None, "the input's aspect ratio");
        let why = misfit([3, 40, 60], shorter, false, 32, 32).unwrap();
        assert!(why.contains("40×60") && why.contains("32×48") && why.contains("`crop: 32`"), "{why}");
        let why = misfit([3, 40, 60], None, false, 32, 32).unwrap();
        assert!(
            why.contains("40×60") && why.contains("add `resize: 32, crop: 32` to the spec's `preprocess`"),
            "{why}"
        );
        assert_eq!(misfit([3, 40, 60], Some(Resize::Exact([32, 16])), false, 32, 16), None);
        let why = misfit([3, 40, 60], None, false, 20, 36).unwrap();
        assert!(why.contains("add `resize: [20, 36]`"), "a non-square input is resized to, not padded: {why}");
        assert_eq!(misfit([1, 32, 32], None, false, 32, 32), None);
    }

    #[test]
    fn a_resize_is_bounded_before_it_is_done() {
        let shorter = Resize::ShorterSide;
        assert_eq!(resized([3, 480, 640], shorter(256)), Some((256, 341)), "torchvision's int(256 * 640 / 480)");
        assert_eq!(resized([3, 640, 480], shorter(256)), Some((341, 256)));
        assert_eq!(resized([3, 1, 100_000], shorter(256)), None, "a strip would become 256 × 25,600,000");
        assert_eq!(resized([3, 7, 7], shorter(usize::MAX)), None, "no overflow");
        assert_eq!(resized([3, 480, 640], Resize::Exact([224, 200])), Some((224, 200)));
        assert_eq!(resized([3, 7, 7], Resize::Exact([usize::MAX, 2])), None, "no overflow");
    }

    #[test]
    fn ties_round_as_pils_fixed_point_does() {
        // Three identical rows [5, 201, 90] to 2×2: 5·0.625 + 201·0.375 = 78.5 exactly, which
        // PIL's integer weights round up to 79 (torchvision's Resize(2) gives 79; f64 gave 78).
        let image: Vec<u8> = [5, 201, 90].repeat(3);
        assert_eq!(resize(&image, [1, 3, 3], 2, 2), vec![79, 132, 79, 132], "as PIL 11 gives");
    }

    #[test]
    fn a_crop_larger_than_the_image_pads_it_with_zeros_around() {
        // A 40×60 image cropped to 64×64 (torchvision's CenterCrop(64)): 12 zero rows above and
        // below, 2 zero columns left and right.
        let out = fit(vec![7; 40 * 60], [1, 40, 60], None, true, 64, 64);
        let rows: Vec<&[u8]> = out.chunks(64).collect();
        assert!(rows[..12].iter().chain(&rows[52..]).all(|r| r.iter().all(|v| *v == 0)));
        for row in &rows[12..52] {
            assert_eq!(row[..2], [0, 0]);
            assert_eq!(row[62..], [0, 0]);
            assert!(row[2..62].iter().all(|v| *v == 7));
        }
    }
}
