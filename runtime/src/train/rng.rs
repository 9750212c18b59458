//! The counter-based random numbers of dropout and stochastic depth: each draw is a pure function of
//! (seed, step, node, element), so a mask is recomputed in the backward pass instead of stored, and a
//! GPU kernel can draw the same numbers with 32-bit integer arithmetic.

/// Chris Wellons' `lowbias32` integer hash (a bijection on u32 with low bias).
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The key of one node's draws in one step.
pub fn key(seed: u64, step: u64, node: usize) -> u32 {
    let fold = |v: u64| (v as u32) ^ ((v >> 32) as u32);
    hash32(fold(seed) ^ hash32(fold(step) ^ hash32(node as u32)))
}

/// A uniform number in `[0, 1)` with 24 random bits (exact in f32).
pub fn uniform(key: u32, element: usize) -> f64 {
    f64::from(hash32(key ^ hash32(element as u32)) >> 8) / f64::from(1u32 << 24)
}

/// The scale dropout with probability `p` applies to `element`: 0 when dropped, `1/(1 − p)` when
/// kept (PyTorch's inverted dropout; `p = 1` drops everything). The draw is compared with `p` rounded
/// to f32, as the GPU kernel compares it, so both executors drop the same elements.
pub fn keep_scale(key: u32, element: usize, p: f64) -> f64 {
    if uniform(key, element) < f64::from(p as f32) {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_roughly_uniform() {
        let k = key(7, 3, 12);
        assert_eq!(k, key(7, 3, 12));
        assert_ne!(k, key(7, 4, 12));
        assert_ne!(k, key(8, 3, 12));
        let n = 100_000;
        let kept = (0..n).filter(|e| keep_scale(k, *e, 0.3) > 0.0).count();
        assert!((kept as f64 / n as f64 - 0.7).abs() < 0.01, "{kept}");
        assert!((0..n).map(|e| uniform(k, e)).all(|u| (0.0..1.0).contains(&u)));
        assert_eq!(keep_scale(k, 0, 1.0), 0.0);
        assert_eq!(keep_scale(k, 0, 0.0), 1.0);
    }
}
