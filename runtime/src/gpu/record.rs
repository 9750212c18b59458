//! A layer's GPU work, made once ([`GpuLayer`]), and recording it into a command buffer
//! ([`Recorder`]).

use super::kernels::TEXTURE_WIDTH;

/// The dispatches of one layer, with the copies that fill texture mirrors of values it reads. Its
/// pipelines, bind groups, weights and textures are made when the model is built; recording it
/// only replays them.
pub struct GpuLayer {
    /// The layer path from the spec.
    pub path: String,
    pub(crate) steps: Vec<Step>,
}

impl GpuLayer {
    /// Kernel dispatches this layer records.
    pub fn dispatches(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s.action, Action::Dispatch { .. })).count()
    }

    /// The kernel family of each step (`mirror` for texture copies), in order.
    pub fn step_families(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.steps.iter().map(|s| s.family)
    }
}

/// One step of a layer.
pub(crate) struct Step {
    /// The kernel family, or `mirror`.
    pub family: &'static str,
    pub action: Action,
}

pub(crate) enum Action {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
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
pub(crate) enum TexelFormat {
    Scalar,
    Vec4,
}

impl TexelFormat {
    pub fn floats(self) -> usize {
        match self {
            TexelFormat::Scalar => 1,
            TexelFormat::Vec4 => 4,
        }
    }

    pub fn wgpu(self) -> wgpu::TextureFormat {
        match self {
            TexelFormat::Scalar => wgpu::TextureFormat::R32Float,
            TexelFormat::Vec4 => wgpu::TextureFormat::Rgba32Float,
        }
    }
}

/// The texture extent holding `texels` texels in rows of [`TEXTURE_WIDTH`].
pub(crate) fn texture_extent(texels: usize) -> wgpu::Extent3d {
    let width = TEXTURE_WIDTH as usize;
    wgpu::Extent3d { width: width as u32, height: texture_rows(texels) as u32, depth_or_array_layers: 1 }
}

/// Rows of a texture holding `texels`, rounded up to a count that is not a power of two: llvmpipe
/// compiles a pipeline once per combination of its textures' power-of-two-ness, so keeping every
/// height on one side of that line lets layers share their compiled kernels. (At most two rows more.)
pub(crate) fn texture_rows(texels: usize) -> usize {
    match texels.div_ceil(TEXTURE_WIDTH as usize) {
        0..=2 => 3,
        rows if rows.is_power_of_two() => rows + 1,
        rows => rows,
    }
}

/// Records layers into a command encoder: consecutive dispatches share one compute pass, and each
/// mirror copy runs between passes. With timestamps, every dispatch gets a pass of its own whose
/// start and end times go to queries `2i` and `2i + 1` for the `i`-th dispatch.
pub struct Recorder<'e> {
    encoder: &'e mut wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    timestamps: Option<&'e wgpu::QuerySet>,
    query: u32,
}

impl<'e> Recorder<'e> {
    pub(crate) fn new(encoder: &'e mut wgpu::CommandEncoder, timestamps: Option<&'e wgpu::QuerySet>) -> Recorder<'e> {
        Recorder { encoder, pass: None, timestamps, query: 0 }
    }

    /// Records every step of `layer`.
    pub fn layer(&mut self, layer: &GpuLayer) {
        for step in &layer.steps {
            self.step(step);
        }
    }

    pub(crate) fn step(&mut self, step: &Step) {
        match &step.action {
            Action::Dispatch { pipeline, bind_group, workgroups } => {
                if self.timestamps.is_some() {
                    self.pass = None;
                }
                let (timestamps, query) = (self.timestamps, self.query);
                let encoder = &mut *self.encoder;
                let pass = self.pass.get_or_insert_with(|| {
                    let timestamp_writes = timestamps.map(|query_set| wgpu::ComputePassTimestampWrites {
                        query_set,
                        beginning_of_pass_write_index: Some(query),
                        end_of_pass_write_index: Some(query + 1),
                    });
                    encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes })
                        .forget_lifetime()
                });
                self.query += 2;
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                let [x, y, z] = *workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
            Action::Mirror { buffer, texture, format, texels } => {
                self.pass = None;
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
                    copy(self.encoder, 0, width, full);
                }
                if rest > 0 {
                    copy(self.encoder, full, rest, 1);
                }
            }
        }
    }

    /// Ends the open compute pass, so the encoder can take other commands.
    pub(crate) fn finish(mut self) {
        self.pass = None;
    }
}

/// Whether `dispatches` can be timed with GPU timestamps: the device has them and one query set
/// holds a pair per dispatch.
pub(crate) fn can_time_dispatches(gpu: &super::Gpu, dispatches: usize) -> bool {
    gpu.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
        && (1..=wgpu::QUERY_SET_MAX_QUERIES as usize).contains(&(2 * dispatches))
}

/// Records `record` (which makes `dispatches` dispatches) into one submission with a timestamp pair
/// around each dispatch, and returns each dispatch's seconds in order. Check
/// [`can_time_dispatches`] first.
pub(crate) fn time_dispatches(
    gpu: &super::Gpu,
    dispatches: usize,
    record: impl FnOnce(&mut Recorder),
) -> Result<Vec<f64>, crate::RuntimeError> {
    let device = &gpu.device;
    let count = 2 * dispatches as u32;
    let set = device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("dispatch times"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let resolved = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("dispatch times"),
        size: u64::from(count) * 8,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed") });
    let mut recorder = Recorder::new(&mut encoder, Some(&set));
    record(&mut recorder);
    recorder.finish();
    encoder.resolve_query_set(&set, 0..count, &resolved, 0);
    gpu.queue.submit([encoder.finish()]);
    // Each timestamp is a little-endian u64: two f32-sized words, low first.
    let words = super::program::read_buffer(gpu, &resolved, 2 * count as usize)?;
    let ticks: Vec<u64> =
        words.chunks(2).map(|w| u64::from(w[0].to_bits()) | (u64::from(w[1].to_bits()) << 32)).collect();
    let period_s = f64::from(gpu.queue.get_timestamp_period()) * 1e-9;
    Ok(ticks.chunks(2).map(|p| p[1].saturating_sub(p[0]) as f64 * period_s).collect())
}

/// Times `steps` one submission each, waiting for each (where timestamps are missing): wall-clock
/// seconds per step, each including a submission's overhead.
pub(crate) fn time_submissions<'s>(
    gpu: &super::Gpu,
    steps: impl IntoIterator<Item = &'s Step>,
) -> Result<Vec<f64>, crate::RuntimeError> {
    let mut seconds = Vec::new();
    for step in steps {
        let start = std::time::Instant::now();
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        let mut recorder = Recorder::new(&mut encoder, None);
        recorder.step(step);
        recorder.finish();
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| crate::RuntimeError::Device { during: "timing a dispatch", message: e.to_string() })?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    Ok(seconds)
}
