//! Running a graph on the GPU: a plan of kernel dispatches with fused epilogues, every pipeline and
//! bind group made once, and one command buffer per forward.
//!
//! Convolutions read their input and weights through textures where they fit (`textureLoad` is
//! vectorised on CPU drivers, where storage-buffer loads in loops run lane by lane): each value a
//! convolution reads gets a texture mirror, filled by a buffer-to-texture copy between compute passes
//! right after the value is complete. The storage-buffer kernels remain for tensors too large for a
//! texture.
//!
//! The executor runs the graph as the compiler's lowering passes leave it (`passes::lower`): what
//! they fused into a node (a folded batch-norm, a residual add, an activation, a concat slice to
//! write) becomes part of that node's kernel, and activations live in the buffers `plan_buffers`
//! assigns. Flatten costs nothing. Tensors larger than one storage binding are handled by splitting:
//! linear weights by rows, and activations by running the batch in chunks.

use std::collections::HashMap;

use cnnc_compiler::graph::{Activation, Graph, Node, NodeId, Op, Pad4, Pool2d, Shape};
use cnnc_compiler::passes::{self, BufferPlan};
use wgpu::util::DeviceExt;

use super::kernels::{activation_consts, grid_1d, Const, Family, Kernel, Slot, TEXTURE_WIDTH};
use super::Gpu;
use crate::weights::Weights;
use crate::{fold, RuntimeError, Tensor};

/// One step of the forward pass, labelled with its layer path and kernel family.
struct Step {
    label: (String, &'static str),
    action: Action,
}

enum Action {
    Dispatch {
        pipeline: usize,
        bind_group: wgpu::BindGroup,
        workgroups: [u32; 3],
    },
    /// Copies a value's buffer into its texture mirror (outside any compute pass).
    Mirror {
        buffer: wgpu::Buffer,
        texture: wgpu::Texture,
        format: TexelFormat,
        texels: u32,
    },
}

/// How a texture packs floats: one per texel (for scattered reads) or four (for vec4 reads).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
enum TexelFormat {
    Scalar,
    Vec4,
}

impl TexelFormat {
    fn floats(self) -> usize {
        match self {
            TexelFormat::Scalar => 1,
            TexelFormat::Vec4 => 4,
        }
    }

    fn wgpu(self) -> wgpu::TextureFormat {
        match self {
            TexelFormat::Scalar => wgpu::TextureFormat::R32Float,
            TexelFormat::Vec4 => wgpu::TextureFormat::Rgba32Float,
        }
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

/// The texture extent holding `texels` texels in rows of [`TEXTURE_WIDTH`].
fn texture_extent(texels: usize) -> wgpu::Extent3d {
    let width = TEXTURE_WIDTH as usize;
    wgpu::Extent3d { width: width as u32, height: texels.div_ceil(width).max(1) as u32, depth_or_array_layers: 1 }
}

/// Records `steps` into `encoder`: consecutive dispatches share one compute pass, and each mirror
/// copy runs between passes. With `timestamps`, every dispatch gets a pass of its own whose start
/// and end times go to queries `2i` and `2i + 1` for the `i`-th dispatch.
fn record(
    encoder: &mut wgpu::CommandEncoder,
    pipelines: &[wgpu::ComputePipeline],
    steps: &[Step],
    timestamps: Option<&wgpu::QuerySet>,
) {
    let mut pass: Option<wgpu::ComputePass<'static>> = None;
    let mut query = 0u32;
    for step in steps {
        match &step.action {
            Action::Dispatch { pipeline, bind_group, workgroups } => {
                if timestamps.is_some() {
                    pass = None;
                }
                let pass = pass.get_or_insert_with(|| {
                    let timestamp_writes = timestamps.map(|query_set| wgpu::ComputePassTimestampWrites {
                        query_set,
                        beginning_of_pass_write_index: Some(query),
                        end_of_pass_write_index: Some(query + 1),
                    });
                    encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes })
                        .forget_lifetime()
                });
                query += 2;
                pass.set_pipeline(&pipelines[*pipeline]);
                pass.set_bind_group(0, bind_group, &[]);
                let [x, y, z] = *workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
            Action::Mirror { buffer, texture, format, texels } => {
                pass = None;
                let width = TEXTURE_WIDTH;
                let row_bytes = width * format.floats() as u32 * 4;
                let (full, rest) = (texels / width, texels % width);
                let copy = |encoder: &mut wgpu::CommandEncoder, y: u32, w: u32, h: u32| {
                    encoder.copy_buffer_to_texture(
                        wgpu::TexelCopyBufferInfo {
                            buffer,
                            layout: wgpu::TexelCopyBufferLayout {
                                offset: y as u64 * row_bytes as u64,
                                bytes_per_row: Some(row_bytes),
                                rows_per_image: None,
                            },
                        },
                        wgpu::TexelCopyTextureInfo {
                            texture,
                            mip_level: 0,
                            origin: wgpu::Origin3d { x: 0, y, z: 0 },
                            aspect: wgpu::TextureAspect::All,
                        },
                        wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
                    );
                };
                if full > 0 {
                    copy(encoder, 0, width, full);
                }
                if rest > 0 {
                    copy(encoder, full, rest, 1);
                }
            }
        }
    }
}

/// A graph ready to run on a device for a fixed batch chunk.
pub struct Prepared<'g> {
    gpu: &'g Gpu,
    pipelines: Vec<wgpu::ComputePipeline>,
    steps: Vec<Step>,
    input: wgpu::Buffer,
    output: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// Textures the kernels read (weights and value mirrors), kept alive with the bind groups.
    _textures: Vec<wgpu::Texture>,
    /// Batch items per forward pass.
    pub chunk: usize,
    item_shape: Vec<usize>,
    output_item_shape: Vec<usize>,
    /// Kernels dispatched per forward.
    pub dispatches: usize,
    /// Buffers that hold activations (written by kernels), for poisoning.
    activations: Vec<wgpu::Buffer>,
    /// Bytes of device memory this model holds (weights, activations, staging).
    pub device_bytes: u64,
    /// Each dispatch's layer path and kernel family, for per-layer timing.
    pub step_labels: Vec<(String, &'static str)>,
}

/// How [`Prepared::time_steps`] measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StepTiming {
    /// GPU timestamps around each dispatch, all in one submission.
    Timestamps,
    /// Wall-clock time of one submission per step.
    Submissions,
}

/// Choices the planner would otherwise make from the device's limits.
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

/// A pooling window and whether it takes the maximum (else the average).
#[derive(Copy, Clone)]
struct PoolWindow<'p> {
    pool: &'p Pool2d,
    is_max: bool,
}

