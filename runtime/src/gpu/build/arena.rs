//! The device resources a model is built from, addressed by typed ids: buffers, textures and their
//! views, and the caches of compiled pipelines and bind group layouts. Dispatches are made here
//! (pipeline, bind group, warm-up) and uploads recorded.

use std::collections::HashMap;

use super::warm_up::{WarmUp, WarmUpJob};
use crate::gpu::kernels::{Kernel, Slot};
use crate::gpu::record::{texture_extent, Action, Step, TexelFormat};
use crate::gpu::upload::Uploads;
use crate::gpu::Gpu;
use crate::RuntimeError;

/// A buffer of the arena, or a view of part of one ([`Arena::view`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BufferId(usize);

/// Where a [`BufferId`] lies: a whole buffer (`size` `None`) or `size` bytes from `offset`.
#[derive(Copy, Clone, Debug)]
struct Region {
    buffer: usize,
    offset: u64,
    size: Option<u64>,
    /// The transient buffer ([`Arena::transient_buffer`]) the region lies in, whose device buffer
    /// (`buffer`) is chosen by [`Arena::place_transients`].
    transient: Option<usize>,
}

/// No device buffer yet: a transient region before [`Arena::place_transients`].
const UNPLACED: usize = usize::MAX;

/// A texture of the arena (with its view).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TextureId(usize);

/// What a dispatch binds at one slot.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Bind {
    Buffer(BufferId),
    Texture(TextureId),
    /// A placeholder for an input the kernel's constants switch off.
    Unused,
}

impl From<Option<BufferId>> for Bind {
    fn from(buffer: Option<BufferId>) -> Bind {
        buffer.map_or(Bind::Unused, Bind::Buffer)
    }
}

/// Every resource of a model being built.
pub(crate) struct Arena {
    pub gpu: Gpu,
    buffers: Vec<wgpu::Buffer>,
    /// What each [`BufferId`] addresses in `buffers`.
    regions: Vec<Region>,
    /// Buffers kernels write (poisoned by `Program::poison`), as indices of `buffers`.
    activation_buffers: Vec<usize>,
    textures: Vec<wgpu::Texture>,
    views: Vec<wgpu::TextureView>,
    /// Compiled pipelines by WGSL source.
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    layouts: HashMap<&'static [Slot], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    dummy: wgpu::Buffer,
    /// Weights, biases and kernel extents to copy to the device before the first forward.
    uploads: Uploads,
    /// The thread submitting warm-up dispatches, once started.
    warm_up: Option<WarmUp>,
    /// Each transient buffer's size in bytes.
    transients: Vec<u64>,
}

impl Arena {
    pub fn new(gpu: &Gpu) -> Arena {
        let dummy = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Arena {
            gpu: gpu.clone(),
            buffers: Vec::new(),
            regions: Vec::new(),
            activation_buffers: Vec::new(),
            textures: Vec::new(),
            views: Vec::new(),
            pipelines: HashMap::new(),
            layouts: HashMap::new(),
            dummy,
            uploads: Uploads::new(&gpu.device),
            warm_up: None,
            transients: Vec::new(),
        }
    }

    /// The device buffer `id` lies in.
    pub fn buffer(&self, id: BufferId) -> &wgpu::Buffer {
        debug_assert_ne!(self.regions[id.0].buffer, UNPLACED, "a transient region is placed before use");
        &self.buffers[self.regions[id.0].buffer]
    }

    /// Where `id` begins in [`Arena::buffer`], in bytes.
    pub fn offset(&self, id: BufferId) -> u64 {
        self.regions[id.0].offset
    }

    fn push_buffer(&mut self, buffer: wgpu::Buffer) -> BufferId {
        self.buffers.push(buffer);
        self.regions.push(Region { buffer: self.buffers.len() - 1, offset: 0, size: None, transient: None });
        BufferId(self.regions.len() - 1)
    }

    /// `floats` floats of `of` (a buffer, or a view of one) from its float `start`, bound as a
    /// buffer of its own. The view's start in its buffer must be at the device's binding-offset
    /// alignment ([`Arena::view_alignment`]); the bound size is rounded up to 16 bytes, so the view
    /// must be followed by that much room.
    pub fn view(&mut self, of: BufferId, start: usize, floats: usize) -> BufferId {
        let outer = self.regions[of.0];
        let offset = outer.offset + start as u64 * 4;
        debug_assert_eq!(offset % (self.view_alignment() as u64 * 4), 0, "views are aligned");
        let size = (floats.max(4) as u64 * 4).next_multiple_of(16);
        debug_assert!(outer.size.is_none_or(|s| start as u64 * 4 + size <= s), "a view lies inside its region");
        self.regions.push(Region { buffer: outer.buffer, offset, size: Some(size), transient: outer.transient });
        BufferId(self.regions.len() - 1)
    }

    /// The alignment of a view's start, in floats: the larger of the device's storage and uniform
    /// binding-offset alignments.
    pub fn view_alignment(&self) -> usize {
        let l = &self.gpu.limits;
        (l.min_storage_buffer_offset_alignment.max(l.min_uniform_buffer_offset_alignment) as usize).div_ceil(4)
    }

