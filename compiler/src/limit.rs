//! The work limits a user may raise through the environment (`CNNC_MAX_TOKENS`,
//! `CNNC_MAX_EXPANSION`, `CNNC_MAX_VALUE_SIZE`): each is read once.

use std::sync::OnceLock;

/// The positive whole number in the environment variable `name`, or `default` when it is unset or
/// not one; read once into `cell`.
pub fn from_env(cell: &'static OnceLock<usize>, name: &str, default: usize) -> usize {
    *cell.get_or_init(|| {
        std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0).unwrap_or(default)
    })
}
