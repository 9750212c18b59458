//! Building a model's GPU work layer by layer, from explicit layer descriptions ([`Layer`]): the
//! API both the executor (which plans layers at run time) and generated code (which spells them out
//! as literals) build on. Each layer's kernels are specialised for its shapes, its weights uploaded
//! (batch-norm folded, laid out for the kernel), and its pipelines and bind groups made once.
//!
//! Convolutions read their input and weights through textures where they fit (`textureLoad` is
//! vectorised on CPU drivers, where storage-buffer loads in loops run lane by lane): each value a
//! convolution reads gets a texture mirror, filled by a buffer-to-texture copy between compute passes
//! right after the value is complete. The storage-buffer kernels remain for tensors too large for a
//! texture. Activations live in the buffer slots the layout plans; flatten costs nothing. Tensors
//! larger than one storage binding are handled by splitting: linear weights by rows, and activations
//! by running the batch in chunks.

use std::collections::HashMap;

use cnnc_ir::graph::{Activation, Op, Pad4, Pool2d, Shape};
use cnnc_ir::plan::{Layer, Operand, ValidPlan, ValueId, ValueLayout};

use super::kernels::{activation_consts, epilogue_consts, grid_1d, Const, Family, Kernel, Slot, TEXTURE_WIDTH};
use super::program::Program;
use super::record::{texture_extent, texture_rows, Action, GpuLayer, Step, TexelFormat};
use super::upload::Uploads;
use super::Gpu;
use crate::weights::Weights;
use crate::{fold, RuntimeError, Tensor};

/// Choices the builder would otherwise make from the device's limits.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// A storage-binding limit below the device's, to force tensors to be split.
    pub binding_limit: Option<usize>,
    /// Whether convolutions may read their input and weights through textures (the fast path);
    /// `false` runs the storage-buffer kernels everywhere.
    pub textures: bool,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions { binding_limit: None, textures: true }
    }
}

/// What a dispatch binds at one slot.
#[derive(Copy, Clone)]
enum Bind {
    Buffer(usize),
    Texture(usize),
    /// A placeholder for an input the kernel's constants switch off.
    Unused,
}

impl From<Option<usize>> for Bind {
    fn from(buffer: Option<usize>) -> Bind {
        buffer.map_or(Bind::Unused, Bind::Buffer)
    }
}

/// A pooling window and whether it takes the maximum (else the average).
#[derive(Copy, Clone)]
struct PoolWindow<'p> {
    pool: &'p Pool2d,
    is_max: bool,
}

/// Where a value lives: a buffer, or the value it only reshapes (flatten).
#[derive(Copy, Clone)]
enum Place {
    Buffer(usize),
    Alias(ValueId),
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
/// A weight the plan names is missing from `weights`, a tensor exceeds the device's limits, or the
/// driver rejects a kernel.
pub fn build(
    gpu: &Gpu,
    plan: &ValidPlan,
    weights: &Weights,
    batch: usize,
    options: PlanOptions,
) -> Result<Built, RuntimeError> {
    if let Some(p) = plan.params().find(|p| weights.get(&p.name).is_none()) {
        return Err(RuntimeError::Input(format!("no tensor for weight `{}`", p.name)));
    }
    let mut builder = Builder::new(gpu, plan.layout(), weights, batch, options)?;
    let layers = plan.layers().iter().map(|l| builder.layer(l)).collect::<Result<Vec<_>, _>>()?;
    Ok(Built { layers, program: builder.finish()? })
}

/// Builds a model's layers on a device, in execution order, then [`Builder::finish`]es it into the
/// [`Program`] that runs them.
struct Builder<'w> {
    gpu: Gpu,
    weights: &'w Weights,
    layout: ValueLayout,
    chunk: usize,
    places: Vec<Option<Place>>,
    buffers: Vec<wgpu::Buffer>,
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    layouts: HashMap<&'static [Slot], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    /// The steps of the layer being built.
    steps: Vec<Step>,
    textures: Vec<wgpu::Texture>,
    views: Vec<wgpu::TextureView>,
    /// Texture mirrors made so far, by the value whose buffer they copy and texel format (buffers
    /// are reused, values are not).
    mirrors: HashMap<(ValueId, TexelFormat), usize>,
    /// Whether kernels may read through textures (else the storage-buffer kernels run everywhere).
    use_textures: bool,
    dummy: wgpu::Buffer,
    /// The buffer made for each slot, once made.
    slot_buffers: Vec<Option<usize>>,
    /// The largest storage binding to plan for.
    binding_limit: usize,
    /// Buffers kernels write.
    activation_buffers: Vec<usize>,
    /// The thread submitting warm-up dispatches, once started.
    warm_up: Option<WarmUp>,
    /// Weights, biases and kernel extents to copy to the device before the first forward.
    uploads: Uploads,
}

/// A thread that submits one workgroup of each new pipeline's dispatch while the model is still
/// being built. CPU drivers (lavapipe) compile a pipeline's machine code at its first dispatch, during
/// the submission: doing that on this thread overlaps it with building the rest of the model (folding
/// and uploading weights, creating the next pipelines) instead of stalling the first forward. Each
/// warm-up is submitted after the uploads recorded before it, so it runs on its layer's real
/// constants. A workgroup writes only where the layer's full dispatch writes again before anything
/// reads it, and [`WarmUp::finish`] returns only when every warm-up is submitted, so all of them run
/// before any forward pass.
struct WarmUp {
    sender: std::sync::mpsc::Sender<WarmUpJob>,
    thread: std::thread::JoinHandle<()>,
}

