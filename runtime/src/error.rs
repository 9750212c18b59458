//! Runtime errors: each variant carries what it is about (the file, tensor, layer and its spec span,
//! the limit and the value), so callers and tests can tell them apart without reading the text.

use std::path::PathBuf;

use cnnc_ir::span::Span;

use crate::weights::WeightReport;

/// Dims as the messages write them: `3, 32, 32`.
fn dims(d: &[usize]) -> String {
    d.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// Everything that can go wrong outside the spec itself.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// A dataset file that cannot be used as it is, and why (the index or entry inside it, where one).
    #[error("`{path}` is not a usable dataset: {message}")]
    Dataset { path: PathBuf, message: String },
    /// A value that must be finite is not (a model's output on real data, say).
    #[error("{what} is {value}: the weights or the data hold values that overflow")]
    NonFinite { what: String, value: f32 },
    /// Preprocessing that does not fit the model's input channels.
    #[error("the spec's preprocess has {means} means and {stds} stds for a model of {channels} input channels")]
    Preprocess { channels: usize, means: usize, stds: usize },
    /// A dataset named without one of the known formats.
    #[error(
        "`{name}` does not name a dataset: use FORMAT:PATH with FORMAT `idx` (MNIST, Fashion-MNIST) or \
         `cifar10` (CIFAR-10's binary batches)"
    )]
    DatasetName { name: String },
    #[error("`{path}` is not a usable .npy file: {message}")]
    Npy { path: PathBuf, message: String },
    #[error("`{path}` is not a usable weights file: {message}")]
    WeightsFile { path: PathBuf, message: String },
    #[error("the weights do not fit the spec:\n{0}")]
    Weights(Box<WeightReport>),
    /// No adapter matching `requested` (or none at all) among those wgpu found (`found`: each
    /// adapter's name and backend).
    #[error(
        "no GPU adapter{} (Vulkan, Metal or DX12): found {}. On Linux without a GPU, install Mesa's software \
         Vulkan driver (`apt-get install mesa-vulkan-drivers`); `cnnc devices` lists what wgpu sees",
        requested.as_ref().map_or(String::new(), |c| format!(" matching `{c}`")),
        if found.is_empty() { "no adapters at all".to_string() } else { format!("only {}", found.join(", ")) }
    )]
    NoAdapter { requested: Option<String>, found: Vec<String> },
    /// The adapter would not open a device.
    #[error("the adapter {adapter} refused a device: {reason}")]
    DeviceRefused { adapter: String, reason: String },
    /// A device operation failed: waiting for the queue, mapping a buffer, an upload.
    #[error("GPU error while {during}: {message}")]
    Device { during: &'static str, message: String },
    /// The driver rejected the kernels or bindings made for a layer.
    #[error("GPU error: preparing layer `{layer}` failed: {message}")]
    Kernel { layer: String, span: Span, message: String },
    /// A tensor larger than one storage binding of the device, in bytes; `span` is the layer's
    /// place in the spec where one layer is to blame, and `fix` the way out.
    #[error("GPU error: {what} needs {bytes} bytes, more than the device's {limit}-byte storage binding limit; {fix}")]
    BindingLimit { what: String, span: Option<Span>, bytes: u64, limit: u64, fix: &'static str },
    /// Host memory the machine cannot allocate: what needed it (a layer's output on the CPU, the
    /// weights), in bytes; `span` is the layer's place in the spec where one layer is to blame.
    #[error("out of memory: {what} needs {bytes} bytes, more than this machine can allocate; {fix}")]
    HostMemory { what: String, span: Option<Span>, bytes: u64, fix: &'static str },
    /// A layer whose output, for a single input, is larger than one storage binding of the device.
    #[error(
        "GPU error: the output of layer `{layer}` ({shape} per input) needs {bytes} bytes, more than the \
         device's {limit}-byte storage binding limit; run it on the CPU (`--cpu` of cnnc run and cnnc eval), or give \
         the model smaller inputs"
    )]
    ActivationTooLarge { layer: String, span: Span, shape: String, bytes: u64, limit: u64 },
    /// A layer in a form the GPU executor has no kernel for.
    #[error("GPU error: `{layer}`: {what}")]
    Unsupported { layer: String, span: Span, what: String },
    /// A tensor the model reads is not among the weights.
    #[error("wrong input: no tensor for weight `{name}`")]
    MissingWeight { name: String },
    /// A weight whose shape is not the one the model declares.
    #[error("wrong input: weight `{name}` is {found:?}, the model needs {expected:?}")]
    WeightShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    /// An input batch whose item shape (or size) is not the model's input `[N, ...item]`.
    #[error("wrong input: the model takes [N, {}], the input is {found:?}", dims(item))]
    InputShape { item: Vec<usize>, found: Vec<usize> },
    /// A flat input whose length is not a whole number of items.
    #[error("wrong input: the model takes batches of [{}] items ({} floats each); the input holds {floats} floats", dims(item), item.iter().product::<usize>())]
    InputLength { item: Vec<usize>, floats: usize },
    /// `--image` on a model whose input is not `[3, H, W]` or `[1, H, W]`.
    #[error("wrong input: images need a model with a [3, H, W] (colour) or [1, H, W] (grayscale) input; this one takes {input:?}")]
    NotAnImageModel { input: Vec<usize> },
    #[error("wrong input: no images given")]
    NoImages,
    /// A step on held images asked of a GPU trainer built without them.
    #[error("this trainer holds no images: build it with GpuTrainer::holding to make batches on the device")]
    NotHolding,
    /// A value asked of a GPU trainer that was not built to keep it.
    #[error("this trainer did not keep the value of node {node}: build it with GpuTrainer::keeping, naming the node")]
    NotKept { node: usize },
    /// Another executor's branches that do not fit a step (`train::step_on_branches`).
    #[error("wrong branch: {0}")]
    Branch(String),
    /// An image that cannot be opened or decoded.
    #[error("wrong input: `{path}` is not a usable image: {message}")]
    Image { path: PathBuf, message: String },
    /// A layer plan that fails validation.
    #[error("inconsistent layer plan: {0}")]
    Plan(#[from] cnnc_ir::PlanError),
    /// Labels that do not fit the batch or the model's classes (or class weights that do not fit).
    #[error("wrong labels: {0}")]
    Labels(String),
    /// A graph that cannot be trained as asked.
    #[error("cannot train: {0}")]
    Autodiff(#[from] cnnc_ir::autodiff::AutodiffError),
    /// Batch-norm in training mode over a single value per channel (batch 1 on a 1×1 map), where the
    /// batch variance is undefined; PyTorch refuses it too.
    #[error("cannot train: batch-norm `{layer}` sees one value per channel; use a batch larger than 1")]
    BatchTooSmall { layer: String, span: Span },
}

impl RuntimeError {
    /// The spec text of the layer an error comes from, where it names one.
    pub fn span(&self) -> Option<Span> {
        match self {
            RuntimeError::Kernel { span, .. }
            | RuntimeError::ActivationTooLarge { span, .. }
            | RuntimeError::Unsupported { span, .. }
            | RuntimeError::BatchTooSmall { span, .. } => Some(*span),
            RuntimeError::BindingLimit { span, .. } | RuntimeError::HostMemory { span, .. } => *span,
            _ => None,
        }
    }
}
