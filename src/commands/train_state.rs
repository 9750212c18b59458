//! What `cnnc train --resume DIR` continues from, and how a run stops on Ctrl-C.
//!
//! `DIR/train_state.safetensors` is written with every checkpoint: the trainer's tensors at the
//! precision it trains in (float32 on the GPU, float64 on the CPU reference) under `model.`, the
//! optimizer's state under `optimizer.` (named as `torch.optim`'s `state_dict`: `exp_avg`,
//! `exp_avg_sq`, `momentum_buffer`), and in its metadata where the run stands and the recipe it
//! follows. A resumed run checks the recipe and takes the very steps the uninterrupted run would
//! have taken: the sample order, augmentation and dropout are keyed by seed, epoch and step.

use super::stdout::errln;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use cnnc::runtime::weights::{self, Weights};
use cnnc::runtime::RuntimeError;

/// The state file's name in the output folder.
pub const FILE: &str = "train_state.safetensors";

/// Where a run stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Position {
    /// The epoch in progress, or the last one finished (1-based).
    pub epoch: u64,
    /// Batches of `epoch` trained; all of them once it is finished and evaluated.
    pub batches: u64,
    /// Optimizer steps taken.
    pub steps: u64,
    /// The best held-out accuracy so far (0–1), once an epoch has been evaluated.
    pub best: Option<f64>,
    /// Sum and count of the training losses read back in `epoch` so far.
    pub loss_sum: f64,
    pub loss_count: u64,
    /// Bytes of `metrics.jsonl` written by then (a resumed run drops any after).
    pub metrics_bytes: u64,
}

/// A saved run: parameters (and running statistics), optimizer state and position.
pub struct Saved {
    pub params: Weights<f64>,
    pub optimizer: Weights<f64>,
    pub position: Position,
}

/// Writes with `write` to a temporary file beside `path`, flushes it to disk and renames it into
/// place (the folder flushed after), so that an interrupted write or a crash leaves the previous
/// file or the new one, never part of one.
///
/// # Errors
/// What `write` reports, or [`RuntimeError::Write`] when flushing or renaming fails.
pub fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<(), RuntimeError>) -> Result<(), RuntimeError> {
    let partial = path.with_extension("partial");
    let failed = |source| RuntimeError::Write { path: path.to_path_buf(), source };
    let written = write(&partial)
        .and_then(|()| std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(failed))
        .and_then(|()| std::fs::rename(&partial, path).map_err(failed));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written?;
    if let Some(folder) = path.parent() {
        // Makes the rename itself durable; not every platform can open a folder, which is harmless.
        if let Ok(f) = std::fs::File::open(folder) {
            let _ = f.sync_all();
        }
    }
    Ok(())
}

