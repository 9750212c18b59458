//! PGM and PPM files, binary (`P5`, `P6`) and plain (`P2`, `P3`), read as PIL reads them, so as
//! torchvision saw them: PIL scales each sample from the file's maximum value to the full range of
//! the image mode it opens (`round(v · 255 / maxval)` for 8-bit `L` and `RGB`, which a 16-bit PPM
//! becomes too, and `round(v · 65535 / maxval)` for a 16-bit PGM, mode `I`), rounding halves to even
//! as Python's `round` does (Pillow's `PpmDecoder` and `PpmPlainDecoder`). The `image` crate rounds
//! halves away from zero and rounds a 16-bit PPM twice, so these formats are decoded here.

use image::{DynamicImage, ImageBuffer};

/// The longest sample of a plain PNM, in digits: Pillow refuses longer tokens.
const MAX_PLAIN_DIGITS: usize = 10;

/// The image in a PGM or PPM file's `bytes`, as PIL opens it: `Ok(None)` for other files (other PNM
/// kinds too, which the `image` crate decodes), `Err` with the reason for a PGM or PPM that is cut
/// short, has a malformed header or, in the plain format, a sample that is not a number or exceeds
/// the maximum value (which PIL refuses; it clips one in a binary file).
pub fn decode_as_pil(bytes: &[u8]) -> Result<Option<DynamicImage>, String> {
    let (channels, plain) = match bytes.get(..2) {
        Some(b"P2") => (1, true),
        Some(b"P3") => (3, true),
        Some(b"P5") => (1, false),
        Some(b"P6") => (3, false),
        _ => return Ok(None),
    };
    let mut at = 2;
    let mut field = |name: &str| header_number(bytes, &mut at).ok_or(format!("the PNM header has no valid {name}"));
    let (width, height, maxval) = (field("width")?, field("height")?, field("maximum value")?);
    if width == 0 || height == 0 || !(1..=65535).contains(&maxval) {
        return Err(format!("a PNM of {width}×{height} samples with maximum value {maxval}"));
    }
    at += 1; // The single whitespace byte after the maximum value.
    let wide = maxval > 255;
    let samples = u128::from(width) * u128::from(height) * channels as u128;
    let data = bytes.get(at..).unwrap_or_default();
    // A plain sample takes a digit and a separator at least (the last one no separator).
    let least = if plain { 2 * samples - 1 } else { samples * if wide { 2 } else { 1 } };
    if (data.len() as u128) < least {
        return Err(format!("the PNM holds fewer than the {samples} samples its header declares"));
    }
    let samples = samples as usize;
    let values: Vec<u64> = if plain {
        plain_samples(data, samples, maxval)?
    } else {
        let sample = |i: usize| {
            let v = if wide { u16::from_be_bytes([data[2 * i], data[2 * i + 1]]) } else { u16::from(data[i]) };
            u64::from(v).min(u64::from(maxval))
        };
        (0..samples).map(sample).collect()
    };
    let (w, h) = (width, height);
    let image = if channels == 1 && wide {
        let values = values.into_iter().map(|v| scale(v, 65535, maxval) as u16).collect();
        DynamicImage::ImageLuma16(ImageBuffer::from_raw(w, h, values).expect("one sample per pixel"))
    } else {
        let values: Vec<u8> = values.into_iter().map(|v| scale(v, 255, maxval) as u8).collect();
        if channels == 1 {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, values).expect("one sample per pixel"))
        } else {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, values).expect("three samples per pixel"))
        }
    };
    Ok(Some(image))
}

/// The first `count` samples of a plain PNM's `data`: decimal numbers apart by whitespace, each at
/// most `maxval`. A `#` comment is cut out up to and with its line's end, as Pillow cuts it, so the
/// digits on either side of it join.
fn plain_samples(data: &[u8], count: usize, maxval: u32) -> Result<Vec<u64>, String> {
    let mut text = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(start) = rest.iter().position(|c| *c == b'#') {
        text.extend_from_slice(&rest[..start]);
        let end = rest[start..].iter().position(|c| matches!(c, b'\n' | b'\r'));
        rest = end.map_or(&[][..], |end| &rest[start + end + 1..]);
    }
    text.extend_from_slice(rest);
    let separator = |c: &u8| c.is_ascii_whitespace() || *c == 0x0b;
    let mut values = Vec::with_capacity(count);
    for token in text.split(separator).filter(|t| !t.is_empty()).take(count) {
        let n = values.len() + 1;
        let shown = String::from_utf8_lossy(&token[..token.len().min(MAX_PLAIN_DIGITS + 1)]);
        if token.len() > MAX_PLAIN_DIGITS || !token.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "plain PNM sample {n} is `{shown}`, not a number of at most {MAX_PLAIN_DIGITS} digits"
            ));
        }
        let v: u64 = shown.parse().expect("at most ten digits");
        if v > u64::from(maxval) {
            return Err(format!("plain PNM sample {n} is {v}, above the file's maximum value {maxval}"));
        }
        values.push(v);
    }
    if values.len() < count {
        return Err(format!("the PNM holds {} of the {count} samples its header declares", values.len()));
    }
    Ok(values)
}

