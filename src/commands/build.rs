//! `cnnc build`: a spec as Rust — a module, or a standalone crate around it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cnnc::compiler::codegen;

use super::{compile_model_with_sources, emit, SpecPath, EXIT_USAGE};

#[derive(clap::Args)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Write the module to this file instead of standard output.
    #[arg(short, long, value_name = "FILE.rs", conflicts_with = "crate_dir")]
    output: Option<PathBuf>,
    /// Write a standalone Cargo crate into this directory (created if needed): Cargo.toml,
    /// src/lib.rs (the model) and src/main.rs (a binary that runs it like `cnnc run`).
    #[arg(long = "crate", value_name = "DIR")]
    crate_dir: Option<PathBuf>,
    /// The `cnnc-runtime` crate the generated crate depends on; defaults to this cnnc checkout's.
    #[arg(long, value_name = "DIR", requires = "crate_dir")]
    runtime: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let (graph, sources) = match compile_model_with_sources(&args.spec) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let module = codegen::generate(&graph, &sources);
    let Some(dir) = &args.crate_dir else {
        return emit(args.output.as_deref(), &module);
    };
    let runtime = args.runtime.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime"));
    if !runtime.join("Cargo.toml").is_file() {
        eprintln!("error: no cnnc-runtime crate at `{}`; pass its directory with --runtime DIR", runtime.display());
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = std::fs::canonicalize(&runtime).unwrap_or(runtime);
    let files = [
        ("Cargo.toml", codegen::manifest(&graph, &runtime.to_string_lossy())),
        ("src/lib.rs", module),
        ("src/main.rs", codegen::main_rs(&graph)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        if let Err(e) = written {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    eprintln!(
        "wrote crate `{}` to {} (build it with `cargo build --release` there)",
        codegen::package_name(&graph),
        dir.display()
    );
    ExitCode::SUCCESS
}
