//! Training-time augmentation on image bytes, with torchvision's semantics, drawn from the
//! counter-based generator so that a run is reproducible: `random_crop(SIZE, pad=P)`
//! (`transforms.RandomCrop(SIZE, padding=P)`: zero padding on every side, then a SIZE×SIZE window
//! at a uniformly drawn offset), `random_resized_crop(SIZE)` (`transforms.RandomResizedCrop(SIZE)`:
//! a window of 8 % to 100 % of the area and aspect ratio 3/4 to 4/3, resized to SIZE×SIZE with
//! PIL's bilinear filter) and `hflip` (`transforms.RandomHorizontalFlip()`: a mirror image with
//! probability ½). Steps apply in the order given, before normalisation, as a torchvision
//! `Compose` does.

use crate::resample;
use crate::train::rng;

/// One augmentation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Augment {
    RandomCrop { size: usize, pad: usize },
    RandomResizedCrop { size: usize },
    HorizontalFlip,
}

impl Augment {
    /// Whether the step crops, setting the image's size itself.
    pub fn crops(&self) -> bool {
        !matches!(self, Augment::HorizontalFlip)
    }
}

/// `RandomResizedCrop`'s defaults: the window's share of the image's area and its aspect ratio.
const SCALE: (f64, f64) = (0.08, 1.0);
const RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// Windows `RandomResizedCrop` tries before it falls back to a centre crop.
const ATTEMPTS: usize = 10;

/// The largest crop size and padding accepted (no dataset image comes near it).
const MAX_SIDE: usize = 1 << 16;

/// Draws each step may make per image (so that steps draw independent numbers): two per
/// `RandomResizedCrop` attempt and two for the offsets.
const DRAWS: usize = 2 * ATTEMPTS + 2;

/// Parses a comma-separated list: `random_crop(32, pad=4), hflip`; `none` is the empty list.
///
/// # Errors
/// A message naming the step that is not understood.
pub fn parse(text: &str) -> Result<Vec<Augment>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    if parts.len() > 1 && parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("`{text}` has an empty step between its commas"));
    }
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let call = |name: &str| {
            part.strip_prefix(name).map(str::trim_start).and_then(|a| a.strip_prefix('(')?.strip_suffix(')'))
        };
        let number = |v: &str| {
            v.parse::<usize>().map_err(|_| match v.parse::<i64>() {
                Ok(n) if n < 0 => format!("`{part}`: `{v}` is negative; sizes and padding are 0 or more"),
                _ => format!("`{part}`: `{v}` is not a whole number"),
            })
        };
        let step = if part == "hflip" {
            Augment::HorizontalFlip
        } else if let Some(size) = call("random_resized_crop") {
            let size = number(size.trim())?;
            if size == 0 || size > MAX_SIDE {
                return Err(format!("`{part}`: the size must be 1 to {MAX_SIDE}"));
            }
            Augment::RandomResizedCrop { size }
        } else if let Some(args) = call("random_crop") {
            let (size, pad) = match args.split_once(',') {
                Some((size, pad)) => {
                    let pad = pad.trim().strip_prefix("pad").map(str::trim_start).and_then(|p| p.strip_prefix('='));
                    (size.trim(), pad.ok_or_else(|| format!("`{part}`: write random_crop(SIZE, pad=P)"))?.trim())
                }
                None => (args.trim(), "0"),
            };
            let (size, pad) = (number(size)?, number(pad)?);
            if size == 0 || size > MAX_SIDE || pad > MAX_SIDE {
                return Err(format!("`{part}`: the size must be 1 to {MAX_SIDE} and the padding at most {MAX_SIDE}"));
            }
            Augment::RandomCrop { size, pad }
        } else {
            return Err(format!(
                "`{part}` is not an augmentation: use random_crop(SIZE, pad=P), random_resized_crop(SIZE) or hflip"
            ));
        };
        steps.push(step);
    }
    Ok(steps)
}

