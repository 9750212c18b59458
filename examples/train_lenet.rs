//! Training LeNet through the `model!` macro: the generated `LeNet` builds a GPU trainer from the same
//! spec, trains it with Adam from PyTorch's initialisation, and the trained weights go back into the
//! generated inference model and out to a `.safetensors` file that PyTorch loads.
//! Run with `cargo run --release --example train_lenet [-- STEPS]`.
//!
//! The data is a made-up ten-class task, so that the example runs anywhere: each class is a fixed
//! random 3×32×32 pattern, and every image is its class's pattern under heavy noise (the pattern's
//! values are uniform in ±1, the noise's in ±1.5). Reading real datasets is `cnnc train`'s job.

use cnnc::runtime::gpu;
use cnnc::runtime::synthetic::{pytorch_init, values};
use cnnc::runtime::train::{Optimizer, OptimizerState, Schedule, StepOptions};
use cnnc::runtime::Tensor;

cnnc::model!("specs/lenet.yaml");

const CLASSES: usize = 10;
const BATCH: usize = 32;

/// Batch number `index` of the task: `[BATCH, 3, 32, 32]` images and their labels.
fn batch(index: u64) -> (Tensor, Vec<usize>) {
    let item: usize = LeNet::INPUT_SHAPE.iter().product();
    let labels: Vec<usize> = (0..BATCH).map(|i| (i * 7 + index as usize) % CLASSES).collect();
    let noise = values(index, "noise", BATCH * item, -1.5, 1.5);
    let mut data = Vec::with_capacity(BATCH * item);
    for (i, label) in labels.iter().enumerate() {
        let pattern = values(0, &format!("class {label}"), item, -1.0, 1.0);
        data.extend(pattern.iter().zip(&noise[i * item..][..item]).map(|(p, n)| p + n));
    }
    let mut shape = vec![BATCH];
    shape.extend(LeNet::INPUT_SHAPE);
    (Tensor::new(shape, data), labels)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|_| format!("STEPS must be a whole number, not {s:?}"))?,
        None => 200,
    };
    let gpu = gpu::open(None)?;
    println!(
        "LeNet ({} parameters) on {}, batch {BATCH}, Adam lr 1e-3, {steps} steps",
        LeNet::PARAMETERS,
        gpu.info.name
    );

    let initial = pytorch_init(&LeNet::weight_table().params, 0);
    let adam = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
    let mut trainer = LeNet::trainer(&gpu, &initial, |_| true, adam, &StepOptions::default(), BATCH)?;
    let every = 25;
    for step in 0..steps {
        let (x, labels) = batch(1 + step);
        trainer.step(&x, &labels)?;
        // Steps queue up on the GPU; the losses are read back every `every` steps.
        if (step + 1) % every == 0 || step + 1 == steps {
            let losses = trainer.losses()?;
            let mean = losses.iter().sum::<f32>() / losses.len() as f32;
            println!("step {:>4}: mean loss {mean:.4} over the last {}", step + 1, losses.len());
        }
    }

    // The trained weights run in the generated inference model, on batches it never saw.
    let weights = trainer.weights()?;
    let model = LeNet::with_weights(&gpu, &weights, BATCH)?;
    let (mut correct, mut total) = (0, 0);
    for index in 0..4 {
        let (x, labels) = batch(1_000_000 + index);
        let logits = model.run(&x)?;
        for (row, label) in logits.data.chunks(CLASSES).zip(&labels) {
            let predicted = (0..CLASSES).max_by(|a, b| row[*a].total_cmp(&row[*b])).unwrap_or(0);
            correct += usize::from(predicted == *label);
            total += 1;
        }
    }
    println!("held-out accuracy: {correct}/{total} ({:.1} %)", 100.0 * correct as f64 / total as f64);

    let path = std::env::temp_dir().join("lenet_trained.safetensors");
    let mut names = weights.names();
    names.sort_unstable();
    let tensors: Vec<_> = names.iter().map(|n| (n.to_string(), weights.get(n).expect("listed").convert())).collect();
    cnnc::runtime::weights::write_safetensors(&path, &tensors, true)?;
    println!("weights written to {} (safetensors.torch.load_file reads them)", path.display());
    Ok(())
}
