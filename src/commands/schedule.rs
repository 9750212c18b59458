//! `cnnc train --schedule`: learning-rate schedules written as calls, their periods in epochs as
//! PyTorch's schedulers are usually stepped (once per epoch), turned into the runtime's schedules
//! over optimizer steps:
//!
//! - `step(E, gamma=G)`: `StepLR(step_size=E, gamma=G)`, the rate times G every E epochs;
//! - `multistep(E1, E2, …, gamma=G)`: `MultiStepLR(milestones=[E1, E2, …])`;
//! - `cosine` or `cosine(eta_min=M)`: `CosineAnnealingLR(T_max=epochs · steps per epoch)`, annealed
//!   every step down to M (default 0);
//! - `onecycle` or `onecycle(max_lr=L)`: `OneCycleLR(max_lr=L, total_steps=epochs · steps per
//!   epoch)` with PyTorch's other defaults; `max_lr` defaults to `--lr`.

use cnnc::runtime::train::Schedule;

/// Parses `text` for a run of `epochs` epochs of `steps_per_epoch` steps at base rate `lr`.
///
/// # Errors
/// A message naming what is not understood and what is accepted.
pub fn parse(text: &str, epochs: u64, steps_per_epoch: u64, lr: f64) -> Result<Schedule, String> {
    let text = text.trim();
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => {
            let args = rest.trim_end().strip_suffix(')').ok_or_else(|| format!("`{text}`: a `)` is missing"))?;
            (name.trim(), args)
        }
        None => (text, ""),
    };
    let mut positional = Vec::new();
    let mut named = Vec::new();
    for arg in args.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match arg.split_once('=') {
            Some((k, _)) if named.iter().any(|(n, _)| *n == k.trim()) => {
                return Err(format!("`{text}`: `{}` is given twice", k.trim()));
            }
            Some((k, v)) => named.push((k.trim(), v.trim())),
            None => positional.push(arg),
        }
    }
    let number = |v: &str| -> Result<f64, String> {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("`{text}`: `{v}` is not a number of 0 or more"))
    };
    let epochs_arg = |v: &str| -> Result<u64, String> {
        v.parse::<u64>()
            .ok()
            .filter(|e| *e > 0)
            .ok_or_else(|| format!("`{text}`: `{v}` is not a whole number of epochs"))
    };
    let mut option = |key: &str, default: f64| -> Result<f64, String> {
        match named.iter().position(|(k, _)| *k == key) {
            Some(i) => number(named.remove(i).1),
            None => Ok(default),
        }
    };
    let total = epochs * steps_per_epoch;
    let schedule = match name {
        "constant" if positional.is_empty() => Schedule::Constant,
        "step" if positional.len() == 1 => {
            let gamma = option("gamma", 0.1)?;
            Schedule::Step { step_size: epochs_arg(positional[0])? * steps_per_epoch, gamma }
        }
        "multistep" if !positional.is_empty() => {
            let gamma = option("gamma", 0.1)?;
            let milestones =
                positional.iter().map(|m| Ok(epochs_arg(m)? * steps_per_epoch)).collect::<Result<Vec<_>, String>>()?;
            Schedule::MultiStep { milestones, gamma }
        }
        "cosine" if positional.is_empty() => Schedule::Cosine { t_max: total, eta_min: option("eta_min", 0.0)? },
        "onecycle" if positional.is_empty() => Schedule::one_cycle(option("max_lr", lr)?, total),
        _ => {
            return Err(format!(
                "`{text}` is not a schedule: use constant, step(EPOCHS, gamma=G), multistep(E1, E2, …, gamma=G), \
                 cosine(eta_min=M) or onecycle(max_lr=L)"
            ))
        }
    };
    if let Some((key, _)) = named.first() {
        return Err(format!("`{text}`: `{key}` is not an option of {name}"));
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_count_epochs_and_bad_ones_are_named() {
        assert_eq!(parse("step(7, gamma=0.5)", 20, 10, 0.1), Ok(Schedule::Step { step_size: 70, gamma: 0.5 }));
        let s = parse("step(7)", 20, 10, 0.1).unwrap();
        // Constant within an epoch, as PyTorch's StepLR stepped once per epoch: epoch 7 (steps
        // 70–79) is the first at lr · 0.1.
        assert_eq!((s.lr(1.0, 69), s.lr(1.0, 70), s.lr(1.0, 79)), (1.0, 0.1, 0.1));
        assert_eq!(
            parse("multistep(3, 5)", 6, 4, 0.1),
            Ok(Schedule::MultiStep { milestones: vec![12, 20], gamma: 0.1 })
        );
        assert_eq!(parse("cosine", 2, 50, 0.1), Ok(Schedule::Cosine { t_max: 100, eta_min: 0.0 }));
        assert_eq!(parse(" onecycle ( max_lr = 0.3 ) ", 2, 50, 0.1), Ok(Schedule::one_cycle(0.3, 100)));
        assert_eq!(parse("onecycle", 2, 50, 0.1), Ok(Schedule::one_cycle(0.1, 100)));
        assert_eq!(parse("constant", 2, 50, 0.1), Ok(Schedule::Constant));
        assert!(parse("step", 2, 5, 0.1).unwrap_err().contains("is not a schedule"));
        assert!(parse("step(0)", 2, 5, 0.1).unwrap_err().contains("whole number of epochs"));
        assert!(parse("step(2, gama=0.1)", 2, 5, 0.1).unwrap_err().contains("`gama` is not an option of step"));
        assert!(parse("step(1, gamma=0.5, gamma=0.1)", 2, 5, 0.1).unwrap_err().contains("`gamma` is given twice"));
        assert!(parse("cosine(eta_min=-1)", 2, 5, 0.1).unwrap_err().contains("number of 0 or more"));
        assert!(parse("step(2", 2, 5, 0.1).unwrap_err().contains("`)` is missing"));
    }
}