/// The shape after all of `steps` on an image of `shape`.
///
/// # Errors
/// A crop larger than the (padded) image, as torchvision's `RandomCrop` refuses it.
pub fn output_shape(steps: &[Augment], shape: [usize; 3]) -> Result<[usize; 3], String> {
    let [c, mut h, mut w] = shape;
    for step in steps {
        match step {
            Augment::RandomCrop { size, pad } => {
                if h + 2 * pad < *size || w + 2 * pad < *size {
                    return Err(format!(
                        "random_crop({size}, pad={pad}) is larger than its {h}×{w} images, even padded; crop smaller \
                         or pad more"
                    ));
                }
                (h, w) = (*size, *size);
            }
            Augment::RandomResizedCrop { size } => (h, w) = (*size, *size),
            Augment::HorizontalFlip => {}
        }
    }
    Ok([c, h, w])
}

/// Applies `steps` to one `[C, H, W]` image of bytes, drawing from `key` as the `item`-th draw
/// stream (an image's position in its epoch).
pub fn apply(steps: &[Augment], image: &[u8], shape: [usize; 3], key: u32, item: usize) -> (Vec<u8>, [usize; 3]) {
    let mut image = image.to_vec();
    let mut shape = shape;
    for (s, step) in steps.iter().enumerate() {
        let draw = |k: usize| rng::uniform(key, (item * steps.len() + s) * DRAWS + k);
        match step {
            Augment::RandomCrop { size, pad } => {
                let [c, h, w] = shape;
                let (top, left) = crop_offsets(draw, h, w, *size, *pad);
                image = crop(&image, shape, *pad, top, left, *size);
                shape = [c, *size, *size];
            }
            Augment::RandomResizedCrop { size } => {
                let (top, left, h, w) = resized_crop_window(shape[1], shape[2], draw);
                let window = resample::crop(&image, shape, top, left, h, w);
                image = resample::resize(&window, [shape[0], h, w], *size, *size);
                shape = [shape[0], *size, *size];
            }
            Augment::HorizontalFlip => {
                if flips(draw) {
                    for row in image.chunks_mut(shape[2]) {
                        row.reverse();
                    }
                }
            }
        }
    }
    (image, shape)
}

/// `RandomCrop`'s offsets in the image padded by `pad`: torch.randint(0, h + 2·pad − size + 1),
/// and the same across.
fn crop_offsets(draw: impl Fn(usize) -> f64, h: usize, w: usize, size: usize, pad: usize) -> (usize, usize) {
    let top = (draw(0) * (h + 2 * pad - size + 1) as f64) as usize;
    let left = (draw(1) * (w + 2 * pad - size + 1) as f64) as usize;
    (top, left)
}

/// Whether `RandomHorizontalFlip` (p = ½) mirrors the image.
fn flips(draw: impl Fn(usize) -> f64) -> bool {
    draw(0) < 0.5
}

/// Where the pixels of an augmented image come from, when its steps only move them (at most one
/// `random_crop`, and any `hflip`s): pixel (y, x) of every channel of the result is pixel
/// (`top + y`, `left + step·x`) of the image, or a zero (the crop's padding) where that lies outside
/// it. A batch can then be made from images held as bytes anywhere (the GPU trainer's
/// `batch_from_bytes` kernel) with the draws made here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub top: i64,
    pub left: i64,
    /// 1, or −1 for a mirror image.
    pub step: i64,
}

