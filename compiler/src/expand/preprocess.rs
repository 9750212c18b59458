//! `preprocess:` checked against the model's input when the spec is checked: torchvision's
//! `Resize(size)` (the shorter side becomes `size`) or `Resize((h, w))`, `CenterCrop(size)` or
//! `CenterCrop((h, w))`, and `Normalize(mean, std)`, in that order, must produce the input's size.
//! (With `resize: N` and no `crop`, only images of the input's aspect ratio come out at its size;
//! any other is refused, naming it, at run time.)

use crate::diagnostic::Diagnostic;
use crate::graph::{Meta, Resize, Shape};
use crate::spec::ast::{Expr, Preprocess};

/// Appends a located error for every way `meta`'s preprocessing (evaluated from `pre`) cannot
/// produce the model's `input` items.
pub fn check(pre: &Preprocess, meta: &Meta, input: &Shape, diags: &mut Vec<Diagnostic>) {
    let span = |e: &Option<Expr>| e.as_ref().map(|e| e.span).or(pre.span);
    let &[channels, h, w] = input.dims() else {
        if let Some(at) = pre.span.or_else(|| span(&pre.resize)) {
            diags.push(
                Diagnostic::error(
                    "cnnc::meta::preprocess",
                    format!("`preprocess` prepares images, but the input is {input}, not [channels, height, width]"),
                )
                .at(at, "image preprocessing")
                .help("remove `preprocess`, or give the input as [channels, height, width]"),
            );
        }
        return;
    };
    for (name, values, expr) in [("mean", &meta.mean, &pre.mean), ("std", &meta.std, &pre.std)] {
        let (Some(values), Some(at)) = (values, span(expr)) else { continue };
        if values.len() != 1 && values.len() != channels {
            diags.push(
                Diagnostic::error(
                    "cnnc::meta::preprocess",
                    format!("`{name}` has {} values, but the input has {channels} channels", values.len()),
                )
                .at(at, format!("{} values", values.len()))
                .help(format!("give one value per channel, or one for all ({channels} channels), as torchvision's Normalize broadcasts it")),
            );
        }
        let bad = values.iter().find(|v| !v.is_finite() || (name == "std" && **v <= 0.0));
        if let Some(v) = bad {
            let rule = if name == "std" { "positive" } else { "finite" };
            diags.push(
                Diagnostic::error("cnnc::meta::preprocess", format!("`{name}` must be {rule}, found {v}"))
                    .at(at, format!("not {rule}"))
                    .help("Normalize computes (pixel - mean) / std with pixels in [0, 1]"),
            );
        }
    }
    // Every normalised pixel must be a float32 number: (p - mean) / std for p in [0, 1].
    if let Some((means, stds)) = meta.normalisation(channels) {
        let overflows = means
            .iter()
            .zip(&stds)
            .position(|(m, s)| m.is_finite() && *s > 0.0 && (m.abs().max((1.0 - m).abs()) / s) as f32 == f32::INFINITY);
        let at = pre.std.as_ref().or(pre.mean.as_ref()).map(|e| e.span).or(pre.span);
        if let (Some(c), Some(at)) = (overflows, at) {
            diags.push(
                Diagnostic::error(
                    "cnnc::meta::preprocess",
                    format!(
                        "channel {c}'s `mean: {}` and `std: {}` make pixels infinite in float32",
                        number(means[c]),
                        number(stds[c])
                    ),
                )
                .at(at, "normalised pixels overflow")
                .help(format!(
                    "Normalize computes (pixel - mean) / std with pixels in [0, 1]; here that reaches {:.1e}, beyond \
                     float32's largest number {:.1e}: use a larger std (or a smaller mean)",
                    means[c].abs().max((1.0 - means[c]).abs()) / stds[c],
                    f32::MAX
                )),
            );
        }
    }
    let resize_at = || span(&pre.resize).expect("resize is written");
    let error = |message: String, at, label: &str, help: String| {
        Diagnostic::error("cnnc::meta::preprocess", message).at(at, label.to_string()).help(help)
    };
    match (meta.resize, meta.crop) {
        (_, Some([ch, cw])) if [ch, cw] != [h, w] => diags.push(error(
            format!("`crop: {}` gives {ch}×{cw} images, but the input is {h}×{w} ({input})", written(ch, cw)),
            span(&pre.crop).expect("crop is written"),
            "crop size",
            format!("crop to {}, or change `input`", written(h, w)),
        )),
        (Some(Resize::ShorterSide(n)), Some([ch, cw])) if n < ch.min(cw) => diags.push(error(
            format!("`resize: {n}` makes the shorter side {n}, smaller than `crop: {}`", written(ch, cw)),
            resize_at(),
            "shorter than the crop",
            format!(
                "the crop would be padded with zeros; resize to at least {} (ImageNet's recipe: resize 256, crop 224)",
                ch.min(cw)
            ),
        )),
        (Some(Resize::ShorterSide(n)), Some([ch, cw])) if n > 8 * ch.max(cw) => diags.push(error(
            format!("`resize: {n}` is more than 8 times `crop: {}`", written(ch, cw)),
            resize_at(),
            "resize far beyond the crop",
            format!(
                "resize to a little more than the crop (ImageNet's recipe: resize 256, crop 224); {} to {} here",
                ch.min(cw),
                8 * ch.max(cw)
            ),
        )),
        (Some(Resize::Exact([rh, rw])), Some([ch, cw])) if rh < ch || rw < cw => diags.push(error(
            format!("`resize: [{rh}, {rw}]` is smaller than `crop: {}`", written(ch, cw)),
            resize_at(),
            "smaller than the crop",
            format!("the crop would be padded with zeros; resize to at least [{ch}, {cw}]"),
        )),
        (Some(Resize::Exact([rh, rw])), Some([ch, cw])) if rh > 8 * ch || rw > 8 * cw => diags.push(error(
            format!("`resize: [{rh}, {rw}]` is more than 8 times `crop: {}` on a side", written(ch, cw)),
            resize_at(),
            "resize far beyond the crop",
            format!("resize to a little more than the crop, at most [{}, {}]", 8 * ch, 8 * cw),
        )),
        (Some(Resize::ShorterSide(n)), None) if n != h.min(w) => diags.push(error(
            format!("`resize: {n}` makes the shorter side {n}, but the input is {h}×{w}"),
            resize_at(),
            "shorter side",
            format!(
                "resize to {}, add `crop: {}` after the resize (torchvision's CenterCrop), or resize to exactly \
                 `[{h}, {w}]`",
                h.min(w),
                written(h, w)
            ),
        )),
        (Some(Resize::Exact([rh, rw])), None) if [rh, rw] != [h, w] => diags.push(error(
            format!("`resize: [{rh}, {rw}]` gives {rh}×{rw} images, but the input is {h}×{w}"),
            resize_at(),
            "resized size",
            format!("resize to [{h}, {w}], or add `crop: {}` after the resize", written(h, w)),
        )),
        _ => {}
    }
}

/// A number as a spec would write it: `0.5`, `1e-45`.
fn number(x: f64) -> String {
    if x != 0.0 && !(1e-4..1e7).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// A crop size as the spec would write it: `224`, or `[224, 160]` when not square.
fn written(h: usize, w: usize) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("[{h}, {w}]")
    }
}