/// Uploads to submit, then the dispatch to warm up.
struct WarmUpJob {
    uploads: wgpu::CommandBuffer,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
}

impl WarmUp {
    fn start(gpu: &Gpu) -> WarmUp {
        let (sender, receiver) = std::sync::mpsc::channel::<WarmUpJob>();
        let gpu = gpu.clone();
        let thread = std::thread::spawn(move || {
            for job in receiver {
                let mut encoder =
                    gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("warm-up") });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    pass.set_pipeline(&job.pipeline);
                    pass.set_bind_group(0, &job.bind_group, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                gpu.queue.submit([job.uploads, encoder.finish()]);
            }
        });
        WarmUp { sender, thread }
    }

    fn send(&self, job: WarmUpJob) {
        // A send fails only if the thread has ended, which it does only when the sender is dropped.
        let _ = self.sender.send(job);
    }

    /// Waits until every warm-up is submitted.
    fn finish(self) -> Result<(), RuntimeError> {
        drop(self.sender);
        self.thread.join().map_err(|_| RuntimeError::Gpu("the warm-up thread panicked".into()))
    }
}

fn elements(shape: &Shape) -> usize {
    shape.dims().iter().product()
}

/// `[C, P]` of a shape: channels (or features) and positions per channel.
fn channels_positions(shape: &Shape) -> (usize, usize) {
    let d = shape.dims();
    (d[0], d[1..].iter().product::<usize>().max(1))
}

impl<'w> Builder<'w> {
    /// Starts building a model whose values are laid out as `layout`, for batches of `batch` (run in
    /// chunks if a whole batch would not fit a binding), reading parameters from `weights`.
    fn new(
        gpu: &Gpu,
        layout: &ValueLayout,
        weights: &'w Weights,
        batch: usize,
        options: PlanOptions,
    ) -> Result<Builder<'w>, RuntimeError> {
        let device_limit = gpu.limits.max_storage_buffer_binding_size as usize;
        let limit = options.binding_limit.map_or(device_limit, |l| l.min(device_limit));
        let largest = layout.slot_elements.iter().map(|e| *e as usize * 4).max().unwrap_or(4);
        if largest > limit {
            return Err(RuntimeError::Gpu(format!(
                "one activation of a single input needs {largest} bytes, more than the device's {limit}-byte storage binding limit"
            )));
        }
        let chunk = batch.clamp(1, (limit / largest).max(1));
        let dummy = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Builder {
            gpu: gpu.clone(),
            weights,
            chunk,
            places: vec![None; layout.values],
            buffers: Vec::new(),
            pipelines: HashMap::new(),
            layouts: HashMap::new(),
            steps: Vec::new(),
            textures: Vec::new(),
            views: Vec::new(),
            mirrors: HashMap::new(),
            use_textures: options.textures,
            dummy,
            slot_buffers: vec![None; layout.slot_elements.len()],
            layout: layout.clone(),
            binding_limit: limit,
            activation_buffers: Vec::new(),
            warm_up: None,
            uploads: Uploads::new(&gpu.device),
        })
    }

    /// Builds one layer of a validated plan; layers come in plan order.
    fn layer(&mut self, layer: &Layer) -> Result<GpuLayer, RuntimeError> {
        // Shader or binding mistakes surface as errors here, not as panics in wgpu's default handler.
        self.steps.clear();
        let scope = self.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let built = self.build(layer);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(RuntimeError::Gpu(format!("preparing layer `{}` failed: {e}", layer.path)));
        }
        built?;
        Ok(GpuLayer { path: layer.path.clone(), steps: std::mem::take(&mut self.steps) })
    }

    /// Finishes the model: the input, output and read-back buffers.
    fn finish(mut self) -> Result<Program, RuntimeError> {
        if let Some(warm_up) = self.warm_up.take() {
            warm_up.finish()?;
        }
        self.uploads.check()?;
        self.gpu.queue.submit([self.uploads.take()]);
        // A valid plan starts with the input layer and computes the output.
        let input = self.buffer_of(self.layout.input);
        let output = self.buffer_of(self.layout.output);
        let out_bytes = (self.chunk * elements(&self.layout.output_shape) * 4) as u64;
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output staging"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let activations = self.activation_buffers.iter().map(|b| self.buffers[*b].clone()).collect();
        let texture_bytes: u64 = self
            .textures
            .iter()
            .map(|t| {
                let floats = if t.format() == wgpu::TextureFormat::R32Float { 1 } else { 4 };
                u64::from(t.width()) * u64::from(t.height()) * floats * 4
            })
            .sum();
        let device_bytes = self.buffers.iter().map(wgpu::Buffer::size).sum::<u64>() + staging.size() + texture_bytes;
        Ok(Program {
            input: self.buffers[input].clone(),
            output: self.buffers[output].clone(),
            staging,
            _textures: self.textures,
            chunk: self.chunk,
            item_shape: self.layout.input_shape.dims().to_vec(),
            output_item_shape: self.layout.output_shape.dims().to_vec(),
            activations,
            device_bytes,
            gpu: self.gpu,
        })
    }
}

