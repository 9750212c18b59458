//! Finding a GPU adapter and opening a device with the adapter's real limits.

use std::fmt;

use crate::RuntimeError;

/// The environment variable that sets how many threads Mesa's CPU Vulkan driver (lavapipe) runs
/// dispatches on, one per core where unset; no other driver reads it. The `cnnc` command sets it to
/// twice the cores where the user has not (see its `main`); a program using this library sets it
/// itself, before it starts any thread.
pub const CPU_DRIVER_THREADS: &str = "LP_NUM_THREADS";

/// The threads a CPU adapter (device type CPU: lavapipe) runs dispatches on, as
/// [`CPU_DRIVER_THREADS`] sets them; `None` for other adapters, or where it is unset or not a number.
pub fn cpu_driver_threads(info: &wgpu::AdapterInfo) -> Option<u32> {
    if info.device_type != wgpu::DeviceType::Cpu {
        return None;
    }
    std::env::var(CPU_DRIVER_THREADS).ok()?.trim().parse().ok()
}

/// An opened device, with what it is and what it allows.
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

/// What `cnnc devices` shows of one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.info;
        let l = &self.limits;
        writeln!(f, "{} ({:?}, {:?})", i.name, i.backend, i.device_type)?;
        writeln!(f, "  driver: {} {}", i.driver, i.driver_info)?;
        if let Some(threads) = cpu_driver_threads(i) {
            writeln!(f, "  driver threads: {threads} ({CPU_DRIVER_THREADS})")?;
        }
        writeln!(f, "  max storage buffer binding: {} MiB", l.max_storage_buffer_binding_size / (1 << 20))?;
        writeln!(f, "  max buffer size: {} MiB", l.max_buffer_size / (1 << 20))?;
        writeln!(f, "  max storage buffers per stage: {}", l.max_storage_buffers_per_shader_stage)?;
        writeln!(
            f,
            "  max workgroup size: {} ({} invocations)",
            l.max_compute_workgroup_size_x, l.max_compute_invocations_per_workgroup
        )?;
        write!(f, "  max workgroups per dimension: {}", l.max_compute_workgroups_per_dimension)
    }
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu can see, best first (discrete, integrated, virtual, CPU).
pub fn adapters() -> Vec<AdapterSummary> {
    let mut all: Vec<AdapterSummary> = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|a| AdapterSummary { info: a.get_info(), limits: a.limits() })
        .collect();
    all.sort_by_key(|a| rank(a.info.device_type));
    all
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Opens the best adapter, or the first whose name or backend contains `choice`
/// (case-insensitive; from `--adapter` or the `CNNC_ADAPTER` environment variable).
pub fn open(choice: Option<&str>) -> Result<Gpu, RuntimeError> {
    let choice = choice.map(str::to_string).or_else(|| std::env::var("CNNC_ADAPTER").ok()).filter(|c| !c.is_empty());
    let mut adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    let tried: Vec<String> =
        adapters.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend)).collect();
    let chosen = match &choice {
        Some(c) => {
            let c = c.to_lowercase();
            adapters.into_iter().find(|a| {
                let i = a.get_info();
                i.name.to_lowercase().contains(&c) || format!("{:?}", i.backend).to_lowercase() == c
            })
        }
        None => adapters.into_iter().next(),
    };
    let Some(adapter) = chosen else {
        return Err(RuntimeError::NoAdapter { requested: choice, found: tried });
    };
    let info = adapter.get_info();
    let limits = adapter.limits();
    let desc = wgpu::DeviceDescriptor {
        label: Some("cnnc"),
        // Timestamp queries time each layer in `cnnc bench --layers` where the adapter has them.
        required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc))
        .map_err(|e| RuntimeError::DeviceRefused { adapter: info.name.clone(), reason: e.to_string() })?;
    Ok(Gpu { device, queue, info, limits })
}
