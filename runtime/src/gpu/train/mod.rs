//! Training on the GPU: a whole step (training-mode forward, loss, the backward work
//! `cnnc_ir::autodiff` planned, one optimizer dispatch per pack of trainable tensors) is one command-buffer
//! submission. The step's loss goes to a history buffer on the device, read back only when asked
//! for (or when the history is full), so steps do not wait for each other. Every gradient element
//! is written by one invocation summing in a fixed order, so two runs from the same weights give
//! bit-identical results on one adapter. Values, gradients and scratch are transient buffers that
//! share device memory wherever their lives in the step (first to last dispatch binding them) do
//! not overlap (`Lowering::finish`): ResNet-18 at batch 8 holds 579 MiB instead of 1,068 MiB.
//!
//! The kernels read storage buffers; the convolution and linear gradients work on tiles (several
//! channels or a 4 × 4 block per invocation, each element still summed by one invocation in a fixed
//! order). A small convolution of one group (LeNet's) runs its forward, its stride-1 input gradient
//! and its weight gradient as kernels written out for its shape (`kernels::UnrolledConv`,
//! `kernels::UnrolledWeightGrad`), with the weights in a uniform buffer: the parameters' buffers
//! can be bound as uniform buffers too. Every op of the language trains; of broadcast products,
//! only those of equal shapes and per-channel gates, any other being refused with
//! [`RuntimeError::Unsupported`] naming the layer.

mod backward;
mod forward;
mod lower;
mod pack;

use cnnc_ir::autodiff::{differentiate, Backward};
use cnnc_ir::graph::{Graph, NodeId, Op, Param, ParamKind};

use self::lower::{fused_relus, relus_masked, supported, Io, Lowering};
use self::pack::Packed;
use super::build::arena::{Arena, Bind, BufferId};
use super::build::linear;
use super::kernels::{BatchFromBytes, KernelParams};
use super::program::{read_buffer, read_buffer_at};
use super::record::{can_time_dispatches, time_dispatches, time_submissions, Recorder, Step};
use super::{Gpu, StepTiming};
use crate::data::augment::Placement;
use crate::train::{rng, OptimizerState, StepOptions};
use crate::weights::Weights;
use crate::{RuntimeError, Tensor};

/// Steps whose losses (and hit counts) the device holds before they must be read back.
const HISTORY: usize = 64;

/// A model being trained on the GPU.
pub struct GpuTrainer {
    gpu: Gpu,
    steps: Vec<Step>,
    /// What each of `steps` does and its kernel family.
    step_labels: Vec<(String, &'static str)>,
    /// Where the optimizer dispatches begin in `steps` (a gradient-only run stops there).
    optimizer_start: usize,
    input: wgpu::Buffer,
    labels: wgpu::Buffer,
    hyper: wgpu::Buffer,
    history: wgpu::Buffer,
    /// Every weight tensor (trained or not) and its place.
    params: Vec<(Param, Placed)>,
    /// Each trainable tensor's gradient, by name.
    grads: Vec<(String, Placed)>,
    /// The optimizer's state, as `{param}.{state}` with the parameter's shape.
    states: Vec<(String, Vec<usize>, Placed)>,
    optimizer: OptimizerState,
    backward: Backward,
    batch: usize,
    item_shape: Vec<usize>,
    classes: usize,
    /// Losses of steps run since the last read, still on the device.
    pending: usize,
    /// Losses already read back and not yet handed out.
    losses: Vec<(f32, usize)>,
    /// Bytes of every buffer the trainer holds on the device.
    device_bytes: u64,
    /// What they would be with every value, gradient and scratch buffer of a step in a buffer of
    /// its own.
    unshared_bytes: u64,
    keys: wgpu::Buffer,
    /// The nodes whose dropout keys are written before each step, in key order.
    key_nodes: Vec<usize>,
    options: StepOptions,
    /// The images held on the device, when built [`GpuTrainer::holding`] them.
    held: Option<Held>,
    /// The values [`GpuTrainer::keeping`] keeps to the end of each step: node, item shape, place.
    kept: Vec<(NodeId, Vec<usize>, Placed)>,
    _buffers: Vec<wgpu::Buffer>,
}

/// A training split's images for [`GpuTrainer::holding`]: bytes (0–255), image after image.
pub struct HeldImages<'a> {
    /// The images, each `[C, H, W]` planar.
    pub bytes: &'a [u8],
    /// Each image's `[C, H, W]`.
    pub shape: [usize; 3],
    /// Byte `v` of channel `c` as the model takes it, at `c·256 + v`
    /// ([`crate::data::Transform::normalized_bytes`]).
    pub table: &'a [f32],
}

