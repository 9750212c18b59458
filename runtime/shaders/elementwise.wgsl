// Pointwise ops over a [N, C, P] view (P = spatial positions, 1 for feature vectors):
//   OP 0: y = act(x · scale[c] + shift[c])           (inference batch-norm, channel affine, activation)
//   OP 1: y = act(x + other)                          (residual add of equal shapes)
//   OP 2: y = act(x · other[n, c, p or 0])            (broadcast multiply, OTHER_P = P or 1; squeeze-excitation)
//   OP 3: y = act(x)                                  (a lone activation: x · 1 + 0 would turn -0.0 into +0.0)
// Each invocation handles 4 consecutive elements.
//
// Baked constants: N, C, P, OP, OTHER_P, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> other: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const TOTAL: u32 = N * C * P;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let first = (gid.x + gid.y * 65535u * 64u) * 4u;
    for (var i = 0u; i < 4u; i++) {
        let index = first + i;
        if (index >= TOTAL) {
            return;
        }
        let x = input[index];
        let c = (index / P) % C;
        var v = x;
        switch OP {
            // As PyTorch's inference batch-norm computes it, one fused multiply-add: a finite x · α
            // past float32 plus an infinite β is that β, not NaN (tested by bits: a driver may
            // neither fuse nor keep infinities through `fma`).
            case 0u: {
                let a = scale[c];
                let b = shift[c];
                v = select(x * a + b, b, is_inf(b) && !is_inf(x) && !is_nan(x) && !is_inf(a));
            }
            case 1u: { v = x + other[index]; }
            case 3u: { v = x; }
            default: {
                let n = index / (C * P);
                let p = index % P;
                v = x * other[(n * C + c) * OTHER_P + min(p, OTHER_P - 1u)];
            }
        }
        output[index] = activate(v);
    }
}
