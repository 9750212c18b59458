//! Frozen batch norms. A batch norm whose parameters are all frozen runs while training as
//! torchvision's `FrozenBatchNorm2d` does (and a Keras batch norm with `trainable = False`): it
//! normalises with its running statistics and leaves them as they are, so a frozen backbone
//! computes while training what it computes at inference. Since nothing about it changes, it is
//! the per-channel affine map `x·s + t` with `s = γ / √(running_var + ε)` and
//! `t = β − running_mean·s`, and the trainer runs it as that.

use cnnc_ir::graph::{Graph, Op, Param, ParamKind};

use crate::weights::Weights;
use crate::{RuntimeError, Tensor};

/// `graph` with every batch norm whose parameters `frozen` all selects turned into its fixed
/// per-channel affine map, and the tensors of those batch norms (which the trainer no longer
/// holds, and which a checkpoint must still carry), taken from `weights`.
///
/// # Errors
/// [`RuntimeError::MissingWeight`] when `weights` lack a frozen batch norm's tensor.
pub fn freeze_batch_norms(
    graph: &Graph,
    weights: &Weights,
    frozen: impl Fn(&Param) -> bool,
) -> Result<(Graph, Weights), RuntimeError> {
    let mut out = graph.clone();
    let mut kept = Weights::default();
    let ids: Vec<_> = graph.training_nodes().map(|(id, _)| id).collect();
    for id in ids {
        let node = graph.node(id);
        let Op::BatchNorm { channels, eps, .. } = node.op else { continue };
        if node.params.is_empty() || !node.params.iter().all(&frozen) {
            continue;
        }
        let tensor = |kind: ParamKind| -> Result<Option<&Tensor>, RuntimeError> {
            let Some(p) = node.params.iter().find(|p| p.kind == kind) else { return Ok(None) };
            weights.get(&p.name).map(Some).ok_or_else(|| RuntimeError::MissingWeight { name: p.name.clone() })
        };
        let value = |t: Option<&Tensor>, c: usize, default: f64| t.map_or(default, |t| f64::from(t.data[c]));
        let (gamma, beta) = (tensor(ParamKind::Weight)?, tensor(ParamKind::Bias)?);
        let (mean, var) = (tensor(ParamKind::RunningMean)?, tensor(ParamKind::RunningVar)?);
        let scale: Vec<f64> = (0..channels).map(|c| value(gamma, c, 1.0) / (value(var, c, 1.0) + eps).sqrt()).collect();
        let shift: Vec<f64> = (0..channels).map(|c| value(beta, c, 0.0) - value(mean, c, 0.0) * scale[c]).collect();
        for p in &node.params {
            kept.insert(p.name.clone(), weights.get(&p.name).expect("read above").clone());
        }
        let target = out.node_mut(id);
        target.op = Op::ChannelAffine { scale, shift };
        target.params.clear();
    }
    Ok((out, kept))
}
