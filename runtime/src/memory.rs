//! Host memory asked for before it is used: an allocation the machine cannot make is an error
//! naming what needed it, instead of the process aborting with "memory allocation failed".
//!
//! The probe reserves (and at once frees) the bytes; on Linux that fails for a request the kernel's
//! overcommit rules refuse outright, such as one beyond the machine's memory and swap together.

use cnnc_ir::graph::{Node, Param};

use crate::RuntimeError;

/// Whether `len` values of `T` could be allocated now.
fn can_allocate<T>(len: usize) -> bool {
    let mut probe: Vec<T> = Vec::new();
    probe.try_reserve_exact(len).is_ok()
}

/// Checks that the output of `node` for a batch of `batch` items, as values of `T` (`f32` for
/// inference, `f64` for the CPU reference training step), fits in host memory.
///
/// # Errors
/// [`RuntimeError::HostMemory`] naming the layer and its place in the spec.
pub fn reserve_output<T>(node: &Node, batch: usize) -> Result<(), RuntimeError> {
    let len = node.shape.dims().iter().try_fold(batch, |n, d| n.checked_mul(*d));
    match len {
        Some(n) if can_allocate::<T>(n) => Ok(()),
        _ => Err(RuntimeError::HostMemory {
            what: format!("the output of layer `{}` ({} for a batch of {batch})", node.path, node.shape),
            span: Some(node.span),
            bytes: bytes::<T>(len),
            fix: "use a smaller batch, or give the model smaller inputs",
        }),
    }
}

/// Checks that every tensor of `params` fits in host memory together.
///
/// # Errors
/// [`RuntimeError::HostMemory`] naming the largest tensor.
pub fn reserve_weights(params: &[Param]) -> Result<(), RuntimeError> {
    let floats = params
        .iter()
        .try_fold(0usize, |n, p| n.checked_add(p.shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d))?));
    if floats.is_some_and(can_allocate::<f32>) {
        return Ok(());
    }
    let largest = params.iter().max_by_key(|p| p.shape.iter().fold(1u128, |a, d| a * *d as u128));
    let what = match largest {
        Some(p) => format!("the model's weights (the largest, `{}` {:?})", p.name, p.shape),
        None => "the model's weights".to_string(),
    };
    Err(RuntimeError::HostMemory {
        what,
        span: None,
        bytes: bytes::<f32>(floats),
        fix: "make the layers smaller (a linear layer's weight is outputs × inputs)",
    })
}

/// The bytes of `len` values of `T`, saturating (`None`: past `usize`).
fn bytes<T>(len: Option<usize>) -> u64 {
    len.map_or(u64::MAX, |n| (n as u64).saturating_mul(std::mem::size_of::<T>() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_no_machine_can_make_is_refused() {
        assert!(can_allocate::<f32>(1 << 20));
        // 2⁶⁰ floats (4 EiB): the bytes fit in usize, so the allocator itself is asked, and no
        // machine's address space holds them.
        assert!(!can_allocate::<f32>(1 << 60), "more than the address space");
        assert_eq!(bytes::<f64>(Some(3)), 24);
        assert_eq!(bytes::<f32>(None), u64::MAX);
    }
}
