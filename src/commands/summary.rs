//! `cnnc summary`: a torchinfo-style table, or JSON.

use super::stdout::errln;
use super::stdout::{out, outln};
use std::process::ExitCode;

use cnnc::compiler::attributes::Attribute;
use cnnc::compiler::summary::{summarize, train_summary, Summary, TrainSummary};
use serde_json::{json, Map, Value};

use super::{compile_model_set, group, SpecPath};

#[derive(clap::Args)]
pub struct Args {
    /// The spec to summarise.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Batch size for the activation-memory estimate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=65536))]
    batch: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Add what a training step costs at --batch: trainable parameters, gradients, optimizer state
    /// and the activation memory of forward and backward planned together.
    #[arg(long)]
    train: bool,
    /// Give one of the spec's `let` bindings, or a parameter of the module its body calls, a value
    /// of the spec language: `--set num_classes=2` makes a zoo model's head two-way.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = super::parse_setting)]
    set: Vec<(String, String)>,
}

pub fn run(args: Args) -> ExitCode {
    let model = match compile_model_set(&args.spec, &args.set) {
        Ok((model, _)) => model,
        Err(code) => return code,
    };
    let summary = summarize(&model, args.batch);
    let train = match args.train.then(|| train_summary(&model.graph, args.batch)).transpose() {
        Ok(train) => train,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        let mut value = to_json(&summary);
        if let Some(t) = &train {
            value["train"] = json!({
                "trainable_params": t.trainable_params,
                "gradient_bytes": t.trainable_params * 4,
                "sgd_momentum_state_bytes": t.sgd_momentum_state_bytes,
                "adam_state_bytes": t.adam_state_bytes,
                "peak_step_activation_bytes": t.peak_step_activation_bytes,
                "saved_activation_bytes": t.saved_activation_bytes,
            });
        }
        outln!("{}", serde_json::to_string_pretty(&value).expect("JSON values serialise"));
    } else {
        out!("{}", table(&summary));
        if let Some(t) = &train {
            out!("{}", train_table(t, args.batch));
        }
    }
    ExitCode::SUCCESS
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn train_table(t: &TrainSummary, batch: u64) -> String {
    let mut out = format!("Training step (batch {batch}, f32, everything trainable):\n");
    out += &format!("  Trainable params:      {}\n", group(t.trainable_params));
    out += &format!("  Gradients:             {:.2} MiB\n", mib(t.trainable_params * 4));
    out += &format!(
        "  Optimizer state:       {:.2} MiB with Adam or AdamW, {:.2} MiB with SGD momentum, none with plain SGD\n",
        mib(t.adam_state_bytes),
        mib(t.sgd_momentum_state_bytes)
    );
    out += &format!(
        "  Activations:           {:.2} MiB at the peak of forward + backward; {:.2} MiB kept for the backward\n",
        mib(t.peak_step_activation_bytes),
        mib(t.saved_activation_bytes)
    );
    out
}

fn to_json(s: &Summary) -> Value {
    let weights: Map<String, Value> = s.weights.iter().map(|(name, shape)| (name.clone(), json!(shape))).collect();
    let layers: Vec<Value> = s
        .rows
        .iter()
        .map(|r| {
            let attributes: Map<String, Value> =
                r.attributes.iter().map(|(name, value)| (name.to_string(), attribute_json(value))).collect();
            json!({
                "path": r.path, "op": r.op, "output": r.shape.dims(), "params": r.params, "macs": r.macs,
                "attributes": attributes,
            })
        })
        .collect();
    json!({
        "name": s.name,
        "input": s.input.dims(),
        "output": s.output.dims(),
        "params": s.params,
        "macs": s.macs,
        "batch": s.batch,
        "peak_activation_bytes": s.peak_activation_bytes,
        "planned_activation_bytes": s.planned_activation_bytes,
        "activation_buffers": s.activation_buffers,
        "layers": layers,
        "weights": weights,
    })
}

/// An attribute in JSON: numbers, `[h, w]` pairs, paddings as `[top, bottom, left, right]`.
fn attribute_json(a: &Attribute) -> Value {
    match a {
        Attribute::Int(n) => json!(n),
        Attribute::Pair(pair) => json!(pair),
        Attribute::Padding(p) => json!([p.top, p.bottom, p.left, p.right]),
        Attribute::Float(v) => json!(v),
        Attribute::Bool(b) => json!(b),
    }
}

fn table(s: &Summary) -> String {
    let header = ["Layer", "Op", "Output shape", "Params", "MACs", "Attributes"];
    let rows: Vec<[String; 6]> = s
        .rows
        .iter()
        .map(|r| {
            let path = if r.path.is_empty() { "(model)".to_string() } else { r.path.clone() };
            let params = if r.params == 0 { "-".into() } else { group(r.params) };
            let macs = if r.macs == 0 { "-".into() } else { group(r.macs) };
            [
                path,
                r.op.to_string(),
                format!(
                    "[{}, {}]",
                    s.batch,
                    r.shape.dims().iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
                ),
                params,
                macs,
                r.attributes.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let text = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        );
        text.trim_end().to_string() + "\n"
    };
    let rule = "─".repeat(widths.iter().sum::<usize>() + 10) + "\n";
    let mut out = format!(
        "{} — input [{}, {}]\n",
        s.name,
        s.batch,
        s.input.dims().iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
    );
    out += &rule;
    out += &line(header);
    out += &rule;
    for row in &rows {
        out += &line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    out += &rule;
    out += &format!("Total params:            {}\n", group(s.params));
    out += &format!("Total MACs (batch 1):    {}\n", group(s.macs));
    out += &format!("Weight tensors:          {}\n", s.weights.len());
    out += &format!(
        "Peak activation memory:  {:.2} MiB (f32, batch {}: the most alive at once)\n",
        s.peak_activation_bytes as f64 / (1 << 20) as f64,
        s.batch
    );
    out += &format!(
        "Planned activations:     {:.2} MiB in {} buffers (after lowering; a buffer is reused by tensors whose \
         lives do not overlap and is as large as the largest of them, so this can exceed the peak)\n",
        s.planned_activation_bytes as f64 / (1 << 20) as f64,
        s.activation_buffers
    );
    out
}
