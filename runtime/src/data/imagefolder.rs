//! torchvision's `ImageFolder` layout: `DIR/train/<class>/…` and `DIR/val/<class>/…` (`DIR/test`
//! when there is no `val`), one folder per class, the classes sorted by name, each class's image
//! files found at any depth below its folder in torchvision's order. Files whose extension is not
//! an image's (torchvision's `IMG_EXTENSIONS`) are passed over, as torchvision does; images are
//! decoded as RGB (grayscale for a one-channel model) and held in memory, or, when that would take
//! more than [`ReadOptions::max_decoded_bytes`] (their sizes read from their headers first), decoded
//! for each batch that takes them. PNG, JPEG, BMP and PNM decode; a TIFF or WebP file is an error
//! naming it (or, with `--skip-bad`, skipped and counted).

use std::path::{Path, PathBuf};

use super::{Dataset, Images, ReadOptions, Split};
use crate::{image_input, RuntimeError};

/// torchvision's `IMG_EXTENSIONS`.
const EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

fn invalid(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Dataset { path: path.to_path_buf(), message: message.into() }
}

/// The folder of `split`: `train`, or `val` (else `test`) for the held-out split.
fn split_folder(dir: &Path, split: Split) -> Result<PathBuf, RuntimeError> {
    let names: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["val", "test"],
    };
    names.iter().map(|n| dir.join(n)).find(|p| p.is_dir()).ok_or_else(|| {
        invalid(
            dir,
            format!(
                "no `{}` folder in it; an image folder holds `train/<class>/…` and `val/<class>/…`, one folder per \
                 class",
                names.join("` or `")
            ),
        )
    })
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let read = std::fs::read_dir(dir).map_err(|e| invalid(dir, format!("cannot list it: {e}")))?;
    let mut paths = Vec::new();
    for entry in read {
        paths.push(entry.map_err(|e| invalid(dir, format!("cannot list it: {e}")))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Image files below `dir` at any depth, in torchvision's order (`sorted(os.walk(dir))`, each
/// folder's names sorted): a folder's own files first, then each subfolder's, by name.
fn image_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), RuntimeError> {
    let (folders, files): (Vec<PathBuf>, Vec<PathBuf>) = entries(dir)?.into_iter().partition(|p| p.is_dir());
    let image = |p: &PathBuf| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    found.extend(files.into_iter().filter(image));
    for folder in folders {
        image_files(&folder, found)?;
    }
    Ok(())
}

/// Reads one split of an image folder, decoding each image with `options.channels` 3 (RGB) or 1
/// (grayscale); with `options.skip_bad`, an image that cannot be decoded is left out and listed in
/// [`Dataset::skipped`] instead of stopping the read. Where the split's decoded images would take
/// more than `options.max_decoded_bytes`, only their headers are read here ([`Images::Files`]): an
/// image whose header reads but whose pixels do not is then an error when a batch takes it.
///
/// # Errors
/// [`RuntimeError::Dataset`] for a missing split folder, no class folders, or a class folder with no
/// image; [`RuntimeError::Image`] naming an image that cannot be decoded (without `skip_bad`).
pub fn read(dir: &Path, split: Split, options: ReadOptions) -> Result<Dataset, RuntimeError> {
    let channels = if options.channels == 1 { 1 } else { 3 };
    let root = split_folder(dir, split)?;
    let classes: Vec<PathBuf> = entries(&root)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(invalid(&root, "it holds no class folders; put each class's images in a folder named after it"));
    }
    let mut dataset = Dataset {
        images: Images::Each(Vec::new()),
        labels: Vec::new(),
        class_names: Some(classes.iter().map(|c| c.file_name().unwrap_or_default().to_string_lossy().into()).collect()),
        source: root.clone(),
        label_files: Vec::new(),
        image_files: Vec::new(),
        skipped: Vec::new(),
        split: root.file_name().unwrap_or_default().to_string_lossy().into_owned(),
    };
    // Each class's image files with their headers' sizes, the unreadable ones skipped or refused.
    let mut found: Vec<Vec<(PathBuf, [usize; 3])>> = Vec::new();
    let mut total = 0u64;
    for class in &classes {
        let mut files = Vec::new();
        image_files(class, &mut files)?;
        if files.is_empty() {
            return Err(invalid(
                class,
                format!(
                    "the class folder holds no image ({}); every class needs at least one",
                    EXTENSIONS.map(|e| format!(".{e}")).join(", ")
                ),
            ));
        }
        let mut sized = Vec::with_capacity(files.len());
        for file in files {
            match image_input::dimensions(&file) {
                Ok((w, h)) => {
                    total += (channels * w * h) as u64;
                    sized.push((file, [channels, h, w]));
                }
                Err(RuntimeError::Image { path, message }) if options.skip_bad => dataset.skipped.push((path, message)),
                Err(e) => return Err(e),
            }
        }
        found.push(sized);
    }
    if total > options.max_decoded_bytes {
        let mut all = Vec::new();
        for (label, (class, files)) in classes.iter().zip(found).enumerate() {
            dataset.label_files.push((class.clone(), files.len()));
            dataset.labels.extend(std::iter::repeat_n(label as u32, files.len()));
            dataset.image_files.extend(files.iter().map(|(path, _)| path.clone()));
            all.extend(files);
        }
        dataset.images = Images::Files { files: all, channels };
        return Ok(dataset);
    }
    let Images::Each(images) = &mut dataset.images else { unreachable!("made as Each above") };
    for (label, (class, files)) in classes.iter().zip(found).enumerate() {
        let mut kept = 0;
        for (file, _) in files {
            match image_input::decode(&file, channels) {
                Ok(image) => {
                    images.push(image);
                    dataset.labels.push(label as u32);
                    dataset.image_files.push(file);
                    kept += 1;
                }
                Err(RuntimeError::Image { path, message }) if options.skip_bad => dataset.skipped.push((path, message)),
                Err(e) => return Err(e),
            }
        }
        dataset.label_files.push((class.clone(), kept));
    }
    Ok(dataset)
}
