//! Resizing and cropping of planar 8-bit images `[C, H, W]` as torchvision does it on PIL images:
//! PIL's antialiased bilinear filter (`Image.resize(..., BILINEAR)`), torchvision's `Resize(size)`
//! (the shorter side becomes `size`) and `CenterCrop`. Both `cnnc run`'s image input and the
//! datasets' transforms use these, so an image is prepared the same way everywhere.

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

fn clip8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Resizes `image` (`[C, H, W]` bytes) to `[C, nh, nw]` with PIL's antialiased bilinear filter: a
/// horizontal pass, then a vertical one, each rounded to 8 bits as PIL does.
pub fn resize(image: &[u8], [c, h, w]: [usize; 3], nh: usize, nw: usize) -> Vec<u8> {
    let wide =
        if nw == w {
            image.to_vec()
        } else {
            let coeffs = coefficients(w, nw);
            let mut out = Vec::with_capacity(c * h * nw);
            for row in image.chunks(w) {
                out.extend(coeffs.iter().map(|(start, k)| {
                    clip8(k.iter().zip(&row[*start..]).map(|(weight, v)| weight * f64::from(*v)).sum())
                }));
            }
            out
        };
    if nh == h {
        return wide;
    }
    let coeffs = coefficients(h, nh);
    let mut out = Vec::with_capacity(c * nh * nw);
    for plane in wide.chunks(h * nw) {
        for (start, k) in &coeffs {
            out.extend((0..nw).map(|x| {
                clip8(k.iter().enumerate().map(|(i, weight)| weight * f64::from(plane[(start + i) * nw + x])).sum())
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

/// Prepares an image for a model whose items are `[C, h, w]`, as torchvision's evaluation
/// transforms do: with `resize`, the shorter side becomes `resize` pixels and the longer keeps the
/// aspect ratio (truncated, as `Resize(size)`); then, when `centre_crop` is set or the size is not
/// `h`×`w`, the centre `h`×`w` window (offsets rounded half to even, as `CenterCrop`'s Python
/// `round`). An image smaller than the window is first stretched to cover it (where `CenterCrop`
/// would pad it with zeros).
pub fn fit(
    image: Vec<u8>,
    shape: [usize; 3],
    resize_to: Option<usize>,
    centre_crop: bool,
    h: usize,
    w: usize,
) -> Vec<u8> {
    let [c, mut ih, mut iw] = shape;
    let mut image = image;
    if let Some(size) = resize_to {
        let (nh, nw) = if iw <= ih { (size * ih / iw, size) } else { (size, size * iw / ih) };
        image = resize(&image, [c, ih, iw], nh, nw);
        (ih, iw) = (nh, nw);
    }
    if centre_crop || ih != h || iw != w {
        if ih < h || iw < w {
            let (nh, nw) = (ih.max(h), iw.max(w));
            image = resize(&image, [c, ih, iw], nh, nw);
            (ih, iw) = (nh, nw);
        }
        let top = ((ih - h) as f64 / 2.0).round_ties_even() as usize;
        let left = ((iw - w) as f64 / 2.0).round_ties_even() as usize;
        image = crop(&image, [c, ih, iw], top, left, h, w);
    }
    image
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
        let out = fit(image.clone(), [1, 4, 6], Some(2), true, 2, 2);
        let small = resize(&image, [1, 4, 6], 2, 3);
        assert_eq!(out, vec![small[0], small[1], small[3], small[4]]);
        // 1×1×8 to width 5: left offset round(1.5) = 2, as torchvision's CenterCrop takes it.
        let row: Vec<u8> = (0..8).collect();
        assert_eq!(fit(row, [1, 1, 8], None, true, 1, 5), vec![2, 3, 4, 5, 6]);
        assert_eq!(fit(image.clone(), [1, 4, 6], None, false, 4, 6), image, "a fitting image is kept");
        assert_eq!(crop(&image, [1, 4, 6], 1, 2, 2, 3), vec![8, 9, 10, 14, 15, 16]);
        assert_eq!(fit(vec![9; 4], [1, 2, 2], None, true, 3, 3), vec![9; 9], "a small image is stretched");
    }
}
