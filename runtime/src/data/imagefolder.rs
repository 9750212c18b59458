//! torchvision's `ImageFolder` layout: `DIR/train/<class>/…` and `DIR/val/<class>/…` (`DIR/test`
//! when there is no `val`), one folder per class, the classes sorted by name, each class's image
//! files found at any depth below its folder in torchvision's order. Files whose extension is not
//! an image's (torchvision's `IMG_EXTENSIONS`) are passed over, as torchvision does; images are
//! decoded as RGB (grayscale for a one-channel model) and held in memory. PNG, JPEG, BMP and PNM
//! decode; a TIFF or WebP file is an error naming it (or, with `--skip-bad`, skipped and counted).

use std::path::{Path, PathBuf};

use super::{Dataset, Images, Split};
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

/// Reads one split of an image folder, decoding each image with `channels` 3 (RGB) or 1
/// (grayscale); with `skip_bad`, an image that cannot be decoded is left out and listed in
/// [`Dataset::skipped`] instead of stopping the read.
///
/// # Errors
/// [`RuntimeError::Dataset`] for a missing split folder, no class folders, or a class folder with no
/// image; [`RuntimeError::Image`] naming an image that cannot be decoded (without `skip_bad`).
pub fn read(dir: &Path, split: Split, channels: usize, skip_bad: bool) -> Result<Dataset, RuntimeError> {
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
    let Images::Each(images) = &mut dataset.images else { unreachable!("made as Each above") };
    for (label, class) in classes.iter().enumerate() {
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
        let mut kept = 0;
        for file in files {
            match image_input::decode(&file, channels) {
                Ok(image) => {
                    images.push(image);
                    dataset.labels.push(label as u32);
                    dataset.image_files.push(file);
                    kept += 1;
                }
                Err(RuntimeError::Image { path, message }) if skip_bad => dataset.skipped.push((path, message)),
                Err(e) => return Err(e),
            }
        }
        dataset.label_files.push((class.clone(), kept));
    }
    Ok(dataset)
}
