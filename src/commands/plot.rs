//! `cnnc plot`: a training run's curves from its `metrics.jsonl`, as SVG: the training loss logged
//! every few steps and each epoch's test loss against steps, and each epoch's test accuracy against
//! epochs.

use super::stdout::errln;
use super::stdout::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::prelude::*;

use super::EXIT_USAGE;

#[derive(clap::Args)]
pub struct Args {
    /// The run's folder (the --out of `cnnc train`), or its metrics.jsonl.
    #[arg(value_name = "DIR")]
    run: PathBuf,
    /// Where to write the SVG [default: DIR/curves.svg].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// What a run logged.
#[derive(Debug, Default, PartialEq)]
struct Curves {
    /// (step, mean training loss since the last log).
    step_loss: Vec<(f64, f64)>,
    /// (step at the epoch's end, epoch, test loss, test accuracy).
    epochs: Vec<(f64, f64, f64, f64)>,
}

/// Reads `metrics.jsonl`: one JSON object per line, `"kind": "step"` or `"epoch"`.
fn read(path: &Path) -> Result<Curves, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut curves = Curves::default();
    // A run still writing may have a last line without its newline yet: it is left for later.
    let whole = if text.ends_with('\n') { &text[..] } else { text.rsplit_once('\n').map_or("", |(done, _)| done) };
    for (i, line) in whole.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}: not a JSON object ({e})", at()))?;
        let number =
            |key: &str| v[key].as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("{}: no number `{key}`", at()));
        match v["kind"].as_str() {
            Some("step") => curves.step_loss.push((number("step")?, number("loss")?)),
            Some("epoch") => {
                curves.epochs.push((number("step")?, number("epoch")?, number("test_loss")?, number("accuracy")?))
            }
            _ => return Err(format!("{}: `kind` is neither \"step\" nor \"epoch\"", at())),
        }
    }
    if curves.step_loss.is_empty() && curves.epochs.is_empty() {
        return Err(format!("`{}` holds no metrics yet", path.display()));
    }
    Ok(curves)
}

/// The range of `values` widened a little (and to a unit where they are all equal).
fn span(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad)..(hi + pad)
}

fn draw(curves: &Curves, title: &str, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(output, (1100, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let (left, right) = root.split_horizontally(560);

    let steps = span(curves.step_loss.iter().map(|p| p.0).chain(curves.epochs.iter().map(|e| e.0)));
    let losses = span(curves.step_loss.iter().map(|p| p.1).chain(curves.epochs.iter().map(|e| e.2)));
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(steps, losses)?;
    chart.configure_mesh().x_desc("step").y_desc("cross-entropy").draw()?;
    chart
        .draw_series(LineSeries::new(curves.step_loss.iter().copied(), &BLUE))?
        .label("training loss (mean since the last log)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    let test = curves.epochs.iter().map(|e| (e.0, e.2));
    chart
        .draw_series(LineSeries::new(test.clone(), &RED).point_size(3))?
        .label("test loss (after each epoch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;

    let epochs = span(curves.epochs.iter().map(|e| e.1));
    let accuracy = span(curves.epochs.iter().map(|e| 100.0 * e.3));
    let mut chart = ChartBuilder::on(&right)
        .caption("test accuracy", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(epochs, accuracy)?;
    chart.configure_mesh().x_desc("epoch").y_desc("%").draw()?;
    chart.draw_series(LineSeries::new(curves.epochs.iter().map(|e| (e.1, 100.0 * e.3)), &RED).point_size(3))?;
    root.present()?;
    Ok(())
}

pub fn run(args: Args) -> ExitCode {
    let metrics = if args.run.is_dir() { args.run.join("metrics.jsonl") } else { args.run.clone() };
    let curves = match read(&metrics) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let folder = metrics.parent().unwrap_or(Path::new("."));
    let output = args.output.unwrap_or_else(|| folder.join("curves.svg"));
    let title = format!("{}", folder.display());
    match draw(&curves, &title, &output) {
        Ok(()) => {
            outln!(
                "wrote {} ({} logged steps, {} epochs)",
                output.display(),
                curves.step_loss.len(),
                curves.epochs.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: cannot write `{}`: {e}", output.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("cnnc-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"kind\":\"step\",\"step\":10,\"loss\":2.0}\n{\"kind\":\"epoch\",\"epoch\":1,\"step\":20,\
             \"loss\":1.5,\"test_loss\":1.2,\"accuracy\":0.6}\n",
        )
        .unwrap();
        let curves = read(&path).unwrap();
        assert_eq!(curves, Curves { step_loss: vec![(10.0, 2.0)], epochs: vec![(20.0, 1.0, 1.2, 0.6)] });
        let svg = dir.join("c.svg");
        draw(&curves, "run", &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains("test accuracy") && text.contains("<polyline"));
        std::fs::write(&path, "{\"kind\":\"step\",\"step\":10,\"loss\":2.0}\n{\"kind\":\"st").unwrap();
        assert_eq!(read(&path).unwrap().step_loss.len(), 1, "a line still being written is left out");
        std::fs::write(&path, "{\"kind\":\"step\",\"step\":10,\"loss\":2.0}\nnot json\n").unwrap();
        assert!(read(&path).unwrap_err().contains("metrics.jsonl:2: not a JSON object"));
        std::fs::write(&path, "{\"kind\":\"epoch\",\"step\":10}\n").unwrap();
        assert!(read(&path).unwrap_err().contains(":1: no number `epoch`"));
        std::fs::write(&path, "").unwrap();
        assert!(read(&path).unwrap_err().contains("holds no metrics yet"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
