//! Optimizers and learning-rate schedules with `torch.optim`'s exact semantics, in f64: the
//! reference the GPU's fused optimizer kernels are judged against. Each formula follows the
//! algorithm box of the PyTorch class named in its doc comment.

use std::collections::HashMap;

use crate::weights::Weights;
use crate::{RuntimeError, Tensor};

/// An optimizer's update rule and hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.SGD`: with weight decay `λ`, `g ← g + λθ`; with momentum `μ`, the buffer
    /// `b ← g` on the first step and `b ← μb + (1 − dampening)·g` after (PyTorch's form, not
    /// Sutskever's); Nesterov uses `g + μb`, plain momentum `b`; then `θ ← θ − lr·update`.
    Sgd { momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64 },
    /// `torch.optim.Adam` (`decoupled: false`, weight decay added to the gradient) and
    /// `torch.optim.AdamW` (`decoupled: true`, `θ ← θ(1 − lr·λ)` before the step): moments
    /// `m ← β₁m + (1 − β₁)g`, `v ← β₂v + (1 − β₂)g²`, then
    /// `θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)`.
    Adam { betas: (f64, f64), eps: f64, weight_decay: f64, decoupled: bool },
}

impl Optimizer {
    /// SGD without momentum or weight decay.
    pub fn sgd() -> Optimizer {
        Optimizer::Sgd { momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }

    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8, no weight decay).
    pub fn adam() -> Optimizer {
        Optimizer::Adam { betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01).
    pub fn adamw() -> Optimizer {
        Optimizer::Adam { betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01, decoupled: true }
    }

    /// Floats of state per parameter element (momentum buffer, or Adam's two moments).
    pub fn state_per_element(&self) -> usize {
        self.state_names().len()
    }

    /// The per-parameter state tensors, named as `torch.optim`'s `state_dict` keys them:
    /// SGD's `momentum_buffer` (with momentum), Adam's `exp_avg` and `exp_avg_sq`.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum != 0.0 => &["momentum_buffer"],
            Optimizer::Sgd { .. } => &[],
            Optimizer::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// A learning-rate schedule, as a function of the number of optimizer steps taken so far (PyTorch's
/// `scheduler.step()` once per optimizer step). OneCycle also cycles the momentum (SGD's `μ`,
/// Adam's `β₁`) as `torch.optim.lr_scheduler.OneCycleLR` does by default.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// `StepLR`: `lr · γ^⌊t / step_size⌋`.
    Step {
        step_size: u64,
        gamma: f64,
    },
    /// `MultiStepLR`: `lr · γ^(milestones ≤ t)`.
    MultiStep {
        milestones: Vec<u64>,
        gamma: f64,
    },
    /// `CosineAnnealingLR`: `η_min + (lr − η_min)(1 + cos(π t / T_max)) / 2`.
    Cosine {
        t_max: u64,
        eta_min: f64,
    },
    /// `OneCycleLR` (cosine annealing, two phases): from `max_lr / div_factor` up to `max_lr` over the
    /// first `pct_start` of `total_steps`, then down to `max_lr / (div_factor · final_div_factor)`;
    /// the momentum goes the other way between `max_momentum` and `base_momentum`.
    OneCycle {
        max_lr: f64,
        total_steps: u64,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
        base_momentum: f64,
        max_momentum: f64,
    },
}

impl Schedule {
    /// OneCycle with PyTorch's defaults (`pct_start` 0.3, `div_factor` 25, `final_div_factor` 1e4,
    /// momentum 0.85–0.95).
    pub fn one_cycle(max_lr: f64, total_steps: u64) -> Schedule {
        Schedule::OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }

