// Input gradient of PyTorch's local_response_norm over `[N, C, P]`: with
// `D_c = K + ALPHA/SIZE · Σ_{j∈W(c)} x_j²` over W(c) = [c − SIZE/2, c + (SIZE−1)/2],
// `dx_j = dy_j · D_j^−BETA − 2·ALPHA·BETA/SIZE · x_j · Σ_{c: j∈W(c)} dy_c · x_c · D_c^(−BETA−1)`.
// One invocation per element.
//
// Baked constants: SIZE, ALPHA, BETA, K; extents in `shape`: N, C, P.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// D_c at item n, position p.
fn denominator(n: u32, c: u32, p: u32) -> f32 {
    let lo = max(i32(c) - i32(SIZE / 2u), 0);
    let hi = min(i32(c) + i32((SIZE - 1u) / 2u) + 1, i32(shape.C));
    var sum = 0.0;
    for (var j = lo; j < hi; j++) {
        let v = x[(n * shape.C + u32(j)) * shape.P + p];
        sum += v * v;
    }
    return K + ALPHA / f32(SIZE) * sum;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.N * shape.C * shape.P) {
        return;
    }
    let n = index / (shape.C * shape.P);
    let j = (index / shape.P) % shape.C;
    let p = index % shape.P;
    // The channels whose window holds j: c − SIZE/2 ≤ j ≤ c + (SIZE−1)/2.
    let lo = max(i32(j) - i32((SIZE - 1u) / 2u), 0);
    let hi = min(i32(j) + i32(SIZE / 2u) + 1, i32(shape.C));
    var cross = 0.0;
    for (var c = lo; c < hi; c++) {
        let at = (n * shape.C + u32(c)) * shape.P + p;
        cross += dy[at] * x[at] * pow(denominator(n, u32(c), p), -BETA - 1.0);
    }
    dx[index] = dy[index] * pow(denominator(n, j, p), -BETA) - 2.0 * ALPHA * BETA / f32(SIZE) * x[index] * cross;
}