impl<'w> Builder<'w> {
    /// The value whose buffer holds `value` (itself, or what a flatten reshapes).
    fn owner(&self, value: ValueId) -> ValueId {
        match self.places[value.index()].expect("a valid plan computes values before reading them") {
            Place::Buffer(_) => value,
            Place::Alias(other) => self.owner(other),
        }
    }

    fn buffer_of(&self, value: ValueId) -> usize {
        match self.places[self.owner(value).index()] {
            Some(Place::Buffer(b)) => b,
            _ => unreachable!("an owner holds its value in a buffer"),
        }
    }

    fn new_buffer(&mut self, bytes: usize, label: &str) -> usize {
        self.activation_buffers.push(self.buffers.len());
        self.buffers.push(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.max(16) as u64).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        self.buffers.len() - 1
    }

    fn data_buffer(&mut self, data: &[f32], label: &str) -> usize {
        self.buffers.push(self.uploads.buffer(bytemuck::cast_slice(data), wgpu::BufferUsages::STORAGE, label));
        self.buffers.len() - 1
    }

    /// The buffer of the layer's slot (made on first use, at the slot's size).
    fn output_for(&mut self, layer: &Layer) -> Result<usize, RuntimeError> {
        let slot = layer.slot.expect("a valid plan gives every computing layer a slot").index();
        let b = match self.slot_buffers[slot] {
            Some(b) => b,
            None => {
                let bytes = self.chunk * self.layout.slot_elements[slot] as usize * 4;
                let b = self.new_buffer(bytes, &format!("activations {slot}"));
                self.slot_buffers[slot] = Some(b);
                b
            }
        };
        self.places[layer.value.index()] = Some(Place::Buffer(b));
        Ok(b)
    }

