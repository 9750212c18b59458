//! Images as model input, preprocessed as torchvision's classification transforms do: resize the
//! shorter side (PIL's antialiased bilinear filter), centre-crop, scale to [0, 1], normalise. A
//! model of one input channel gets the image in grayscale, as PIL's `convert("L")` makes it.

use std::path::Path;

use cnnc_ir::graph::{Graph, Meta};

use crate::{resample, RuntimeError, Tensor};

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
    let (mean, std) = normalisation(meta, channels)?;
    let mut data = Vec::with_capacity(paths.len() * channels * h * w);
    for path in paths {
        data.extend(load(path.as_ref(), meta, (&mean, &std), channels, h, w)?);
    }
    Ok(Tensor::new(vec![paths.len(), channels, h, w], data))
}

/// The per-channel mean and std of `meta`'s preprocessing for an image of `channels` channels
/// ([`Meta::normalisation`]).
///
/// # Errors
/// [`RuntimeError::Preprocess`] when mean or std has neither one value nor one per channel.
pub fn normalisation(meta: &Meta, channels: usize) -> Result<(Vec<f64>, Vec<f64>), RuntimeError> {
    meta.normalisation(channels).ok_or_else(|| {
        let count = |v: &Option<Vec<f64>>| v.as_ref().map_or(channels, Vec::len);
        RuntimeError::Preprocess { channels, means: count(&meta.mean), stds: count(&meta.std) }
    })
}

/// PIL's `convert("L")` of one RGB pixel: `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`.
fn luma(rgb: &[u8]) -> u8 {
    ((u32::from(rgb[0]) * 19595 + u32::from(rgb[1]) * 38470 + u32::from(rgb[2]) * 7471 + 0x8000) >> 16) as u8
}

fn load(
    path: &Path,
    meta: &Meta,
    (mean, std): (&[f64], &[f64]),
    channels: usize,
    h: usize,
    w: usize,
) -> Result<Vec<f32>, RuntimeError> {
    let (image, shape) = decode(path, channels)?;
    let refused = meta.resize.and_then(|size| resample::refuse_resize(shape, size));
    if let Some(message) = refused.or_else(|| resample::misfit(shape, meta.resize, meta.crop.is_some(), h, w)) {
        return Err(RuntimeError::Image { path: path.to_path_buf(), message });
    }
    let image = resample::fit(image, shape, meta.resize, meta.crop.is_some(), h, w);
    let mut out = Vec::with_capacity(channels * h * w);
    for (c, plane) in image.chunks(h * w).enumerate() {
        out.extend(plane.iter().map(|p| ((f64::from(*p) / 255.0 - mean[c]) / std[c]) as f32));
    }
    Ok(out)
}

/// The most memory one decoded image may take, as RGBA bytes (256 MiB): checked from the file's
/// header before any pixel is decoded.
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// An image file's width and height, from its header alone.
///
/// # Errors
/// [`RuntimeError::Image`] naming the file, when it cannot be read, its header is not an image's, or
/// it would take more than [`MAX_DECODED_BYTES`] decoded.
pub fn dimensions(path: &Path) -> Result<(usize, usize), RuntimeError> {
    let bad = |message: String| RuntimeError::Image { path: path.to_path_buf(), message };
    let reader = image::ImageReader::open(path).map_err(|e| bad(e.to_string()))?;
    let reader = reader.with_guessed_format().map_err(|e| bad(e.to_string()))?;
    let (width, height) = reader.into_dimensions().map_err(|e| bad(e.to_string()))?;
    let bytes = u64::from(width) * u64::from(height) * 4;
    if bytes > MAX_DECODED_BYTES {
        return Err(bad(format!(
            "it is {width}×{height} pixels, {} MiB decoded; cnnc decodes images of up to {} MiB (about 8,000 × 8,000 pixels)",
            bytes >> 20,
            MAX_DECODED_BYTES >> 20
        )));
    }
    Ok((width as usize, height as usize))
}

