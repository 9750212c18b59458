//! `cnnc devices`: the GPU adapters wgpu can use, with the limits that matter to cnnc.

use super::stdout::errln;
use super::stdout::outln;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> ExitCode {
    let adapters = cnnc::runtime::gpu::adapters();
    if adapters.is_empty() {
        errln!(
            "error: wgpu found no Vulkan, Metal or DX12 adapter. On Linux without a GPU, install Mesa's software \
             Vulkan driver: apt-get install mesa-vulkan-drivers"
        );
        return ExitCode::from(1);
    }
    for (i, a) in adapters.iter().enumerate() {
        let marker = if i == 0 { " (default)" } else { "" };
        outln!("[{i}]{marker} {a}");
    }
    ExitCode::SUCCESS
}
