//! PGM and PPM files, binary (`P5`, `P6`) and plain (`P2`, `P3`), read as PIL reads them, so as
//! torchvision saw them: PIL scales each sample from the file's maximum value to the full range of
//! the image mode it opens (`round(v · 255 / maxval)` for 8-bit `L` and `RGB`, which a 16-bit PPM
//! becomes too, and `round(v · 65535 / maxval)` for a 16-bit PGM, mode `I`), rounding halves to even
//! as Python's `round` does (Pillow's `PpmDecoder` and `PpmPlainDecoder`). The `image` crate rounds
//! halves away from zero and rounds a 16-bit PPM twice, so these formats are decoded here.

use image::{DynamicImage, ImageBuffer};

/// The longest token of a PNM (header field or plain sample), in bytes: Pillow refuses longer ones.
const MAX_TOKEN_BYTES: usize = 10;

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
    if !bytes.get(2).is_some_and(|c| PNM_WHITESPACE.contains(c)) {
        return Err("the PNM's magic number is not followed by whitespace".to_string());
    }
    let mut at = 3;
    let mut field = |name: &str| {
        let token = header_token(bytes, &mut at).map_err(|e| format!("the PNM header's {name}: {e}"))?;
        let shown = String::from_utf8_lossy(&token).into_owned();
        python_int(&token)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(format!("the PNM header's {name} is `{shown}`, not a number from 0 to 4294967295"))
    };
    let (width, height, maxval) = (field("width")?, field("height")?, field("maximum value")?);
    if width == 0 || height == 0 || !(1..=65535).contains(&maxval) {
        return Err(format!("a PNM of {width}×{height} samples with maximum value {maxval}"));
    }
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
    let separator = |c: &u8| PNM_WHITESPACE.contains(c);
    let mut values = Vec::with_capacity(count);
    for token in text.split(separator).filter(|t| !t.is_empty()).take(count) {
        let n = values.len() + 1;
        let shown = String::from_utf8_lossy(&token[..token.len().min(MAX_TOKEN_BYTES + 1)]);
        let Some(v) = python_int(token).filter(|_| token.len() <= MAX_TOKEN_BYTES) else {
            return Err(format!(
                "plain PNM sample {n} is `{shown}`, not a number of at most {MAX_TOKEN_BYTES} characters"
            ));
        };
        if v < 0 {
            return Err(format!("plain PNM sample {n} is {v}, a negative value"));
        }
        let v = v.unsigned_abs();
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

/// A token as Python's `int()` reads it, which is how Pillow reads a plain sample: an optional sign,
/// then decimal digits, single underscores allowed between them (`+5`, `1_0`, `-0`).
fn python_int(token: &[u8]) -> Option<i64> {
    let digits = token.strip_prefix(b"+").or_else(|| token.strip_prefix(b"-")).unwrap_or(token);
    let well_formed = digits.first().is_some_and(u8::is_ascii_digit)
        && digits.last().is_some_and(u8::is_ascii_digit)
        && digits.iter().all(|c| c.is_ascii_digit() || *c == b'_')
        && !digits.windows(2).any(|w| w == b"__");
    if !well_formed {
        return None;
    }
    let value = digits.iter().filter(|c| c.is_ascii_digit()).fold(0i64, |v, c| v * 10 + i64::from(c - b'0'));
    Some(if token[0] == b'-' { -value } else { value })
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

/// Pillow's whitespace in PNM files (`b_whitespace`): space, tab, LF, VT, FF, CR.
const PNM_WHITESPACE: &[u8] = b" \t\n\x0b\x0c\r";

/// The next token of a PNM header from `at`, as Pillow's `_read_token` reads it: whitespace before it
/// skipped, `#` comments cut out up to a CR or LF wherever they fall (so digits on either side of
/// one join), ended by one whitespace byte, which is consumed (after the maximum value, the binary
/// samples start right after it), or by the file's end; at most 10 bytes.
fn header_token(bytes: &[u8], at: &mut usize) -> Result<Vec<u8>, String> {
    let mut token = Vec::new();
    while token.len() <= MAX_TOKEN_BYTES {
        let Some(&c) = bytes.get(*at) else { break };
        *at += 1;
        if PNM_WHITESPACE.contains(&c) {
            if token.is_empty() {
                continue;
            }
            break;
        }
        if c == b'#' {
            while bytes.get(*at).is_some_and(|c| !matches!(c, b'\r' | b'\n')) {
                *at += 1;
            }
            *at += 1;
            continue;
        }
        token.push(c);
    }
    match token.len() {
        0 => Err("the file ends in its header".to_string()),
        n if n > MAX_TOKEN_BYTES => {
            Err(format!("`{}…` is longer than 10 bytes", String::from_utf8_lossy(&token[..MAX_TOKEN_BYTES])))
        }
        _ => Ok(token),
    }
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
        // Samples are read as Python's int() reads them: a sign, underscores between digits.
        let Some(DynamicImage::ImageLuma8(gray)) = decode_as_pil(b"P2\n3 1\n100\n+5 1_0 -00\n").unwrap() else {
            panic!("mode L")
        };
        assert_eq!(gray.into_raw(), [13, 26, 0]);
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
        assert!(refused(b"P2\n2 1\n255\n1 -5\n").contains("sample 2 is -5, a negative value"));
        for bad in ["1__0", "_1", "1_", "+", "--1", "+-1", "1e2", "0x1"] {
            let file = format!("P2\n2 1\n255\n1 {bad}\n");
            assert!(refused(file.as_bytes()).contains(&format!("sample 2 is `{bad}`, not a number")), "{bad}");
        }
        assert!(refused(b"P2\n2 1\n255\n1 #\n\n\n").contains("holds 1 of the 2 samples"));
        assert!(refused(b"P3\n2 1\n255\n1 2 3\n").contains("fewer than the 6 samples"));
    }

    /// Header fields are read as Pillow reads them: a comment anywhere joins the digits around it,
    /// numbers as Python's int() reads them, the samples right after the maximum value's one
    /// whitespace byte (Pillow 13's values).
    #[test]
    fn headers_are_read_as_pil_reads_them() {
        let pixels = |bytes: &[u8]| match decode_as_pil(bytes).unwrap() {
            Some(DynamicImage::ImageLuma8(gray)) => (gray.dimensions(), gray.into_raw()),
            other => panic!("mode L, not {other:?}"),
        };
        let twelve: Vec<u8> = (1..=12).collect();
        assert_eq!(pixels(b"P2\n1#c\n2 1\n255\n1 2 3 4 5 6 7 8 9 10 11 12\n"), ((12, 1), twelve));
        let samples: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let file = format!("P2 +2 1_0 2_55 {}\n", samples.join(" "));
        assert_eq!(pixels(file.as_bytes()), ((2, 10), (0..20).collect()));
        assert_eq!(pixels(b"P5\n2 1\n25#c\n5\n\x01\x02"), ((2, 1), vec![1, 2]));
        assert!(decode_as_pil(b"P5#\n2 1\n255\n\x01\x02").unwrap_err().contains("magic number"));
        let joined = decode_as_pil(b"P5 2 1 255#c\n\x01\x02").unwrap_err();
        assert!(joined.contains("maximum value is `255\u{1}\u{2}`"), "{joined}");
        assert!(decode_as_pil(b"P5 2 1 ").unwrap_err().contains("ends in its header"));
        assert!(decode_as_pil(b"P5 2 12345678901 255 ").unwrap_err().contains("longer than 10 bytes"));
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
