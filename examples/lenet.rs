//! LeNet through the `model!` macro: the spec becomes a `LeNet` struct at compile time.
//! Run with `cargo run --example lenet`.

use cnnc::runtime::gpu;

cnnc::model!("specs/lenet.yaml");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = gpu::open(None)?;
    let batch = 2;
    // Weights initialised as PyTorch initialises a fresh model; `LeNet::load` reads a checkpoint.
    let model = LeNet::random(&gpu, 0, batch)?;
    let item: usize = LeNet::INPUT_SHAPE.iter().product();
    let input: Vec<f32> = (0..batch * item).map(|i| ((i % 255) as f32 / 127.5) - 1.0).collect();
    let output = model.forward(&input)?;
    let dims = |d: &[usize]| d.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    println!(
        "LeNet on {}: {} parameters, input [{batch}, {}] → output [{batch}, {}]",
        gpu.info.name,
        LeNet::PARAMETERS,
        dims(&LeNet::INPUT_SHAPE),
        dims(&LeNet::OUTPUT_SHAPE)
    );
    for (b, row) in output.chunks(LeNet::OUTPUT_SHAPE[0]).enumerate() {
        let values: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
        println!("item {b}: [{}]", values.join(", "));
    }
    Ok(())
}
