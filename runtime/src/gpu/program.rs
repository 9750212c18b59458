//! What a built model holds besides its layers: the input, output and read-back buffers, and the
//! batch chunking. A forward uploads a chunk, records the layers into one command buffer, submits
//! it and reads the output back.

use super::record::Recorder;
use super::Gpu;
use crate::{RuntimeError, Tensor};

/// The buffers and batch chunking of a built model ([`super::build`]).
pub struct Program {
    pub(crate) gpu: Gpu,
    pub(crate) input: wgpu::Buffer,
    pub(crate) output: wgpu::Buffer,
    pub(crate) staging: wgpu::Buffer,
    /// Textures the kernels read (weights and value mirrors), kept with the model.
    pub(crate) _textures: Vec<wgpu::Texture>,
    /// Batch items per forward pass (a batch larger than one binding allows runs in chunks).
    pub chunk: usize,
    pub(crate) item_shape: Vec<usize>,
    pub(crate) output_item_shape: Vec<usize>,
    /// Buffers that hold activations (written by kernels), for poisoning.
    pub(crate) activations: Vec<wgpu::Buffer>,
    /// Bytes of device memory this model holds (weights, activations, staging).
    pub device_bytes: u64,
}

impl Program {
    /// The input shape without batch.
    pub fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }

    /// The output shape without batch.
    pub fn output_item_shape(&self) -> &[usize] {
        &self.output_item_shape
    }

    /// Fills every activation buffer with NaN, so an element a kernel fails to write shows up.
    pub fn poison(&self) {
        for b in &self.activations {
            let nan: Vec<f32> = vec![f32::NAN; (b.size() / 4) as usize];
            self.gpu.queue.write_buffer(b, 0, bytemuck::cast_slice(&nan));
        }
    }

    /// Runs a batch `[N, ...]` and returns the outputs `[N, ...]`; `record` records the layers.
    pub fn run(&self, input: &Tensor, record: impl Fn(&mut Recorder)) -> Result<Tensor, RuntimeError> {
        if input.shape.len() != self.item_shape.len() + 1 || input.shape[1..] != self.item_shape[..] {
            return Err(RuntimeError::InputShape { item: self.item_shape.clone(), found: input.shape.clone() });
        }
        let out = self.forward(&input.data, record)?;
        let mut shape = vec![input.shape[0]];
        shape.extend(&self.output_item_shape);
        Ok(Tensor::new(shape, out))
    }

    /// Runs a batch given as flat NCHW floats (its length a whole number of items) and returns the
    /// flat outputs; `record` records the layers. Each chunk of the batch is one submission.
    pub fn forward(&self, input: &[f32], record: impl Fn(&mut Recorder)) -> Result<Vec<f32>, RuntimeError> {
        let item: usize = self.item_shape.iter().product();
        if input.is_empty() || !input.len().is_multiple_of(item) {
            return Err(RuntimeError::InputLength { item: self.item_shape.clone(), floats: input.len() });
        }
        let n = input.len() / item;
        let out_item: usize = self.output_item_shape.iter().product();
        let mut out = Vec::with_capacity(n * out_item);
        for start in (0..n).step_by(self.chunk) {
            let take = (n - start).min(self.chunk);
            let mut data = input[start * item..(start + take) * item].to_vec();
            data.resize(self.chunk * item, 0.0);
            let result = self.forward_chunk(&data, &record)?;
            out.extend_from_slice(&result[..take * out_item]);
        }
        Ok(out)
    }

    /// One chunk through the network: upload, one command buffer, read back.
    fn forward_chunk(&self, data: &[f32], record: &impl Fn(&mut Recorder)) -> Result<Vec<f32>, RuntimeError> {
        let device = &self.gpu.device;
        self.gpu.queue.write_buffer(&self.input, 0, bytemuck::cast_slice(data));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        let mut recorder = Recorder::new(&mut encoder, None);
        record(&mut recorder);
        recorder.finish();
        encoder.copy_buffer_to_buffer(&self.output, 0, &self.staging, 0, self.staging.size());
        self.gpu.queue.submit([encoder.finish()]);
        Ok(bytemuck::cast_slice::<u8, f32>(&self.read_back(&self.staging)?).to_vec())
    }

    /// Waits for the queue and returns the bytes of a `MAP_READ` buffer.
    pub(crate) fn read_back(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, RuntimeError> {
        map_and_read(&self.gpu, buffer)
    }
}

/// The first `floats` floats of a storage buffer (with `COPY_SRC`), copied out through a staging
/// buffer once the queue is done with it.
pub(crate) fn read_buffer(gpu: &Gpu, buffer: &wgpu::Buffer, floats: usize) -> Result<Vec<f32>, RuntimeError> {
    read_buffer_at(gpu, buffer, 0, floats)
}

/// The `floats` floats of `buffer` from byte `offset` (a multiple of 4), read back.
pub(crate) fn read_buffer_at(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    offset: u64,
    floats: usize,
) -> Result<Vec<f32>, RuntimeError> {
    let bytes = (floats * 4) as u64;
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read back"),
        size: bytes.max(4).next_multiple_of(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read back") });
    encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes);
    gpu.queue.submit([encoder.finish()]);
    Ok(bytemuck::cast_slice::<u8, f32>(&map_and_read(gpu, &staging)?)[..floats].to_vec())
}

/// Waits for the queue and returns the bytes of a `MAP_READ` buffer.
fn map_and_read(gpu: &Gpu, buffer: &wgpu::Buffer) -> Result<Vec<u8>, RuntimeError> {
    let slice = buffer.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    let failed =
        |e: &dyn std::fmt::Display| RuntimeError::Device { during: "reading results back", message: e.to_string() };
    gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| failed(&e))?;
    rx.recv().map_err(|e| failed(&e))?.map_err(|e| failed(&e))?;
    let bytes = slice.get_mapped_range().map_err(|e| failed(&e))?.to_vec();
    buffer.unmap();
    Ok(bytes)
}
