//! Parameters of the linear family.

use cnnc_ir::graph::Activation;

use super::{activation_consts, u, Const, Family, Kernel, KernelParams};

/// Rows `row0..row0 + rows` of a linear layer `[N, K] → [N, OUT]`, with weights in a buffer of
/// their own (a layer whose weights exceed one storage binding is split by rows); each invocation
/// computes 4 outputs of 4 items, reading vec4s where `in_features` is a multiple of 4. The input
/// and weight buffers are bound as `array<vec4<f32>>`, so their sizes must be whole vec4s.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub n: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub row0: usize,
    pub rows: usize,
    pub has_bias: bool,
    pub activation: Option<Activation>,
}

impl KernelParams for Linear {
    fn kernel(&self) -> Kernel {
        let mut consts = vec![
            ("N", u(self.n)),
            ("K", u(self.in_features)),
            ("OUT", u(self.out_features)),
            ("ROW0", u(self.row0)),
            ("ROWS", u(self.rows)),
            ("HAS_BIAS", Const::B(self.has_bias)),
            ("VEC_K", Const::B(self.in_features.is_multiple_of(4))),
        ];
        consts.extend(activation_consts(self.activation));
        let workgroups = [self.rows.div_ceil(4).div_ceil(64) as u32, self.n.div_ceil(4) as u32, 1];
        Kernel::new(Family::Linear, consts, workgroups)
    }

    fn samples() -> Vec<Linear> {
        let scalar = Linear {
            n: 5,
            in_features: 37,
            out_features: 10,
            row0: 4,
            rows: 6,
            has_bias: true,
            activation: Some(Activation::Relu),
        };
        vec![Linear { in_features: 40, has_bias: false, activation: None, ..scalar.clone() }, scalar]
    }
}