/// `round(v · full / maxval)` with halves to even, in integers.
fn scale(v: u64, full: u64, maxval: u32) -> u64 {
    let (num, den) = (v * full, u64::from(maxval));
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
        std::cmp::Ordering::Less => q,
    }
}

/// The next decimal number of a PNM header from `at`, past whitespace and `#` comments.
fn header_number(bytes: &[u8], at: &mut usize) -> Option<u32> {
    loop {
        match bytes.get(*at)? {
            b'#' => {
                while !matches!(bytes.get(*at)?, b'\n' | b'\r') {
                    *at += 1;
                }
            }
            c if c.is_ascii_whitespace() => *at += 1,
            _ => break,
        }
    }
    let start = *at;
    while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
        *at += 1;
    }
    std::str::from_utf8(&bytes[start..*at]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values are Pillow 13's (`Image.open(...).convert("RGB")`, and `getdata()` of mode `I`).
    #[test]
    fn samples_scale_as_pil_scales_them() {
        let ppm = [b"P6\n# a comment\n2 1\n1000\n".as_slice(), &[1, 44, 2, 188, 3, 232, 0, 0, 0, 2, 1, 244]].concat();
        let Some(DynamicImage::ImageRgb8(rgb)) = decode_as_pil(&ppm).unwrap() else { panic!("an RGB image") };
        assert_eq!(rgb.into_raw(), [76, 178, 255, 0, 1, 128]);
        let pgm = [b"P5 3 1 1000 ".as_slice(), &[0, 1, 0, 3, 0, 5]].concat();
        let Some(DynamicImage::ImageLuma16(gray)) = decode_as_pil(&pgm).unwrap() else { panic!("mode I") };
        assert_eq!(gray.into_raw(), [66, 197, 328]);
        let small = [b"P5\n4 1\n100\n".as_slice(), &[10, 30, 50, 100]].concat();
        let Some(DynamicImage::ImageLuma8(gray)) = decode_as_pil(&small).unwrap() else { panic!("mode L") };
        assert_eq!(gray.into_raw(), [26, 76, 128, 255]);
    }

    /// Plain files scale as binary ones; a comment joins the digits on either side of it (Pillow 13).
    #[test]
    fn plain_samples_scale_as_pil_scales_them() {
        let ppm = b"P3\n# c\n2 1\n1000\n300 700 1000 # mid\n0 2 500\n";
        let Some(DynamicImage::ImageRgb8(rgb)) = decode_as_pil(ppm).unwrap() else { panic!("an RGB image") };
        assert_eq!(rgb.into_raw(), [76, 178, 255, 0, 1, 128]);
        let Some(DynamicImage::ImageRgb8(rgb)) = decode_as_pil(b"P3\n1 1\n65535\n7 2507 65535\n").unwrap() else {
            panic!("an RGB image")
        };
        assert_eq!(rgb.into_raw(), [0, 10, 255]);
        let Some(DynamicImage::ImageLuma16(gray)) = decode_as_pil(b"P2 3 1 1000 1 3 5\n").unwrap() else {
            panic!("mode I")
        };
        assert_eq!(gray.into_raw(), [66, 197, 328]);
        let Some(DynamicImage::ImageLuma8(gray)) = decode_as_pil(b"P2\n4 1\n100\n10 30 50 100").unwrap() else {
            panic!("mode L")
        };
        assert_eq!(gray.into_raw(), [26, 76, 128, 255]);
        let Some(DynamicImage::ImageLuma8(gray)) = decode_as_pil(b"P2\n2 1\n255\n1#x\n2 7\n").unwrap() else {
            panic!("mode L")
        };
        assert_eq!(gray.into_raw(), [12, 7]);
    }

    /// What Pillow refuses in a plain file is refused, with the sample and the reason.
    #[test]
    fn bad_plain_samples_are_refused() {
        let refused = |bytes: &[u8]| decode_as_pil(bytes).unwrap_err();
        assert!(refused(b"P2\n2 1\n255\n1 256\n").contains("sample 2 is 256, above the file's maximum value 255"));
        assert!(refused(b"P2\n2 1\n255\n1 x\n").contains("sample 2 is `x`, not a number"));
        assert!(refused(b"P2\n2 1\n255\n12345678901 1\n").contains("`12345678901`"));
        assert!(refused(b"P2\n2 1\n255\n1 #\n\n\n").contains("holds 1 of the 2 samples"));
        assert!(refused(b"P3\n2 1\n255\n1 2 3\n").contains("fewer than the 6 samples"));
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        assert!(decode_as_pil(b"\x89PNG").unwrap().is_none());
        assert!(decode_as_pil(b"P6\n2 1\n255\n\x01\x02").unwrap_err().contains("fewer than the 6 samples"));
        assert!(decode_as_pil(b"P5\n2 x\n255\n").unwrap_err().contains("height"));
        assert!(decode_as_pil(b"P5\n2 1\n0\n\x00\x00").unwrap_err().contains("maximum value 0"));
        assert!(decode_as_pil(b"P5\n99999999999 1\n255\n").is_err());
        // The largest header the numbers allow is refused for its missing samples, without overflow.
        assert!(decode_as_pil(b"P6\n4294967295 4294967295\n65535\n").unwrap_err().contains("fewer than"));
    }
}
