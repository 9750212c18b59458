//! Datasets for training and evaluation: images held as bytes with one class label each, read from
//! the formats the datasets ship in, and turned into normalised float batches on demand.
//!
//! A dataset is named as `FORMAT:PATH`; the formats are `idx:DIR` (MNIST, Fashion-MNIST: `idx.rs`)
//! and `cifar10:DIR` (CIFAR-10's binary batches: `cifar10.rs`). `augment.rs` augments training
//! images.

pub mod augment;
pub mod cifar10;
pub mod idx;

use std::path::{Path, PathBuf};

pub use augment::Augment;

use crate::{RuntimeError, Tensor};

/// Which part of a dataset.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Images `[N, C, H, W]` as bytes (0–255) with one class label each.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `N · C · H · W` bytes, item after item.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// `[C, H, W]` of one image.
    pub item_shape: [usize; 3],
    /// Class names in class order, when the format has them.
    pub class_names: Option<Vec<String>>,
    /// Where the images came from (a file or a folder), for messages.
    pub source: PathBuf,
    /// The files the labels came from, in order, with how many labels each holds, for messages.
    pub label_files: Vec<(PathBuf, usize)>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image.
    pub fn item_len(&self) -> usize {
        self.item_shape.iter().product()
    }

    /// The first `n` images (all of them when there are fewer).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.images.truncate(n * self.item_len());
        self.labels.truncate(n);
    }

    /// Checks the images (as `augment` leaves them) against a model's input `[C, H, W]` and the
    /// labels against its `classes`.
    ///
    /// # Errors
    /// [`RuntimeError::Dataset`] naming the first label out of range, or the shapes that differ.
    pub fn check_fits(&self, input: &[usize], classes: usize, augment: &[Augment]) -> Result<(), RuntimeError> {
        let shape = augment::output_shape(augment, self.item_shape)
            .map_err(|message| RuntimeError::Dataset { path: self.source.clone(), message })?;
        if input != shape {
            return Err(RuntimeError::Dataset {
                path: self.source.clone(),
                message: format!(
                    "its images are {shape:?} ([C, H, W]{}) and the model takes {input:?}; change the spec's \
                     `input:` (or its first layer) to fit the data",
                    if augment.is_empty() { "" } else { ", augmented" }
                ),
            });
        }
        if let Some((i, label)) = self.labels.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
            let (path, index) = self.label_file(i);
            return Err(RuntimeError::Dataset {
                path,
                message: format!(
                    "label {label} at index {index} is not one of the model's {classes} classes; the model's output \
                     needs at least {} classes",
                    self.labels.iter().max().map_or(0, |m| *m as usize + 1)
                ),
            });
        }
        Ok(())
    }

    /// The file label `i` came from and its index there.
    fn label_file(&self, mut i: usize) -> (PathBuf, usize) {
        for (path, count) in &self.label_files {
            if i < *count {
                return (path.clone(), i);
            }
            i -= count;
        }
        (self.source.clone(), i)
    }

    /// The images at `indices` as floats `[n, C, H, W]`: `(byte / 255 − mean[c]) / std[c]`
    /// (torchvision's `ToTensor` then `Normalize(mean, std)`), and their labels.
    ///
    /// # Panics
    /// When an index is out of range, or `mean` and `std` do not have one value per channel.
    pub fn batch(&self, indices: &[usize], mean: &[f64], std: &[f64]) -> (Tensor, Vec<usize>) {
        self.augmented_batch(indices, mean, std, &[], 0, 0)
    }

    /// As [`Dataset::batch`], each image first augmented by `steps` with the draws of `key` (item
    /// `first + i` of its epoch for the `i`-th index); augmentation keeps the image's shape.
    ///
    /// # Panics
    /// As [`Dataset::batch`], and when the steps do not fit the images (see [`Dataset::check_fits`]).
    pub fn augmented_batch(
        &self,
        indices: &[usize],
        mean: &[f64],
        std: &[f64],
        steps: &[Augment],
        key: u32,
        first: usize,
    ) -> (Tensor, Vec<usize>) {
        let [channels, h, w] = self.item_shape;
        assert!(mean.len() == channels && std.len() == channels, "one mean and std per channel");
        let shape = augment::output_shape(steps, self.item_shape).expect("checked against the model");
        assert_eq!(shape, self.item_shape, "augmentation keeps the image's shape");
        let mut data = Vec::with_capacity(indices.len() * self.item_len());
        for (n, &i) in indices.iter().enumerate() {
            let item = &self.images[i * self.item_len()..][..self.item_len()];
            let augmented;
            let item = if steps.is_empty() {
                item
            } else {
                augmented = augment::apply(steps, item, self.item_shape, key, first + n).0;
                &augmented[..]
            };
            for (c, pixels) in item.chunks(h * w).enumerate() {
                let (m, s) = (mean[c], std[c]);
                data.extend(pixels.iter().map(|p| ((f64::from(*p) / 255.0 - m) / s) as f32));
            }
        }
        let labels = indices.iter().map(|&i| self.labels[i] as usize).collect();
        (Tensor::new(vec![indices.len(), channels, h, w], data), labels)
    }
}

