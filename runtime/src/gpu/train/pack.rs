//! The trainable tensors packed into a few buffers, so that one optimizer dispatch per pack updates
//! them all: each trainable parameter, its gradient and its optimizer state lie at the same place
//! of their pack's parameter, gradient and state buffers, and every kernel binds its tensor as a
//! view there. The gaps that keep views aligned stay zero in all of them, which every update rule
//! leaves at zero.

use cnnc_ir::autodiff::Backward;
use cnnc_ir::graph::Param;

use crate::gpu::build::arena::{Arena, BufferId};

/// The buffers of one pack, each `floats` long.
pub(super) struct Pack {
    pub floats: usize,
    pub params: BufferId,
    pub grads: BufferId,
    /// One buffer per optimizer state (`Optimizer::state_names`).
    pub states: Vec<BufferId>,
    /// The tensors it holds, in order.
    pub names: Vec<String>,
}

/// A packed tensor's views: its parameter, gradient and optimizer states.
struct Views {
    name: String,
    param: BufferId,
    grad: BufferId,
    states: Vec<BufferId>,
}

/// The trainable tensors of a step, packed.
pub(super) struct Packed {
    pub packs: Vec<Pack>,
    tensors: Vec<Views>,
}

impl Packed {
    /// Packs the tensors of `params` that `backward` computes gradients for, in their order, with
    /// `states` optimizer states each; a pack stays within one storage binding and one buffer.
    pub fn new(arena: &mut Arena, params: &[&Param], backward: &Backward, states: usize) -> Packed {
        let trained: Vec<&Param> = params
            .iter()
            .copied()
            .filter(|p| backward.steps.iter().any(|s| s.param_grads.iter().any(|g| g.name == p.name)))
            .collect();
        let lens: Vec<usize> = trained.iter().map(|p| p.shape.iter().product()).collect();
        let limits = &arena.gpu.limits;
        let max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size) / 4;
        let packing = pack(&lens, arena.view_alignment(), max as usize);
        let mut packs: Vec<Pack> = packing
            .packs
            .iter()
            .map(|&floats| Pack {
                floats,
                params: arena.weight_buffer(floats * 4, "parameters"),
                grads: arena.activation_buffer(floats * 4, "gradients"),
                states: (0..states).map(|_| arena.activation_buffer(floats * 4, "optimizer state")).collect(),
                names: Vec::new(),
            })
            .collect();
        let mut tensors = Vec::new();
        for ((p, &len), &(pack, start)) in trained.iter().zip(&lens).zip(&packing.places) {
            let Pack { params, grads, states, names, .. } = &mut packs[pack];
            names.push(p.name.clone());
            tensors.push(Views {
                name: p.name.clone(),
                param: arena.view(*params, start, len),
                grad: arena.view(*grads, start, len),
                states: states.iter().map(|s| arena.view(*s, start, len)).collect(),
            });
        }
        Packed { packs, tensors }
    }

    fn views(&self, name: &str) -> Option<&Views> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A trainable tensor's parameter view (`None` for a frozen one).
    pub fn param(&self, name: &str) -> Option<BufferId> {
        self.views(name).map(|v| v.param)
    }

    /// A trainable tensor's gradient view.
    pub fn grad(&self, name: &str) -> Option<BufferId> {
        self.views(name).map(|v| v.grad)
    }

    /// A trainable tensor's view of optimizer state `i`.
    pub fn state(&self, name: &str, i: usize) -> BufferId {
        self.views(name).expect("trainable tensors are packed").states[i]
    }

    /// What pack `i` holds, for a profile: `conv1.weight … fc3.bias (10 tensors)`.
    pub fn contents(&self, i: usize) -> String {
        match &self.packs[i].names[..] {
            [one] => one.clone(),
            [first, .., last] => format!("{first} … {last} ({} tensors)", self.packs[i].names.len()),
            [] => String::new(),
        }
    }
}

/// Where tensors lie in packs: each pack's length and each tensor's pack and first float.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Packing {
    /// Floats of each pack (a multiple of 4).
    pub packs: Vec<usize>,
    /// For each tensor, in the order given: its pack and its first float there.
    pub places: Vec<(usize, usize)>,
}

/// Packs tensors of `lens` floats in order, each starting at a multiple of `align` floats, into
/// packs of at most `max` floats (a tensor longer than `max` gets a pack of its own).
pub(super) fn pack(lens: &[usize], align: usize, max: usize) -> Packing {
    let mut packs: Vec<usize> = Vec::new();
    let mut places = Vec::with_capacity(lens.len());
    let mut next = 0usize;
    for &len in lens {
        let end = |start: usize| start + len.max(4).next_multiple_of(4);
        if packs.is_empty() || (end(next) > max && next > 0) {
            packs.push(0);
            next = 0;
        }
        let pack = packs.len() - 1;
        places.push((pack, next));
        packs[pack] = end(next);
        next = end(next).next_multiple_of(align.max(4));
    }
    Packing { packs, places }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_start_aligned_and_packs_respect_the_limit() {
        let p = pack(&[150, 6, 2400, 16, 48000, 120, 10], 64, 50_000);
        assert_eq!(p.places, vec![(0, 0), (0, 192), (0, 256), (0, 2688), (1, 0), (1, 48000), (1, 48128)]);
        assert_eq!(p.packs, vec![2704, 48140]);
    }

    #[test]
    fn a_tensor_over_the_limit_has_a_pack_of_its_own() {
        let p = pack(&[10, 100, 10], 64, 50);
        assert_eq!(p.places, vec![(0, 0), (1, 0), (2, 0)]);
        assert_eq!(p.packs, vec![12, 100, 12]);
    }

    #[test]
    fn no_tensors_no_packs() {
        assert_eq!(pack(&[], 64, 100), Packing { packs: vec![], places: vec![] });
    }
}
