//! Uploading a model's constant data (weights, biases, kernel extents) while it is built without
//! going through the queue: each upload is a staging buffer the CPU writes directly plus a copy
//! recorded into a command buffer, which the builder takes and submits before each warm-up dispatch
//! and when the model is finished. Queue writes would wait for a submission in flight (the warm-up
//! dispatches, see `build/warm_up.rs`) for as long as it runs.

use crate::RuntimeError;

/// The copies recorded so far.
pub(crate) struct Uploads {
    device: wgpu::Device,
    encoder: wgpu::CommandEncoder,
    /// The first staging buffer that could not be written, reported by [`Uploads::check`].
    failed: Option<String>,
}

impl Uploads {
    pub fn new(device: &wgpu::Device) -> Uploads {
        let encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("uploads") });
        Uploads { device: device.clone(), encoder, failed: None }
    }

    /// A buffer of `usage` that will hold `bytes` (a multiple of 4 bytes long), in whole 16-byte
    /// vec4s (zeros after `bytes`), so that kernels may read it as an `array<vec4<f32>>`.
    pub fn buffer(&mut self, bytes: &[u8], usage: wgpu::BufferUsages, label: &str) -> wgpu::Buffer {
        let size = bytes.len().max(16).next_multiple_of(16) as u64;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let staging = self.staging(bytes, label);
        self.encoder.copy_buffer_to_buffer(&staging, 0, &buffer, 0, staging.size());
        buffer
    }

    /// Fills `texture` with `bytes`, rows of `bytes_per_row` (a multiple of 256).
    pub fn texture(&mut self, texture: &wgpu::Texture, bytes: &[u8], bytes_per_row: u32) {
        let staging = self.staging(bytes, "texture upload");
        self.encoder.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: &staging,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(bytes_per_row),
                    rows_per_image: None,
                },
            },
            texture.as_image_copy(),
            texture.size(),
        );
    }

    /// A mappable buffer written directly (mapping a buffer made mappable needs no queue).
    fn staging(&mut self, bytes: &[u8], label: &str) -> wgpu::Buffer {
        let size = bytes.len().max(16) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        match staging.slice(..).get_mapped_range_mut() {
            Ok(mut view) => view.slice(..bytes.len()).copy_from_slice(bytes),
            Err(e) => {
                self.failed.get_or_insert_with(|| format!("could not write the upload of `{label}`: {e}"));
            }
        }
        staging.unmap();
        staging
    }

    /// The copies recorded so far, as a command buffer to submit (later copies start a new one).
    pub fn take(&mut self) -> wgpu::CommandBuffer {
        let next = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("uploads") });
        std::mem::replace(&mut self.encoder, next).finish()
    }

    /// Whether every staging buffer was written.
    pub fn check(&self) -> Result<(), RuntimeError> {
        match &self.failed {
            Some(failure) => Err(RuntimeError::Device { during: "uploading weights", message: failure.clone() }),
            None => Ok(()),
        }
    }
}