/// Where a node's value lives: a buffer, or the value of the node it only reshapes (flatten).
#[derive(Copy, Clone)]
enum Place {
    Buffer(usize),
    Alias(NodeId),
}

struct Planner<'a, 'g> {
    gpu: &'g Gpu,
    graph: &'a Graph,
    weights: &'a Weights,
    chunk: usize,
    places: Vec<Option<Place>>,
    buffers: Vec<wgpu::Buffer>,
    pipelines: Vec<wgpu::ComputePipeline>,
    pipeline_ids: HashMap<String, usize>,
    layouts: HashMap<&'static [Slot], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    steps: Vec<Step>,
    textures: Vec<wgpu::Texture>,
    views: Vec<wgpu::TextureView>,
    /// Texture mirrors made so far, by the node whose value they hold and texel format (buffers
    /// are reused, values are not).
    mirrors: HashMap<(NodeId, TexelFormat), usize>,
    /// Whether kernels may read through textures (else the storage-buffer kernels run everywhere).
    use_textures: bool,
    dummy: wgpu::Buffer,
    /// Which buffer slot each value uses (reused by liveness).
    plan: BufferPlan,
    /// The buffer made for each slot, once made.
    slot_buffers: Vec<Option<usize>>,
    /// The largest storage binding to plan for.
    binding_limit: usize,
    /// Buffers kernels write.
    activation_buffers: Vec<usize>,
    /// The layer path being planned, to label its dispatches.
    current: String,
}

fn elements(node: &Node) -> usize {
    node.shape.dims().iter().product()
}

/// `[C, P]` of a value: channels (or features) and positions per channel.
fn channels_positions(node: &Node) -> (usize, usize) {
    let d = node.shape.dims();
    (d[0], d[1..].iter().product::<usize>().max(1))
}

