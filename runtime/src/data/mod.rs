//! Datasets for training and evaluation: images held as bytes with one class label each, read from
//! the formats the datasets ship in, and turned into normalised float batches on demand.
//!
//! A dataset is named as `FORMAT:PATH`; the formats are `idx:DIR` (MNIST, Fashion-MNIST: `idx.rs`),
//! `cifar10:DIR` (CIFAR-10's binary batches: `cifar10.rs`) and `imagefolder:DIR` (torchvision's
//! `ImageFolder` layout: `imagefolder.rs`, whose images are decoded once and held, or, past
//! [`ReadOptions::max_decoded_bytes`], decoded for each batch that takes them). `transform.rs` turns
//! images into model input, with the training augmentation of `augment.rs`; `prefetch.rs` makes
//! batches on a thread of their own, ahead of the step that takes them.

pub mod augment;
pub mod cifar10;
pub mod idx;
pub mod imagefolder;
pub mod prefetch;
pub mod transform;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

pub use augment::Augment;
pub use transform::Transform;

use crate::{RuntimeError, Tensor};

/// Which part of a dataset.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    /// The held-out images: the test split, or an image folder's `val` folder.
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

/// A dataset's images, as bytes (0–255), planar `[C, H, W]` each.
#[derive(Clone, Debug)]
pub enum Images {
    /// Images of one shape, item after item (IDX, CIFAR-10).
    Same { bytes: Vec<u8>, shape: [usize; 3] },
    /// Images of their own shapes (an image folder).
    Each(Vec<(Vec<u8>, [usize; 3])>),
    /// Image files decoded when a batch takes them (an image folder too large to hold decoded), each
    /// with the `[C, H, W]` its header gives, decoded with `channels` channels.
    Files { files: Vec<(PathBuf, [usize; 3])>, channels: usize },
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Images::Same { bytes, shape } => bytes.len() / shape.iter().product::<usize>().max(1),
            Images::Each(items) => items.len(),
            Images::Files { files, .. } => files.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i`'s bytes and `[C, H, W]`, decoded from its file for [`Images::Files`].
    ///
    /// # Errors
    /// [`RuntimeError::Image`] naming the file of an [`Images::Files`] image that no longer decodes
    /// (or that decodes to another size than its header gave).
    ///
    /// # Panics
    /// When `i` is out of range.
    pub fn get(&self, i: usize) -> Result<(Cow<'_, [u8]>, [usize; 3]), RuntimeError> {
        match self {
            Images::Same { bytes, shape } => {
                let len = shape.iter().product();
                Ok((Cow::Borrowed(&bytes[i * len..][..len]), *shape))
            }
            Images::Each(items) => Ok((Cow::Borrowed(&items[i].0), items[i].1)),
            Images::Files { files, channels } => {
                let (path, shape) = &files[i];
                let (bytes, decoded) = crate::image_input::decode(path, *channels)?;
                if decoded != *shape {
                    let message = format!("it decodes to {decoded:?}, where its header gave {shape:?}");
                    return Err(RuntimeError::Image { path: path.clone(), message });
                }
                Ok((Cow::Owned(bytes), decoded))
            }
        }
    }

    /// The distinct shapes, each with the first image that has it.
    pub fn shapes(&self) -> Vec<([usize; 3], usize)> {
        let each: Vec<[usize; 3]> = match self {
            Images::Same { shape, .. } => return vec![(*shape, 0)],
            Images::Each(items) => items.iter().map(|(_, shape)| *shape).collect(),
            Images::Files { files, .. } => files.iter().map(|(_, shape)| *shape).collect(),
        };
        let mut seen: Vec<([usize; 3], usize)> = Vec::new();
        for (i, shape) in each.iter().enumerate() {
            if !seen.iter().any(|(s, _)| s == shape) {
                seen.push((*shape, i));
            }
        }
        seen
    }
}

/// Images with one class label each.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Images,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// Class names in class order, when the format has them.
    pub class_names: Option<Vec<String>>,
    /// Where the images came from (a file or a folder), for messages.
    pub source: PathBuf,
    /// The files the labels came from, in order, with how many labels each holds, for messages.
    pub label_files: Vec<(PathBuf, usize)>,
    /// The file each image came from, when each has its own (an image folder); empty otherwise.
    pub image_files: Vec<PathBuf>,
    /// Each image file that could not be read and was left out (`--skip-bad`), with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// The split's name as the dataset spells it (`train`, `test`, an image folder's `val`).
    pub split: String,
}

impl Dataset {
    /// `images` held in memory with one label each (a training split made by a program, not read
    /// from files); `source` names them in messages.
    pub fn from_memory(images: Images, labels: Vec<u32>, source: &str) -> Dataset {
        Dataset {
            images,
            label_files: vec![(source.into(), labels.len())],
            labels,
            class_names: None,
            source: source.into(),
            image_files: Vec::new(),
            skipped: Vec::new(),
            split: Split::Train.name().to_string(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// When the dataset names its classes and their number is not the model's `classes`: a note
    /// saying so and how to fit the model to the data (labels beyond the model's classes are
    /// refused by [`Dataset::check_fits`]; fewer classes than outputs may be deliberate).
    pub fn class_count_note(&self, classes: usize) -> Option<String> {
        let names = self.class_names.as_ref().filter(|n| n.len() != classes)?;
        let listed: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        Some(format!(
            "{} has {} classes ({}{}) and the model outputs {classes}; for a {}-way head give the model \
             `num_classes={}` (a zoo model) or a last layer of that size",
            self.source.display(),
            names.len(),
            listed.join(", "),
            if names.len() > 5 { ", …" } else { "" },
            names.len(),
            names.len()
        ))
    }

    /// Keeps `n` images spread evenly over the dataset (image `i · len / n` for `i` < `n`; all of
    /// them when there are fewer), so that a subset of a folder sorted by class has every class.
    pub fn subset(&mut self, n: usize) {
        let len = self.len();
        if n >= len {
            return;
        }
        let kept: Vec<usize> = (0..n).map(|i| i * len / n).collect();
        self.images = match &self.images {
            Images::Same { bytes, shape } => {
                let size: usize = shape.iter().product();
                Images::Same {
                    bytes: kept.iter().flat_map(|&i| &bytes[i * size..][..size]).copied().collect(),
                    shape: *shape,
                }
            }
            Images::Each(items) => Images::Each(kept.iter().map(|&i| items[i].clone()).collect()),
            Images::Files { files, channels } => {
                Images::Files { files: kept.iter().map(|&i| files[i].clone()).collect(), channels: *channels }
            }
        };
        if !self.image_files.is_empty() {
            self.image_files = kept.iter().map(|&i| self.image_files[i].clone()).collect();
        }
        // Each label file keeps the count of its labels that are kept.
        let mut start = 0;
        for (_, count) in &mut self.label_files {
            let end = start + *count;
            *count = kept.iter().filter(|&&i| (start..end).contains(&i)).count();
            start = end;
        }
        self.labels = kept.iter().map(|&i| self.labels[i]).collect();
    }

    /// Checks that `transform` turns every image into the model's input and that the labels are
    /// among its `classes`.
    ///
    /// # Errors
    /// [`RuntimeError::Dataset`] naming the first label out of range, or an image whose shape the
    /// transform does not bring to the model's.
    pub fn check_fits(&self, transform: &Transform, classes: usize) -> Result<(), RuntimeError> {
        for (shape, first) in self.images.shapes() {
            transform.output_shape(shape).map_err(|message| RuntimeError::Dataset {
                path: self.image_files.get(first).cloned().unwrap_or_else(|| self.source.clone()),
                message,
            })?;
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

    /// The images at `indices` through `transform`, as floats `[n, C, H, W]`, and their labels; the
    /// `i`-th index is item `first + i` of its epoch for the augmentation's draws from `key`. Images
    /// decoded from their files ([`Images::Files`]) are decoded on as many threads as the machine
    /// has cores.
    ///
    /// # Errors
    /// An [`Images::Files`] image that no longer decodes ([`RuntimeError::Image`], naming it).
    ///
    /// # Panics
    /// When an index is out of range, or an image does not fit (see [`Dataset::check_fits`]).
    pub fn batch(
        &self,
        indices: &[usize],
        transform: &Transform,
        key: u32,
        first: usize,
    ) -> Result<(Tensor, Vec<usize>), RuntimeError> {
        let item: usize = transform.input.iter().product();
        let prepare = |n: usize, out: &mut Vec<f32>| -> Result<(), RuntimeError> {
            let (image, shape) = self.images.get(indices[n])?;
            transform.apply(&image, shape, key, first + n, out);
            Ok(())
        };
        let data = match self.images {
            Images::Files { .. } => {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(indices.len()).max(1);
                let per_thread = indices.len().div_ceil(threads).max(1);
                let parts: Vec<Result<Vec<f32>, RuntimeError>> = std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..indices.len())
                        .step_by(per_thread)
                        .map(|start| {
                            scope.spawn(move || {
                                let mut out = Vec::with_capacity(per_thread * item);
                                for n in start..(start + per_thread).min(indices.len()) {
                                    prepare(n, &mut out)?;
                                }
                                Ok(out)
                            })
                        })
                        .collect();
                    workers.into_iter().map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
                });
                let mut data = Vec::with_capacity(indices.len() * item);
                for part in parts {
                    data.extend(part?);
                }
                data
            }
            _ => {
                let mut data = Vec::with_capacity(indices.len() * item);
                for n in 0..indices.len() {
                    prepare(n, &mut data)?;
                }
                data
            }
        };
        let labels = indices.iter().map(|&i| self.labels[i] as usize).collect();
        let mut shape = vec![indices.len()];
        shape.extend(transform.input);
        Ok((Tensor::new(shape, data), labels))
    }
}

/// How to read a dataset whose images are files of their own (an image folder).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// Decode images as RGB (3) or grayscale (1), as the model takes them.
    pub channels: usize,
    /// Leave out images that cannot be decoded, listing them in [`Dataset::skipped`].
    pub skip_bad: bool,
    /// The most bytes a split's decoded images may take to be held in memory; a larger split is
    /// decoded batch by batch from its files ([`Images::Files`]).
    pub max_decoded_bytes: u64,
}

impl ReadOptions {
    /// [`ReadOptions::max_decoded_bytes`] by default: 2 GiB.
    pub const DEFAULT_MAX_DECODED_BYTES: u64 = 2 << 30;

    /// Images of `channels` channels, bad ones an error, held in memory up to the default size.
    pub fn new(channels: usize) -> ReadOptions {
        ReadOptions { channels, skip_bad: false, max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES }
    }
}

/// Reads split `split` of the dataset `FORMAT:PATH` names.
///
/// # Errors
/// An unknown format, or what reading the files found wrong ([`RuntimeError::Dataset`],
/// [`RuntimeError::Read`], [`RuntimeError::Image`]), naming the file.
pub fn open(name: &str, split: Split, options: ReadOptions) -> Result<Dataset, RuntimeError> {
    let format = match name.split_once(':') {
        Some((format @ ("idx" | "cifar10" | "imagefolder"), _)) => format,
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
    let dataset = match format {
        "idx" => idx::read(folder, split)?,
        "cifar10" => cifar10::read(folder, split)?,
        _ => imagefolder::read(folder, split, options)?,
    };
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
        assert!(err(idx_bytes(&[2, 2, 3], &[7; 13]), 3).contains("1 byte after the data"));
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
            images: Images::Same { bytes: vec![0, 255, 51, 102, 255, 0, 0, 0], shape: [2, 1, 2] },
            labels: vec![3, 1],
            class_names: None,
            source: PathBuf::from("x"),
            label_files: vec![(PathBuf::from("a"), 1), (PathBuf::from("b"), 1)],
            image_files: Vec::new(),
            skipped: Vec::new(),
            split: "test".into(),
        };
        let plain = |input: [usize; 3], augment: Vec<Augment>| Transform {
            input,
            augment,
            resize: None,
            centre_crop: false,
            mean: vec![0.5, 0.0],
            std: vec![0.5, 1.0],
        };
        let t = plain([2, 1, 2], vec![]);
        let (x, y) = d.batch(&[1, 0], &t, 0, 0).unwrap();
        assert_eq!(x.shape, vec![2, 2, 1, 2]);
        assert_eq!(y, vec![1, 3]);
        assert_eq!(x.data, vec![1.0, -1.0, 0.0, 0.0, -1.0, 1.0, 0.2, 0.4]);
        assert!(d.check_fits(&t, 4).is_ok());
        assert!(d
            .check_fits(&t, 3)
            .unwrap_err()
            .to_string()
            .contains("`a` is not a usable dataset: label 3 at index 0"));
        assert!(d.check_fits(&t, 2).unwrap_err().to_string().contains("`a` is not a usable dataset: label 3"));
        let mut late = d.clone();
        late.labels = vec![0, 3];
        assert!(late
            .check_fits(&t, 2)
            .unwrap_err()
            .to_string()
            .contains("`b` is not a usable dataset: label 3 at index 0"));
        assert!(d.check_fits(&plain([2, 2, 2], vec![]), 4).unwrap_err().to_string().contains("are 1×2"));
        assert!(d.check_fits(&plain([2, 1, 2], vec![Augment::HorizontalFlip]), 4).is_ok());
        let crop = plain([2, 1, 1], vec![Augment::RandomCrop { size: 1, pad: 0 }]);
        assert!(d.check_fits(&crop, 4).is_ok());
        assert_eq!(d.batch(&[1, 0], &t, 9, 0).unwrap().0, x);
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