    /// The learning rate of step `t` (0 for the first) for base rate `lr`.
    pub fn lr(&self, lr: f64, t: u64) -> f64 {
        match self {
            Schedule::Constant => lr,
            Schedule::Step { step_size, gamma } => lr * gamma.powi((t / step_size.max(&1)) as i32),
            Schedule::MultiStep { milestones, gamma } => {
                lr * gamma.powi(milestones.iter().filter(|m| **m <= t).count() as i32)
            }
            Schedule::Cosine { t_max, eta_min } => {
                eta_min + (lr - eta_min) * (1.0 + (std::f64::consts::PI * t as f64 / *t_max as f64).cos()) / 2.0
            }
            Schedule::OneCycle { max_lr, div_factor, final_div_factor, .. } => {
                let initial = max_lr / div_factor;
                let (from, to, pct) = self.one_cycle_phase(t);
                let ends = [initial, *max_lr, initial / final_div_factor];
                cosine_anneal(ends[from], ends[to], pct)
            }
        }
    }

    /// The momentum (SGD's `μ`, Adam's `β₁`) of step `t`, where the schedule sets it.
    pub fn momentum(&self, t: u64) -> Option<f64> {
        match self {
            Schedule::OneCycle { base_momentum, max_momentum, .. } => {
                let (from, to, pct) = self.one_cycle_phase(t);
                let ends = [*max_momentum, *base_momentum, *max_momentum];
                Some(cosine_anneal(ends[from], ends[to], pct))
            }
            _ => None,
        }
    }

    /// OneCycle's phase at step `t`: the indices of its start and end points and how far along it is.
    fn one_cycle_phase(&self, t: u64) -> (usize, usize, f64) {
        let Schedule::OneCycle { total_steps, pct_start, .. } = self else { unreachable!("OneCycle only") };
        let warm_end = pct_start * *total_steps as f64 - 1.0;
        let last = *total_steps as f64 - 1.0;
        let t = t as f64;
        if t <= warm_end {
            (0, 1, t / warm_end)
        } else {
            (1, 2, (t - warm_end) / (last - warm_end))
        }
    }
}

/// PyTorch's `_annealing_cos`: from `start` at `pct = 0` to `end` at `pct = 1` along half a cosine.
fn cosine_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

/// Per-parameter state: SGD's momentum buffer, or Adam's first and second moments.
#[derive(Clone, Debug, Default)]
struct State {
    first: Option<Vec<f64>>,
    second: Vec<f64>,
}

/// An optimizer with its schedule and state, stepping parameters in place.
#[derive(Clone, Debug)]
pub struct OptimizerState {
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// The base learning rate the schedule scales.
    pub lr: f64,
    /// Optimizer steps taken.
    pub steps: u64,
    state: HashMap<String, State>,
}

impl OptimizerState {
    /// A fresh optimizer (no state, no steps taken).
    pub fn new(optimizer: Optimizer, lr: f64, schedule: Schedule) -> OptimizerState {
        OptimizerState { optimizer, schedule, lr, steps: 0, state: HashMap::new() }
    }

    /// The state of every parameter stepped so far, as `{param}.{state}` (see
    /// [`Optimizer::state_names`]), each of its parameter's shape in `params`.
    pub fn state_tensors(&self, params: &Weights<f64>) -> Weights<f64> {
        let mut out = Weights::default();
        let names = self.optimizer.state_names();
        for (param, state) in &self.state {
            let shape = params.get(param).map_or_else(|| vec![state.second.len()], |p| p.shape.clone());
            let values = state.first.iter().chain(Some(&state.second).filter(|v| !v.is_empty()));
            for (name, data) in names.iter().zip(values) {
                out.insert(format!("{param}.{name}"), Tensor::new(shape.clone(), data.clone()));
            }
        }
        out
    }

