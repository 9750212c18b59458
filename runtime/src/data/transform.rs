//! How a dataset's images become a model's input, as a torchvision `Compose` would make them:
//! the training augmentation (`augment.rs`), the spec's `preprocess` resize and centre crop (the
//! evaluation transforms, also used for training images when the augmentation has no crop of its
//! own), then `ToTensor` and `Normalize(mean, std)`.

use super::augment::{self, Augment};
use crate::resample;
use cnnc_ir::graph::Resize;

/// The steps from an image's bytes to one item of a model's input.
#[derive(Clone, Debug, PartialEq)]
pub struct Transform {
    /// The model's input item `[C, H, W]`.
    pub input: [usize; 3],
    /// Training augmentation, in order (empty for evaluation).
    pub augment: Vec<Augment>,
    /// The image is resized first (`preprocess: {resize: N}` or `{resize: [H, W]}`).
    pub resize: Option<Resize>,
    /// The centre `H`×`W` window is taken (`preprocess: {crop: N}` or `{crop: [H, W]}`).
    pub centre_crop: bool,
    /// Per-channel mean and standard deviation of `Normalize`, on the 0–1 scale.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Transform {
    /// Whether the preprocess resize and centre crop apply: always for evaluation, and for
    /// training when no augmentation step crops (a crop of its own replaces them, as in
    /// torchvision's recipes: `RandomResizedCrop(224)` for training, `Resize(256), CenterCrop(224)`
    /// for evaluation).
    fn fits_first(&self) -> bool {
        !self.augment.iter().any(Augment::crops)
    }

    /// The shape an image of `shape` comes out with, or why it is not the model's input.
    ///
    /// # Errors
    /// A message naming both shapes and what to change.
    pub fn output_shape(&self, shape: [usize; 3]) -> Result<[usize; 3], String> {
        let [c, h, w] = self.input;
        if shape[0] != c {
            return Err(format!(
                "its images are {}×{}×{} and the model takes {c}×{h}×{w} ([C, H, W]): they have {} channel(s), not \
                 {c}; change the spec's `input:` to fit the data",
                shape[0], shape[1], shape[2], shape[0]
            ));
        }
        if let Some(why) = self.resize.and_then(|size| resample::refuse_resize(shape, size)) {
            return Err(format!("one of its images cannot be prepared: {why}"));
        }
        let sized = self.fits_first() && (self.resize.is_some() || self.centre_crop);
        if let Some(why) = resample::misfit(shape, self.resize, self.centre_crop, h, w).filter(|_| sized) {
            return Err(format!("one of its images does not fit: {why}"));
        }
        let before = if sized { self.input } else { shape };
        let after = augment::output_shape(&self.augment, before)?;
        if after != self.input {
            let what = if self.augment.is_empty() { "" } else { " after the augmentation" };
            return Err(format!(
                "its images are {}×{}{what} and the model takes {h}×{w}; declare the spec's `preprocess: {{resize: \
                 N, crop: N}}` (or a cropping augmentation), or change its `input:`",
                after[1], after[2]
            ));
        }
        Ok(after)
    }

    /// Appends image `image` (`[C, H, W]` bytes) transformed to `out`, drawing any augmentation
    /// from `key` as draw stream `item` (the image's position in its epoch).
    ///
    /// # Panics
    /// When the image does not come out as the model's input (see [`Transform::output_shape`]).
    pub fn apply(&self, image: &[u8], shape: [usize; 3], key: u32, item: usize, out: &mut Vec<f32>) {
        let [_, h, w] = self.input;
        let (mut bytes, mut shape) = (image.to_vec(), shape);
        if self.fits_first() && (self.resize.is_some() || self.centre_crop) {
            bytes = resample::fit(bytes, shape, self.resize, self.centre_crop, h, w);
            shape = self.input;
        }
        if !self.augment.is_empty() {
            (bytes, shape) = augment::apply(&self.augment, &bytes, shape, key, item);
        }
        assert_eq!(shape, self.input, "checked by output_shape");
        for (c, plane) in bytes.chunks(h * w).enumerate() {
            out.extend(plane.iter().map(|p| self.normalize(c, *p)));
        }
    }

    /// Byte `value` of channel `c` as the model takes it: `ToTensor` then `Normalize`.
    fn normalize(&self, c: usize, value: u8) -> f32 {
        ((f64::from(value) / 255.0 - self.mean[c]) / self.std[c]) as f32
    }

    /// Every byte of every channel as the model takes it: entry `c·256 + v` is byte `v` of channel
    /// `c` after `ToTensor` and `Normalize`, exactly as [`Transform::apply`] makes it.
    pub fn normalized_bytes(&self) -> Vec<f32> {
        (0..self.input[0]).flat_map(|c| (0..=255u8).map(move |v| (c, v))).map(|(c, v)| self.normalize(c, v)).collect()
    }

    /// Where training image `item` (of `shape`) takes its pixels from, when this transform only
    /// moves them: no resampling (the spec's resize and centre crop, unless an augmentation crops
    /// instead) and crops and flips alone ([`augment::placement`]). With the result and
    /// [`Transform::normalized_bytes`], a batch can be made from the images' bytes where they are
    /// held.
    pub fn placement(&self, shape: [usize; 3], key: u32, item: usize) -> Option<augment::Placement> {
        if self.fits_first() && (self.resize.is_some() || self.centre_crop) {
            return None;
        }
        augment::placement(&self.augment, shape, key, item)
    }
}
