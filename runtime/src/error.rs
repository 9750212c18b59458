//! Runtime errors: each names the file or tensor at fault and what to do.

use std::path::PathBuf;

use crate::weights::WeightReport;

/// Everything that can go wrong outside the spec itself.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("`{path}` is not a usable .npy file: {message}")]
    Npy { path: PathBuf, message: String },
    #[error("`{path}` is not a usable weights file: {message}")]
    WeightsFile { path: PathBuf, message: String },
    #[error("the weights do not fit the spec:\n{0}")]
    Weights(WeightReport),
    #[error("{0}")]
    NoAdapter(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("wrong input: {0}")]
    Input(String),
    #[error("inconsistent layer plan: {0}")]
    Plan(#[from] cnnc_ir::PlanError),
}
