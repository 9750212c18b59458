// Shared by the gathering backward kernels (`conv_grad_input`, `pool_grad`): along one axis, the
// output index whose window reads input index `i` at tap offset `offset` (the tap times the
// dilation), with padding `pad` before the input, `stride` and `len` outputs; -1 where the tap does
// not land on a stride step or falls outside the output.
fn window_source(i: u32, pad: u32, offset: u32, stride: u32, len: u32) -> i32 {
    let t = i32(i + pad) - i32(offset);
    if (t < 0 || u32(t) % stride != 0u || u32(t) / stride >= len) {
        return -1;
    }
    return i32(u32(t) / stride);
}
