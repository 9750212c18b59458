//! Building a validated layer plan's GPU work, layer by layer: the API both the executor and
//! generated code build on. Each layer's kernels are specialised for its shapes, its weights uploaded
//! (batch-norm folded, laid out for the kernel), and its pipelines and bind groups made once.
//!
//! Convolutions read their input and weights through textures where they fit (`textureLoad` is
//! vectorised on CPU drivers, where storage-buffer loads in loops run lane by lane): each value a
//! convolution reads gets a texture mirror, filled by a buffer-to-texture copy between compute passes
//! right after the value is complete. The storage-buffer kernels remain for tensors too large for a
//! texture. Activations live in the buffer slots the layout plans; flatten costs nothing. Tensors
//! larger than one storage binding are handled by splitting: linear weights by rows, and activations
//! by running the batch in chunks.
//!
//! `arena.rs` holds the device resources, `choice.rs` the (pure) choice of convolution kernel,
//! `relayout.rs` the (pure) weight layouts, `warm_up.rs` the warm-up thread, and one module per kernel
//! family lowers the layers that family runs.

pub(crate) mod arena;
mod choice;
mod conv;
mod copy;
mod elementwise;
pub(crate) mod linear;
mod norm;
mod pool;
mod relayout;
mod warm_up;

use std::collections::HashMap;

use cnnc_ir::graph::{Op, Shape};
use cnnc_ir::plan::{Layer, Operand, ValidPlan, ValueId, ValueLayout};

use self::arena::{Arena, Bind, BufferId, TextureId};
use self::choice::TextureLimits;
use super::kernels::KernelParams;
use super::program::Program;
use super::record::{GpuLayer, Step, TexelFormat};
use super::Gpu;
use crate::weights::Weights;
use crate::{RuntimeError, Tensor};

/// Choices the builder would otherwise make from the device's limits.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// A storage-binding limit below the device's, to force tensors to be split.
    pub binding_limit: Option<usize>,
    /// Whether convolutions may read their input and weights through textures (the fast path);
    /// `false` runs the storage-buffer kernels everywhere.
    pub textures: bool,
    /// When small convolutions run written out for their shapes (`kernels::UnrolledConv`).
    pub unrolled: UnrolledPolicy,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions { binding_limit: None, textures: true, unrolled: UnrolledPolicy::LargeBatches }
    }
}

/// When a small convolution of one group runs written out for its shape (`kernels::UnrolledConv`)
/// instead of through the direct kernel. The written-out kernel is several times faster on CPU
/// drivers (LeNet's forward at batch 64: 11,000 images/s against 2,950 on lavapipe) but takes about
/// a second to compile there, which pays off only over many images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnrolledPolicy {
    /// For batches of at least [`UnrolledPolicy::LARGE_BATCH`] items (evaluation, benchmarks),
    /// not for a few images (`cnnc run` on a handful of files).
    LargeBatches,
    /// Wherever the convolution fits.
    Always,
    /// Never.
    Never,
}

impl UnrolledPolicy {
    /// The smallest batch [`UnrolledPolicy::LargeBatches`] writes convolutions out for.
    pub const LARGE_BATCH: usize = 32;

    /// Whether a convolution over `batch` items may run written out.
    pub fn allows(self, batch: usize) -> bool {
        match self {
            UnrolledPolicy::LargeBatches => batch >= Self::LARGE_BATCH,
            UnrolledPolicy::Always => true,
            UnrolledPolicy::Never => false,
        }
    }
}

/// A model built on a device: each planned layer's GPU work, in plan order, and the program that
/// records and runs them.
pub struct Built {
    pub layers: Vec<GpuLayer>,
    pub program: Program,
}

/// Builds every layer of a validated plan on `gpu` for batches of `batch` (run in chunks if a whole
/// batch would not fit a binding), reading parameters from `weights`.
///
/// # Errors
/// A weight the plan names is missing from `weights` or has another shape
/// ([`RuntimeError::MissingWeight`], [`RuntimeError::WeightShape`]), a tensor exceeds the device's
/// limits ([`RuntimeError::BindingLimit`]), a layer has a form the GPU has no kernel for
/// ([`RuntimeError::Unsupported`]), or the driver rejects a kernel ([`RuntimeError::Kernel`]).
pub fn build(
    gpu: &Gpu,
    plan: &ValidPlan,
    weights: &Weights,
    batch: usize,
    options: PlanOptions,
) -> Result<Built, RuntimeError> {
    for p in plan.params() {
        match weights.get(&p.name) {
            None => return Err(RuntimeError::MissingWeight { name: p.name.clone() }),
            Some(t) if t.shape != p.shape => {
                let (name, expected, found) = (p.name.clone(), p.shape.clone(), t.shape.clone());
                return Err(RuntimeError::WeightShape { name, expected, found });
            }
            Some(_) => {}
        }
    }
    check_activation_sizes(gpu, plan, options)?;
    let mut builder = Builder::new(gpu, plan.layout(), weights, batch, options)?;
    let layers = plan.layers().iter().map(|l| builder.layer(l)).collect::<Result<Vec<_>, _>>()?;
    Ok(Built { layers, program: builder.finish()? })
}