impl<'g> Prepared<'g> {
    /// Plans the graph for `batch` items (run in chunks if a whole batch would not fit a binding).
    pub fn new(gpu: &'g Gpu, graph: &Graph, weights: &Weights, batch: usize) -> Result<Prepared<'g>, RuntimeError> {
        Prepared::with_options(gpu, graph, weights, batch, PlanOptions::default())
    }

    /// As [`Prepared::new`], with planning options (to exercise splitting and every kernel variant).
    pub fn with_options(
        gpu: &'g Gpu,
        graph: &Graph,
        weights: &Weights,
        batch: usize,
        options: PlanOptions,
    ) -> Result<Prepared<'g>, RuntimeError> {
        let binding_limit = options.binding_limit;
        let lowered = passes::lower(graph);
        let graph = &lowered;
        let plan = passes::plan_buffers(graph);
        for p in graph.inference_nodes().flat_map(|(id, _)| graph.node_params(id)) {
            if weights.get(&p.name).is_none() {
                return Err(RuntimeError::Input(format!("no tensor for weight `{}`", p.name)));
            }
        }
        let device_limit = gpu.limits.max_storage_buffer_binding_size as usize;
        let limit = binding_limit.map_or(device_limit, |l| l.min(device_limit));
        let largest = graph.inference_nodes().map(|(_, n)| elements(n) * 4).max().unwrap_or(4);
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
        let mut planner = Planner {
            gpu,
            graph,
            weights,
            chunk,
            places: vec![None; graph.len()],
            buffers: Vec::new(),
            pipelines: Vec::new(),
            pipeline_ids: HashMap::new(),
            layouts: HashMap::new(),
            steps: Vec::new(),
            textures: Vec::new(),
            views: Vec::new(),
            mirrors: HashMap::new(),
            use_textures: options.textures,
            dummy,
            slot_buffers: vec![None; plan.slot_elements.len()],
            plan,
            binding_limit: limit,
            activation_buffers: Vec::new(),
            current: String::new(),
        };
        // Shader or binding mistakes surface as errors here, not as panics in wgpu's default handler.
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let planned = planner.plan();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(RuntimeError::Gpu(format!("preparing the model failed: {e}")));
        }
        planned?;
        let input_buffer = match planner.places[graph.input.index()] {
            Some(Place::Buffer(b)) => b,
            _ => unreachable!("the input has its own buffer"),
        };
        let output_buffer = planner.buffer_of(graph.output);
        let out_node = graph.node(graph.output);
        let out_bytes = (chunk * elements(out_node) * 4) as u64;
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output staging"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dispatches = planner.steps.iter().filter(|s| matches!(s.action, Action::Dispatch { .. })).count();
        let activations = planner.activation_buffers.iter().map(|b| planner.buffers[*b].clone()).collect();
        let texture_bytes: u64 = planner
            .textures
            .iter()
            .map(|t| {
                let floats = if t.format() == wgpu::TextureFormat::R32Float { 1 } else { 4 };
                u64::from(t.width()) * u64::from(t.height()) * floats * 4
            })
            .sum();
        let device_bytes = planner.buffers.iter().map(wgpu::Buffer::size).sum::<u64>() + staging.size() + texture_bytes;
        let step_labels = planner.steps.iter().map(|s| s.label.clone()).collect();
        let Planner { mut buffers, pipelines, steps, textures, .. } = planner;
        // Take the two buffers the forward pass needs by handle; the rest stay alive in the bind groups.
        let output = buffers[output_buffer].clone();
        let input = buffers.swap_remove(input_buffer);
        Ok(Prepared {
            gpu,
            pipelines,
            steps,
            input,
            output,
            staging,
            _textures: textures,
            chunk,
            item_shape: graph.node(graph.input).shape.dims().to_vec(),
            output_item_shape: out_node.shape.dims().to_vec(),
            dispatches,
            activations,
            device_bytes,
            step_labels,
        })
    }

    /// Fills every activation buffer with NaN, so an element a kernel fails to write shows up.
    pub fn poison(&self) {
        for b in &self.activations {
            let nan: Vec<f32> = vec![f32::NAN; (b.size() / 4) as usize];
            self.gpu.queue.write_buffer(b, 0, bytemuck::cast_slice(&nan));
        }
    }

    /// Runs a batch `[N, ...]` and returns the outputs `[N, ...]`.
    pub fn run(&self, input: &Tensor) -> Result<Tensor, RuntimeError> {
        if input.shape.len() != self.item_shape.len() + 1
            || input.shape[1..] != self.item_shape[..]
            || input.shape[0] == 0
        {
            return Err(RuntimeError::Input(format!(
                "the model takes [N, {}], the input is {:?}",
                self.item_shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                input.shape
            )));
        }
        let n = input.shape[0];
        let item = input.item_len();
        let out_item: usize = self.output_item_shape.iter().product();
        let mut out = Vec::with_capacity(n * out_item);
        for start in (0..n).step_by(self.chunk) {
            let take = (n - start).min(self.chunk);
            let mut data = input.data[start * item..(start + take) * item].to_vec();
            data.resize(self.chunk * item, 0.0);
            let result = self.forward(&data)?;
            out.extend_from_slice(&result[..take * out_item]);
        }
        let mut shape = vec![n];
        shape.extend(&self.output_item_shape);
        Ok(Tensor::new(shape, out))
    }

    /// Times each step: with timestamp queries where the device has them (every dispatch in its own
    /// compute pass, all in one submission, so the times are the GPU's own), else one submission per
    /// step (each time then includes a submission's overhead). Seconds per step in plan order, `None`
    /// for steps a timestamp cannot bracket (mirror copies). The buffers must hold a forward's inputs.
    pub fn time_steps(&self) -> Result<(Vec<Option<f64>>, StepTiming), RuntimeError> {
        let queries = 2 * self.dispatches;
        if self.gpu.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
            && (1..=wgpu::QUERY_SET_MAX_QUERIES as usize).contains(&queries)
        {
            return Ok((self.time_steps_with_queries()?, StepTiming::Timestamps));
        }
        let device = &self.gpu.device;
        let mut times = Vec::with_capacity(self.steps.len());
        for step in self.steps.chunks(1) {
            let start = std::time::Instant::now();
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
            record(&mut encoder, &self.pipelines, step, None);
            self.gpu.queue.submit([encoder.finish()]);
            device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| RuntimeError::Gpu(e.to_string()))?;
            times.push(Some(start.elapsed().as_secs_f64()));
        }
        Ok((times, StepTiming::Submissions))
    }

    fn time_steps_with_queries(&self) -> Result<Vec<Option<f64>>, RuntimeError> {
        let device = &self.gpu.device;
        let count = 2 * self.dispatches as u32;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("layer times"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = u64::from(count) * 8;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("layer times"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("layer times read-back"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed") });
        record(&mut encoder, &self.pipelines, &self.steps, Some(&set));
        encoder.resolve_query_set(&set, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let ticks: Vec<u64> = bytemuck::cast_slice(&self.read_back(&readback)?).to_vec();
        let period_s = f64::from(self.gpu.queue.get_timestamp_period()) * 1e-9;
        let mut pairs = ticks.chunks(2);
        Ok(self
            .steps
            .iter()
            .map(|step| match step.action {
                Action::Dispatch { .. } => pairs.next().map(|p| p[1].saturating_sub(p[0]) as f64 * period_s),
                Action::Mirror { .. } => None,
            })
            .collect())
    }

    /// Waits for the queue and returns the bytes of a `MAP_READ` buffer.
    fn read_back(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, RuntimeError> {
        let slice = buffer.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| RuntimeError::Gpu(e.to_string()))?;
        rx.recv().map_err(|e| RuntimeError::Gpu(e.to_string()))?.map_err(|e| RuntimeError::Gpu(e.to_string()))?;
        let bytes = slice.get_mapped_range().map_err(|e| RuntimeError::Gpu(e.to_string()))?.to_vec();
        buffer.unmap();
        Ok(bytes)
    }

    /// One chunk through the network: upload, one command buffer, read back.
    fn forward(&self, data: &[f32]) -> Result<Vec<f32>, RuntimeError> {
        let device = &self.gpu.device;
        self.gpu.queue.write_buffer(&self.input, 0, bytemuck::cast_slice(data));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        record(&mut encoder, &self.pipelines, &self.steps, None);
        encoder.copy_buffer_to_buffer(&self.output, 0, &self.staging, 0, self.staging.size());
        self.gpu.queue.submit([encoder.finish()]);
        let result = bytemuck::cast_slice::<u8, f32>(&self.read_back(&self.staging)?).to_vec();
        Ok(result)
    }
}

impl Planner<'_, '_> {
    fn node(&self, id: NodeId) -> &Node {
        self.graph.node(id)
    }

    /// The node whose output buffer holds `id`'s value (itself, or what a flatten reshapes).
    fn owner(&self, id: NodeId) -> NodeId {
        match self.places[id.index()].expect("values are placed before they are read") {
            Place::Buffer(_) => id,
            Place::Alias(other) => self.owner(other),
        }
    }

    fn buffer_of(&self, id: NodeId) -> usize {
        match self.places[self.owner(id).index()] {
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
        self.buffers.push(self.gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        }));
        self.buffers.len() - 1
    }

    /// The buffer of `id`'s planned slot (made on first use, at the slot's size).
    fn output_for(&mut self, id: NodeId) -> usize {
        let slot = self.plan.slot[id.index()].expect("inference values have slots");
        let b = match self.slot_buffers[slot] {
            Some(b) => b,
            None => {
                let bytes = self.chunk * self.plan.slot_elements[slot] as usize * 4;
                let b = self.new_buffer(bytes, &format!("activations {slot}"));
                self.slot_buffers[slot] = Some(b);
                b
            }
        };
        self.places[id.index()] = Some(Place::Buffer(b));
        b
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
        debug_assert_eq!(binds.len(), slots.len());
        let source = kernel.source();
        let pipeline = match self.pipeline_ids.get(&source) {
            Some(p) => *p,
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
                self.pipelines.push(p);
                self.pipeline_ids.insert(source, self.pipelines.len() - 1);
                self.pipelines.len() - 1
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
        let label = (self.current.clone(), kernel.family.name());
        self.steps
            .push(Step { label, action: Action::Dispatch { pipeline, bind_group, workgroups: kernel.workgroups } });
    }

    /// Whether a tensor of `floats` floats fits one texture of `format` on this device.
    fn fits_texture(&self, floats: usize, format: TexelFormat) -> bool {
        let max = self.gpu.limits.max_texture_dimension_2d as usize;
        self.use_textures
            && TEXTURE_WIDTH as usize <= max
            && floats.div_ceil(format.floats()).div_ceil(TEXTURE_WIDTH as usize) <= max
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
        self.gpu.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.textures[t],
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(&padded),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(extent.width * format.floats() as u32 * 4),
                rows_per_image: None,
            },
            extent,
        );
        t
    }

    /// The texture mirror of node `id`'s value in `format`, copied from its buffer once per forward
    /// (the copy is planned here, after the value's producers and before this reader).
    fn mirror(&mut self, id: NodeId, format: TexelFormat) -> usize {
        let buffer = self.buffer_of(id);
        let owner = self.owner(id);
        if let Some(t) = self.mirrors.get(&(owner, format)) {
            return *t;
        }
        let floats = self.chunk * elements(self.node(id));
        let label = format!("{} (texture)", self.node(id).path);
        let t = self.mirror_buffer(buffer, floats, format, &label);
        self.mirrors.insert((owner, format), t);
        t
    }

    /// A new texture filled from the first `floats` floats of `buffer` at this point of every forward.
    fn mirror_buffer(&mut self, buffer: usize, floats: usize, format: TexelFormat, label: &str) -> usize {
        let texels = floats.div_ceil(format.floats());
        let t = self.new_texture(texels, format, label);
        self.steps.push(Step {
            label: (self.current.clone(), "mirror"),
            action: Action::Mirror {
                buffer: self.buffers[buffer].clone(),
                texture: self.textures[t].clone(),
                format,
                texels: texels as u32,
            },
        });
        t
    }

    /// Every `stride`-th position of `id`'s value (`[C, H, W]` → `[C, OH, OW]`) in a buffer of its own,
    /// by a 1×1 max pooling (an identity on one element), so a strided 1×1 convolution can run as a GEMM.
    fn subsample(&mut self, id: NodeId, stride: [usize; 2], oh: usize, ow: usize) -> usize {
        let c = self.node(id).shape.dims()[0];
        let input = self.buffer_of(id);
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
        self.pool(id, &shape, PoolWindow { pool: &pool, is_max: true }, None, out_slice, input, out);
        out
    }

    /// Dispatches the pooling kernel from node `src`'s value (in `input`) to a `shape` result in
    /// `out` (starting at the channel `out_slice` says).
    #[allow(clippy::too_many_arguments)]
    fn pool(
        &mut self,
        src: NodeId,
        shape: &Shape,
        window: PoolWindow,
        act: Option<Activation>,
        out_slice: [(&'static str, Const); 2],
        input: usize,
        out: usize,
    ) {
        let [c, ih, iw] = self.node(src).shape.dims().try_into().expect("pool input is [C, H, W]");
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
        self.dispatch(Kernel { family: Family::Pool, consts, workgroups }, &[Bind::Buffer(input), Bind::Buffer(out)]);
    }

    /// `OUT_C` and `OUT_OFFSET`: the channels of the tensor a kernel writes and where its result
    /// starts — a concat's output and the slice for a producer written in place, else its own.
    fn out_slice(&self, node: &Node) -> [(&'static str, Const); 2] {
        let (channels, offset) = match node.fused.into_concat {
            Some(slice) => (self.node(slice.concat).shape.dims()[0], slice.offset),
            None => (node.shape.dims()[0], 0),
        };
        [("OUT_C", Const::U(channels as u32)), ("OUT_OFFSET", Const::U(offset as u32))]
    }

    fn param(&self, node: &Node, suffix: &str) -> &Tensor {
        let p = node.params.iter().find(|p| p.kind.suffix() == suffix).expect("op has this parameter");
        self.weights.get(&p.name).expect("checked in Prepared::new")
    }

    fn plan(&mut self) -> Result<(), RuntimeError> {
        let ids: Vec<NodeId> = self.graph.inference_nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = self.node(id).clone();
            self.current = node.path.clone();
            match &node.op {
                Op::Input => {
                    self.output_for(id);
                }
                Op::Flatten | Op::Dropout { .. } | Op::StochasticDepth { .. } => {
                    self.places[id.index()] = Some(Place::Alias(node.inputs[0]));
                }
                Op::Conv2d(_) => self.conv(id, &node),
                Op::Linear { .. } => self.linear(id, &node)?,
                Op::BatchNorm { eps, .. } => {
                    let [w, b, mean, var] =
                        fold::batch_norm_tensors(&node.params, self.weights).expect("checked in Prepared::new");
                    let (scale, shift) = fold::batch_norm_affine(w, b, mean, var, *eps);
                    self.affine(id, &node, &scale, &shift);
                }
                Op::ChannelAffine { scale, shift } => self.affine(id, &node, scale, shift),
                Op::Activation(_) => {
                    let (c, _) = channels_positions(&node);
                    self.affine(id, &node, &vec![1.0; c], &vec![0.0; c]);
                }
                Op::MaxPool(p) | Op::AvgPool(p) => {
                    let input = self.buffer_of(node.inputs[0]);
                    let out = self.output_for(id);
                    let window = PoolWindow { pool: p, is_max: matches!(node.op, Op::MaxPool(_)) };
                    let out_slice = self.out_slice(&node);
                    self.pool(node.inputs[0], &node.shape, window, node.fused.activation, out_slice, input, out);
                }
                Op::AdaptiveAvgPool { size } | Op::AdaptiveMaxPool { size } => {
                    let src = self.node(node.inputs[0]);
                    let [c, ih, iw] = src.shape.dims().try_into().expect("pool input is [C, H, W]");
                    let input = self.buffer_of(node.inputs[0]);
                    let act = node.fused.activation;
                    let out = self.output_for(id);
                    let u = |v: usize| Const::U(v as u32);
                    let mut consts = vec![
                        ("N", u(self.chunk)),
                        ("C", u(c)),
                        ("IH", u(ih)),
                        ("IW", u(iw)),
                        ("OH", u(size[0])),
                        ("OW", u(size[1])),
                        ("IS_MAX", Const::B(matches!(node.op, Op::AdaptiveMaxPool { .. }))),
                    ];
                    consts.extend(self.out_slice(&node));
                    consts.extend(activation_consts(act));
                    let workgroups = grid_1d((self.chunk * c * size[0] * size[1]) as u64);
                    self.dispatch(
                        Kernel { family: Family::AdaptivePool, consts, workgroups },
                        &[Bind::Buffer(input), Bind::Buffer(out)],
                    );
                }
                Op::Add => self.add(id, &node),
                Op::Mul => self.mul(id, &node)?,
                Op::Concat => {
                    let out = self.output_for(id);
                    let (out_c, p) = channels_positions(&node);
                    let mut offset = 0;
                    for input in node.inputs.clone() {
                        let (c, _) = channels_positions(self.node(input));
                        // Inputs written in place are already in their slice.
                        if self.node(input).fused.into_concat.is_none() {
                            let src = self.buffer_of(input);
                            self.copy(src, out, c, p, c, out_c, 0, offset, 0);
                        }
                        offset += c;
                    }
                }
                Op::Chunk { chunks, index } => {
                    let (in_c, p) = channels_positions(self.node(node.inputs[0]));
                    let per = in_c / chunks;
                    let src = self.buffer_of(node.inputs[0]);
                    let out = self.output_for(id);
                    self.copy(src, out, per, p, in_c, per, index * per, 0, 0);
                }
                Op::ChannelShuffle { groups } => {
                    let (c, p) = channels_positions(&node);
                    let src = self.buffer_of(node.inputs[0]);
                    let out = self.output_for(id);
                    self.copy(src, out, c, p, c, c, 0, 0, *groups);
                }
                Op::LocalResponseNorm { size, alpha, beta, k } => {
                    let (c, p) = channels_positions(&node);
                    let src = self.buffer_of(node.inputs[0]);
                    let act = node.fused.activation;
                    let out = self.output_for(id);
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
                    consts.extend(activation_consts(act));
                    let workgroups = grid_1d((self.chunk * c * p) as u64);
                    self.dispatch(
                        Kernel { family: Family::Lrn, consts, workgroups },
                        &[Bind::Buffer(src), Bind::Buffer(out)],
                    );
                }
                Op::Softmax => {
                    let (c, p) = channels_positions(&node);
                    let src = self.buffer_of(node.inputs[0]);
                    let out = self.output_for(id);
                    let u = |v: usize| Const::U(v as u32);
                    let mut consts = vec![("N", u(self.chunk)), ("C", u(c)), ("P", u(p))];
                    consts.extend(activation_consts(None));
                    let workgroups = grid_1d((self.chunk * p) as u64);
                    self.dispatch(
                        Kernel { family: Family::Softmax, consts, workgroups },
                        &[Bind::Buffer(src), Bind::Buffer(out)],
                    );
                }
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
        self.dispatch(Kernel { family: Family::Copy, consts, workgroups }, &[Bind::Buffer(src), Bind::Buffer(out)]);
    }

    /// `y = act(x · scale[c] + shift[c])`.
    fn affine(&mut self, id: NodeId, node: &Node, scale: &[f64], shift: &[f64]) {
        let (c, p) = channels_positions(node);
        let src = self.buffer_of(node.inputs[0]);
        let own = match node.op {
            Op::Activation(a) => Some(a),
            _ => None,
        };
        let act = own.or(node.fused.activation);
        let to_f32 = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
        let scale = self.data_buffer(&to_f32(scale), "scale");
        let shift = self.data_buffer(&to_f32(shift), "shift");
        let out = self.output_for(id);
        self.elementwise(0, c, p, p, act, src, None, Some(scale), Some(shift), out);
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
            Kernel { family: Family::Elementwise, consts, workgroups },
            &[Bind::Buffer(src), other.into(), scale.into(), shift.into(), Bind::Buffer(out)],
        );
    }

    fn add(&mut self, id: NodeId, node: &Node) {
        let (c, p) = channels_positions(node);
        let mut acc = self.buffer_of(node.inputs[0]);
        let last = node.inputs.len() - 1;
        for (i, input) in node.inputs.iter().enumerate().skip(1) {
            let other = self.buffer_of(*input);
            let act = if i == last { node.fused.activation } else { None };
            let out = if i == last {
                self.output_for(id)
            } else {
                let bytes = self.chunk * elements(node) * 4;
                self.new_buffer(bytes, "partial sum")
            };
            self.elementwise(1, c, p, p, act, acc, Some(other), None, None, out);
            acc = out;
        }
    }

    fn mul(&mut self, id: NodeId, node: &Node) -> Result<(), RuntimeError> {
        let (c, p) = channels_positions(node);
        let [a, b] = node.inputs[..] else {
            return Err(RuntimeError::Gpu(format!(
                "`{}`: mul of more than two inputs is not supported on the GPU",
                node.path
            )));
        };
        let (big, gate) = if elements(self.node(a)) >= elements(self.node(b)) { (a, b) } else { (b, a) };
        let (gc, gp) = channels_positions(self.node(gate));
        if elements(self.node(big)) != elements(node) || gc != c || (gp != p && gp != 1) {
            return Err(RuntimeError::Gpu(format!(
                "`{}`: the GPU multiplies [C, H, W] by [C, H, W] or [C, 1, 1] only, found {} × {}",
                node.path,
                self.node(a).shape,
                self.node(b).shape
            )));
        }
        let src = self.buffer_of(big);
        let other = self.buffer_of(gate);
        let act = node.fused.activation;
        let out = self.output_for(id);
        self.elementwise(2, c, p, gp, act, src, Some(other), None, None, out);
        Ok(())
    }

    fn conv(&mut self, id: NodeId, node: &Node) {
        let Op::Conv2d(c) = &node.op else { unreachable!() };
        let own_bias = c.bias.then(|| self.param(node, "bias"));
        let (weight, bias) = match &node.fused.batch_norm {
            Some(bn) => {
                let (w, b) = fold::fold_into_conv(self.param(node, "weight"), own_bias, bn, self.weights)
                    .expect("checked in Prepared::new");
                (w.data, Some(b.data))
            }
            None => (self.param(node, "weight").data.clone(), own_bias.map(|b| b.data.clone())),
        };
        let residual = node.fused.residual.then(|| self.buffer_of(node.inputs[node.inputs.len() - 1]));
        let act = node.fused.activation;
        let input = self.buffer_of(node.inputs[0]);
        let src = self.node(node.inputs[0]);
        let [ic, ih, iw] = src.shape.dims().try_into().expect("conv input is [C, H, W]");
        let [oc, oh, ow] = node.shape.dims().try_into().expect("conv output is [C, H, W]");
        // A 1×1 convolution is a GEMM when 4 consecutive output positions are 4 consecutive floats;
        // with a stride, over a subsampled copy of the input.
        let pointwise = c.kernel == [1, 1] && c.padding == Default::default() && c.groups == 1 && (oh * ow) % 4 == 0;
        let ocg = oc / c.groups;
        let k = ic / c.groups * c.kernel[0] * c.kernel[1];
        let input_floats = if pointwise { self.chunk * ic * oh * ow } else { self.chunk * ic * ih * iw };
        let input =
            if pointwise && c.stride != [1, 1] { self.subsample(node.inputs[0], c.stride, oh, ow) } else { input };
        let u = |v: usize| Const::U(v as u32);
        let bias_buffer = bias.as_ref().map(|b| self.data_buffer(b, "bias"));
        let tail_consts =
            [("HAS_BIAS", Const::B(bias_buffer.is_some())), ("HAS_RESIDUAL", Const::B(residual.is_some()))];
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
            let label = format!("{}.weight", node.path);
            let mut consts = vec![("N", u(self.chunk)), ("IC", u(ic)), ("OC", u(oc)), ("P", u(oh * ow))];
            let (family, input_bind, weight_bind) = if textured {
                consts.extend([("OC16", u(oc16)), ("TEX_W", Const::U(TEXTURE_WIDTH))]);
                let mirror = if c.stride == [1, 1] {
                    self.mirror(node.inputs[0], TexelFormat::Vec4)
                } else {
                    self.mirror_buffer(input, input_floats, TexelFormat::Vec4, "subsampled input (texture)")
                };
                (
                    Family::PointwiseTex,
                    Bind::Texture(mirror),
                    Bind::Texture(self.data_texture(&t, TexelFormat::Vec4, &label)),
                )
            } else {
                consts.push(("OC8", u(oc16)));
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
            let mut consts = vec![
                ("N", u(self.chunk)),
                ("IC", u(ic)),
                ("IH", u(ih)),
                ("IW", u(iw)),
                ("OC", u(oc)),
                ("OH", u(oh)),
                ("OW", u(ow)),
                ("KH", u(c.kernel[0])),
                ("KW", u(c.kernel[1])),
                ("SY", u(c.stride[0])),
                ("SX", u(c.stride[1])),
                ("PT", u(c.padding.top)),
                ("PL", u(c.padding.left)),
                ("DY", u(c.dilation[0])),
                ("DX", u(c.dilation[1])),
                ("ICG", u(ic / c.groups)),
                ("OCG", u(ocg)),
                ("OC_TILE", u(oc_tile)),
            ];
            let label = format!("{}.weight", node.path);
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
                let input = Bind::Texture(self.mirror(node.inputs[0], TexelFormat::Scalar));
                (Family::Conv2dTex, input, Bind::Texture(self.data_texture(&t, TexelFormat::Vec4, &label)))
            } else {
                (Family::Conv2d, Bind::Buffer(input), Bind::Buffer(self.data_buffer(&weight, &label)))
            };
            let pixel_tiles = (self.chunk * oh * ow).div_ceil(4);
            let grid = [pixel_tiles.div_ceil(64) as u32, oc.div_ceil(oc_tile) as u32, 1];
            (family, consts, grid, input_bind, weight_bind)
        };
        consts.extend(tail_consts);
        consts.extend(self.out_slice(node));
        let out = self.output_for(id);
        consts.extend(activation_consts(act));
        self.dispatch(
            Kernel { family, consts, workgroups },
            &[input_bind, weight_bind, bias_buffer.into(), residual.into(), Bind::Buffer(out)],
        );
    }

    fn linear(&mut self, id: NodeId, node: &Node) -> Result<(), RuntimeError> {
        let Op::Linear { in_features, out_features, bias } = node.op else { unreachable!() };
        let input = self.buffer_of(node.inputs[0]);
        let act = node.fused.activation;
        let out = self.output_for(id);
        let weight = self.param(node, "weight").data.clone();
        let bias_buffer =
            if bias { Some(self.data_buffer(&self.param(node, "bias").data.clone(), "bias")) } else { None };
        let limit = self.binding_limit;
        let rows_per_chunk = (limit / (in_features * 4)).max(1).min(out_features);
        if in_features * 4 > limit {
            return Err(RuntimeError::Gpu(format!(
                "`{}`: one weight row ({in_features} floats) exceeds a storage binding",
                node.path
            )));
        }
        for row0 in (0..out_features).step_by(rows_per_chunk) {
            let rows = rows_per_chunk.min(out_features - row0);
            let part = self.data_buffer(
                &weight[row0 * in_features..(row0 + rows) * in_features],
                &format!("{}.weight[{row0}..]", node.path),
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
                Kernel { family: Family::Linear, consts, workgroups },
                &[Bind::Buffer(input), Bind::Buffer(part), bias_buffer.into(), Bind::Buffer(out)],
            );
        }
        Ok(())
    }
}