/// The held images' batch-making dispatch and where each step's placements go.
struct Held {
    step: Step,
    placements: wgpu::Buffer,
    /// Images held.
    count: usize,
}

/// The most bytes of images one storage binding holds on `gpu`.
fn hold_limit(gpu: &Gpu) -> u64 {
    gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size)
}

/// Uploads `images` and records the dispatch that makes a batch of them into `input`; returns it,
/// the placements buffer it reads and the number of images.
fn hold(
    arena: &mut Arena,
    images: &HeldImages<'_>,
    batch: usize,
    item_shape: &[usize],
    input: BufferId,
) -> Result<(Step, BufferId, usize), RuntimeError> {
    let [channels, h, w] = images.shape;
    let image_bytes = channels * h * w;
    let misfit = || RuntimeError::InputShape { item: item_shape.to_vec(), found: images.shape.to_vec() };
    let &[c, out_h, out_w] = item_shape else { return Err(misfit()) };
    let whole = image_bytes > 0 && images.bytes.len().is_multiple_of(image_bytes);
    if c != channels || images.table.len() != channels * 256 || !whole {
        return Err(misfit());
    }
    if !GpuTrainer::can_hold(&arena.gpu, images.bytes.len()) {
        return Err(RuntimeError::BindingLimit {
            what: "the training images".into(),
            span: None,
            bytes: images.bytes.len() as u64,
            limit: hold_limit(&arena.gpu),
            fix: "make the batches on the host (GpuTrainer::step)",
        });
    }
    let words = arena.byte_buffer(images.bytes, "held images");
    let placements = arena.activation_buffer(batch * 16, "placements");
    let table = arena.data_buffer(images.table, "byte table");
    let kernel = BatchFromBytes { n: batch, channels, h, w, out_h, out_w }.kernel();
    let binds = [Bind::Buffer(words), Bind::Buffer(placements), Bind::Buffer(table), Bind::Buffer(input)];
    Ok((arena.dispatch(&kernel, &binds), placements, images.bytes.len() / image_bytes))
}

impl GpuTrainer {
    /// A trainer for `graph` (the checked graph) at a fixed batch size, starting from `weights`,
    /// training what `trainable` selects with `optimizer` on the loss in `options` (whose `dropout`
    /// switches dropout and stochastic depth on, drawn from `seed`; `step` numbers the first step).
    ///
    /// # Errors
    /// [`RuntimeError::Autodiff`] when the graph cannot be trained as asked,
    /// [`RuntimeError::Unsupported`] for a layer the GPU cannot train yet,
    /// [`RuntimeError::MissingWeight`]/[`RuntimeError::WeightShape`] for weights that do not fit, and
    /// device errors.
    pub fn new(
        gpu: &Gpu,
        graph: &Graph,
        weights: &Weights,
        trainable: impl Fn(&Param) -> bool,
        optimizer: OptimizerState,
        options: &StepOptions,
        batch: usize,
    ) -> Result<GpuTrainer, RuntimeError> {
        Self::build(gpu, graph, weights, trainable, optimizer, options, batch, None, &[])
    }

    /// [`GpuTrainer::new`], keeping the training-mode forward's values of `nodes` to the end of
    /// each step instead of sharing their memory once read, so that [`GpuTrainer::value`] reads
    /// them after a step: for looking inside a step, such as which side of a ReLU's kink float32
    /// arithmetic took. Each kept value costs its own memory for the whole step.
    ///
    /// # Errors
    /// Those of [`GpuTrainer::new`].
    #[allow(clippy::too_many_arguments)]
    pub fn keeping(
        gpu: &Gpu,
        graph: &Graph,
        weights: &Weights,
        trainable: impl Fn(&Param) -> bool,
        optimizer: OptimizerState,
        options: &StepOptions,
        batch: usize,
        nodes: &[NodeId],
    ) -> Result<GpuTrainer, RuntimeError> {
        Self::build(gpu, graph, weights, trainable, optimizer, options, batch, None, nodes)
    }

    /// [`GpuTrainer::new`], holding a training split's images on the device as bytes: each step
    /// of [`GpuTrainer::step_held`] makes its batch there (`batch_from_bytes`), from the images'
    /// indices and placements, instead of uploading floats.
    ///
    /// # Errors
    /// Those of [`GpuTrainer::new`]; [`RuntimeError::InputShape`] when the images' channels or the
    /// table's length do not fit the model's input; [`RuntimeError::BindingLimit`] when the images
    /// take more bytes than one storage binding holds (then train with [`GpuTrainer::step`]).
    #[allow(clippy::too_many_arguments)]
    pub fn holding(
        gpu: &Gpu,
        graph: &Graph,
        weights: &Weights,
        trainable: impl Fn(&Param) -> bool,
        optimizer: OptimizerState,
        options: &StepOptions,
        batch: usize,
        images: &HeldImages<'_>,
    ) -> Result<GpuTrainer, RuntimeError> {
        Self::build(gpu, graph, weights, trainable, optimizer, options, batch, Some(images), &[])
    }

