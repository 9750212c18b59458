//! Training-time augmentation on image bytes, with torchvision's semantics, drawn from the
//! counter-based generator so that a run is reproducible: `random_crop(SIZE, pad=P)`
//! (`transforms.RandomCrop(SIZE, padding=P)`: zero padding on every side, then a SIZE×SIZE window
//! at a uniformly drawn offset) and `hflip` (`transforms.RandomHorizontalFlip()`: a mirror image
//! with probability ½). Steps apply in the order given, before normalisation, as a torchvision
//! `Compose` does.

use crate::train::rng;

/// One augmentation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Augment {
    RandomCrop { size: usize, pad: usize },
    HorizontalFlip,
}

/// The largest crop size and padding accepted (no dataset image comes near it).
const MAX_SIDE: usize = 1 << 16;

/// Draws each step may make per image (so that steps draw independent numbers).
const DRAWS: usize = 2;

/// Parses a comma-separated list: `random_crop(32, pad=4), hflip`.
///
/// # Errors
/// A message naming the step that is not understood.
pub fn parse(text: &str) -> Result<Vec<Augment>, String> {
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
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let arguments =
            part.strip_prefix("random_crop").map(str::trim_start).and_then(|a| a.strip_prefix('(')?.strip_suffix(')'));
        let step = if part == "hflip" {
            Augment::HorizontalFlip
        } else if let Some(args) = arguments {
            let (size, pad) = match args.split_once(',') {
                Some((size, pad)) => {
                    let pad = pad.trim().strip_prefix("pad").map(str::trim_start).and_then(|p| p.strip_prefix('='));
                    (size.trim(), pad.ok_or_else(|| format!("`{part}`: write random_crop(SIZE, pad=P)"))?.trim())
                }
                None => (args.trim(), "0"),
            };
            let number = |v: &str| v.parse::<usize>().map_err(|_| format!("`{part}`: `{v}` is not a whole number"));
            let (size, pad) = (number(size)?, number(pad)?);
            if size == 0 || size > MAX_SIDE || pad > MAX_SIDE {
                return Err(format!("`{part}`: the size must be 1 to {MAX_SIDE} and the padding at most {MAX_SIDE}"));
            }
            Augment::RandomCrop { size, pad }
        } else {
            return Err(format!("`{part}` is not an augmentation: use random_crop(SIZE, pad=P) or hflip"));
        };
        steps.push(step);
    }
    Ok(steps)
}

/// The shape after all of `steps`, or a message when a crop does not keep the image's size.
///
/// # Errors
/// A crop whose size is not the image's: the test images are not cropped, so a model could not
/// take both (torchvision recipes that crop smaller pair the crop with a resize or a centre crop for
/// testing, which `cnnc train` does not have yet).
pub fn output_shape(steps: &[Augment], shape: [usize; 3]) -> Result<[usize; 3], String> {
    for step in steps {
        if let Augment::RandomCrop { size, pad } = step {
            if [shape[1], shape[2]] != [*size, *size] {
                return Err(format!(
                    "random_crop({size}, pad={pad}) on {}×{} images: the crop must keep the image's size, as the test \
                     images are not cropped",
                    shape[1], shape[2]
                ));
            }
        }
    }
    Ok(shape)
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
                // torch.randint(0, h + 2·pad − size + 1): a uniform offset.
                let top = (draw(0) * (h + 2 * pad - size + 1) as f64) as usize;
                let left = (draw(1) * (w + 2 * pad - size + 1) as f64) as usize;
                image = crop(&image, shape, *pad, top, left, *size);
                shape = [c, *size, *size];
            }
            Augment::HorizontalFlip => {
                if draw(0) < 0.5 {
                    for row in image.chunks_mut(shape[2]) {
                        row.reverse();
                    }
                }
            }
        }
    }
    (image, shape)
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
        assert!(parse("vflip").unwrap_err().contains("`vflip` is not an augmentation"));
        assert!(parse("random_crop(32, 4)").unwrap_err().contains("pad=P"));
        assert!(parse("random_crop(x)").unwrap_err().contains("`x` is not a whole number"));
        assert!(parse("random_crop(28 pad=4)").unwrap_err().contains("`28 pad=4` is not a whole number"));
        assert_eq!(parse(" random_crop ( 32 , pad = 4 ) ").unwrap(), vec![Augment::RandomCrop { size: 32, pad: 4 }]);
        assert!(output_shape(&parse("random_crop(40, pad=2)").unwrap(), [3, 32, 32]).is_err());
        assert!(output_shape(&parse("random_crop(24)").unwrap(), [3, 32, 32])
            .unwrap_err()
            .contains("keep the image's size"));
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
}