    /// A buffer of at least `bytes` that kernels write.
    pub fn activation_buffer(&mut self, bytes: usize, label: &str) -> BufferId {
        self.writable_buffer(bytes, label)
    }

    /// A buffer of at least `bytes` that kernels write within one submission only, so that it may
    /// share device memory with others whose uses do not overlap its own: it has no device buffer
    /// until [`Arena::place_transients`] gives it one, and nothing may be bound to it before.
    pub fn transient_buffer(&mut self, bytes: usize) -> BufferId {
        let bytes = (bytes.max(16) as u64).next_multiple_of(16);
        self.transients.push(bytes);
        let transient = Some(self.transients.len() - 1);
        // Bound as large as the transient itself, not the buffer it comes to share.
        self.regions.push(Region { buffer: UNPLACED, offset: 0, size: Some(bytes), transient });
        BufferId(self.regions.len() - 1)
    }

    /// The transient buffer `id` lies in, if any.
    pub fn transient_of(&self, id: BufferId) -> Option<usize> {
        self.regions[id.0].transient
    }

    /// The size in bytes of each transient buffer made so far.
    pub fn transient_sizes(&self) -> &[u64] {
        &self.transients
    }

    /// Makes the device buffers of the transient buffers: transient `t` lies at the start of shared
    /// buffer `shared[t]`, which is as large as the largest transient placed in it.
    pub fn place_transients(&mut self, shared: &[usize]) {
        let count = shared.iter().map(|s| s + 1).max().unwrap_or(0);
        let mut sizes = vec![0u64; count];
        for (t, s) in shared.iter().enumerate() {
            sizes[*s] = sizes[*s].max(self.transients[t]);
        }
        let buffers: Vec<usize> = sizes
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let id = self.writable_buffer(*bytes as usize, &format!("shared transient {i}"));
                self.regions[id.0].buffer
            })
            .collect();
        for region in &mut self.regions {
            if let Some(t) = region.transient {
                region.buffer = buffers[shared[t]];
            }
        }
    }

    /// A buffer of weights that kernels write (the optimizer): the same kind of buffer as
    /// [`Arena::activation_buffer`], named for what it holds.
    pub fn weight_buffer(&mut self, bytes: usize, label: &str) -> BufferId {
        self.writable_buffer(bytes, label)
    }

    /// A buffer kernels write, which kernels may also bind as a uniform buffer where it fits one
    /// binding (the unrolled convolution's weights, the linear gradients' output gradient).
    fn writable_buffer(&mut self, bytes: usize, label: &str) -> BufferId {
        let id = self.push_buffer(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.max(16) as u64).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        self.activation_buffers.push(self.regions[id.0].buffer);
        id
    }

    /// A read-only storage buffer holding `bytes` (read as `u32` words, four bytes to a word, the
    /// first in the lowest bits; zeros after the last).
    pub fn byte_buffer(&mut self, bytes: &[u8], label: &str) -> BufferId {
        // Uploads copy whole words: pad the last one with zeros.
        let mut words = bytes.to_vec();
        words.resize(bytes.len().next_multiple_of(4), 0);
        let buffer = self.uploads.buffer(&words, wgpu::BufferUsages::STORAGE, label);
        self.push_buffer(buffer)
    }

    /// A read-only storage buffer holding `data`.
    pub fn data_buffer(&mut self, data: &[f32], label: &str) -> BufferId {
        let buffer = self.uploads.buffer(bytemuck::cast_slice(data), wgpu::BufferUsages::STORAGE, label);
        self.push_buffer(buffer)
    }

    /// A buffer holding `data` that kernels bind as a uniform buffer of vec4s (the unrolled
    /// convolution's weights); uploads come in whole vec4s, zeros after `data`.
    pub fn uniform_data_buffer(&mut self, data: &[f32], label: &str) -> BufferId {
        let buffer = self.uploads.buffer(bytemuck::cast_slice(data), wgpu::BufferUsages::UNIFORM, label);
        self.push_buffer(buffer)
    }

    pub fn new_texture(&mut self, texels: usize, format: TexelFormat, label: &str) -> TextureId {
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
        TextureId(self.textures.len() - 1)
    }

    /// A texture holding `data` (padded with zeros to whole texels and rows).
    pub fn data_texture(&mut self, data: &[f32], format: TexelFormat, label: &str) -> TextureId {
        let texels = data.len().div_ceil(format.floats());
        let t = self.new_texture(texels, format, label);
        let extent = texture_extent(texels);
        let mut padded = data.to_vec();
        padded.resize((extent.width * extent.height) as usize * format.floats(), 0.0);
        let bytes_per_row = extent.width * format.floats() as u32 * 4;
        self.uploads.texture(&self.textures[t.0], bytemuck::cast_slice(&padded), bytes_per_row);
        t
    }

    /// The step that fills a new texture from the first `floats` floats of `buffer` at this point of
    /// every forward.
    pub fn mirror(&mut self, buffer: BufferId, floats: usize, format: TexelFormat, label: &str) -> (TextureId, Step) {
        debug_assert_eq!(self.offset(buffer), 0, "a mirror copies a whole buffer");
        let texels = floats.div_ceil(format.floats());
        let t = self.new_texture(texels, format, label);
        let action = Action::Mirror {
            buffer: self.buffer(buffer).clone(),
            texture: self.textures[t.0].clone(),
            format,
            texels: texels as u32,
        };
        (t, Step { family: "mirror", action })
    }

    /// A dispatch of `kernel` over `binds`, one per slot of its family but the `shape` uniform,
    /// which is made here. A pipeline's first use is also warmed up (see [`WarmUp`]).
    pub fn dispatch(&mut self, kernel: &Kernel, binds: &[Bind]) -> Step {
        let slots = kernel.family.slots();
        let mut binds = binds.to_vec();
        if slots.last() == Some(&Slot::Uniform) {
            let contents = kernel.shape_uniform();
            let uniform = self.uploads.buffer(bytemuck::cast_slice(&contents), wgpu::BufferUsages::UNIFORM, "shape");
            binds.push(Bind::Buffer(self.push_buffer(uniform)));
        }
        debug_assert_eq!(binds.len(), slots.len(), "{}: one bind per slot", kernel.family.name());
        let source = kernel.source();
        let (pipeline, first_use) = match self.pipelines.get(&source) {
            Some(p) => (p.clone(), false),
            None => (self.pipeline(kernel, source), true),
        };
        let entries: Vec<wgpu::BindGroupEntry<'_>> = binds
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match b {
                    Bind::Buffer(b) => {
                        let r = self.regions[b.0];
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &self.buffers[r.buffer],
                            offset: r.offset,
                            size: r.size.and_then(wgpu::BufferSize::new),
                        })
                    }
                    Bind::Texture(t) => wgpu::BindingResource::TextureView(&self.views[t.0]),
                    Bind::Unused => self.dummy.as_entire_binding(),
                },
            })
            .collect();
        let layout = &self.layouts[slots].0;
        let bind_group =
            self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries });
        if first_use {
            let job =
                WarmUpJob { uploads: self.uploads.take(), pipeline: pipeline.clone(), bind_group: bind_group.clone() };
            let gpu = &self.gpu;
            self.warm_up.get_or_insert_with(|| WarmUp::start(gpu)).send(job);
        }
        let action = Action::Dispatch { pipeline, bind_group, workgroups: kernel.workgroups };
        Step { family: kernel.family.name(), action }
    }

    /// Compiles `source` for `kernel`'s family and caches it.
    fn pipeline(&mut self, kernel: &Kernel, source: String) -> wgpu::ComputePipeline {
        let label = Some(kernel.family.name());
        let desc = wgpu::ShaderModuleDescriptor { label, source: wgpu::ShaderSource::Wgsl(source.clone().into()) };
        // SAFETY: runtime bounds checks are off; every index these kernels compute stays in
        // bounds by construction (clamped with `min`, or guarded by the grid checks), which
        // the conformance suite exercises for each family on the shapes' edge cases.
        let module =
            unsafe { self.gpu.device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) };
        let slots = kernel.family.slots();
        self.layout(slots);
        let layout = &self.layouts[slots].1;
        let p = self.gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label,
            layout: Some(layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        self.pipelines.insert(source, p.clone());
        p
    }

    /// Makes the bind group and pipeline layouts for `slots` on first use.
    fn layout(&mut self, slots: &'static [Slot]) {
        let device = &self.gpu.device;
        self.layouts.entry(slots).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
                .iter()
                .enumerate()
                .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: binding_type(*slot),
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

    /// Waits for the warm-ups, submits the remaining uploads, and hands over what the program keeps:
    /// the buffers kernels write, every texture, and the device memory held so far in bytes.
    pub fn finish(mut self) -> Result<(Vec<wgpu::Buffer>, Vec<wgpu::Texture>, u64), RuntimeError> {
        if let Some(warm_up) = self.warm_up.take() {
            warm_up.finish()?;
        }
        self.uploads.check()?;
        self.gpu.queue.submit([self.uploads.take()]);
        let activations = self.activation_buffers.iter().map(|b| self.buffers[*b].clone()).collect();
        let texture_bytes: u64 = self
            .textures
            .iter()
            .map(|t| {
                let floats = if t.format() == wgpu::TextureFormat::R32Float { 1 } else { 4 };
                u64::from(t.width()) * u64::from(t.height()) * floats * 4
            })
            .sum();
        let bytes = self.buffers.iter().map(wgpu::Buffer::size).sum::<u64>() + texture_bytes;
        Ok((activations, self.textures, bytes))
    }
}

fn binding_type(slot: Slot) -> wgpu::BindingType {
    match slot {
        Slot::Texture => wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        Slot::Read | Slot::Output => wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: slot == Slot::Read },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        Slot::Uniform => wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
    }
}
