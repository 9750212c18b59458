//! `batch_from_bytes`, the kernel that makes a training batch on the GPU from images held there as
//! bytes (`GpuTrainer::holding`): its batches must be the host's (`Dataset::batch`) bit for bit,
//! crops, flips and per-channel normalisation included, or training on held images would not be
//! training on the host's batches. Each case holds a few images and compares every batch of an
//! epoch made on the device with the host's.

use std::path::Path;

use cnnc_compiler::{compile_bytes, Expanded, Graph};
use cnnc_runtime::data::{augment, Dataset, Images, Transform};
use cnnc_runtime::gpu::{Gpu, GpuTrainer, HeldImages};
use cnnc_runtime::synthetic;
use cnnc_runtime::train::{rng, Optimizer, OptimizerState, Schedule, StepOptions};

use super::Outcome;

/// One case: `count` images of `shape` held, batches of `batch`, augmented as `augment` says into
/// the model's `input`.
pub struct HeldCase {
    pub name: &'static str,
    pub shape: [usize; 3],
    pub input: [usize; 3],
    pub augment: &'static str,
    pub count: usize,
    pub batch: usize,
}

/// Colour images cropped from their padding and mirrored; grayscale ones mirrored, then cropped
/// narrower, 35 bytes each (so the held bytes are not a whole number of words); and images taken
/// as they are.
pub fn cases() -> Vec<HeldCase> {
    vec![
        HeldCase {
            name: "3×8×8, random_crop(8, pad=2), hflip",
            shape: [3, 8, 8],
            input: [3, 8, 8],
            augment: "random_crop(8, pad=2), hflip",
            count: 9,
            batch: 4,
        },
        HeldCase {
            name: "1×5×7, hflip, random_crop(5, pad=1)",
            shape: [1, 5, 7],
            input: [1, 5, 5],
            augment: "hflip, random_crop(5, pad=1)",
            count: 7,
            batch: 3,
        },
        HeldCase {
            name: "3×6×6, as they are",
            shape: [3, 6, 6],
            input: [3, 6, 6],
            augment: "none",
            count: 4,
            batch: 2,
        },
    ]
}

impl HeldCase {
    /// A model that takes the case's input.
    fn graph(&self) -> Graph {
        let [c, h, w] = self.input;
        let text = format!("model: held\ninput: [{c}, {h}, {w}]\nbody: [flatten, linear(2)]\n");
        match compile_bytes(Path::new("batch_from_bytes.yaml"), text.into_bytes()).result {
            Ok(Expanded::Model(graph)) => graph,
            _ => panic!("the batch_from_bytes case `{}` compiles", self.name),
        }
    }

    /// Compares every batch of one epoch; the first element that differs, if any.
    pub fn run(&self, gpu: &Gpu) -> Result<(), String> {
        let [c, h, w] = self.shape;
        let bytes: Vec<u8> = (0..self.count * c * h * w).map(|i| (i * 131 % 256) as u8).collect();
        let data =
            Dataset::from_memory(Images::Same { bytes: bytes.clone(), shape: self.shape }, vec![0; self.count], "held");
        let transform = Transform {
            input: self.input,
            augment: augment::parse(self.augment)?,
            resize: None,
            centre_crop: false,
            mean: [0.485, 0.456, 0.406][..c].to_vec(),
            std: [0.229, 0.224, 0.225][..c].to_vec(),
        };
        let table = transform.normalized_bytes();
        let held = HeldImages { bytes: &bytes, shape: self.shape, table: &table };
        let graph = self.graph();
        let weights = synthetic::weights(&graph, 1);
        let optimizer = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
        let options = StepOptions::default();
        let mut trainer = GpuTrainer::holding(gpu, &graph, &weights, |_| true, optimizer, &options, self.batch, &held)
            .map_err(|e| e.to_string())?;
        let key = rng::key(11, 1, 77);
        let order: Vec<usize> = (0..self.count).rev().collect();
        for (i, chunk) in order.chunks_exact(self.batch).enumerate() {
            let first = i * self.batch;
            let (host, _) = data.batch(chunk, &transform, key, first).map_err(|e| e.to_string())?;
            let items = chunk
                .iter()
                .enumerate()
                .map(|(n, &image)| transform.placement(self.shape, key, first + n).map(|at| (image, at)))
                .collect::<Option<Vec<_>>>()
                .ok_or("the augmentation does not place pixels")?;
            let device = trainer.held_batch(&items).map_err(|e| e.to_string())?;
            let differs = host.data.iter().zip(&device.data).position(|(a, b)| a.to_bits() != b.to_bits());
            if let Some(e) = differs.or((host.data.len() != device.data.len()).then_some(0)) {
                return Err(format!(
                    "batch {i}, element {e}: {} where the host makes {}",
                    device.data.get(e).map_or("nothing".into(), f32::to_string),
                    host.data[e]
                ));
            }
        }
        Ok(())
    }
}

/// Runs every case on `gpu`: an outcome of family `batch_from_bytes` each, failed with the first
/// element that is not the host's.
pub fn run_all(gpu: &Gpu) -> Vec<Outcome> {
    cases()
        .iter()
        .map(|case| Outcome {
            family: "batch_from_bytes",
            name: case.name.to_string(),
            error: 0.0,
            failure: case.run(gpu).err(),
        })
        .collect()
}