/// `steps` on an image of `shape` as a [`Placement`], with the draws [`apply`] makes for `item`;
/// `None` when they resample (`random_resized_crop`) or crop more than once (a second crop's
/// padding is not a rectangle of the image).
pub fn placement(steps: &[Augment], shape: [usize; 3], key: u32, item: usize) -> Option<Placement> {
    if steps.iter().filter(|s| s.crops()).count() > 1 {
        return None;
    }
    let (mut h, mut w) = (shape[1], shape[2]);
    let mut at = Placement { top: 0, left: 0, step: 1 };
    for (s, step) in steps.iter().enumerate() {
        let draw = |k: usize| rng::uniform(key, (item * steps.len() + s) * DRAWS + k);
        match step {
            Augment::RandomCrop { size, pad } => {
                let (top, left) = crop_offsets(draw, h, w, *size, *pad);
                at.top += top as i64 - *pad as i64;
                at.left += at.step * (left as i64 - *pad as i64);
                (h, w) = (*size, *size);
            }
            Augment::HorizontalFlip => {
                if flips(draw) {
                    at.left += at.step * (w as i64 - 1);
                    at.step = -at.step;
                }
            }
            Augment::RandomResizedCrop { .. } => return None,
        }
    }
    Some(at)
}

/// The `[C, out_h, out_w]` image `at` places from `image` (`[C, H, W]` bytes).
pub fn place(image: &[u8], [c, h, w]: [usize; 3], at: Placement, out_h: usize, out_w: usize) -> Vec<u8> {
    let mut out = vec![0u8; c * out_h * out_w];
    for ch in 0..c {
        for y in 0..out_h {
            let sy = at.top + y as i64;
            if !(0..h as i64).contains(&sy) {
                continue;
            }
            for x in 0..out_w {
                let sx = at.left + at.step * x as i64;
                if (0..w as i64).contains(&sx) {
                    out[(ch * out_h + y) * out_w + x] = image[(ch * h + sy as usize) * w + sx as usize];
                }
            }
        }
    }
    out
}

