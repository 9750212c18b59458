//! Images as model input, preprocessed as torchvision's classification transforms do: resize the
//! shorter side (PIL's antialiased bilinear filter), centre-crop, scale to [0, 1], normalise. A
//! model of one input channel gets the image in grayscale, as PIL's `convert("L")` makes it.

use std::path::Path;

use cnnc_ir::graph::{Graph, Meta};

use crate::{RuntimeError, Tensor};

/// Loads images as one `[N, C, H, W]` batch for `graph` (C is 3, or 1 for grayscale), following its
/// `preprocess` metadata.
pub fn load_batch(paths: &[impl AsRef<Path>], graph: &Graph) -> Result<Tensor, RuntimeError> {
    load_batch_for(paths, &graph.meta, graph.node(graph.input).shape.dims())
}

/// Loads images as one `[N, C, H, W]` batch for a model with metadata `meta` whose input items
/// are `input` (`[3, H, W]`, or `[1, H, W]` for grayscale).
pub fn load_batch_for(paths: &[impl AsRef<Path>], meta: &Meta, input: &[usize]) -> Result<Tensor, RuntimeError> {
    let dims = input.to_vec();
    if paths.is_empty() {
        return Err(RuntimeError::NoImages);
    }
    let [channels @ (1 | 3), h, w] = dims[..] else {
        return Err(RuntimeError::NotAnImageModel { input: dims });
    };
    let count = |v: &Option<Vec<f64>>| v.as_ref().map_or(channels, Vec::len);
    let (means, stds) = (count(&meta.mean), count(&meta.std));
    if means != channels || stds != channels {
        return Err(RuntimeError::Preprocess { channels, means, stds });
    }
    let mut data = Vec::with_capacity(paths.len() * channels * h * w);
    for path in paths {
        data.extend(load(path.as_ref(), meta, channels, h, w)?);
    }
    Ok(Tensor::new(vec![paths.len(), channels, h, w], data))
}

/// PIL's `convert("L")` of one RGB pixel: `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`.
fn luma(rgb: &[u8]) -> u8 {
    ((u32::from(rgb[0]) * 19595 + u32::from(rgb[1]) * 38470 + u32::from(rgb[2]) * 7471 + 0x8000) >> 16) as u8
}