/// Writes `DIR/train_state.safetensors` atomically: `params` and `optimizer` in float32 (`f32`) or
/// float64, with `position` and `recipe` in the metadata.
///
/// # Errors
/// [`RuntimeError::Write`] when the file cannot be written.
pub fn write(
    dir: &Path,
    params: &Weights<f64>,
    optimizer: &Weights<f64>,
    position: &Position,
    recipe: &serde_json::Value,
    f32: bool,
) -> Result<(), RuntimeError> {
    let mut tensors = Vec::new();
    for (prefix, set) in [("model", params), ("optimizer", optimizer)] {
        let mut names = set.names();
        names.sort_unstable();
        tensors.extend(names.into_iter().map(|n| (format!("{prefix}.{n}"), set.get(n).expect("listed").clone())));
    }
    let metadata = [
        ("epoch", position.epoch.to_string()),
        ("batches", position.batches.to_string()),
        ("steps", position.steps.to_string()),
        ("best_accuracy", position.best.map_or(String::new(), |b| b.to_string())),
        ("loss_sum", position.loss_sum.to_string()),
        ("loss_count", position.loss_count.to_string()),
        ("metrics_bytes", position.metrics_bytes.to_string()),
        ("recipe", recipe.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    atomically(&dir.join(FILE), |path| weights::write_with_metadata(path, &tensors, f32, &metadata))
}

/// Reads `DIR/train_state.safetensors` and checks that it was trained by `recipe`.
///
/// # Errors
/// A missing or unreadable state file, or a recipe that differs (each difference named), since the
/// continued run would not be the one that was started.
pub fn read(dir: &Path, recipe: &serde_json::Value) -> Result<Saved, Box<dyn std::error::Error>> {
    let path = dir.join(FILE);
    if !path.is_file() {
        return Err(format!(
            "--resume {}: no {FILE} in it; it is written with every checkpoint of `cnnc train --out {}`",
            dir.display(),
            dir.display()
        )
        .into());
    }
    let (tensors, meta) = weights::read_with_metadata(&path)?;
    let bad = |what: &str| format!("{}: its metadata has no valid `{what}`; the file is not cnnc's", path.display());
    let number = |key: &str| meta.get(key).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad(key));
    let saved_recipe: serde_json::Value =
        meta.get("recipe").and_then(|r| serde_json::from_str(r).ok()).ok_or_else(|| bad("recipe"))?;
    let differences = differences(&saved_recipe, recipe);
    if !differences.is_empty() {
        return Err(format!(
            "--resume {}: the run was started with {}; give the same options to continue it",
            dir.display(),
            differences.join(", ")
        )
        .into());
    }
    let position = Position {
        epoch: number("epoch")?,
        batches: number("batches")?,
        steps: number("steps")?,
        best: meta.get("best_accuracy").and_then(|b| b.parse().ok()),
        loss_sum: meta.get("loss_sum").and_then(|v| v.parse().ok()).ok_or_else(|| bad("loss_sum"))?,
        loss_count: number("loss_count")?,
        metrics_bytes: number("metrics_bytes")?,
    };
    let (mut params, mut optimizer) = (Weights::default(), Weights::default());
    for name in tensors.names() {
        let t = tensors.get(name).expect("listed").clone();
        match name.split_once('.') {
            Some(("model", rest)) => params.insert(rest.to_string(), t),
            Some(("optimizer", rest)) => optimizer.insert(rest.to_string(), t),
            _ => return Err(format!("{}: tensor `{name}` is neither model. nor optimizer.", path.display()).into()),
        }
    }
    Ok(Saved { params, optimizer, position })
}

/// Each field of `now` that differs from `then`, as `--name then (now: value)`.
fn differences(then: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (then, now) = (then.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    let keys: Vec<&String> = then.keys().chain(now.keys().filter(|k| !then.contains_key(*k))).collect();
    let null = serde_json::Value::Null;
    keys.into_iter()
        .filter(|k| then.get(*k) != now.get(*k))
        .map(|k| format!("{k} {} (now {})", then.get(k).unwrap_or(&null), now.get(k).unwrap_or(&null)))
        .collect()
}

/// Set by Ctrl-C: the training loop writes a checkpoint and stops after the step in flight.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Lets Ctrl-C stop training cleanly: the first press asks the loop to checkpoint and stop; a
/// second one exits at once (status 130).
pub fn catch_interrupt() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        errln!("\nstopping after this step and writing a checkpoint (Ctrl-C again to quit at once)");
    });
    if let Err(e) = installed {
        errln!("warning: Ctrl-C will stop training without a checkpoint ({e})");
    }
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Set when Ctrl-C stopped a run before its last epoch (its exit status is then 130).
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Records that Ctrl-C stopped the run early, with its checkpoint written.
pub fn mark_stopped() {
    STOPPED.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C stopped the run before its last epoch.
pub fn stopped() -> bool {
    STOPPED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnnc::runtime::Tensor;

    #[test]
    fn a_state_reads_back_exactly_and_a_changed_recipe_is_named() {
        let dir = std::env::temp_dir().join(format!("cnnc-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = Weights::default();
        params.insert("fc.weight".into(), Tensor::new(vec![2], vec![0.1f64, -1.0 / 3.0]));
        let mut optimizer = Weights::default();
        optimizer.insert("fc.weight.exp_avg".into(), Tensor::new(vec![2], vec![1e-300f64, 2.0]));
        let position = Position {
            epoch: 2,
            batches: 5,
            steps: 17,
            best: Some(0.5),
            loss_sum: 1.25,
            loss_count: 3,
            metrics_bytes: 9,
        };
        let recipe = serde_json::json!({"seed": 1, "lr": 0.01});
        write(&dir, &params, &optimizer, &position, &recipe, false).unwrap();
        let saved = read(&dir, &recipe).unwrap();
        assert_eq!(saved.position, position);
        assert_eq!(saved.params.get("fc.weight").unwrap().data, vec![0.1, -1.0 / 3.0], "float64 kept exactly");
        assert_eq!(saved.optimizer.get("fc.weight.exp_avg").unwrap().data, vec![1e-300, 2.0]);
        let err = read(&dir, &serde_json::json!({"seed": 2, "lr": 0.01})).err().unwrap().to_string();
        assert!(err.contains("seed 1 (now 2)"), "{err}");
        let (_, meta) = weights::read_with_metadata(&dir.join(FILE)).unwrap();
        assert!(meta.contains_key("recipe") && meta.contains_key("steps"));
        assert!(!dir.join("train_state.partial").exists(), "no temporary file is left");
        std::fs::remove_dir_all(&dir).ok();
        assert!(read(&dir, &recipe).err().unwrap().to_string().contains("no train_state.safetensors"));
    }

    /// A write that fails part-way (here the checkpoint writer's own error on a full disk,
    /// `/dev/full`) leaves the previous file as it was and no temporary file; a temporary file left
    /// by a crash is replaced by the next write.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_leaves_the_previous_file() {
        let dir = std::env::temp_dir().join(format!("cnnc-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("last.safetensors");
        let mut w = Weights::default();
        w.insert("fc.weight".into(), Tensor::new(vec![3], vec![1.0f32, 2.0, 3.0]));
        cnnc::runtime::weights::write_checkpoint(&path, &w, 1, &[]).unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = atomically(&path, |partial| {
            std::fs::write(partial, &before[..before.len() / 2]).unwrap();
            cnnc::runtime::weights::write_checkpoint(Path::new("/dev/full"), &w, 2, &[])
        })
        .unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "the previous checkpoint is untouched");
        assert!(!path.with_extension("partial").exists(), "no temporary file is left");
        // A crash between writing and renaming leaves a temporary file: the next write replaces it.
        std::fs::write(path.with_extension("partial"), b"half of a checkpoint").unwrap();
        atomically(&path, |partial| cnnc::runtime::weights::write_checkpoint(partial, &w, 3, &[])).unwrap();
        assert!(!path.with_extension("partial").exists());
        assert_eq!(cnnc::runtime::weights::read(&path).unwrap().get("fc.weight").unwrap().data, vec![1.0, 2.0, 3.0]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