    /// Continues from a saved state: the tensors [`OptimizerState::state_tensors`] gave and the
    /// steps taken then.
    ///
    /// # Errors
    /// [`RuntimeError::MissingWeight`] for a state tensor the optimizer does not keep.
    pub fn restore(&mut self, tensors: &Weights<f64>, steps: u64) -> Result<(), RuntimeError> {
        let names = self.optimizer.state_names();
        self.state.clear();
        for key in tensors.names() {
            let t = tensors.get(key).expect("listed");
            let (param, which) = key
                .rsplit_once('.')
                .and_then(|(p, n)| Some((p, names.iter().position(|s| *s == n)?)))
                .ok_or_else(|| RuntimeError::MissingWeight { name: key.to_string() })?;
            let state = self.state.entry(param.to_string()).or_default();
            match which {
                0 => state.first = Some(t.data.clone()),
                _ => state.second.clone_from(&t.data),
            }
        }
        self.steps = steps;
        Ok(())
    }

    /// The learning rate the next step uses.
    pub fn current_lr(&self) -> f64 {
        self.schedule.lr(self.lr, self.steps)
    }

    /// One step over every parameter that has a gradient in `grads`, in place.
    ///
    /// # Errors
    /// [`RuntimeError::MissingWeight`] or [`RuntimeError::WeightShape`] when a gradient has no
    /// parameter of its shape.
    pub fn step(&mut self, params: &mut Weights<f64>, grads: &Weights<f64>) -> Result<(), RuntimeError> {
        let lr = self.current_lr();
        let momentum = self.schedule.momentum(self.steps);
        let t = self.steps + 1;
        for name in grads.names() {
            let g = grads.get(name).expect("listed");
            let p = params.get_mut(name).ok_or_else(|| RuntimeError::MissingWeight { name: name.to_string() })?;
            if p.shape != g.shape {
                return Err(RuntimeError::WeightShape {
                    name: name.into(),
                    expected: p.shape.clone(),
                    found: g.shape.clone(),
                });
            }
            let state = self.state.entry(name.to_string()).or_default();
            update(&self.optimizer, state, p, g, lr, momentum, t);
        }
        self.steps = t;
        Ok(())
    }
}

/// One parameter's update (see [`Optimizer`] for the formulas).
fn update(
    opt: &Optimizer,
    state: &mut State,
    p: &mut Tensor<f64>,
    g: &Tensor<f64>,
    lr: f64,
    momentum: Option<f64>,
    t: u64,
) {
    match *opt {
        Optimizer::Sgd { momentum: mu, dampening, nesterov, weight_decay } => {
            let mu = momentum.unwrap_or(mu);
            let d: Vec<f64> = g.data.iter().zip(&p.data).map(|(g, p)| g + weight_decay * p).collect();
            let step: Vec<f64> = if mu == 0.0 {
                d
            } else {
                let buf = match state.first.take() {
                    None => d.clone(),
                    Some(b) => b.iter().zip(&d).map(|(b, d)| mu * b + (1.0 - dampening) * d).collect(),
                };
                let step = if nesterov { d.iter().zip(&buf).map(|(d, b)| d + mu * b).collect() } else { buf.clone() };
                state.first = Some(buf);
                step
            };
            p.data.iter_mut().zip(&step).for_each(|(p, s)| *p -= lr * s);
        }
        Optimizer::Adam { betas: (beta1, beta2), eps, weight_decay, decoupled } => {
            let beta1 = momentum.unwrap_or(beta1);
            let n = p.len();
            let m = state.first.get_or_insert_with(|| vec![0.0; n]);
            if state.second.is_empty() {
                state.second = vec![0.0; n];
            }
            let (c1, c2) = (1.0 - beta1.powi(t as i32), (1.0 - beta2.powi(t as i32)).sqrt());
            for (((p, g), m), v) in p.data.iter_mut().zip(&g.data).zip(m.iter_mut()).zip(state.second.iter_mut()) {
                let grad = if decoupled {
                    *p *= 1.0 - lr * weight_decay;
                    *g
                } else {
                    g + weight_decay * *p
                };
                *m = beta1 * *m + (1.0 - beta1) * grad;
                *v = beta2 * *v + (1.0 - beta2) * grad * grad;
                *p -= lr / c1 * *m / (v.sqrt() / c2 + eps);
            }
        }
    }
}