fn load(path: &Path, meta: &Meta, channels: usize, h: usize, w: usize) -> Result<Vec<f32>, RuntimeError> {
    let bad = |message: String| RuntimeError::Image { path: path.to_path_buf(), message };
    let img = image::ImageReader::open(path)
        .map_err(|e| bad(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?
        .decode()
        .map_err(|e| bad(e.to_string()))?
        .to_rgb8();
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let mut rgb = Rgb { w: iw, h: ih, data: img.into_raw() };
    if channels == 1 {
        // Grayscale first, as a dataset of `L` images is resized: each pixel's three channels
        // become its luma (exact for an image that was gray already).
        for pixel in rgb.data.chunks_mut(3) {
            let l = luma(pixel);
            pixel.fill(l);
        }
    }
    if let Some(size) = meta.resize {
        // torchvision: the shorter side becomes `size`, the longer keeps the aspect ratio (truncated).
        let (nw, nh) = if rgb.w <= rgb.h { (size, size * rgb.h / rgb.w) } else { (size * rgb.w / rgb.h, size) };
        rgb = resize(&rgb, nw, nh);
    }
    if meta.crop.is_some() || rgb.w != w || rgb.h != h {
        if rgb.w < w || rgb.h < h {
            rgb = resize(&rgb, w.max(rgb.w), h.max(rgb.h));
        }
        // torchvision's CenterCrop: offsets rounded half away from zero.
        let top = ((rgb.h - h) as f64 / 2.0).round() as usize;
        let left = ((rgb.w - w) as f64 / 2.0).round() as usize;
        rgb = crop(&rgb, left, top, w, h);
    }
    let mean = meta.mean.clone().unwrap_or_else(|| vec![0.0; channels]);
    let std = meta.std.clone().unwrap_or_else(|| vec![1.0; channels]);
    let mut out = vec![0f32; channels * h * w];
    for c in 0..channels {
        for p in 0..h * w {
            out[c * h * w + p] = ((rgb.data[p * 3 + c] as f64 / 255.0 - mean[c]) / std[c]) as f32;
        }
    }
    Ok(out)
}

/// An 8-bit RGB image, row-major, interleaved.
struct Rgb {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

fn crop(img: &Rgb, left: usize, top: usize, w: usize, h: usize) -> Rgb {
    let mut data = Vec::with_capacity(w * h * 3);
    for y in top..top + h {
        data.extend_from_slice(&img.data[(y * img.w + left) * 3..(y * img.w + left + w) * 3]);
    }
    Rgb { w, h, data }
}

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

/// PIL-compatible antialiased bilinear resize: a horizontal pass, then a vertical one, each rounded
/// to 8 bits as PIL does.
fn resize(img: &Rgb, nw: usize, nh: usize) -> Rgb {
    let mut tmp = Rgb { w: nw, h: img.h, data: vec![0; nw * img.h * 3] };
    if nw == img.w {
        tmp.data.clone_from(&img.data);
    } else {
        let coeffs = coefficients(img.w, nw);
        for y in 0..img.h {
            for (x, (start, k)) in coeffs.iter().enumerate() {
                for c in 0..3 {
                    let sum: f64 =
                        k.iter().enumerate().map(|(i, w)| w * img.data[(y * img.w + start + i) * 3 + c] as f64).sum();
                    tmp.data[(y * nw + x) * 3 + c] = clip8(sum);
                }
            }
        }
    }
    if nh == img.h {
        return tmp;
    }
    let mut out = Rgb { w: nw, h: nh, data: vec![0; nw * nh * 3] };
    let coeffs = coefficients(img.h, nh);
    for (y, (start, k)) in coeffs.iter().enumerate() {
        for x in 0..nw {
            for c in 0..3 {
                let sum: f64 =
                    k.iter().enumerate().map(|(i, w)| w * tmp.data[((start + i) * nw + x) * 3 + c] as f64).sum();
                out.data[(y * nw + x) * 3 + c] = clip8(sum);
            }
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
        let k = coefficients(4, 2);
        assert_eq!(k[0].0, 0);
        let img = Rgb { w: 4, h: 1, data: [0u8, 100, 200, 50].iter().flat_map(|v| [*v, *v, *v]).collect() };
        let half = resize(&img, 2, 1);
        // As PIL's Image.resize((2, 1), BILINEAR) gives: [71, 121].
        assert_eq!((half.data[0], half.data[3]), (71, 121));
        let same = resize(&img, 4, 1);
        assert_eq!(same.data, img.data);
    }

    #[test]
    fn grayscale_is_pils_luma() {
        assert!((0..=255u8).all(|v| luma(&[v, v, v]) == v), "a gray pixel keeps its value");
        // PIL 11: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)).
        assert_eq!(
            [luma(&[255, 0, 0]), luma(&[0, 255, 0]), luma(&[0, 0, 255]), luma(&[10, 200, 30])],
            [76, 150, 29, 124]
        );
    }

    const PIL_ROW: [u8; 6] = [6, 17, 28, 40, 51, 63];

    #[test]
    fn matches_pil_on_a_two_axis_resize() {
        // A 53×37 ramp pattern resized to 23×17; the expected row comes from PIL 11 (BILINEAR).
        let (w, h) = (53usize, 37usize);
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let v = ((i % w) * 5 + (i / w) * 3) as u8;
                [v, v, v]
            })
            .collect();
        let out = resize(&Rgb { w, h, data }, 23, 17);
        let row: Vec<u8> = (0..6).map(|x| out.data[x * 3]).collect();
        assert_eq!(row, PIL_ROW);
    }
}