/// The largest storage binding the plan may use: the device's, or less when `options` say so.
fn binding_limit(gpu: &Gpu, options: PlanOptions) -> usize {
    let device_limit = gpu.limits.max_storage_buffer_binding_size as usize;
    options.binding_limit.map_or(device_limit, |l| l.min(device_limit))
}

/// Names the first layer whose own output for a single input exceeds one storage binding (the
/// batch is run in chunks, but a single input cannot be split). Every buffer slot is as large as
/// the largest output it holds, so no slot exceeds the limit once no output does.
fn check_activation_sizes(gpu: &Gpu, plan: &ValidPlan, options: PlanOptions) -> Result<(), RuntimeError> {
    let limit = binding_limit(gpu, options);
    for layer in plan.layers().iter().filter(|l| l.slot.is_some()) {
        let bytes = layer.shape.elements() as usize * 4;
        if bytes > limit && matches!(layer.op, Op::Input) {
            return Err(RuntimeError::BindingLimit {
                what: format!("the model's input ({} per input)", layer.shape),
                span: Some(layer.span),
                bytes: bytes as u64,
                limit: limit as u64,
                fix: "run it on the CPU (`--cpu` of cnnc run and cnnc eval), or give the model smaller inputs",
            });
        }
        if bytes > limit {
            return Err(RuntimeError::ActivationTooLarge {
                layer: if layer.path.is_empty() { "(model)".into() } else { layer.path.clone() },
                span: layer.span,
                shape: layer.shape.to_string(),
                bytes: bytes as u64,
                limit: limit as u64,
            });
        }
    }
    Ok(())
}

/// Where a value lives: a buffer, or the value it only reshapes (flatten).
#[derive(Copy, Clone)]
enum Place {
    Buffer(BufferId),
    Alias(ValueId),
}

/// Builds a model's layers on a device, in plan order, then finishes it into the [`Program`] that
/// runs them.
struct Builder<'w> {
    arena: Arena,
    weights: &'w Weights,
    layout: ValueLayout,
    /// Batch items per dispatch.
    chunk: usize,
    /// The largest storage binding to plan for.
    binding_limit: usize,
    textures: TextureLimits,
    unrolled: UnrolledPolicy,
    places: Vec<Option<Place>>,
    /// The buffer made for each slot, once made.
    slot_buffers: Vec<Option<BufferId>>,
    /// Texture mirrors made so far, by the value whose buffer they copy and texel format (buffers
    /// are reused, values are not).
    mirrors: HashMap<(ValueId, TexelFormat), TextureId>,
    /// The steps of the layer being built.
    steps: Vec<Step>,
}

fn elements(shape: &Shape) -> usize {
    shape.dims().iter().product()
}

/// `[C, H, W]` of an image shape (validated plans give convolutions and poolings images).
fn image(shape: &Shape) -> [usize; 3] {
    shape.dims().try_into().expect("a valid plan gives this op [C, H, W] tensors")
}