/// Decodes an image file (PNG or JPEG) as planar bytes `[C, H, W]`: RGB for `channels` 3, or the
/// luma of each pixel for 1 (grayscale first, as a dataset of `L` images is resized).
///
/// # Errors
/// [`RuntimeError::Image`] naming the file, when it cannot be read or decoded.
pub fn decode(path: &Path, channels: usize) -> Result<(Vec<u8>, [usize; 3]), RuntimeError> {
    let bad = |message: String| RuntimeError::Image { path: path.to_path_buf(), message };
    let open = || {
        image::ImageReader::open(path)
            .map_err(|e| bad(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| bad(e.to_string()))
    };
    // The size from the header first, so that no pixel memory is allocated for an image too large.
    dimensions(path)?;
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES * 2);
    reader.limits(limits);
    let format = reader.format();
    let pil_pnm = match format {
        Some(image::ImageFormat::Pnm) => {
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            crate::pnm::decode_as_pil(&bytes).map_err(bad)?
        }
        _ => None,
    };
    let decoded = match pil_pnm {
        Some(img) => img,
        None => reader.decode().map_err(|e| bad(e.to_string()))?,
    };
    let img = match decoded {
        // The decoder made the transparency chunk of a 16-bit grayscale PNG an alpha channel; PIL
        // keeps it as a note on an `I;16` image, which converts as plain 16-bit grayscale.
        image::DynamicImage::ImageLumaA16(b) if is_sixteen_bit_grayscale_png(path) => {
            let (w, h) = b.dimensions();
            let gray = b.into_raw().chunks(2).map(|p| p[0]).collect();
            image::DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(w, h, gray).expect("one sample per pixel"))
        }
        img => img,
    };
    let img = eight_bit_as_pil_reads_it(img).to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.into_raw();
    let planar = if channels == 1 {
        rgb.chunks(3).map(luma).collect()
    } else {
        (0..3).flat_map(|c| rgb.chunks(3).map(move |p| p[c])).collect()
    };
    Ok((planar, [channels, h, w]))
}

/// Whether `path` is a PNG of 16-bit grayscale without an alpha channel (colour type 0), read from
/// its header (the IHDR chunk, which comes first): the decoder turns such an image's transparency
/// chunk into alpha, which PIL does not.
fn is_sixteen_bit_grayscale_png(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 26];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    read.is_ok() && header.starts_with(b"\x89PNG\r\n\x1a\n") && &header[12..16] == b"IHDR" && header[24..26] == [16, 0]
}

/// A 16-bit image reduced to 8 bits as PIL, and so torchvision's image loaders, reduce it: a 16-bit
/// grayscale PNG opens as mode `I;16`, whose conversion to `RGB` or `L` clips every value above 255
/// to 255 (it does not scale); 16-bit colour and grayscale-with-alpha PNGs open as 8-bit `RGB`,
/// `RGBA` or `LA`, keeping each sample's high byte. Alpha is dropped later, as `convert("RGB")`
/// drops it. Other images pass unchanged. (A 16-bit grayscale PNG with a transparency chunk
/// reaches here as 16-bit grayscale, its alpha dropped by [`decode`], and is clipped as PIL clips
/// it.)
fn eight_bit_as_pil_reads_it(img: image::DynamicImage) -> image::DynamicImage {
    use image::{DynamicImage, ImageBuffer};
    let high = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageLuma16(b) => {
            let (w, h) = b.dimensions();
            let clipped = b.into_raw().into_iter().map(|v| v.min(255) as u8).collect();
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, clipped).expect("one sample per pixel"))
        }
        DynamicImage::ImageLumaA16(b) => {
            let (w, h) = b.dimensions();
            let bytes = b.into_raw().into_iter().map(high).collect();
            DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, bytes).expect("two samples per pixel"))
        }
        DynamicImage::ImageRgb16(b) => {
            let (w, h) = b.dimensions();
            let bytes = b.into_raw().into_iter().map(high).collect();
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, bytes).expect("three samples per pixel"))
        }
        DynamicImage::ImageRgba16(b) => {
            let (w, h) = b.dimensions();
            let bytes = b.into_raw().into_iter().map(high).collect();
            DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, bytes).expect("four samples per pixel"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_images_reduce_as_in_pil() {
        // Pillow 13: a 16-bit grayscale PNG of [0, 100, 200, 300, 400, 500] converts to
        // [0, 100, 200, 255, 255, 255]; a 16-bit RGB one keeps each sample's high byte.
        let gray = image::ImageBuffer::from_raw(3, 2, vec![0u16, 100, 200, 300, 400, 500]).unwrap();
        let out = eight_bit_as_pil_reads_it(image::DynamicImage::ImageLuma16(gray)).to_rgb8();
        let reds: Vec<u8> = out.pixels().map(|p| p[0]).collect();
        assert_eq!(reds, [0, 100, 200, 255, 255, 255]);
        let rgb = image::ImageBuffer::from_raw(1, 1, vec![7u16, 2507, 65535]).unwrap();
        let out = eight_bit_as_pil_reads_it(image::DynamicImage::ImageRgb16(rgb)).to_rgb8();
        assert_eq!(out.into_raw(), [0, 9, 255]);
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
}