/// Reads split `split` of the dataset `FORMAT:PATH` names.
///
/// # Errors
/// An unknown format, or what reading the files found wrong ([`RuntimeError::Dataset`],
/// [`RuntimeError::Read`]), naming the file.
pub fn open(name: &str, split: Split) -> Result<Dataset, RuntimeError> {
    let reader: fn(&Path, Split) -> Result<Dataset, RuntimeError> = match name.split_once(':') {
        Some(("idx", _)) => idx::read,
        Some(("cifar10", _)) => cifar10::read,
        _ => return Err(RuntimeError::DatasetName { name: name.to_string() }),
    };
    let folder = Path::new(name.split_once(':').map_or("", |(_, path)| path));
    if !folder.is_dir() {
        let what = if folder.exists() {
            "is a file; name the folder that holds the dataset's files"
        } else {
            "does not exist"
        };
        return Err(RuntimeError::Dataset { path: folder.to_path_buf(), message: format!("the folder {what}") });
    }
    let dataset = reader(folder, split)?;
    if dataset.is_empty() {
        return Err(RuntimeError::Dataset { path: dataset.source, message: "it holds no images".into() });
    }
    Ok(dataset)
}

/// A permutation of `0..len` for one epoch: Fisher–Yates over a counter-based generator keyed by
/// `seed` and `epoch`, so a run is reproducible and resumable.
pub fn shuffled(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let key = crate::train::rng::key(seed, epoch, 0x5eed);
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        // Two draws of 24 bits give 48 random bits, enough for any dataset size.
        let high = (crate::train::rng::uniform(key, 2 * i) * f64::from(1u32 << 24)) as u64;
        let low = (crate::train::rng::uniform(key, 2 * i + 1) * f64::from(1u32 << 24)) as u64;
        let j = (((high << 24) | low) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    #[test]
    fn idx_files_parse_and_bad_ones_are_named() {
        let p = Path::new("x-idx3-ubyte");
        let (dims, data) = idx::parse(p, &idx_bytes(&[2, 2, 3], &[7; 12]), 3).unwrap();
        assert_eq!((dims, data.len()), (vec![2, 2, 3], 12));
        let err = |bytes: Vec<u8>, rank| idx::parse(p, &bytes, rank).unwrap_err().to_string();
        assert!(
            err(idx_bytes(&[2, 2, 3], &[7; 11]), 3).contains("truncated: 11 bytes of data"),
            "{}",
            err(idx_bytes(&[2, 2, 3], &[7; 11]), 3)
        );
        assert!(err(idx_bytes(&[2, 2, 3], &[7; 13]), 3).contains("1 bytes after the data"));
        assert!(err(idx_bytes(&[2], &[7; 2]), 3).contains("1 dimensions, expected 3"));
        assert!(err(b"\x1f\x8b\x08\x00".to_vec(), 1).contains("starts with 1f 8b 08 00"));
        let mut floats = idx_bytes(&[1], &[0; 4]);
        floats[2] = 0x0d;
        assert!(err(floats, 1).contains("type code 0x0d"));
        assert!(err(vec![0, 0, 8, 1, 0], 1).contains("header is cut short"));
    }

    #[test]
    fn batches_are_normalised_per_channel() {
        let d = Dataset {
            images: vec![0, 255, 51, 102, 255, 0, 0, 0],
            labels: vec![3, 1],
            item_shape: [2, 1, 2],
            class_names: None,
            source: PathBuf::from("x"),
            label_files: vec![(PathBuf::from("a"), 1), (PathBuf::from("b"), 1)],
        };
        let (x, y) = d.batch(&[1, 0], &[0.5, 0.0], &[0.5, 1.0]);
        assert_eq!(x.shape, vec![2, 2, 1, 2]);
        assert_eq!(y, vec![1, 3]);
        assert_eq!(x.data, vec![1.0, -1.0, 0.0, 0.0, -1.0, 1.0, 0.2, 0.4]);
        assert!(d.check_fits(&[2, 1, 2], 4, &[]).is_ok());
        assert!(d
            .check_fits(&[2, 1, 2], 3, &[])
            .unwrap_err()
            .to_string()
            .contains("`a` is not a usable dataset: label 3 at index 0"));
        assert!(d
            .check_fits(&[2, 1, 2], 2, &[])
            .unwrap_err()
            .to_string()
            .contains("`a` is not a usable dataset: label 3"));
        let mut late = d.clone();
        late.labels = vec![0, 3];
        assert!(late
            .check_fits(&[2, 1, 2], 2, &[])
            .unwrap_err()
            .to_string()
            .contains("`b` is not a usable dataset: label 3 at index 0"));
        assert!(d.check_fits(&[1, 2, 2], 4, &[]).unwrap_err().to_string().contains("[2, 1, 2]"));
        assert!(d.check_fits(&[2, 1, 2], 4, &[Augment::HorizontalFlip]).is_ok());
        let crop = [Augment::RandomCrop { size: 1, pad: 0 }];
        assert!(d.check_fits(&[2, 1, 1], 4, &crop).unwrap_err().to_string().contains("keep the image's size"));
        assert_eq!(d.augmented_batch(&[1, 0], &[0.5, 0.0], &[0.5, 1.0], &[], 9, 0).0, x);
    }

    #[test]
    fn shuffles_are_permutations_fixed_by_seed_and_epoch() {
        let a = shuffled(1000, 3, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, shuffled(1000, 3, 0));
        assert_ne!(a, shuffled(1000, 3, 1));
        assert_ne!(a, shuffled(1000, 4, 0));
        assert_ne!(a[..10], (0..10).collect::<Vec<_>>()[..]);
    }
}