    /// Whether `bytes` of images can be held for [`GpuTrainer::holding`] on `gpu`: one storage
    /// binding must hold them, with every byte's index a `u32`.
    pub fn can_hold(gpu: &Gpu, bytes: usize) -> bool {
        (bytes as u64).next_multiple_of(16) <= hold_limit(gpu) && bytes < u32::MAX as usize
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu,
        graph: &Graph,
        weights: &Weights,
        trainable: impl Fn(&Param) -> bool,
        optimizer: OptimizerState,
        options: &StepOptions,
        batch: usize,
        held: Option<&HeldImages<'_>>,
        kept: &[NodeId],
    ) -> Result<GpuTrainer, RuntimeError> {
        let loss = &options.loss;
        let backward = differentiate(graph, trainable)?;
        supported(graph)?;
        check_binding_limits(graph, batch, gpu.limits.max_storage_buffer_binding_size)?;
        let largest = gpu.limits.max_buffer_size;
        let too_large = graph
            .training_nodes()
            .find_map(|(_, n)| n.params.iter().find(|p| numel(p) as u64 * 4 > largest).map(|p| (n, p)));
        if let Some((node, p)) = too_large {
            let (what, span, bytes) = (format!("weight `{}`", p.name), Some(node.span), numel(p) as u64 * 4);
            let fix = "train on the CPU (`--cpu` of cnnc train and cnnc grad): the device's buffers are smaller";
            return Err(RuntimeError::BindingLimit { what, span, bytes, limit: largest, fix });
        }
        let mut arena = Arena::new(gpu);
        let all: Vec<&Param> = graph.training_nodes().flat_map(|(_, n)| &n.params).collect();
        for p in &all {
            let t = weights.get(&p.name).ok_or_else(|| RuntimeError::MissingWeight { name: p.name.clone() })?;
            if t.shape != p.shape {
                return Err(RuntimeError::WeightShape {
                    name: p.name.clone(),
                    expected: p.shape.clone(),
                    found: t.shape.clone(),
                });
            }
        }
        let packed = Packed::new(&mut arena, &all, &backward, optimizer.optimizer.state_names().len());
        let params: Vec<(Param, BufferId)> = all
            .iter()
            .map(|p| {
                let buffer = packed.param(&p.name).unwrap_or_else(|| arena.weight_buffer(numel(p) * 4, &p.name));
                ((*p).clone(), buffer)
            })
            .collect();
        let item_shape = graph.node(graph.input).shape.dims().to_vec();
        let classes = graph.node(graph.output).shape.elements() as usize;
        let item: usize = item_shape.iter().product();
        let io = Io {
            input: arena.activation_buffer(batch * item * 4, "input"),
            labels: arena.activation_buffer(batch * 4, "labels"),
            class_weights: loss.class_weights.as_ref().map(|w| {
                let w: Vec<f32> = w.iter().map(|v| *v as f32).collect();
                arena.data_buffer(&w, "class weights")
            }),
            hyper: arena.activation_buffer(8 * 4, "hyper"),
            // Each head's shares, then the output's hits.
            shares: arena.activation_buffer(batch * (backward.losses.len() + 1) * 4, "loss shares"),
            history: arena.activation_buffer(2 * HISTORY * 4, "loss history"),
        };
        let dropouts = graph
            .training_nodes()
            .filter(|(_, n)| {
                matches!(n.op, cnnc_ir::graph::Op::Dropout { .. } | cnnc_ir::graph::Op::StochasticDepth { .. })
            })
            .count();
        let keys_buffer = arena.activation_buffer(dropouts.max(1) * 4, "dropout keys");
        if let Some(w) = &loss.class_weights {
            if w.len() != classes {
                return Err(RuntimeError::Labels(format!("{} class weights for {classes} classes", w.len())));
            }
        }
        let lookup = |name: &str| {
            params.iter().find(|(p, _)| p.name == name).map(|(_, b)| *b).expect("every weight has a buffer")
        };
        let mut lowering = Lowering {
            arena: &mut arena,
            graph,
            batch,
            params: &lookup,
            param_grad: &|name| packed.grad(name).expect("trainable tensors are packed"),
            values: vec![None; graph.len()],
            relu_masks: Vec::new(),
            fused_relu: fused_relus(graph, &backward.losses.iter().map(|(node, _)| *node).collect::<Vec<_>>()),
            grads: vec![None; graph.len()],
            pending: Vec::new(),
            labels: Vec::new(),
            doing: String::new(),
            span: None,
            oversized: None,
            stats: vec![None; graph.len()],
            keys: Vec::new(),
            keys_buffer,
            dropout: options.dropout,
            kept: Vec::new(),
        };
        // Shader or binding mistakes surface as errors here, not as panics in wgpu's default handler.
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        for (id, node) in graph.training_nodes() {
            lowering.doing = format!("forward {}", layer_name(node));
            lowering.span = Some(node.span);
            lowering.forward(id, node, &io)?;
        }
        // A node outside the training graph has no value, and the input's is not transient.
        let kept: Vec<(NodeId, BufferId)> =
            kept.iter().filter_map(|id| Some((*id, lowering.values.get(id.index()).copied().flatten()?))).collect();
        lowering.kept = kept.iter().map(|(_, b)| *b).collect();
        lowering.doing = "loss".to_string();
        lowering.span = None;
        lowering.loss(loss, &backward.losses, &io);
        let mut contributions = vec![0usize; graph.len()];
        for step in &backward.steps {
            for (i, input) in graph.node(step.node).inputs.iter().enumerate() {
                contributions[input.index()] += usize::from(step.input_grads[i]);
            }
        }
        lowering.relu_masks = relus_masked(graph, &backward, &contributions);
        let mut param_grads = Vec::new();
        for step in &backward.steps {
            lowering.doing = format!("backward {}", layer_name(graph.node(step.node)));
            lowering.span = Some(graph.node(step.node).span);
            lowering.backward(step, &contributions, &mut param_grads);
        }
        let optimizer_start = lowering.pending.len();
        for pack in 0..packed.packs.len() {
            lowering.doing = format!("optimizer ({})", packed.contents(pack));
            lowering.span = None;
            lowering.optimizer(&optimizer.optimizer, &packed.packs[pack], io.hyper);
        }
        let mut state_buffers = Vec::new();
        for (name, _) in &param_grads {
            let p = all.iter().find(|p| &p.name == name).expect("trainable tensors are weights");
            for (i, state) in optimizer.optimizer.state_names().iter().enumerate() {
                state_buffers.push((format!("{name}.{state}"), p.shape.clone(), packed.state(name, i)));
            }
        }
        if let Some((doing, span, bytes)) = lowering.oversized.take() {
            let what = format!("the scratch buffer for the partial sums of `{doing}` at batch {batch}");
            let fix = "train with a smaller --batch, or on the CPU (`--cpu` of cnnc train and cnnc grad): a weight \
                       gradient's partial sums grow with the batch";
            let limit = gpu.limits.max_storage_buffer_binding_size;
            return Err(RuntimeError::BindingLimit { what, span, bytes, limit, fix });
        }
        let (steps, shared_bytes, unshared_bytes) = lowering.finish();
        let step_labels = std::mem::take(&mut lowering.labels);
        let key_nodes: Vec<usize> = lowering.keys.iter().map(|id| id.index()).collect();
        let held = match held {
            Some(images) => Some(hold(&mut arena, images, batch, &item_shape, io.input)?),
            None => None,
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            let (layer, span) = (graph.meta.name.clone(), graph.node(graph.output).span);
            return Err(RuntimeError::Kernel { layer, span, message: format!("training step: {e}") });
        }
        let keep = |b: BufferId| arena.buffer(b).clone();
        let place = |b: BufferId| Placed { buffer: arena.buffer(b).clone(), offset: arena.offset(b) };
        let (input, labels, hyper, history) = (keep(io.input), keep(io.labels), keep(io.hyper), keep(io.history));
        let keys = keep(keys_buffer);
        let params: Vec<(Param, Placed)> = params.iter().map(|(p, b)| (p.clone(), place(*b))).collect();
        let grads: Vec<(String, Placed)> = param_grads.iter().map(|(n, b)| (n.clone(), place(*b))).collect();
        let states = state_buffers.into_iter().map(|(n, shape, b)| (n, shape, place(b))).collect();
        let kept = kept.into_iter().map(|(id, b)| (id, graph.node(id).shape.dims().to_vec(), place(b))).collect();
        let held = held.map(|(step, placements, count)| Held { step, placements: keep(placements), count });
        let (buffers, _, device_bytes) = arena.finish()?;
        // Pipelines are warmed up on their real bindings while the model is built, so parameters
        // and optimizer state are written only now, after the warm-ups.
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("clear") });
        for buffer in &buffers {
            encoder.clear_buffer(buffer, 0, None);
        }
        gpu.queue.submit([encoder.finish()]);
        for (p, at) in &params {
            let t = weights.get(&p.name).expect("checked above");
            gpu.queue.write_buffer(&at.buffer, at.offset, bytemuck::cast_slice(&t.data));
        }
        Ok(GpuTrainer {
            gpu: gpu.clone(),
            steps,
            step_labels,
            optimizer_start,
            input,
            labels,
            hyper,
            history,
            params,
            grads,
            states,
            optimizer,
            backward,
            batch,
            item_shape,
            classes,
            pending: 0,
            losses: Vec::new(),
            device_bytes,
            unshared_bytes: device_bytes - shared_bytes + unshared_bytes,
            keys,
            key_nodes,
            options: options.clone(),
            held,
            kept,
            _buffers: buffers,
        })
    }

    /// The planned backward work (which parameters train).
    pub fn backward(&self) -> &Backward {
        &self.backward
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.optimizer.steps
    }

    /// The optimizer, with its schedule and the steps taken.
    pub fn optimizer(&self) -> &OptimizerState {
        &self.optimizer
    }

    /// The optimizer's state tensors, read back, named `{param}.{state}` as `torch.optim`'s
    /// `state_dict` names them (see [`crate::train::Optimizer::state_names`]); zeros before the
    /// first step.
    ///
    /// # Errors
    /// A device error while reading back.
    pub fn optimizer_state(&self) -> Result<Weights, RuntimeError> {
        let mut out = Weights::default();
        for (name, shape, at) in &self.states {
            let data = at.read(&self.gpu, shape.iter().product())?;
            out.insert(name.clone(), Tensor::new(shape.clone(), data));
        }
        Ok(out)
    }

    /// Continues a run from its saved weights, optimizer state and steps taken, so that the next
    /// step is the one the run would have taken (its learning rate and dropout masks included).
    ///
    /// # Errors
    /// [`RuntimeError::MissingWeight`] or [`RuntimeError::WeightShape`] for a tensor of the model or
    /// of the optimizer's state that `weights` or `state` lack or hold in another shape; a device
    /// error while finishing the steps in flight.
    pub fn resume(&mut self, weights: &Weights, state: &Weights, steps: u64) -> Result<(), RuntimeError> {
        self.read_losses()?;
        self.losses.clear();
        let tensors = self.params.iter().map(|(p, b)| (&p.name, &p.shape, b, weights));
        let states = self.states.iter().map(|(n, shape, b)| (n, shape, b, state));
        let mut writes = Vec::new();
        for (name, shape, buffer, from) in tensors.chain(states) {
            let t = from.get(name).ok_or_else(|| RuntimeError::MissingWeight { name: name.clone() })?;
            if &t.shape != shape {
                return Err(RuntimeError::WeightShape {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
            writes.push((buffer, t));
        }
        for (at, t) in writes {
            self.gpu.queue.write_buffer(&at.buffer, at.offset, bytemuck::cast_slice(&t.data));
        }
        self.optimizer.steps = steps;
        Ok(())
    }

    fn upload(&self, input: &Tensor, labels: &[usize]) -> Result<(), RuntimeError> {
        let mut want = vec![self.batch];
        want.extend(&self.item_shape);
        if input.shape != want {
            return Err(RuntimeError::InputShape { item: self.item_shape.clone(), found: input.shape.clone() });
        }
        self.upload_labels(labels)?;
        self.gpu.queue.write_buffer(&self.input, 0, bytemuck::cast_slice(&input.data));
        Ok(())
    }

    fn upload_labels(&self, labels: &[usize]) -> Result<(), RuntimeError> {
        if labels.len() != self.batch {
            return Err(RuntimeError::Labels(format!("{} labels for a batch of {}", labels.len(), self.batch)));
        }
        if let Some((i, y)) = labels.iter().enumerate().find(|(_, y)| **y >= self.classes) {
            let k = self.classes;
            return Err(RuntimeError::Labels(format!(
                "label {y} of item {i} is not a class: the model has {k} (0..{k})"
            )));
        }
        let labels: Vec<u32> = labels.iter().map(|y| *y as u32).collect();
        self.gpu.queue.write_buffer(&self.labels, 0, bytemuck::cast_slice(&labels));
        Ok(())
    }

    /// Writes the step's values the kernels read: the loss slot and the optimizer's rates.
    fn write_hyper(&self, slot: usize) {
        let t = self.optimizer.steps + 1;
        let lr = self.optimizer.current_lr();
        let (momentum, step_size, c2, decay) = match self.optimizer.optimizer {
            crate::train::Optimizer::Sgd { momentum, .. } => {
                (self.optimizer.schedule.momentum(self.optimizer.steps).unwrap_or(momentum), lr, 1.0, 1.0)
            }
            crate::train::Optimizer::Adam { betas: (b1, b2), weight_decay, .. } => {
                let b1 = self.optimizer.schedule.momentum(self.optimizer.steps).unwrap_or(b1);
                (b1, lr / (1.0 - b1.powi(t as i32)), (1.0 - b2.powi(t as i32)).sqrt(), 1.0 - lr * weight_decay)
            }
        };
        let first = if t == 1 { 1.0 } else { 0.0 };
        // Every rate is computed here in f64 and rounded once (see optimizer.wgsl).
        let hyper = [
            f32::from_bits(slot as u32),
            lr as f32,
            momentum as f32,
            step_size as f32,
            c2 as f32,
            first,
            (1.0 - momentum) as f32,
            decay as f32,
        ];
        self.gpu.queue.write_buffer(&self.hyper, 0, bytemuck::cast_slice(&hyper));
        if !self.key_nodes.is_empty() {
            let step = self.options.step + self.optimizer.steps;
            let keys: Vec<u32> = self.key_nodes.iter().map(|node| rng::key(self.options.seed, step, *node)).collect();
            self.gpu.queue.write_buffer(&self.keys, 0, bytemuck::cast_slice(&keys));
        }
    }

    fn submit(&self, steps: &[Step]) {
        self.submit_after(None, steps);
    }

    /// Submits `first` (making the batch) and `steps` as one command buffer.
    fn submit_after(&self, first: Option<&Step>, steps: &[Step]) {
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train") });
        let mut recorder = Recorder::new(&mut encoder, None);
        for step in first.into_iter().chain(steps) {
            recorder.step(step);
        }
        recorder.finish();
        self.gpu.queue.submit([encoder.finish()]);
    }

    /// One training step on `input` `[batch, ...item]` with one class label per item, as one
    /// submission; the loss stays on the device until [`GpuTrainer::losses`] reads it.
    ///
    /// # Errors
    /// A wrong input shape or labels, or a device error while reading back a full loss history.
    pub fn step(&mut self, input: &Tensor, labels: &[usize]) -> Result<(), RuntimeError> {
        if self.pending == HISTORY {
            self.read_losses()?;
        }
        self.upload(input, labels)?;
        self.write_hyper(self.pending);
        self.submit(&self.steps);
        self.pending += 1;
        self.optimizer.steps += 1;
        Ok(())
    }

    /// One training step on held images ([`GpuTrainer::holding`]): item `i` of the batch is held
    /// image `items[i].0` placed as `items[i].1` (see [`crate::data::augment::Placement`]), of class
    /// `labels[i]`. The batch is made on the device in the step's submission.
    ///
    /// # Errors
    /// [`RuntimeError::NotHolding`] for a trainer that holds no images; [`RuntimeError::Labels`]
    /// for a wrong count of items or labels, an image index out of range or a label that is not a
    /// class; a device error while reading back a full loss history.
    pub fn step_held(&mut self, items: &[(usize, Placement)], labels: &[usize]) -> Result<(), RuntimeError> {
        self.upload_placements(items)?;
        if self.pending == HISTORY {
            self.read_losses()?;
        }
        self.upload_labels(labels)?;
        self.write_hyper(self.pending);
        let held = self.held.as_ref().expect("upload_placements checked it");
        self.submit_after(Some(&held.step), &self.steps);
        self.pending += 1;
        self.optimizer.steps += 1;
        Ok(())
    }

    /// The batch [`GpuTrainer::step_held`] would train on for `items`, made on the device and read
    /// back, `[batch, ...item]`; no step is taken (for checking `batch_from_bytes` against the host's
    /// batches, as `cnnc conformance` does).
    ///
    /// # Errors
    /// Those of [`GpuTrainer::step_held`] about `items`; a device error while reading back.
    pub fn held_batch(&mut self, items: &[(usize, Placement)]) -> Result<Tensor, RuntimeError> {
        let held = self.upload_placements(items)?;
        self.submit_after(Some(&held.step), &[]);
        let mut shape = vec![self.batch];
        shape.extend(&self.item_shape);
        let data = read_buffer(&self.gpu, &self.input, shape.iter().product())?;
        Ok(Tensor::new(shape, data))
    }

    /// Writes `items` where the `batch_from_bytes` kernel reads them (image, top, left, step, as
    /// `i32`s); returns the held images.
    fn upload_placements(&self, items: &[(usize, Placement)]) -> Result<&Held, RuntimeError> {
        let Some(held) = &self.held else {
            return Err(RuntimeError::NotHolding);
        };
        if items.len() != self.batch {
            return Err(RuntimeError::Labels(format!("{} images for a batch of {}", items.len(), self.batch)));
        }
        let mut placements = Vec::with_capacity(4 * items.len());
        for (i, (image, at)) in items.iter().enumerate() {
            let index = Some(*image).filter(|image| *image < held.count).and_then(|image| i32::try_from(image).ok());
            let moves = [at.top, at.left, at.step].map(|v| i32::try_from(v).ok());
            let (Some(index), [Some(top), Some(left), Some(step)]) = (index, moves) else {
                return Err(RuntimeError::Labels(format!(
                    "item {i} places image {image} (of {}) at {at:?}, outside what is held",
                    held.count
                )));
            };
            placements.extend([index, top, left, step]);
        }
        self.gpu.queue.write_buffer(&held.placements, 0, bytemuck::cast_slice(&placements));
        Ok(held)
    }

    fn read_losses(&mut self) -> Result<(), RuntimeError> {
        if self.pending > 0 {
            let history = read_buffer(&self.gpu, &self.history, 2 * HISTORY)?;
            let hits = history[HISTORY..][..self.pending].iter().map(|h| *h as usize);
            self.losses.extend(history[..self.pending].iter().copied().zip(hits));
            self.pending = 0;
        }
        Ok(())
    }

    /// Bytes of device memory the trainer's buffers take: parameters, gradients, optimizer state,
    /// every forward value and gradient of a step, and the scratch of split reductions.
    pub fn device_bytes(&self) -> u64 {
        self.device_bytes
    }

    /// What [`GpuTrainer::device_bytes`] would be without sharing: every value, gradient and
    /// scratch buffer of a step in a buffer of its own.
    pub fn unshared_device_bytes(&self) -> u64 {
        self.unshared_bytes
    }

    /// The losses of the steps run since the last call, in order (waits for them).
    ///
    /// # Errors
    /// A device error while reading back.
    pub fn losses(&mut self) -> Result<Vec<f32>, RuntimeError> {
        Ok(self.step_results()?.into_iter().map(|(loss, _)| loss).collect())
    }

    /// The loss of each step run since the last call, in order, with how many of its items the
    /// step's training-mode forward classified right (the largest logit of the output is the
    /// label's; the first one on ties, as `argmax`); waits for them.
    ///
    /// # Errors
    /// A device error while reading back.
    pub fn step_results(&mut self) -> Result<Vec<(f32, usize)>, RuntimeError> {
        self.read_losses()?;
        Ok(std::mem::take(&mut self.losses))
    }

    /// One forward and backward without an optimizer step: the loss and every trainable
    /// parameter's gradient, read back (for checking gradients and `cnnc grad`).
    ///
    /// # Errors
    /// A wrong input shape or labels, or a device error.
    pub fn gradients(&mut self, input: &Tensor, labels: &[usize]) -> Result<(f32, Weights), RuntimeError> {
        self.read_losses()?;
        self.upload(input, labels)?;
        self.write_hyper(0);
        self.submit(&self.steps[..self.optimizer_start]);
        let loss = read_buffer(&self.gpu, &self.history, 1)?[0];
        let mut out = Weights::default();
        for (name, at) in &self.grads {
            let p = &self.params.iter().find(|(p, _)| &p.name == name).expect("trainable tensors are weights").0;
            let data = at.read(&self.gpu, p.shape.iter().product())?;
            out.insert(name.clone(), Tensor::new(p.shape.clone(), data));
        }
        Ok((loss, out))
    }

    /// Runs one training step (it counts as one, and [`GpuTrainer::losses`] returns its loss) timing
    /// each dispatch: GPU timestamp queries where
    /// the adapter has them, else one submission per dispatch (which adds each submission's
    /// overhead). Returns what each dispatch did (`forward conv1`, `backward conv1`, `loss`,
    /// `optimizer conv1.weight`), its kernel family and its seconds, in execution order, and how they
    /// were timed.
    ///
    /// # Errors
    /// A wrong input shape or labels, or a device error.
    pub fn profile(&mut self, input: &Tensor, labels: &[usize]) -> Result<StepProfile, RuntimeError> {
        if self.pending == HISTORY {
            self.read_losses()?;
        }
        self.upload(input, labels)?;
        self.write_hyper(self.pending);
        let timestamps = can_time_dispatches(&self.gpu, self.steps.len());
        let seconds = if timestamps {
            time_dispatches(&self.gpu, self.steps.len(), |recorder| self.steps.iter().for_each(|s| recorder.step(s)))?
        } else {
            time_submissions(&self.gpu, &self.steps)?
        };
        self.pending += 1;
        self.optimizer.steps += 1;
        let dispatches = self.step_labels.iter().zip(seconds).map(|((what, family), s)| (what.clone(), *family, s));
        let timing = if timestamps { StepTiming::Timestamps } else { StepTiming::Submissions };
        Ok(StepProfile { dispatches: dispatches.collect(), timing })
    }

    /// The training-mode forward's value of `node` in the last step, `[N, ...shape]` (a ReLU
    /// applied by the convolution or linear layer before it shares that layer's value).
    ///
    /// # Errors
    /// [`RuntimeError::NotKept`] unless the trainer was built by [`GpuTrainer::keeping`] with
    /// `node`; a device error while reading back.
    pub fn value(&self, node: NodeId) -> Result<Tensor, RuntimeError> {
        let (_, item, at) =
            self.kept.iter().find(|(id, ..)| *id == node).ok_or(RuntimeError::NotKept { node: node.index() })?;
        let mut shape = vec![self.batch];
        shape.extend(item);
        let data = at.read(&self.gpu, shape.iter().product())?;
        Ok(Tensor::new(shape, data))
    }

    /// The current weights (every tensor of the model), read back under their names.
    ///
    /// # Errors
    /// A device error while reading back.
    pub fn weights(&self) -> Result<Weights, RuntimeError> {
        let mut out = Weights::default();
        for (p, at) in &self.params {
            let data = at.read(&self.gpu, p.shape.iter().product())?;
            out.insert(p.name.clone(), Tensor::new(p.shape.clone(), data));
        }
        Ok(out)
    }
}

/// A tensor's place on the device: its buffer and its first byte there.
#[derive(Clone, Debug)]
struct Placed {
    buffer: wgpu::Buffer,
    offset: u64,
}

impl Placed {
    fn read(&self, gpu: &Gpu, floats: usize) -> Result<Vec<f32>, RuntimeError> {
        read_buffer_at(gpu, &self.buffer, self.offset, floats)
    }
}

fn numel(p: &Param) -> usize {
    p.shape.iter().product()
}

/// One training step, dispatch by dispatch ([`GpuTrainer::profile`]).
#[derive(Clone, Debug)]
pub struct StepProfile {
    /// What each dispatch did, its kernel family and its seconds, in execution order.
    pub dispatches: Vec<(String, &'static str, f64)>,
    pub timing: StepTiming,
}

/// The name a profile gives a node: its path, or its op's name where it has no path of its own.
fn layer_name(node: &cnnc_ir::graph::Node) -> String {
    if node.path.is_empty() {
        node.op.name().to_string()
    } else {
        format!("{} ({})", node.path, node.op.name())
    }
}

/// Whether `graph` can train at `batch` on a device whose storage bindings hold at most `limit`
/// bytes: the GPU trainer binds every value and gradient of a step whole, and every weight whole
/// but a linear layer's, which it binds in blocks of rows where it is larger ([`GpuTrainer::new`]
/// checks this first). A block's start must be aligned to the device's binding offsets, taken here
/// as 256 bytes, the most WebGPU allows a device to ask.
///
/// # Errors
/// [`RuntimeError::BindingLimit`] for the first value or weight that does not fit, naming it, with
/// its layer's place in the spec and the way out (a smaller batch, or the CPU).
pub fn check_binding_limits(graph: &Graph, batch: usize, limit: u64) -> Result<(), RuntimeError> {
    for (_, node) in graph.training_nodes() {
        let span = Some(node.span);
        let bytes = node.shape.elements() * batch as u64 * 4;
        if bytes > limit {
            let what = format!("the value of `{}` at batch {batch} (training keeps it whole)", node.path);
            let fix = "train with a smaller --batch, or on the CPU (`--cpu` of cnnc train and cnnc grad)";
            return Err(RuntimeError::BindingLimit { what, span, bytes, limit, fix });
        }
        for p in &node.params {
            let bytes = p.shape.iter().product::<usize>() as u64 * 4;
            let (what, bytes, fix) = match (&node.op, p.kind) {
                (Op::Linear { in_features, out_features, .. }, ParamKind::Weight) => {
                    if linear::weight_row_blocks(*in_features, *out_features, limit, 64).is_some() {
                        continue;
                    }
                    let rows = 64 / linear::gcd(*in_features, 64);
                    let what = format!("a block of {rows} rows of weight `{}`", p.name);
                    let fix = "train on the CPU (`--cpu` of cnnc train and cnnc grad): the GPU trainer binds a large \
                               linear weight in blocks of rows that start at 256-byte offsets, and one block must fit";
                    (what, (rows * in_features * 4) as u64, fix)
                }
                _ if bytes > limit => {
                    let fix = "train on the CPU (`--cpu` of cnnc train and cnnc grad): the GPU trainer binds this \
                               weight whole";
                    (format!("weight `{}`", p.name), bytes, fix)
                }
                _ => continue,
            };
            return Err(RuntimeError::BindingLimit { what, span, bytes, limit, fix });
        }
    }
    Ok(())
}