    /// Makes sure the bind group and pipeline layouts for `slots` exist.
    fn layout(&mut self, slots: &'static [Slot]) {
        let device = &self.gpu.device;
        self.layouts.entry(slots).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
                .iter()
                .enumerate()
                .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: match slot {
                        Slot::Texture => wgpu::BindingType::Texture {
                            sample_type: wgpu::TextureSampleType::Float { filterable: false },
                            view_dimension: wgpu::TextureViewDimension::D2,
                            multisampled: false,
                        },
                        Slot::Read | Slot::Output => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: *slot == Slot::Read },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        Slot::Uniform => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Uniform,
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                    },
                    count: None,
                })
                .collect();
            let bgl =
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (bgl, pl)
        });
    }

    /// Adds a dispatch of `kernel` over `binds`, one per slot of its family.
    fn dispatch(&mut self, kernel: Kernel, binds: &[Bind]) {
        let slots = kernel.family.slots();
        let mut binds = binds.to_vec();
        if slots.last() == Some(&Slot::Uniform) {
            let contents = kernel.shape_uniform();
            self.buffers.push(self.uploads.buffer(
                bytemuck::cast_slice(&contents),
                wgpu::BufferUsages::UNIFORM,
                "shape",
            ));
            binds.push(Bind::Buffer(self.buffers.len() - 1));
        }
        debug_assert_eq!(binds.len(), slots.len());
        let source = kernel.source();
        let first_use = !self.pipelines.contains_key(&source);
        let pipeline = match self.pipelines.get(&source) {
            Some(p) => p.clone(),
            None => {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.family.name()),
                    source: wgpu::ShaderSource::Wgsl(source.clone().into()),
                };
                // SAFETY: runtime bounds checks are off; every index these kernels compute stays in
                // bounds by construction (clamped with `min`, or guarded by the grid checks), which
                // the conformance suite exercises for each family on the shapes' edge cases.
                let module = unsafe {
                    self.gpu.device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                };
                self.layout(slots);
                let layout = &self.layouts[slots].1;
                let p = self.gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.family.name()),
                    layout: Some(layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                });
                self.pipelines.insert(source, p.clone());
                p
            }
        };
        let entries: Vec<wgpu::BindGroupEntry<'_>> = binds
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match b {
                    Bind::Buffer(b) => self.buffers[*b].as_entire_binding(),
                    Bind::Texture(t) => wgpu::BindingResource::TextureView(&self.views[*t]),
                    Bind::Unused => self.dummy.as_entire_binding(),
                },
            })
            .collect();
        let bgl = &self.layouts[slots].0;
        let bind_group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: bgl,
            entries: &entries,
        });
        if first_use {
            self.warm_up(&pipeline, &bind_group);
        }
        self.steps.push(Step {
            family: kernel.family.name(),
            action: Action::Dispatch { pipeline, bind_group, workgroups: kernel.workgroups },
        });
    }

    /// Has one workgroup of a new pipeline's dispatch submitted (see [`WarmUp`]).
    fn warm_up(&mut self, pipeline: &wgpu::ComputePipeline, bind_group: &wgpu::BindGroup) {
        let uploads = self.uploads.take();
        let gpu = &self.gpu;
        let job = WarmUpJob { uploads, pipeline: pipeline.clone(), bind_group: bind_group.clone() };
        self.warm_up.get_or_insert_with(|| WarmUp::start(gpu)).send(job);
    }

    /// Whether a tensor of `floats` floats fits one texture of `format` on this device.
    fn fits_texture(&self, floats: usize, format: TexelFormat) -> bool {
        let max = self.gpu.limits.max_texture_dimension_2d as usize;
        self.use_textures && TEXTURE_WIDTH as usize <= max && texture_rows(floats.div_ceil(format.floats())) <= max
    }

    fn new_texture(&mut self, texels: usize, format: TexelFormat, label: &str) -> usize {
        let texture = self.gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: texture_extent(texels),
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: format.wgpu(),
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        self.views.push(texture.create_view(&Default::default()));
        self.textures.push(texture);
        self.textures.len() - 1
    }

    /// A texture holding `data` (padded with zeros to whole texels and rows).
    fn data_texture(&mut self, data: &[f32], format: TexelFormat, label: &str) -> usize {
        let texels = data.len().div_ceil(format.floats());
        let t = self.new_texture(texels, format, label);
        let extent = texture_extent(texels);
        let mut padded = data.to_vec();
        padded.resize((extent.width * extent.height) as usize * format.floats(), 0.0);
        self.uploads.texture(
            &self.textures[t],
            bytemuck::cast_slice(&padded),
            extent.width * format.floats() as u32 * 4,
        );
        t
    }

    /// The texture mirror of `input`'s value in `format`, copied from its buffer once per forward
    /// (the copy is planned here, after the value's producers and before this reader).
    fn mirror(&mut self, input: &Operand, format: TexelFormat, label: &str) -> usize {
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
    fn mirror_buffer(&mut self, buffer: usize, floats: usize, format: TexelFormat, label: &str) -> usize {
        let texels = floats.div_ceil(format.floats());
        let t = self.new_texture(texels, format, label);
        self.steps.push(Step {
            family: "mirror",
            action: Action::Mirror {
                buffer: self.buffers[buffer].clone(),
                texture: self.textures[t].clone(),
                format,
                texels: texels as u32,
            },
        });
        t
    }

    /// Every `stride`-th position of `input` (`[C, H, W]` → `[C, OH, OW]`) in a buffer of its own,
    /// by a 1×1 max pooling (an identity on one element), so a strided 1×1 convolution can run as a GEMM.
    fn subsample(&mut self, input: &Operand, stride: [usize; 2], oh: usize, ow: usize) -> usize {
        let c = input.shape.dims()[0];
        let src = self.buffer_of(input.value);
        let out = self.new_buffer(self.chunk * c * oh * ow * 4, "subsampled input");
        let pool = Pool2d {
            kernel: [1, 1],
            stride,
            padding: Pad4::default(),
            dilation: [1, 1],
            ceil_mode: false,
            count_include_pad: false,
        };
        let out_slice = [("OUT_C", Const::U(c as u32)), ("OUT_OFFSET", Const::U(0))];
        let shape = Shape(vec![c, oh, ow]);
        self.pool(&input.shape, &shape, PoolWindow { pool: &pool, is_max: true }, None, out_slice, src, out);
        out
    }

    /// Dispatches the pooling kernel from an `in_shape` value (in `input`) to a `shape` result in
    /// `out` (starting at the channel `out_slice` says).
    #[allow(clippy::too_many_arguments)]
    fn pool(
        &mut self,
        in_shape: &Shape,
        shape: &Shape,
        window: PoolWindow,
        act: Option<Activation>,
        out_slice: [(&'static str, Const); 2],
        input: usize,
        out: usize,
    ) {
        let [c, ih, iw] = in_shape.dims().try_into().expect("pool input is [C, H, W]");
        let [_, oh, ow] = shape.dims().try_into().expect("pool output is [C, H, W]");
        let p = window.pool;
        let u = |v: usize| Const::U(v as u32);
        let mut consts = vec![
            ("N", u(self.chunk)),
            ("C", u(c)),
            ("IH", u(ih)),
            ("IW", u(iw)),
            ("OH", u(oh)),
            ("OW", u(ow)),
            ("KH", u(p.kernel[0])),
            ("KW", u(p.kernel[1])),
            ("SY", u(p.stride[0])),
            ("SX", u(p.stride[1])),
            ("PT", u(p.padding.top)),
            ("PB", u(p.padding.bottom)),
            ("PL", u(p.padding.left)),
            ("PR", u(p.padding.right)),
            ("DY", u(p.dilation[0])),
            ("DX", u(p.dilation[1])),
            ("IS_MAX", Const::B(window.is_max)),
            ("COUNT_INCLUDE_PAD", Const::B(p.count_include_pad)),
        ];
        consts.extend(out_slice);
        consts.extend(activation_consts(act));
        let workgroups = grid_1d((self.chunk * c * oh * ow) as u64);
        self.dispatch(Kernel::new(Family::Pool, consts, workgroups), &[Bind::Buffer(input), Bind::Buffer(out)]);
    }

    /// `OUT_C` and `OUT_OFFSET`: the channels of the tensor a kernel writes and where its result
    /// starts — a concat's output and the slice for a producer written in place, else its own.
    fn out_slice(layer: &Layer) -> [(&'static str, Const); 2] {
        let (channels, offset) = Self::out_channels(layer);
        [("OUT_C", Const::U(channels as u32)), ("OUT_OFFSET", Const::U(offset as u32))]
    }

    /// The channels of the tensor the layer writes and its first one there (a concat's slice).
    fn out_channels(layer: &Layer) -> (usize, usize) {
        match layer.into_concat {
            Some(target) => (target.channels, target.offset),
            None => (layer.shape.dims()[0], 0),
        }
    }

    /// The layer's parameter with this state_dict suffix.
    fn param(&self, layer: &Layer, suffix: &str) -> Result<&'w Tensor, RuntimeError> {
        let p = layer
            .params
            .iter()
            .find(|p| p.kind.suffix() == suffix)
            .ok_or_else(|| RuntimeError::Input(format!("layer `{}` lists no `{suffix}` parameter", layer.path)))?;
        self.weights.get(&p.name).ok_or_else(|| RuntimeError::Input(format!("no tensor for weight `{}`", p.name)))
    }

    fn build(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        match &layer.op {
            Op::Input => {
                self.output_for(layer)?;
            }
            Op::Flatten | Op::Dropout { .. } | Op::StochasticDepth { .. } => {
                self.places[layer.value.index()] = Some(Place::Alias(layer.inputs[0].value));
            }
            Op::Conv2d(_) => self.conv(layer)?,
            Op::Linear { .. } => self.linear(layer)?,
            Op::BatchNorm { eps, .. } => {
                let [w, b, mean, var] = fold::batch_norm_tensors(&layer.params, self.weights)
                    .ok_or_else(|| RuntimeError::Input(format!("no batch-norm tensors for `{}`", layer.path)))?;
                let (scale, shift) = fold::batch_norm_affine(w, b, mean, var, *eps);
                self.affine(layer, &scale, &shift)?;
            }
            Op::ChannelAffine { scale, shift } => self.affine(layer, scale, shift)?,
            Op::Activation(_) => {
                let (c, _) = channels_positions(&layer.shape);
                self.affine(layer, &vec![1.0; c], &vec![0.0; c])?;
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let input = self.buffer_of(layer.inputs[0].value);
                let out = self.output_for(layer)?;
                let window = PoolWindow { pool: p, is_max: matches!(layer.op, Op::MaxPool(_)) };
                let out_slice = Self::out_slice(layer);
                self.pool(&layer.inputs[0].shape, &layer.shape, window, layer.activation, out_slice, input, out);
            }
            Op::AdaptiveAvgPool { size } | Op::AdaptiveMaxPool { size } => {
                let [c, ih, iw] = layer.inputs[0].shape.dims().try_into().expect("pool input is [C, H, W]");
                let input = self.buffer_of(layer.inputs[0].value);
                let out = self.output_for(layer)?;
                let u = |v: usize| Const::U(v as u32);
                let mut consts = vec![
                    ("N", u(self.chunk)),
                    ("C", u(c)),
                    ("IH", u(ih)),
                    ("IW", u(iw)),
                    ("OH", u(size[0])),
                    ("OW", u(size[1])),
                    ("IS_MAX", Const::B(matches!(layer.op, Op::AdaptiveMaxPool { .. }))),
                ];
                consts.extend(Self::out_slice(layer));
                consts.extend(activation_consts(layer.activation));
                let workgroups = grid_1d((self.chunk * c * size[0] * size[1]) as u64);
                self.dispatch(
                    Kernel::new(Family::AdaptivePool, consts, workgroups),
                    &[Bind::Buffer(input), Bind::Buffer(out)],
                );
            }
            Op::Add => self.add(layer)?,
            Op::Mul => self.mul(layer)?,
            Op::Concat => {
                let out = self.output_for(layer)?;
                let (out_c, p) = channels_positions(&layer.shape);
                let mut offset = 0;
                for input in &layer.inputs {
                    let (c, _) = channels_positions(&input.shape);
                    // Inputs written in place are already in their slice.
                    if !input.in_place {
                        let src = self.buffer_of(input.value);
                        self.copy(src, out, c, p, c, out_c, 0, offset, 0);
                    }
                    offset += c;
                }
            }
            Op::Chunk { chunks, index } => {
                let (in_c, p) = channels_positions(&layer.inputs[0].shape);
                let per = in_c / chunks;
                let src = self.buffer_of(layer.inputs[0].value);
                let out = self.output_for(layer)?;
                self.copy(src, out, per, p, in_c, per, index * per, 0, 0);
            }
            Op::ChannelShuffle { groups } => {
                let (c, p) = channels_positions(&layer.shape);
                let src = self.buffer_of(layer.inputs[0].value);
                let out = self.output_for(layer)?;
                self.copy(src, out, c, p, c, c, 0, 0, *groups);
            }
            Op::LocalResponseNorm { size, alpha, beta, k } => {
                let (c, p) = channels_positions(&layer.shape);
                let src = self.buffer_of(layer.inputs[0].value);
                let out = self.output_for(layer)?;
                let u = |v: usize| Const::U(v as u32);
                let mut consts = vec![
                    ("N", u(self.chunk)),
                    ("C", u(c)),
                    ("P", u(p)),
                    ("SIZE", u(*size)),
                    ("ALPHA", Const::F(*alpha as f32)),
                    ("BETA", Const::F(*beta as f32)),
                    ("K", Const::F(*k as f32)),
                ];
                consts.extend(activation_consts(layer.activation));
                let workgroups = grid_1d((self.chunk * c * p) as u64);
                self.dispatch(Kernel::new(Family::Lrn, consts, workgroups), &[Bind::Buffer(src), Bind::Buffer(out)]);
            }
            Op::Softmax => {
                let (c, p) = channels_positions(&layer.shape);
                let src = self.buffer_of(layer.inputs[0].value);
                let out = self.output_for(layer)?;
                let u = |v: usize| Const::U(v as u32);
                let mut consts = vec![("N", u(self.chunk)), ("C", u(c)), ("P", u(p))];
                consts.extend(activation_consts(None));
                let workgroups = grid_1d((self.chunk * p) as u64);
                self.dispatch(
                    Kernel::new(Family::Softmax, consts, workgroups),
                    &[Bind::Buffer(src), Bind::Buffer(out)],
                );
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        src: usize,
        out: usize,
        c: usize,
        p: usize,
        in_c: usize,
        out_c: usize,
        in_offset: usize,
        out_offset: usize,
        groups: usize,
    ) {
        let u = |v: usize| Const::U(v as u32);
        let mut consts = vec![
            ("N", u(self.chunk)),
            ("C", u(c)),
            ("P", u(p)),
            ("IN_C", u(in_c)),
            ("OUT_C", u(out_c)),
            ("IN_OFFSET", u(in_offset)),
            ("OUT_OFFSET", u(out_offset)),
            ("SHUFFLE_GROUPS", u(groups)),
        ];
        consts.extend(activation_consts(None));
        let workgroups = grid_1d((self.chunk * c * p) as u64);
        self.dispatch(Kernel::new(Family::Copy, consts, workgroups), &[Bind::Buffer(src), Bind::Buffer(out)]);
    }

    /// `y = act(x · scale[c] + shift[c])`.
    fn affine(&mut self, layer: &Layer, scale: &[f64], shift: &[f64]) -> Result<(), RuntimeError> {
        let (c, p) = channels_positions(&layer.shape);
        let src = self.buffer_of(layer.inputs[0].value);
        let own = match layer.op {
            Op::Activation(a) => Some(a),
            _ => None,
        };
        let act = own.or(layer.activation);
        let to_f32 = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
        let scale = self.data_buffer(&to_f32(scale), "scale");
        let shift = self.data_buffer(&to_f32(shift), "shift");
        let out = self.output_for(layer)?;
        self.elementwise(0, c, p, p, act, src, None, Some(scale), Some(shift), out);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn elementwise(
        &mut self,
        op: u32,
        c: usize,
        p: usize,
        other_p: usize,
        act: Option<Activation>,
        src: usize,
        other: Option<usize>,
        scale: Option<usize>,
        shift: Option<usize>,
        out: usize,
    ) {
        let u = |v: usize| Const::U(v as u32);
        let mut consts =
            vec![("N", u(self.chunk)), ("C", u(c)), ("P", u(p)), ("OP", Const::U(op)), ("OTHER_P", u(other_p))];
        consts.extend(activation_consts(act));
        let workgroups = grid_1d((self.chunk * c * p).div_ceil(4) as u64);
        self.dispatch(
            Kernel::new(Family::Elementwise, consts, workgroups),
            &[Bind::Buffer(src), other.into(), scale.into(), shift.into(), Bind::Buffer(out)],
        );
    }

    fn add(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        let (c, p) = channels_positions(&layer.shape);
        let mut acc = self.buffer_of(layer.inputs[0].value);
        let last = layer.inputs.len() - 1;
        if last == 0 {
            // A sum of one value: the identity (then the fused activation), as an affine pass.
            return self.affine(layer, &vec![1.0; c], &vec![0.0; c]);
        }
        for (i, input) in layer.inputs.iter().enumerate().skip(1) {
            let other = self.buffer_of(input.value);
            let act = if i == last { layer.activation } else { None };
            let out = if i == last {
                self.output_for(layer)?
            } else {
                let bytes = self.chunk * elements(&layer.shape) * 4;
                self.new_buffer(bytes, "partial sum")
            };
            self.elementwise(1, c, p, p, act, acc, Some(other), None, None, out);
            acc = out;
        }
        Ok(())
    }

    fn mul(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        let (c, p) = channels_positions(&layer.shape);
        let [a, b] = &layer.inputs[..] else {
            return Err(RuntimeError::Gpu(format!(
                "`{}`: mul of more than two inputs is not supported on the GPU",
                layer.path
            )));
        };
        let (big, gate) = if elements(&a.shape) >= elements(&b.shape) { (a, b) } else { (b, a) };
        let (gc, gp) = channels_positions(&gate.shape);
        if elements(&big.shape) != elements(&layer.shape) || gc != c || (gp != p && gp != 1) {
            return Err(RuntimeError::Gpu(format!(
                "`{}`: the GPU multiplies [C, H, W] by [C, H, W] or [C, 1, 1] only, found {} × {}",
                layer.path, a.shape, b.shape
            )));
        }
        let src = self.buffer_of(big.value);
        let other = self.buffer_of(gate.value);
        let out = self.output_for(layer)?;
        self.elementwise(2, c, p, gp, layer.activation, src, Some(other), None, None, out);
        Ok(())
    }

    fn conv(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        let Op::Conv2d(c) = &layer.op else { unreachable!("called for convolutions") };
        let own_bias = if c.bias { Some(self.param(layer, "bias")?) } else { None };
        let own_weight = self.param(layer, "weight")?;
        let (weight, bias) = match &layer.batch_norm {
            Some(bn) => {
                let (w, b) = fold::fold_into_conv(own_weight, own_bias, bn, self.weights).ok_or_else(|| {
                    RuntimeError::Input(format!("no tensors for the batch-norm folded into `{}`", layer.path))
                })?;
                (w.data, Some(b.data))
            }
            None => (own_weight.data.clone(), own_bias.map(|b| b.data.clone())),
        };
        let source = &layer.inputs[0];
        let residual = layer.residual.then(|| self.buffer_of(layer.inputs[layer.inputs.len() - 1].value));
        let act = layer.activation;
        let input = self.buffer_of(source.value);
        let [ic, ih, iw] = source.shape.dims().try_into().expect("conv input is [C, H, W]");
        let [oc, oh, ow] = layer.shape.dims().try_into().expect("conv output is [C, H, W]");
        // A 1×1 convolution is a GEMM when 4 consecutive output positions are 4 consecutive floats;
        // with a stride, over a subsampled copy of the input.
        let pointwise = c.kernel == [1, 1] && c.padding == Default::default() && c.groups == 1 && (oh * ow) % 4 == 0;
        let ocg = oc / c.groups;
        let k = ic / c.groups * c.kernel[0] * c.kernel[1];
        let input_floats = if pointwise { self.chunk * ic * oh * ow } else { self.chunk * ic * ih * iw };
        let input = if pointwise && c.stride != [1, 1] { self.subsample(source, c.stride, oh, ow) } else { input };
        let u = |v: usize| Const::U(v as u32);
        let dim = |v: usize| Const::Dim(v as u32);
        let bias_buffer = bias.as_ref().map(|b| self.data_buffer(b, "bias"));
        let (family, mut consts, workgroups, input_bind, weight_bind) = if pointwise {
            let oc16 = oc.next_multiple_of(16);
            // [OC][IC] → [IC][OC16]: one input channel's 16 weights are four vec4 loads.
            let mut t = vec![0.0f32; ic * oc16];
            for o in 0..oc {
                for i in 0..ic {
                    t[i * oc16 + o] = weight[o * ic + i];
                }
            }
            let textured =
                self.fits_texture(input_floats, TexelFormat::Vec4) && self.fits_texture(t.len(), TexelFormat::Vec4);
            let label = format!("{}.weight", layer.path);
            let mut consts = vec![];
            let (family, input_bind, weight_bind) = if textured {
                let (out_c, out_offset) = Self::out_channels(layer);
                consts.extend([
                    ("N", dim(self.chunk)),
                    ("IC", dim(ic)),
                    ("OC", dim(oc)),
                    ("OC16", dim(oc16)),
                    ("P4", dim(oh * ow / 4)),
                    ("OUT_C", dim(out_c)),
                    ("OUT_OFFSET", dim(out_offset)),
                    ("PARTIAL_TILE", Const::B(oc % 16 != 0)),
                    ("TEX_W", Const::U(TEXTURE_WIDTH)),
                ]);
                let mirror = if c.stride == [1, 1] {
                    self.mirror(source, TexelFormat::Vec4, &layer.path)
                } else {
                    self.mirror_buffer(input, input_floats, TexelFormat::Vec4, "subsampled input (texture)")
                };
                (
                    Family::PointwiseTex,
                    Bind::Texture(mirror),
                    Bind::Texture(self.data_texture(&t, TexelFormat::Vec4, &label)),
                )
            } else {
                consts.extend([
                    ("N", u(self.chunk)),
                    ("IC", u(ic)),
                    ("OC", u(oc)),
                    ("P", u(oh * ow)),
                    ("OC8", u(oc16)),
                ]);
                consts.extend(Self::out_slice(layer));
                (Family::Pointwise, Bind::Buffer(input), Bind::Buffer(self.data_buffer(&t, &label)))
            };
            let tiles = self.chunk * oh * ow / 4;
            let grid = [tiles.div_ceil(64) as u32, oc.div_ceil(16) as u32, 1];
            (family, consts, grid, input_bind, weight_bind)
        } else {
            let textured = self.fits_texture(input_floats, TexelFormat::Scalar)
                && self.fits_texture(weight.len().next_multiple_of(16) * 4, TexelFormat::Vec4);
            // Tiles must not straddle groups; with one group a partial last tile is padded.
            let oc_tile = match ocg {
                _ if textured && (ocg % 16 == 0 || (c.groups == 1 && ocg >= 16)) => 16,
                _ if ocg % 4 == 0 => 4,
                _ => 1,
            };
            let (out_c, out_offset) = Self::out_channels(layer);
            let mut consts = vec![
                ("KH", u(c.kernel[0])),
                ("KW", u(c.kernel[1])),
                ("SY", dim(c.stride[0])),
                ("SX", dim(c.stride[1])),
                ("PT", dim(c.padding.top)),
                ("PL", dim(c.padding.left)),
                ("DY", u(c.dilation[0])),
                ("DX", u(c.dilation[1])),
                ("OC_TILE", u(oc_tile)),
                ("PARTIAL_TILE", Const::B(oc % oc_tile != 0)),
                ("IC", dim(ic)),
                ("IH", dim(ih)),
                ("IW", dim(iw)),
                ("OC", dim(oc)),
                ("OW", dim(ow)),
                ("ICG", dim(ic / c.groups)),
                ("OCG", dim(ocg)),
                ("OUT_C", dim(out_c)),
                ("OUT_OFFSET", dim(out_offset)),
                ("PIXELS", dim(self.chunk * oh * ow)),
                ("PLANE", dim(oh * ow)),
                ("IN_PLANE", dim(ih * iw)),
                ("IN_LEN", dim(self.chunk * ic * ih * iw)),
                ("K", dim(k)),
            ];
            let label = format!("{}.weight", layer.path);
            let (family, input_bind, weight_bind) = if textured {
                // [OC][K] → [OC / OC_TILE][K][OC_TILE] texels (one output channel per texel's `.x`
                // when OC_TILE is 1), so a tap's weights for the whole tile are whole texels.
                let lanes = oc_tile.max(4);
                let mut t = vec![0.0f32; oc.div_ceil(oc_tile) * k * lanes];
                for o in 0..oc {
                    let (block, lane) = (o / oc_tile, o % oc_tile);
                    for j in 0..k {
                        t[(block * k + j) * lanes + lane] = weight[o * k + j];
                    }
                }
                consts.push(("TEX_W", Const::U(TEXTURE_WIDTH)));
                let input = Bind::Texture(self.mirror(source, TexelFormat::Scalar, &layer.path));
                // Whole quads of positions per image: vec4 residual loads and output stores.
                let family = if (oh * ow) % 4 == 0 { Family::Conv2dTexVec4 } else { Family::Conv2dTex };
                (family, input, Bind::Texture(self.data_texture(&t, TexelFormat::Vec4, &label)))
            } else {
                (Family::Conv2d, Bind::Buffer(input), Bind::Buffer(self.data_buffer(&weight, &label)))
            };
            let pixel_tiles = (self.chunk * oh * ow).div_ceil(4);
            let grid = [pixel_tiles.div_ceil(64) as u32, oc.div_ceil(oc_tile) as u32, 1];
            (family, consts, grid, input_bind, weight_bind)
        };
        let out = self.output_for(layer)?;
        // The scalar-store epilogue with a residual is slow to compile on CPU drivers (four scalar
        // loads per channel on top of four scalar stores), so there the residual add and the
        // activation after it run as an elementwise pass over the whole tensor instead, unless the
        // result goes into a concat's slice.
        let separate = family == Family::Conv2dTex && residual.is_some() && layer.into_concat.is_none();
        let (fused_residual, fused_act, conv_out) = if separate {
            (None, None, self.new_buffer(self.chunk * oc * oh * ow * 4, "before the residual add"))
        } else {
            (residual, act, out)
        };
        // A depthwise (or otherwise short) convolution does a few taps per invocation, too little to
        // hide the integer divisions and multiplies of run-time extents: its extents are baked, at
        // the price of a pipeline per layer size.
        let bake_shape = !pointwise && k <= 32;
        consts.push(("HAS_BIAS", Const::B(bias_buffer.is_some())));
        if family == Family::Pointwise {
            consts.push(("HAS_RESIDUAL", Const::B(fused_residual.is_some())));
            consts.extend(activation_consts(fused_act));
        } else {
            consts.extend(epilogue_consts(fused_act, fused_residual.is_some()));
        }
        self.dispatch(
            Kernel { family, consts, workgroups, bake_shape },
            &[input_bind, weight_bind, bias_buffer.into(), fused_residual.into(), Bind::Buffer(conv_out)],
        );
        if separate {
            let p = oh * ow;
            self.elementwise(1, oc, p, p, act, conv_out, residual, None, None, out);
        }
        Ok(())
    }

    fn linear(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        let Op::Linear { in_features, out_features, bias } = layer.op else { unreachable!("called for linear layers") };
        let input = self.buffer_of(layer.inputs[0].value);
        let act = layer.activation;
        let out = self.output_for(layer)?;
        let weight = self.param(layer, "weight")?.data.clone();
        let bias_buffer =
            if bias { Some(self.data_buffer(&self.param(layer, "bias")?.data.clone(), "bias")) } else { None };
        let limit = self.binding_limit;
        let rows_per_chunk = (limit / (in_features * 4)).max(1).min(out_features);
        if in_features * 4 > limit {
            return Err(RuntimeError::Gpu(format!(
                "`{}`: one weight row ({in_features} floats) exceeds a storage binding",
                layer.path
            )));
        }
        for row0 in (0..out_features).step_by(rows_per_chunk) {
            let rows = rows_per_chunk.min(out_features - row0);
            let part = self.data_buffer(
                &weight[row0 * in_features..(row0 + rows) * in_features],
                &format!("{}.weight[{row0}..]", layer.path),
            );
            let u = |v: usize| Const::U(v as u32);
            let mut consts = vec![
                ("N", u(self.chunk)),
                ("K", u(in_features)),
                ("OUT", u(out_features)),
                ("ROW0", u(row0)),
                ("ROWS", u(rows)),
                ("HAS_BIAS", Const::B(bias)),
            ];
            consts.extend(activation_consts(act));
            let workgroups = [rows.div_ceil(4).div_ceil(64) as u32, self.chunk.div_ceil(4) as u32, 1];
            self.dispatch(
                Kernel::new(Family::Linear, consts, workgroups),
                &[Bind::Buffer(input), Bind::Buffer(part), bias_buffer.into(), Bind::Buffer(out)],
            );
        }
        Ok(())
    }
}