/// `RandomResizedCrop.get_params` (torchvision 0.20) for an `h`×`w` image: (top, left, height,
/// width) of the window, from up to ten draws of area and aspect ratio (Python's `round`, ties to
/// even), else the centre crop of the largest window of an allowed ratio.
fn resized_crop_window(h: usize, w: usize, draw: impl Fn(usize) -> f64) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (low, high) = (RATIO.0.ln(), RATIO.1.ln());
    for attempt in 0..ATTEMPTS {
        let target = area * (SCALE.0 + (SCALE.1 - SCALE.0) * draw(2 * attempt));
        let ratio = (low + (high - low) * draw(2 * attempt + 1)).exp();
        let cw = (target * ratio).sqrt().round_ties_even() as usize;
        let ch = (target / ratio).sqrt().round_ties_even() as usize;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            // torch.randint(0, h − ch + 1) and (0, w − cw + 1).
            let top = (draw(2 * ATTEMPTS) * (h - ch + 1) as f64) as usize;
            let left = (draw(2 * ATTEMPTS + 1) * (w - cw + 1) as f64) as usize;
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < RATIO.0 {
        ((w as f64 / RATIO.0).round_ties_even() as usize, w)
    } else if in_ratio > RATIO.1 {
        (h, (h as f64 * RATIO.1).round_ties_even() as usize)
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// The `size`×`size` window at (`top`, `left`) of the image padded by `pad` zeros on every side.
fn crop(image: &[u8], [c, h, w]: [usize; 3], pad: usize, top: usize, left: usize, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; c * size * size];
    for ch in 0..c {
        for y in 0..size {
            let Some(sy) = (top + y).checked_sub(pad).filter(|sy| *sy < h) else { continue };
            for x in 0..size {
                if let Some(sx) = (left + x).checked_sub(pad).filter(|sx| *sx < w) {
                    out[(ch * size + y) * size + x] = image[(ch * h + sy) * w + sx];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_bad_steps_are_named() {
        assert_eq!(
            parse("random_crop(32, pad=4), hflip").unwrap(),
            vec![Augment::RandomCrop { size: 32, pad: 4 }, Augment::HorizontalFlip]
        );
        assert_eq!(parse("random_crop(28)").unwrap(), vec![Augment::RandomCrop { size: 28, pad: 0 }]);
        assert_eq!(parse(" none ").unwrap(), vec![]);
        assert!(parse("vflip").unwrap_err().contains("`vflip` is not an augmentation"));
        assert!(parse("random_crop(32, 4)").unwrap_err().contains("pad=P"));
        assert!(parse("random_crop(x)").unwrap_err().contains("`x` is not a whole number"));
        assert!(parse("random_crop(28 pad=4)").unwrap_err().contains("`28 pad=4` is not a whole number"));
        assert_eq!(parse(" random_crop ( 32 , pad = 4 ) ").unwrap(), vec![Augment::RandomCrop { size: 32, pad: 4 }]);
        assert!(output_shape(&parse("random_crop(40, pad=2)").unwrap(), [3, 32, 32]).is_err());
        assert_eq!(output_shape(&parse("random_crop(24)").unwrap(), [3, 32, 32]), Ok([3, 24, 24]));
        assert!(output_shape(&parse("random_crop(40, pad=2)").unwrap(), [3, 32, 32])
            .unwrap_err()
            .contains("larger than its 32×32 images"));
        assert_eq!(output_shape(&parse("random_resized_crop(224), hflip").unwrap(), [3, 500, 375]), Ok([3, 224, 224]));
        assert!(parse("random_resized_crop(0)").is_err());
        assert!(parse("hflip,,").unwrap_err().contains("empty step"));
        assert!(parse(",hflip").unwrap_err().contains("empty step"));
        assert!(parse("random_crop(28, pad=-1)").unwrap_err().contains("`-1` is negative"));
        assert!(parse("random_resized_crop()").unwrap_err().contains("not a whole number"));
        assert!(parse("random_crop(32, pad=18446744073709551615)").unwrap_err().contains("at most 65536"));
        assert_eq!(output_shape(&parse("random_crop(32, pad=4),hflip").unwrap(), [3, 32, 32]), Ok([3, 32, 32]));
    }

    #[test]
    fn a_crop_of_the_padded_image_is_torchvisions() {
        // One 3×3 channel, padded by 1, the 3×3 window at (0, 2): F.crop(F.pad(img, 1), 0, 2, 3, 3).
        let image = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(crop(&image, [1, 3, 3], 1, 0, 2, 3), vec![0, 0, 0, 2, 3, 0, 5, 6, 0]);
    }

    #[test]
    fn each_augmented_image_is_one_of_torchvisions_outcomes() {
        // A 2×2 image padded by 1: every crop offset (3 × 3), mirrored or not.
        let image: Vec<u8> = vec![1, 2, 3, 4];
        let mut outcomes = Vec::new();
        for top in 0..3 {
            for left in 0..3 {
                let cropped = crop(&image, [1, 2, 2], 1, top, left, 2);
                let mut mirrored = cropped.clone();
                mirrored.chunks_mut(2).for_each(<[u8]>::reverse);
                outcomes.extend([cropped, mirrored]);
            }
        }
        let steps = parse("random_crop(2, pad=1), hflip").unwrap();
        let key = rng::key(1, 2, 3);
        let mut flips = 0;
        for item in 0..200 {
            let (out, _) = apply(&steps, &image, [1, 2, 2], key, item);
            assert!(outcomes.contains(&out), "{out:?}");
            let (flipped, _) = apply(&steps[1..], &image, [1, 2, 2], key, item);
            flips += usize::from(flipped != image);
        }
        assert!((70..130).contains(&flips), "{flips} flips in 200");
    }

    #[test]
    fn draws_cover_every_offset_and_flip_about_half() {
        let steps = parse("random_crop(2, pad=1), hflip").unwrap();
        let image: Vec<u8> = (1..=4).collect();
        let key = rng::key(3, 1, 7);
        let mut seen = std::collections::HashSet::new();
        for item in 0..400 {
            let (out, shape) = apply(&steps, &image, [1, 2, 2], key, item);
            assert_eq!(shape, [1, 2, 2]);
            seen.insert(out);
        }
        // 3 × 3 offsets, each flipped or not, some coinciding on a 2×2 image: many distinct results.
        assert!(seen.len() >= 12, "{}", seen.len());
        assert_eq!(apply(&steps, &image, [1, 2, 2], key, 5), apply(&steps, &image, [1, 2, 2], key, 5));
    }

    /// A placement moves the pixels exactly as the steps do, for crops and flips in any order, on
    /// images of several shapes.
    #[test]
    fn placements_are_the_augmented_images() {
        let lists = [
            "random_crop(5, pad=2), hflip",
            "hflip, random_crop(4, pad=3)",
            "hflip, hflip",
            "random_crop(6)",
            "hflip, random_crop(3, pad=1), hflip",
            "",
        ];
        for (l, list) in lists.iter().enumerate() {
            let steps = parse(list).unwrap();
            for (i, shape) in [[1, 6, 6], [3, 7, 9], [2, 8, 6]].into_iter().enumerate() {
                let image: Vec<u8> = (0..shape.iter().product::<usize>()).map(|v| (v * 31 % 250 + 1) as u8).collect();
                let key = rng::key(l as u64, i as u64, 9);
                for item in 0..60 {
                    let Ok([_, oh, ow]) = output_shape(&steps, shape) else { continue };
                    let (want, _) = apply(&steps, &image, shape, key, item);
                    let at = placement(&steps, shape, key, item).expect("crops and flips place");
                    assert_eq!(place(&image, shape, at, oh, ow), want, "{list} on {shape:?}, item {item}");
                }
            }
        }
        assert_eq!(placement(&parse("random_resized_crop(4)").unwrap(), [1, 6, 6], 0, 0), None);
        assert_eq!(placement(&parse("random_crop(4), random_crop(3, pad=1)").unwrap(), [1, 6, 6], 0, 0), None);
    }

    #[test]
    fn resized_crop_windows_follow_torchvisions_bounds() {
        let key = rng::key(5, 0, 1);
        for item in 0..500 {
            let draw = |k: usize| rng::uniform(key, item * DRAWS + k);
            let (h, w) = (200 + item % 7 * 30, 300 - item % 5 * 40);
            let (top, left, ch, cw) = resized_crop_window(h, w, draw);
            assert!(top + ch <= h && left + cw <= w, "{item}: the window lies inside");
            let share = (ch * cw) as f64 / (h * w) as f64;
            assert!((0.07..=1.01).contains(&share), "{item}: {share} of the area");
            let ratio = cw as f64 / ch as f64;
            assert!((0.7..=1.4).contains(&ratio), "{item}: aspect ratio {ratio}");
        }
        // Draws that never fit fall back to the centre of the widest allowed window: a 100×300 image
        // (width/height 3 > 4/3) gives 100×133 at left (300 − 133) / 2.
        assert_eq!(resized_crop_window(100, 300, |_| 1.0), (0, 83, 100, 133));
        assert_eq!(resized_crop_window(300, 100, |_| 1.0), (83, 0, 133, 100));
        assert_eq!(resized_crop_window(120, 140, |_| 1.0), (0, 0, 120, 140));
    }

    #[test]
    fn a_resized_crop_is_the_window_resized() {
        let image: Vec<u8> = (0..2 * 40 * 30).map(|i| (i * 7 % 251) as u8).collect();
        let steps = [Augment::RandomResizedCrop { size: 16 }];
        let key = rng::key(2, 0, 3);
        let (out, shape) = apply(&steps, &image, [2, 40, 30], key, 4);
        assert_eq!(shape, [2, 16, 16]);
        let (top, left, h, w) = resized_crop_window(40, 30, |k| rng::uniform(key, 4 * DRAWS + k));
        let window = resample::crop(&image, [2, 40, 30], top, left, h, w);
        assert_eq!(out, resample::resize(&window, [2, h, w], 16, 16));
    }
}
