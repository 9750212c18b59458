//! `preprocess:` checked against the model's input when the spec is checked: torchvision's
//! `Resize(size)` (the shorter side becomes `size`), `CenterCrop(size)` and `Normalize(mean, std)`,
//! in that order, must produce the input's size. (Without `crop`, an image whose aspect ratio
//! differs from the input's is centre-cropped, or padded with zeros, to it at run time.)

use crate::diagnostic::Diagnostic;
use crate::graph::{Meta, Shape};
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
    match (meta.resize, meta.crop) {
        (_, Some(crop)) if crop != h || crop != w => {
            let help = if h == w {
                format!("crop to {h}, or change `input`")
            } else {
                "a crop is square: give the model a square input".to_string()
            };
            diags.push(
                Diagnostic::error(
                    "cnnc::meta::preprocess",
                    format!("`crop: {crop}` gives {crop}×{crop} images, but the input is {h}×{w} ({input})"),
                )
                .at(span(&pre.crop).expect("crop is written"), "crop size")
                .help(help),
            );
        }
        (Some(resize), Some(crop)) if resize < crop => diags.push(
            Diagnostic::error(
                "cnnc::meta::preprocess",
                format!("`resize: {resize}` makes the shorter side {resize}, smaller than `crop: {crop}`"),
            )
            .at(span(&pre.resize).expect("resize is written"), "shorter than the crop")
            .help(format!("the crop would be padded with zeros; resize to at least {crop} (ImageNet's recipe: resize 256, crop 224)")),
        ),
        (Some(resize), Some(crop)) if resize > 8 * crop => diags.push(
            Diagnostic::error(
                "cnnc::meta::preprocess",
                format!("`resize: {resize}` is more than 8 times `crop: {crop}`"),
            )
            .at(span(&pre.resize).expect("resize is written"), "resize far beyond the crop")
            .help(format!("resize to a little more than the crop (ImageNet's recipe: resize 256, crop 224); {crop} to {} here", 8 * crop)),
        ),
        (Some(resize), None) if resize != h.min(w) => diags.push(
            Diagnostic::error(
                "cnnc::meta::preprocess",
                format!("`resize: {resize}` makes the shorter side {resize}, but the input is {h}×{w}"),
            )
            .at(span(&pre.resize).expect("resize is written"), "shorter side")
            .help(format!("resize to {}, or add `crop: {}` after the resize (torchvision's CenterCrop)", h.min(w), h.min(w))),
        ),
        _ => {}
    }
}