impl<'w> Builder<'w> {
    fn new(
        gpu: &Gpu,
        layout: &ValueLayout,
        weights: &'w Weights,
        batch: usize,
        options: PlanOptions,
    ) -> Result<Builder<'w>, RuntimeError> {
        let limit = binding_limit(gpu, options);
        // No slot exceeds the limit (`check_activation_sizes`).
        let largest = layout.slot_elements.iter().map(|e| *e as usize * 4).max().unwrap_or(0).max(4);
        let max_dimension = gpu.limits.max_texture_dimension_2d as usize;
        Ok(Builder {
            arena: Arena::new(gpu),
            weights,
            layout: layout.clone(),
            chunk: batch.clamp(1, (limit / largest).max(1)),
            binding_limit: limit,
            textures: TextureLimits { enabled: options.textures, max_dimension },
            unrolled: options.unrolled,
            places: vec![None; layout.values],
            slot_buffers: vec![None; layout.slot_elements.len()],
            mirrors: HashMap::new(),
            steps: Vec::new(),
        })
    }

    /// Builds one layer of a validated plan; layers come in plan order.
    fn layer(&mut self, layer: &Layer) -> Result<GpuLayer, RuntimeError> {
        // Shader or binding mistakes surface as errors here, not as panics in wgpu's default handler.
        self.steps.clear();
        let scope = self.arena.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let built = self.build(layer);
        if let Some(e) = pollster::block_on(scope.pop()) {
            let (layer, span, message) = (layer.path.clone(), layer.span, e.to_string());
            return Err(RuntimeError::Kernel { layer, span, message });
        }
        built?;
        Ok(GpuLayer { path: layer.path.clone(), steps: std::mem::take(&mut self.steps) })
    }

    /// Lowers a layer to the kernels of its family.
    fn build(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        match &layer.op {
            Op::Input => {
                self.output_for(layer);
            }
            Op::Flatten | Op::Dropout { .. } | Op::StochasticDepth { .. } => {
                self.places[layer.value.index()] = Some(Place::Alias(layer.inputs[0].value));
            }
            Op::Conv2d(c) => self.conv(layer, c)?,
            Op::Linear { in_features, out_features, bias } => self.linear(layer, *in_features, *out_features, *bias)?,
            Op::BatchNorm { eps, .. } => self.batch_norm(layer, *eps),
            Op::ChannelAffine { scale, shift } => self.affine(layer, scale, shift),
            Op::Activation(_) => self.activation(layer),
            Op::MaxPool(p) => self.pool(layer, p, true),
            Op::AvgPool(p) => self.pool(layer, p, false),
            Op::AdaptiveAvgPool { size } => self.adaptive_pool(layer, *size, false),
            Op::AdaptiveMaxPool { size } => self.adaptive_pool(layer, *size, true),
            Op::Add => self.add(layer),
            Op::Mul => self.mul(layer)?,
            Op::Concat => self.concat(layer),
            Op::Chunk { chunks, index } => self.chunk(layer, *chunks, *index),
            Op::ChannelShuffle { groups } => self.shuffle(layer, *groups),
            Op::LocalResponseNorm { size, alpha, beta, k } => self.lrn(layer, *size, [*alpha, *beta, *k]),
            Op::Softmax => self.softmax(layer),
        }
        Ok(())
    }

    /// Finishes the model: the input, output and read-back buffers.
    fn finish(self) -> Result<Program, RuntimeError> {
        // A valid plan starts with the input layer and computes the output.
        let input = self.arena.buffer(self.buffer_of(self.layout.input)).clone();
        let output = self.arena.buffer(self.buffer_of(self.layout.output)).clone();
        let out_bytes = (self.chunk * elements(&self.layout.output_shape) * 4) as u64;
        let gpu = self.arena.gpu.clone();
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output staging"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let (activations, textures, bytes) = self.arena.finish()?;
        Ok(Program {
            input,
            output,
            device_bytes: bytes + staging.size(),
            staging,
            _textures: textures,
            chunk: self.chunk,
            item_shape: self.layout.input_shape.dims().to_vec(),
            output_item_shape: self.layout.output_shape.dims().to_vec(),
            activations,
            gpu,
        })
    }

    /// The value whose buffer holds `value` (itself, or what a flatten reshapes).
    fn owner(&self, value: ValueId) -> ValueId {
        match self.places[value.index()].expect("a valid plan computes values before reading them") {
            Place::Buffer(_) => value,
            Place::Alias(other) => self.owner(other),
        }
    }

    fn buffer_of(&self, value: ValueId) -> BufferId {
        match self.places[self.owner(value).index()] {
            Some(Place::Buffer(b)) => b,
            _ => unreachable!("an owner holds its value in a buffer"),
        }
    }

    /// The buffer of the layer's slot (made on first use, at the slot's size).
    fn output_for(&mut self, layer: &Layer) -> BufferId {
        let slot = layer.slot.expect("a valid plan gives every computing layer a slot").index();
        let b = match self.slot_buffers[slot] {
            Some(b) => b,
            None => {
                let bytes = self.chunk * self.layout.slot_elements[slot] as usize * 4;
                let b = self.arena.activation_buffer(bytes, &format!("activations {slot}"));
                self.slot_buffers[slot] = Some(b);
                b
            }
        };
        self.places[layer.value.index()] = Some(Place::Buffer(b));
        b
    }

    /// The layer's parameter with this state_dict suffix (a valid plan lists it, and [`build`]
    /// checked that the weights hold it).
    fn param(&self, layer: &Layer, suffix: &str) -> &'w Tensor {
        let p =
            layer.params.iter().find(|p| p.kind.suffix() == suffix).expect("a valid plan lists the op's parameters");
        self.weights.get(&p.name).expect("build checks every planned weight is present")
    }

    /// Adds a dispatch of the kernel `params` specialise over `binds`.
    fn dispatch(&mut self, params: &impl KernelParams, binds: &[Bind]) {
        let step = self.arena.dispatch(&params.kernel(), binds);
        self.steps.push(step);
    }

    /// The texture mirror of `input`'s value in `format`, copied from its buffer once per forward
    /// (the copy is planned here, after the value's producers and before this reader).
    fn mirror(&mut self, input: &Operand, format: TexelFormat, label: &str) -> TextureId {
        let buffer = self.buffer_of(input.value);
        let owner = self.owner(input.value);
        if let Some(t) = self.mirrors.get(&(owner, format)) {
            return *t;
        }
        let floats = self.chunk * elements(&input.shape);
        let t = self.mirror_buffer(buffer, floats, format, &format!("input of {label} (texture)"));
        self.mirrors.insert((owner, format), t);
        t
    }

    /// A new texture filled from the first `floats` floats of `buffer` at this point of every forward.
    fn mirror_buffer(&mut self, buffer: BufferId, floats: usize, format: TexelFormat, label: &str) -> TextureId {
        let (t, step) = self.arena.mirror(buffer, floats, format, label);
        self.steps.push(step);
        t
    }
}
