// The step's loss: one invocation adds the items' shares (from `cross_entropy`) in order into the
// loss history, at the slot the step's `hyper[0]` names, and the M items' hits (from `HITS` in the
// shares) into the slot CAP places later: how many items the step's forward classified right.
//
// Extents in `shape`: N, M, HITS, CAP.

@group(0) @binding(0) var<storage, read> shares: array<f32>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read_write> history: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x != 0u || gid.y != 0u) {
        return;
    }
    var total = 0.0;
    for (var i = 0u; i < shape.N; i++) {
        total += shares[i];
    }
    var hits = 0.0;
    for (var i = 0u; i < shape.M; i++) {
        hits += shares[shape.HITS + i];
    }
    let slot = bitcast<u32>(hyper[0]);
    history[slot] = total;
    history[shape.CAP + slot] = hits;
}
