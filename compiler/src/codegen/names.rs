//! Rust names for a model and its layers.

use std::collections::HashSet;

/// Words of model names with their usual capitalisation.
const WORDS: &[(&str, &str)] = &[
    ("efficientnet", "EfficientNet"),
    ("squeezenet", "SqueezeNet"),
    ("shufflenet", "ShuffleNet"),
    ("googlenet", "GoogLeNet"),
    ("mobilenet", "MobileNet"),
    ("inception", "Inception"),
    ("densenet", "DenseNet"),
    ("alexnet", "AlexNet"),
    ("resnext", "ResNeXt"),
    ("mnasnet", "MnasNet"),
    ("regnet", "RegNet"),
    ("resnet", "ResNet"),
    ("lenet", "LeNet"),
    ("vgg", "Vgg"),
];

/// The struct name for a model: `resnet50` → `ResNet50`, `mobilenet_v2` → `MobileNetV2`,
/// `shufflenet_v2_x0_5` → `ShuffleNetV2X0_5` (an underscore stays only between digits).
pub fn struct_name(model: &str) -> String {
    let mut name = String::new();
    for part in model.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let known = WORDS.iter().find(|(word, _)| lower.starts_with(word));
        let piece = match known {
            Some((word, spelled)) => format!("{spelled}{}", &part[word.len()..]),
            None => {
                let mut chars = part.chars();
                chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            }
        };
        let joins_digits =
            name.ends_with(|c: char| c.is_ascii_digit()) && piece.starts_with(|c: char| c.is_ascii_digit());
        if joins_digits {
            name.push('_');
        }
        name.push_str(&piece);
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "Model");
    }
    name
}

/// A snake-case identifier (`layer3.2.conv2` → `layer3_2_conv2`) for a layer path, unique among
/// those `taken`; structural layers without a path are named after their op and value.
pub fn field_name(path: &str, op: &str, value: usize, taken: &mut HashSet<String>) -> String {
    let mut name: String = if path.is_empty() {
        format!("{op}_{value}")
    } else {
        path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
    };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "layer_");
    }
    if syn::parse_str::<syn::Ident>(&name).is_err() || RESERVED.contains(&name.as_str()) {
        name.push('_');
    }
    let base = name.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// Names the generated code uses itself.
const RESERVED: &[&str] = &["program", "builder", "gpu", "weights", "batch", "input", "recorder", "layout"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for (model, name) in [
            ("resnet50", "ResNet50"),
            ("lenet", "LeNet"),
            ("mobilenet_v2", "MobileNetV2"),
            ("mobilenet_v3_small", "MobileNetV3Small"),
            ("shufflenet_v2_x0_5", "ShuffleNetV2X0_5"),
            ("googlenet", "GoogLeNet"),
            ("vgg11_bn", "Vgg11Bn"),
            ("resnext50_32x4d", "ResNeXt50_32x4d"),
            ("efficientnet_b0", "EfficientNetB0"),
            ("tiny", "Tiny"),
            ("3net", "Model3net"),
            ("", "Model"),
        ] {
            assert_eq!(struct_name(model), name, "{model}");
        }
    }

    #[test]
    fn field_names() {
        let mut taken = HashSet::new();
        assert_eq!(field_name("layer3.2.conv2", "conv", 7, &mut taken), "layer3_2_conv2");
        assert_eq!(field_name("", "concat", 12, &mut taken), "concat_12");
        assert_eq!(field_name("0.1", "conv", 3, &mut taken), "layer_0_1");
        assert_eq!(field_name("type", "conv", 4, &mut taken), "type_");
        assert_eq!(field_name("input", "conv", 5, &mut taken), "input_");
        assert_eq!(field_name("layer3.2.conv2", "conv", 8, &mut taken), "layer3_2_conv2_2");
        assert_eq!(field_name("Conv-1", "conv", 9, &mut taken), "conv_1");
    }
}
