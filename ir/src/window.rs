//! Sliding-window arithmetic for convolution and pooling, kept pure and table-tested.

/// Why a window does not fit.
#[derive(Debug, PartialEq, Eq)]
pub enum WindowError {
    /// The (dilated) kernel is larger than the padded input.
    KernelTooLarge { effective_kernel: usize, padded_input: usize },
}

/// The kernel's extent once dilated: `dilation * (kernel - 1) + 1`.
pub fn effective_kernel(kernel: usize, dilation: usize) -> usize {
    dilation.saturating_mul(kernel.saturating_sub(1)).saturating_add(1)
}

/// Output length of a window sliding over one dim, as PyTorch computes it (including `ceil_mode`,
/// where the last window must start inside the input or its leading padding, and a window up to
/// `stride - 1` longer than the padded input still gives one output, as in PyTorch's pooling).
pub fn output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize, WindowError> {
    let effective_kernel = effective_kernel(kernel, dilation);
    let padded_input = input.saturating_add(pad.0).saturating_add(pad.1);
    if effective_kernel > padded_input {
        // PyTorch: (padded - kernel + stride - 1) / stride + 1, rounded down, is 1 here.
        if ceil_mode && effective_kernel - padded_input < stride {
            return Ok(1);
        }
        return Err(WindowError::KernelTooLarge { effective_kernel, padded_input });
    }
    let room = padded_input - effective_kernel;
    let mut out = if ceil_mode { room.div_ceil(stride) } else { room / stride } + 1;
    if ceil_mode && (out - 1) * stride >= input + pad.0 {
        out -= 1;
    }
    Ok(out)
}

/// TensorFlow-style "same" padding for one dim: the output is `ceil(input / stride)` and the
/// padding is split with the extra pixel at the end. Returns `(before, after)`.
pub fn same_padding(input: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let needed = (out.saturating_sub(1) * stride + effective_kernel(kernel, dilation)).saturating_sub(input);
    (needed / 2, needed - needed / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_match_pytorch() {
        // (input, kernel, stride, pad, dilation, ceil) -> output, checked against torch.nn.functional.
        let cases = [
            ((224, 7, 2, (3, 3), 1, false), 112),
            ((112, 3, 2, (1, 1), 1, false), 56),
            ((32, 5, 1, (0, 0), 1, false), 28),
            ((28, 2, 2, (0, 0), 1, false), 14),
            ((55, 3, 2, (0, 0), 1, true), 27), // AlexNet-style pooling, ceil changes nothing
            ((112, 3, 2, (0, 0), 1, true), 56), // GoogLeNet maxpool1 (ceil_mode=True)
            ((112, 3, 2, (0, 0), 1, false), 55),
            ((14, 2, 2, (0, 0), 1, true), 7),
            ((13, 3, 2, (0, 0), 1, true), 6), // SqueezeNet
            ((7, 3, 1, (2, 2), 2, false), 7), // dilation 2, padding 2 keeps the size
            ((1, 1, 1, (0, 0), 1, false), 1),
            ((5, 3, 4, (1, 1), 1, true), 2), // stride larger than kernel
            ((6, 3, 3, (1, 1), 1, true), 3), // last window would start in the right padding: dropped
            ((2, 3, 2, (0, 0), 1, true), 1), // a window past the input, within a stride: one output
            ((1, 4, 4, (0, 0), 1, true), 1),
        ];
        for ((i, k, s, p, d, c), want) in cases {
            assert_eq!(output_len(i, k, s, p, d, c), Ok(want), "in={i} k={k} s={s} p={p:?} d={d} ceil={c}");
        }
    }

    #[test]
    fn a_kernel_larger_than_its_padded_input_is_an_error() {
        assert_eq!(
            output_len(4, 5, 1, (0, 0), 1, false),
            Err(WindowError::KernelTooLarge { effective_kernel: 5, padded_input: 4 })
        );
        assert_eq!(
            output_len(4, 3, 1, (0, 0), 2, false),
            Err(WindowError::KernelTooLarge { effective_kernel: 5, padded_input: 4 })
        );
        assert_eq!(output_len(4, 5, 1, (1, 0), 1, false), Ok(1));
        // With ceil_mode a window may pass the input by less than a stride (PyTorch: 1 output), not
        // by a whole one.
        assert_eq!(
            output_len(1, 3, 2, (0, 0), 1, true),
            Err(WindowError::KernelTooLarge { effective_kernel: 3, padded_input: 1 })
        );
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_padding(224, 3, 2, 1), (0, 1));
        assert_eq!(same_padding(224, 3, 1, 1), (1, 1));
        assert_eq!(same_padding(225, 3, 2, 1), (1, 1));
        assert_eq!(same_padding(224, 5, 2, 1), (1, 2));
        assert_eq!(same_padding(7, 3, 1, 2), (2, 2));
        assert_eq!(same_padding(1, 7, 2, 1), (3, 3));
    }
}
