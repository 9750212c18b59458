//! Images prepared as torchvision prepares them: `Resize`, `CenterCrop` (padding with zeros when
//! the image is smaller), `ToTensor` and `Normalize` on images of several sizes, aspect ratios and
//! modes (RGB, grayscale, RGBA, palette, 16-bit grayscale and colour PNGs; 8- and 16-bit PGM and
//! PPM files; 24-bit, grayscale and palette BMPs; baseline, progressive, CMYK and EXIF-rotated
//! JPEGs), against torchvision's own output
//! (`tests/fixtures/generate_preprocess.py`).

use std::path::Path;

use cnnc::compiler::graph::{Meta, Resize};
use cnnc::runtime::{image_input, npy};
use serde_json::Value;

#[test]
fn images_are_prepared_exactly_as_torchvisions_transforms_prepare_them() {
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/preprocess/cases.json").unwrap()).unwrap();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<f64>>();
    // `n` or `[h, w]`, as the spec and torchvision's Resize and CenterCrop take them.
    let pair = |v: &Value| v.as_array().map(|hw| [hw[0].as_u64().unwrap() as usize, hw[1].as_u64().unwrap() as usize]);
    let resize = |v: &Value| v.as_u64().map(|n| Resize::ShorterSide(n as usize)).or(pair(v).map(Resize::Exact));
    let crop = |v: &Value| v.as_u64().map(|n| [n as usize; 2]).or(pair(v));
    for case in &cases {
        let image = case["image"].as_str().unwrap();
        let expected = npy::read(Path::new(case["expected"].as_str().unwrap())).unwrap();
        let input: Vec<usize> =
            case["input"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let meta = Meta {
            resize: resize(&case["resize"]),
            crop: crop(&case["crop"]),
            mean: Some(floats(&case["mean"])),
            std: Some(floats(&case["std"])),
            ..Meta::default()
        };
        let ours = image_input::load_batch_for(&[image], &meta, &input).unwrap();
        assert_eq!(ours.shape, expected.shape, "{}", case["expected"]);
        let worst = ours.data.iter().zip(&expected.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // One 8-bit level is 1/255/std ≥ 0.0039; float32 rounding is below 1e-5. JPEG decoders
        // (Pillow's libjpeg-turbo, cnnc's `image` crate) may differ by the case's `levels`.
        let levels = case["levels"].as_f64().unwrap_or(0.0);
        let std_min = floats(&case["std"]).into_iter().fold(f64::INFINITY, f64::min);
        let bound = (levels / 255.0 / std_min) as f32 + 1e-5;
        assert!(worst < bound, "{}: off by {worst} (bound {bound})", case["expected"]);
    }
}
