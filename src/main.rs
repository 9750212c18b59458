//! The `cnnc` command line.

mod commands;

use std::process::ExitCode;

use clap::Parser;

/// The compiler recurses over expressions and module calls, as deep as the spec limits allow
/// (`cnnc::limit::…`): run every verb on a stack that holds the deepest, on any platform (a main
/// thread gets 1 MiB on Windows, 8 MiB on Linux).
const STACK_BYTES: usize = 64 << 20;

fn main() -> ExitCode {
    quiet_runtime_dir();
    cpu_driver_threads();
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors go to standard error (clap ignores a failure to write them: there is
        // nowhere left to report it), with status 2.
        Err(e) if e.use_stderr() => e.exit(),
        // --help, --version and `help VERB` are output: a write error ends with status 1 and a
        // closed pipe with 141, as for every verb's output.
        Err(e) => {
            commands::write_help(&e);
            return ExitCode::SUCCESS;
        }
    };
    let verb =
        std::thread::Builder::new().name("cnnc".into()).stack_size(STACK_BYTES).spawn(move || commands::run(cli));
    match verb.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // The panic has printed its message.
        Ok(Err(_)) => ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start a thread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Mesa's CPU Vulkan driver (lavapipe, `LP_NUM_THREADS`) runs dispatches on one thread per core
/// unless told otherwise; twice as many ran LeNet's training step 1.6-1.9x as fast and MobileNetV2's
/// inference 1.2-1.7x on a two-core machine (`docs/benchmarks.md`, 2026-12-02), four times as many
/// slower again. So cnnc asks for twice the cores (at most 32) where the user has not set it; no
/// other driver reads it. Runs before any thread starts.
fn cpu_driver_threads() {
    if std::env::var_os(cnnc::runtime::gpu::CPU_DRIVER_THREADS).is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        std::env::set_var(cnnc::runtime::gpu::CPU_DRIVER_THREADS, (2 * cores).min(32).to_string());
    }
}

/// Vulkan's window-system layers warn on every GPU verb when `XDG_RUNTIME_DIR` is unset (a
/// container, a CI job, `sudo`), though cnnc draws no windows: give them a private folder of their
/// own instead. Runs before any thread starts.
fn quiet_runtime_dir() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|d| !std::path::Path::new(&d).is_dir()) {
        use std::os::unix::fs::PermissionsExt;
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let dir = std::env::temp_dir().join(format!("cnnc-runtime-{user}"));
        if std::fs::create_dir_all(&dir).is_ok()
            && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok()
        {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}
