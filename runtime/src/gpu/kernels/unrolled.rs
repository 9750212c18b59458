//! The unrolled convolutions (`conv2d_unrolled`, `conv_grad_weight_unrolled`): for a small
//! convolution of one group (LeNet's, and the input gradients of such layers run as forward
//! convolutions), the tap loop is written out as WGSL for its exact shape. Each invocation of the
//! forward computes [`UnrolledConv::rows`] rows of [`UnrolledConv::positions`] outputs of one item
//! for [`UnrolledConv::channels`] output channels, in a loop over the input channels: per input row
//! its windows read it loads the inputs once, as the few aligned vec4s that cover them, and uses
//! each for every tap, output row and output channel that reads it; every weight is read from a
//! uniform buffer, once per input channel, at an offset the same for the whole workgroup. The
//! weight gradient ([`UnrolledWeightGrad`]) is written out the same way, its input channels too.
//!
//! Why: on CPU drivers (lavapipe) a storage-buffer load runs one lane at a time (Mesa 22.3: a loop
//! over the 8 lanes, each component checked against the buffer's end), and the storage-buffer
//! kernel (`conv2d.wgsl`) loads a weight and an input for every multiply-add. Here an input is
//! loaded once, for all the multiply-adds that read it, and a weight once per input channel. Mesa
//! 22.3 makes a uniform load one scalar load broadcast to every lane only at a constant offset; the
//! forward's offsets depend on the input-channel loop, so each weight is a gather of 8 lanes (the
//! machine code in `docs/benchmarks.md`, 2026-12-02), still once per input channel rather than
//! once per multiply-add. On GPUs such uniform loads come from the constant cache. The price is
//! compile time, which grows with the written-out code:
//! the kernels are taken only for windows larger than 1×1 with at most [`MAX_WEIGHTS`] weights (the
//! forward for at most 16 output channels), and the forward's loop body stays under
//! [`MAX_UNROLLED`] multiply-adds. Its shape is the one of least cost, a load counted as
//! [`LOAD_COST`] multiply-adds: where an invocation takes every row (or column) of its item, the
//! taps that fall in the padding are known when the kernel is written and left out, which halves
//! the work of an input gradient such as LeNet's second (a 5×5 convolution of a 10×10 output
//! gradient padded by 4).

use std::cmp::Reverse;
use std::fmt::Write as _;

use cnnc_ir::graph::{Activation, Conv2d, Pad4};

use super::{activation_consts, grid_1d, Family, Kernel, KernelParams};

/// The most weights (`OC · IC · KH · KW`) an unrolled convolution holds: 9.6 kB of uniform buffer,
/// far below the 64 KiB every WebGPU adapter binds.
pub const MAX_WEIGHTS: usize = 2_400;

/// The most multiply-adds written out in the unrolled forward's loop body, per input channel (output
/// channels × rows × positions per invocation × `KH · KW`).
pub const MAX_UNROLLED: usize = 12_000;

/// The most output positions of a row one invocation of an [`UnrolledConv`] computes (per row it
/// takes).
const MAX_POSITIONS: usize = 16;

/// The most output positions of a row one step of an [`UnrolledWeightGrad`] takes.
const MAX_STEP_POSITIONS: usize = 8;

/// The most sums one invocation of the unrolled forward keeps (output channels × rows × positions).
const MAX_SUMS_PER_INVOCATION: usize = 512;

/// Invocations an [`UnrolledConv`] leaves at the least (as far as the output allows): two workgroups,
/// so that both cores of a two-core CPU driver work. More, as [`UnrolledWeightGrad`] wants, cost
/// LeNet's second convolution at batch 8 its shape (2 rows of 1 position per invocation against 5
/// positions of 1 row), 1.6–2.1 ms against 0.7–1.1 on lavapipe.
const MIN_FORWARD_INVOCATIONS: usize = 128;

/// What one vec4 load from a storage buffer costs, in multiply-adds, for choosing an unrolled
/// forward's shape: lavapipe loads a storage buffer one invocation at a time. Fitted to LeNet's
/// second convolution and its input gradient (loads and multiply-adds per item against their times).
const LOAD_COST: usize = 50;

/// The most output channels a convolution may have to run as the unrolled forward.
const MAX_CHANNELS: usize = 16;

/// The weights (`OC · IC · KH · KW`) of a convolution both unrolled kernels can take: one group, at
/// most [`MAX_WEIGHTS`], and a window larger than 1×1 (the reuse these kernels exist for: a 1×1
/// convolution reads each input once, and its channels are too many to keep in registers).
fn unrollable_weights(conv: &Conv2d) -> Option<usize> {
    let weights = conv.out_channels * conv.in_channels * conv.kernel[0] * conv.kernel[1];
    let window = conv.kernel[0] * conv.kernel[1] > 1;
    (conv.groups == 1 && window && (1..=MAX_WEIGHTS).contains(&weights)).then_some(weights)
}

/// The columns of a row's window that some position and tap read: `j · SX + kx · DX`.
fn window_columns(positions: usize, kw: usize, sx: usize, dx: usize) -> Vec<usize> {
    let mut columns: Vec<usize> = (0..positions).flat_map(|j| (0..kw).map(move |x| j * sx + x * dx)).collect();
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// The offsets from an invocation's first input row of the input rows its `rows` output rows read
/// (`row · SY + y · DY`), each once, in order.
fn row_offsets(rows: usize, kh: usize, sy: usize, dy: usize) -> Vec<usize> {
    let mut offsets: Vec<usize> = (0..rows).flat_map(|row| (0..kh).map(move |y| row * sy + y * dy)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    offsets
}

/// The (output row, tap row) pairs among `rows` output rows whose window row is the input row at
/// `offset` (one of [`row_offsets`]), in output-row order.
fn taps_reading(offset: usize, rows: usize, kh: usize, sy: usize, dy: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..rows).flat_map(move |row| (0..kh).filter(move |y| row * sy + y * dy == offset).map(move |y| (row, y)))
}

/// The vec4 loads [`aligned_loads`] makes for a row's window of `positions` positions.
fn vec4_loads(positions: usize, kw: usize, sx: usize, dx: usize) -> usize {
    ((positions - 1) * sx + (kw - 1) * dx).div_ceil(4) + 1
}

/// Writes, at `indent`, the columns of a row's window (`c{j}`, relative to `x0`) and whether each
/// falls inside the input's `iw` columns (`in{j}`), for [`row_window`] with `columns_checked`.
fn window_setup(s: &mut String, indent: &str, columns: &[usize], iw: usize) {
    for j in columns {
        let _ = writeln!(s, "{indent}let c{j} = x0 + {j}; let in{j} = c{j} >= 0 && c{j} < {iw};");
    }
}

/// Where [`row_window`] reads: a channel of an input `[N, IC, IH, IW]` of `len` floats in
/// `buffer`, and which of its rows and columns are known inside the input when the kernel is written.
struct RowSource<'a> {
    buffer: &'a str,
    /// `[IC, IH, IW]` of one item.
    input: [usize; 3],
    len: usize,
    /// A WGSL `i32`: the flat index of the channel's first float.
    channel: &'a str,
    /// Every row read is inside the input (else each is checked against `IH`).
    rows_inside: bool,
    /// The columns are checked against `IW` (`in{j}` from [`window_setup`]), else known inside.
    columns_checked: bool,
}

/// Writes, at `indent`, the loads of input row `y0 + offset` of `source`'s channel at `columns`
/// (relative to `x0`; sorted): `v{j}` is column `x0 + j`, zero outside the input.
fn row_window(s: &mut String, indent: &str, source: &RowSource, offset: usize, columns: &[usize]) {
    let [_, ih, iw] = source.input;
    let row_in = if source.rows_inside { "true".to_string() } else { format!("yy >= 0 && yy < {ih}") };
    let _ = writeln!(s, "{indent}let yy = y0 + {offset}; let row_in = {row_in};");
    let _ = writeln!(s, "{indent}let row = {} + yy * {iw};", source.channel);
    let first = columns.first().copied().unwrap_or(0);
    let loads: Vec<(String, usize, String)> = columns
        .iter()
        .map(|&j| {
            let valid = if source.columns_checked { format!("row_in && in{j}") } else { "row_in".to_string() };
            (format!("v{j}"), j - first, valid)
        })
        .collect();
    aligned_loads(s, indent, "", source.buffer, &format!("row + x0 + {first}"), &loads, source.len);
}

/// Writes loads of consecutive floats of `buffer` (an `array<vec4<f32>>` holding `len` floats): for
/// each `(name, offset, valid)`, `let name` is the float at flat index `start + offset` where the
/// WGSL condition `valid` holds, else zero. They are read as the few aligned vec4s that cover them,
/// one storage load each instead of one per float (a CPU driver runs every storage load as a loop
/// over its lanes), each float then picked by `start`'s offset within its vec4. `tag` keeps the
/// helper names of several such groups in one scope apart.
fn aligned_loads(
    s: &mut String,
    indent: &str,
    tag: &str,
    buffer: &str,
    start: &str,
    loads: &[(String, usize, String)],
    len: usize,
) {
    let Some(last) = loads.iter().map(|(_, offset, _)| *offset).max() else { return };
    let _ = writeln!(s, "{indent}let s{tag} = {start}; let b{tag} = s{tag} >> 2u; let k{tag} = s{tag} & 3;");
    // Offsets up to `last` from a start up to 3 floats into its vec4.
    for q in 0..last.div_ceil(4) + 1 {
        let _ = writeln!(s, "{indent}let q{tag}_{q} = {buffer}[u32(clamp(b{tag} + {q}, 0, {}))];", len.div_ceil(4) - 1);
    }
    let float = |m: usize| format!("q{tag}_{}.{}", m / 4, ['x', 'y', 'z', 'w'][m % 4]);
    for (name, j, valid) in loads {
        let picked = format!(
            "select(select(select({}, {}, k{tag} == 1), {}, k{tag} == 2), {}, k{tag} == 3)",
            float(*j),
            float(j + 1),
            float(j + 2),
            float(j + 3)
        );
        let _ = writeln!(s, "{indent}let {name} = select(0.0, {picked}, {valid});");
    }
}

/// A convolution of one group, unrolled for its shape: input `[N, IC, IH, IW]`, weights
/// `[OC, IC, KH, KW]` (in a uniform buffer), optional bias `[OC]`, output `[N, OC, OH, OW]`. Each
/// invocation computes [`UnrolledConv::rows`] rows of [`UnrolledConv::positions`] outputs of one item
/// for [`UnrolledConv::channels`] output channels, in a loop over the input channels whose body is
/// written out: each weight is read once per input channel, at an offset the same for the whole
/// workgroup (its block of output channels comes from the workgroup's id). Where an invocation takes
/// every output row (or every column) of its item, which input rows (columns) its taps read is known when
/// the kernel is written: taps in the padding are left out, loads and multiply-adds both (an input
/// gradient run as a convolution of the output gradient is half padding). A non-finite weight
/// therefore makes NaN of an output whose window reaches into the padding only where that padding
/// is not left out, as PyTorch's forward does but not its input gradient (which never multiplies
/// the padding); finite weights give the same sums either way.
#[derive(Clone, Debug, PartialEq)]
pub struct UnrolledConv {
    pub n: usize,
    /// `[IC, IH, IW]` of one item.
    pub input: [usize; 3],
    /// `[OC, OH, OW]` of one item.
    pub output: [usize; 3],
    /// The convolution; its `bias` says whether a bias is bound and added.
    pub conv: Conv2d,
    /// Consecutive output positions of one row per invocation.
    pub positions: usize,
    /// Consecutive output rows per invocation (each input row is loaded once for all of them).
    pub rows: usize,
    /// Output channels per invocation, a divisor of `OC`.
    pub channels: usize,
    /// Applied to each output (after the bias), as `common.wgsl`'s `activate` does.
    pub activation: Option<Activation>,
    /// The weights bound are not this convolution's but those of the convolution whose input
    /// gradient it is (stride 1, one group: `[IC, OC, KH, KW]` here), read swapped and rotated:
    /// `w[o][c][y][x]` is the bound `w'[c][o][KH−1−y][KW−1−x]`, as `conv_flip.wgsl` would lay them
    /// out, so that no dispatch lays them out first.
    pub flipped: bool,
}

/// What one invocation of an [`UnrolledConv`] reads per input channel: the offsets of its input rows
/// from its first (those in the padding left out where known) and the columns of its rows' window
/// (likewise).
struct Reads {
    offsets: Vec<usize>,
    columns: Vec<usize>,
}

impl UnrolledConv {
    /// The unrolled kernel for this convolution, if it is small enough and of one group: the output
    /// channels, rows and positions per invocation that cost least over the whole convolution (a load
    /// as [`LOAD_COST`] multiply-adds; taps in the padding left out where known), among those that
    /// keep at most [`MAX_SUMS_PER_INVOCATION`] sums, write out at most [`MAX_UNROLLED`] multiply-adds
    /// per input channel and leave [`MIN_FORWARD_INVOCATIONS`] invocations (or the most any choice
    /// leaves).
    pub fn fits(n: usize, input: [usize; 3], output: [usize; 3], conv: &Conv2d) -> Option<UnrolledConv> {
        unrollable_weights(conv).filter(|_| conv.out_channels <= MAX_CHANNELS)?;
        let (oc, oh, ow) = (output[0].max(1), output[1].max(1), output[2].max(1));
        let per_channel = conv.kernel[0] * conv.kernel[1];
        let mut candidates = Vec::new();
        for channels in (1..=oc).filter(|c| oc % c == 0) {
            for rows in (1..=oh).take_while(|rows| channels * rows <= MAX_SUMS_PER_INVOCATION) {
                for positions in 1..=MAX_POSITIONS.min(ow) {
                    let sums = channels * rows * positions;
                    if sums > MAX_SUMS_PER_INVOCATION || sums * per_channel > MAX_UNROLLED {
                        continue;
                    }
                    let params = UnrolledConv {
                        n,
                        input,
                        output,
                        conv: conv.clone(),
                        positions,
                        rows,
                        channels,
                        activation: None,
                        flipped: false,
                    };
                    candidates.push((params.invocations(), params.cost(), params));
                }
            }
        }
        let most = candidates.iter().map(|c| c.0).max()?;
        let wanted = MIN_FORWARD_INVOCATIONS.min(most);
        // Least cost; ties go to fewer sums per invocation (smaller code), then more channels.
        candidates
            .into_iter()
            .filter(|c| c.0 >= wanted)
            .min_by_key(|c| (c.1, c.2.channels * c.2.rows * c.2.positions, Reverse(c.2.channels)))
            .map(|c| c.2)
    }

    fn blocks(&self) -> usize {
        self.output[0] / self.channels
    }

    fn row_groups(&self) -> usize {
        self.output[1].div_ceil(self.rows)
    }

    fn column_groups(&self) -> usize {
        self.output[2].div_ceil(self.positions)
    }

    /// Invocations per block of output channels.
    fn per_block(&self) -> usize {
        self.n * self.row_groups() * self.column_groups()
    }

    fn invocations(&self) -> usize {
        self.blocks() * self.per_block()
    }

    /// The input rows and columns one invocation reads per input channel.
    fn reads(&self) -> Reads {
        let [_, ih, iw] = self.input;
        let c = &self.conv;
        let ([kh, kw], [sy, sx], [dy, dx]) = (c.kernel, c.stride, c.dilation);
        let Pad4 { top, left, .. } = c.padding;
        let inside = |at: usize, pad: usize, extent: usize| at >= pad && at - pad < extent;
        let fixed_rows = self.row_groups() == 1;
        let fixed_columns = self.column_groups() == 1;
        Reads {
            offsets: row_offsets(self.rows, kh, sy, dy)
                .into_iter()
                .filter(|&o| !fixed_rows || inside(o, top, ih))
                .collect(),
            columns: window_columns(self.positions, kw, sx, dx)
                .into_iter()
                .filter(|&j| !fixed_columns || inside(j, left, iw))
                .collect(),
        }
    }

    /// The positions (of [`UnrolledConv::positions`]) whose column tap `x` reads a column `reads`
    /// keeps, in order.
    fn kept_positions(&self, reads: &Reads, x: usize) -> Vec<usize> {
        let ([sx, dx], p) = ([self.conv.stride[1], self.conv.dilation[1]], self.positions);
        (0..p).filter(|j| reads.columns.binary_search(&(j * sx + x * dx)).is_ok()).collect()
    }

    /// WGSL for the first weight of the workgroup's block of output channels (from `o0`) and input
    /// channel `ci`, in the bound layout (`wb` in [`UnrolledConv::body`]); the others are at
    /// [`UnrolledConv::weight_offset`] from it.
    fn weight_base(&self) -> String {
        let ([kh, kw], [ic, oc]) = (self.conv.kernel, [self.input[0], self.output[0]]);
        if self.flipped {
            format!("(ci * {oc}u + o0) * {}u", kh * kw)
        } else {
            format!("(o0 * {ic}u + ci) * {}u", kh * kw)
        }
    }

    /// The offset of weight (output channel `o` of the block, tap `y`, `x`) from the first weight of
    /// its block and input channel (`wb` in [`UnrolledConv::body`]), in the bound layout.
    fn weight_offset(&self, o: usize, y: usize, x: usize) -> usize {
        let ([kh, kw], ic) = (self.conv.kernel, self.input[0]);
        if self.flipped {
            (o * kh + kh - 1 - y) * kw + kw - 1 - x
        } else {
            (o * ic * kh + y) * kw + x
        }
    }

    /// The cost of the whole convolution: vec4 loads times [`LOAD_COST`] plus multiply-adds.
    fn cost(&self) -> usize {
        let reads = self.reads();
        let (Some(first), Some(last)) = (reads.columns.first(), reads.columns.last()) else { return 0 };
        let loads = reads.offsets.len() * ((last - first).div_ceil(4) + 1);
        let c = &self.conv;
        let ([kh, kw], sy, dy) = (c.kernel, c.stride[0], c.dilation[0]);
        let taps_per_row: usize = (0..kw).map(|x| self.kept_positions(&reads, x).len()).sum();
        // The (output row, tap row) pairs whose input row is read (offsets are sorted).
        let rows_taps = (0..self.rows)
            .flat_map(|row| (0..kh).map(move |y| row * sy + y * dy))
            .filter(|o| reads.offsets.binary_search(o).is_ok())
            .count();
        let macs = self.channels * rows_taps * taps_per_row;
        self.invocations() * self.input[0] * (loads * LOAD_COST + macs)
    }

    /// The kernel's WGSL body, every extent written in, and every weight's offset from its input
    /// channel's first (`wb`).
    fn body(&self) -> String {
        let ([ic, ih, iw], [oc, oh, ow]) = (self.input, self.output);
        let c = &self.conv;
        let ([kh, kw], [sy, sx], [dy, dx]) = (c.kernel, c.stride, c.dilation);
        let Pad4 { top, left, .. } = c.padding;
        let (p, r, ob) = (self.positions, self.rows, self.channels);
        let (per_row, row_groups) = (self.column_groups(), self.row_groups());
        let weights = oc * ic * kh * kw;
        let reads = self.reads();
        let mut s = String::new();
        let _ = writeln!(s, "@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;");
        let _ = writeln!(s, "@group(0) @binding(1) var<uniform> weight: array<vec4<f32>, {}>;", weights.div_ceil(4));
        let _ = writeln!(s, "@group(0) @binding(2) var<storage, read> bias: array<f32>;");
        let _ = writeln!(s, "@group(0) @binding(3) var<storage, read_write> output: array<f32>;");
        let _ = writeln!(s, "fn weight_at(i: u32) -> f32 {{ return weight[i >> 2u][i & 3u]; }}");
        let _ = writeln!(s, "@compute @workgroup_size(64)");
        let _ = writeln!(
            s,
            "fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{"
        );
        let _ = writeln!(s, "    let q = gid.x + gid.y * {}u;", 65_535 * 64);
        let _ = writeln!(s, "    if (q >= {}u) {{ return; }}", self.per_block());
        // The block of output channels is the workgroup's: its weights' offsets are uniform.
        let _ = writeln!(s, "    let o0 = wid.z * {ob}u;");
        let _ = writeln!(s, "    let n = q / {}u;", row_groups * per_row);
        let _ = writeln!(s, "    let oy = ((q / {per_row}u) % {row_groups}u) * {r}u;");
        let _ = writeln!(s, "    let ox = (q % {per_row}u) * {p}u;");
        let _ = writeln!(s, "    let y0 = i32(oy * {sy}u) - {top};");
        let _ = writeln!(s, "    let x0 = i32(ox * {sx}u) - {left};");
        let _ = writeln!(s, "    let item = i32(n * {}u);", ic * ih * iw);
        // Columns read: known inside the input where the invocation takes the whole row.
        if per_row > 1 {
            window_setup(&mut s, "    ", &reads.columns, iw);
        }
        for o in 0..ob {
            for row in 0..r {
                for j in 0..p {
                    let _ = writeln!(s, "    var a{o}_{row}_{j} = 0.0;");
                }
            }
        }
        // Per input channel, each input row the windows of the invocation's output rows read, once
        // (`v{j}` is column `x0 + j`): output row `row`'s tap row `y` reads input row
        // `y0 + row·SY + y·DY`. For one output the taps are added in (ci, y, x) order.
        let _ = writeln!(s, "    for (var ci = 0u; ci < {ic}u; ci++) {{");
        let _ = writeln!(s, "    let channel = item + i32(ci * {}u);", ih * iw);
        // Weight (o, ci, y, x) of the block is at `wb + self.weight_offset(o, y, x)`.
        let _ = writeln!(s, "    let wb = {};", self.weight_base());
        let source = RowSource {
            buffer: "input",
            input: self.input,
            len: self.n * ic * ih * iw,
            channel: "channel",
            rows_inside: row_groups == 1,
            columns_checked: per_row > 1,
        };
        let kept: Vec<Vec<usize>> = (0..kw).map(|x| self.kept_positions(&reads, x)).collect();
        for &offset in &reads.offsets {
            let _ = writeln!(s, "    {{");
            row_window(&mut s, "        ", &source, offset, &reads.columns);
            for (row, y) in taps_reading(offset, r, kh, sy, dy) {
                for (x, js) in kept.iter().enumerate().filter(|(_, js)| !js.is_empty()) {
                    for o in 0..ob {
                        let e = self.weight_offset(o, y, x);
                        let _ = write!(s, "        {{ let w = weight_at(wb + {e}u);");
                        for &j in js {
                            let _ = write!(s, " a{o}_{row}_{j} += v{} * w;", j * sx + x * dx);
                        }
                        let _ = writeln!(s, " }}");
                    }
                }
            }
            let _ = writeln!(s, "    }}");
        }
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "    let base = (n * {oc}u + o0) * {}u + oy * {ow}u + ox;", oh * ow);
        for row in 0..r {
            for j in 0..p {
                // Positions past the row's end (a last partial group) and rows past the last are
                // computed and not stored.
                let mut guards = Vec::new();
                if !ow.is_multiple_of(p) {
                    guards.push(format!("ox + {j}u < {ow}u"));
                }
                if !oh.is_multiple_of(r) {
                    guards.push(format!("oy + {row}u < {oh}u"));
                }
                let guard = if guards.is_empty() { String::new() } else { format!("if ({}) ", guards.join(" && ")) };
                let _ = writeln!(s, "    {guard}{{");
                for o in 0..ob {
                    let b = if self.conv.bias { format!(" + bias[o0 + {o}u]") } else { String::new() };
                    let _ = writeln!(
                        s,
                        "        output[base + {}u] = activate(sum_sign(a{o}_{row}_{j}{b}));",
                        o * oh * ow + row * ow + j
                    );
                }
                let _ = writeln!(s, "    }}");
            }
        }
        s.push_str("}\n");
        s
    }
}

impl KernelParams for UnrolledConv {
    fn kernel(&self) -> Kernel {
        let [x, y, _] = grid_1d(self.per_block() as u64);
        let consts = activation_consts(self.activation).to_vec();
        let grid = [x, y, self.blocks() as u32];
        Kernel { generated: Some(self.body()), ..Kernel::new(Family::Conv2dUnrolled, consts, grid) }
    }

    fn samples() -> Vec<UnrolledConv> {
        let conv = |stride: usize, padding: usize, dilation: usize, bias: bool| Conv2d {
            in_channels: 2,
            out_channels: 3,
            kernel: [3, 2],
            stride: [stride, stride],
            padding: Pad4::uniform(padding),
            dilation: [dilation, dilation],
            groups: 1,
            bias,
        };
        let mut samples: Vec<UnrolledConv> = [(conv(1, 0, 1, true), [3, 5, 6]), (conv(2, 1, 2, false), [3, 3, 4])]
            .into_iter()
            .filter_map(|(c, output)| UnrolledConv::fits(2, [2, 7, 7], output, &c))
            .collect();
        samples[0].activation = Some(Activation::Relu);
        // Every row and column of an item, padding left out, one output channel per block of the
        // grid's z; then partial groups of rows and positions over three channels.
        let whole = UnrolledConv {
            n: 2,
            input: [2, 5, 5],
            output: [3, 5, 6],
            conv: conv(1, 1, 1, true),
            positions: 6,
            rows: 5,
            channels: 1,
            activation: None,
            flipped: false,
        };
        samples.push(UnrolledConv { positions: 4, rows: 2, channels: 3, ..whole.clone() });
        samples.push(UnrolledConv { flipped: true, ..whole.clone() });
        samples.push(whole);
        samples
    }
}

/// The most weight-gradient sums one invocation of [`UnrolledWeightGrad`] keeps.
const MAX_SUMS: usize = 600;

/// The most multiply-adds written out for one step of an [`UnrolledWeightGrad`]: its sums stay
/// live through the whole step, and a step of 12,000 (LeNet's first convolution at 4 rows a step)
/// made lavapipe's first training step take 55 s to compile instead of about 46 s.
const MAX_STEP_CODE: usize = 6_000;

/// The most partial sums an [`UnrolledWeightGrad`] writes (64 MiB of scratch).
const MAX_PARTIALS: usize = 16 << 20;

/// Invocations an [`UnrolledWeightGrad`] aims for (as far as the rows allow), so that every core of
/// a CPU driver and several of a GPU's get work; each takes as many rows as that leaves, and fewer
/// partial sums remain to add.
const MIN_INVOCATIONS: usize = 256;

/// The weight gradient of a small convolution of one group, unrolled for its shape: from the input
/// `x` `[N, IC, IH, IW]` and the output gradient `dy` `[N, OC, OH, OW]`, partial sums of
/// `dW[o][c][ky][kx] = Σ dy[n][o][y][x] · x[n][c][y·SY + ky·DY − PT][x·SX + kx·DX − PL]`, one per
/// (weight, item, chunk of output rows), written at `weight · partials + item · chunks + chunk` for
/// `reduce_partials` to add in order. Each invocation takes a chunk of output rows of one item for a
/// block of output channels, keeps a sum per weight of the block in registers, and walks each row a few
/// positions at a time: per input row of the window it loads the inputs once and uses each for
/// every tap and channel that reads it. It replaces `conv_grad_weight`'s loads of an input and an
/// output gradient per multiply-add, which dominate on CPU drivers.
#[derive(Clone, Debug, PartialEq)]
pub struct UnrolledWeightGrad {
    pub n: usize,
    /// `[IC, IH, IW]` of one item.
    pub input: [usize; 3],
    /// `[OC, OH, OW]` of one item.
    pub output: [usize; 3],
    pub conv: Conv2d,
    /// Output channels per invocation.
    pub channels: usize,
    /// Output positions per step along the row.
    pub positions: usize,
    /// Output rows per invocation.
    pub rows: usize,
    /// Output rows per step of an invocation (a divisor of `rows` and of `OH`): each input row
    /// their windows read is loaded once for all of them.
    pub step_rows: usize,
    /// Also the bias gradient `Σ dy` per output channel, as `OC` more results after the weights'
    /// (`dW` is `[OC·IC·KH·KW]` results, `db` the next `OC`).
    pub bias: bool,
}

impl UnrolledWeightGrad {
    /// The unrolled weight gradient for this convolution, if it is small enough and of one group.
    pub fn fits(n: usize, input: [usize; 3], output: [usize; 3], conv: &Conv2d) -> Option<UnrolledWeightGrad> {
        let per_channel = conv.in_channels * conv.kernel[0] * conv.kernel[1];
        let weights = unrollable_weights(conv).filter(|_| per_channel <= MAX_SUMS)?;
        let channels = (MAX_SUMS / per_channel).min(conv.out_channels);
        let (blocks, oh, ow) = (conv.out_channels.div_ceil(channels), output[1].max(1), output[2].max(1));
        // Invocations wanted: MIN_INVOCATIONS, or one per output row of each item and block if fewer;
        // the most rows per invocation that leave them (invocations only fall as rows grow).
        let wanted = MIN_INVOCATIONS.min(blocks * n.max(1) * oh);
        let most_rows = (1..=oh).rev().find(|&r| blocks * n.max(1) * oh.div_ceil(r) >= wanted).unwrap_or(1);
        // The rows and positions per step that load the fewest vec4s over the whole gradient, within
        // MAX_STEP_CODE multiply-adds of code per step. Rows per step divide the output's rows and the
        // invocation's, so that no step reaches past its chunk (a row of zero gradient times an
        // infinite input would make NaN): each takes the most rows up to `most_rows` it divides, since
        // the loads do not depend on the rows per invocation and more rows leave fewer partial sums
        // to add. Ties go to more rows per invocation, then fewer rows a step and fewer positions
        // (smaller code).
        let ([kh, kw], [sy, sx], [dy, dx]) = (conv.kernel, conv.stride, conv.dilation);
        let sums = channels * per_channel;
        let mut best: Option<(usize, Reverse<usize>, usize, usize)> = None;
        for step_rows in (1..=most_rows).filter(|r| oh % r == 0) {
            let rows = most_rows / step_rows * step_rows;
            for positions in 1..=MAX_STEP_POSITIONS.min(ow) {
                if sums * positions * step_rows > MAX_STEP_CODE.max(sums) {
                    continue;
                }
                let per_step = channels * step_rows * vec4_loads(positions, 1, 1, 1)
                    + conv.in_channels * row_offsets(step_rows, kh, sy, dy).len() * vec4_loads(positions, kw, sx, dx);
                // Steps over all chunks of an item and block (rows a step divide every chunk).
                let steps = oh / step_rows * ow.div_ceil(positions);
                let choice = (blocks * n.max(1) * steps * per_step, Reverse(rows), step_rows, positions);
                if best.is_none_or(|fewest| choice < fewest) {
                    best = Some(choice);
                }
            }
        }
        let (_, Reverse(rows), step_rows, positions) = best?;
        let grad = UnrolledWeightGrad {
            n,
            input,
            output,
            conv: conv.clone(),
            channels,
            positions,
            rows,
            step_rows,
            bias: false,
        };
        ((weights + conv.out_channels) * grad.partials() <= MAX_PARTIALS).then_some(grad)
    }

    fn chunks(&self) -> usize {
        self.output[1].div_ceil(self.rows).max(1)
    }

    /// Partial sums per weight: items × chunks of output rows.
    pub fn partials(&self) -> usize {
        self.n * self.chunks()
    }

    fn blocks(&self) -> usize {
        self.output[0].div_ceil(self.channels)
    }

    /// The kernel's WGSL body, every extent and offset written in.
    fn body(&self) -> String {
        let ([ic, ih, iw], [oc, oh, ow]) = (self.input, self.output);
        let c = &self.conv;
        let ([kh, kw], [sy, _]) = (c.kernel, c.stride);
        let Pad4 { top, .. } = c.padding;
        let (p, ob) = (self.positions, self.channels);
        let parts = self.partials();
        let mut s = String::new();
        let _ = writeln!(s, "@group(0) @binding(0) var<storage, read> dy: array<vec4<f32>>;");
        let _ = writeln!(s, "@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;");
        let _ = writeln!(s, "@group(0) @binding(2) var<storage, read_write> partials: array<f32>;");
        let _ = writeln!(s, "@compute @workgroup_size(64)");
        let _ = writeln!(s, "fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{");
        let _ = writeln!(s, "    let q = gid.x + gid.y * {}u;", 65_535 * 64);
        let _ = writeln!(s, "    if (q >= {}u) {{ return; }}", self.blocks() * parts);
        let _ = writeln!(s, "    let part = q % {parts}u;");
        let _ = writeln!(s, "    let o0 = (q / {parts}u) * {ob}u;");
        let (chunks, rows) = (self.chunks(), self.rows);
        let _ = writeln!(s, "    let n = part / {chunks}u;");
        let _ = writeln!(s, "    let first_row = (part % {chunks}u) * {rows}u;");
        let _ = writeln!(s, "    let item = i32(n * {}u);", ic * ih * iw);
        for e in 0..ob * ic * kh * kw {
            let _ = writeln!(s, "    var a{e} = 0.0;");
        }
        for o in (0..ob).filter(|_| self.bias) {
            let _ = writeln!(s, "    var b{o} = 0.0;");
        }
        let r = self.step_rows;
        let _ = writeln!(s, "    for (var oy = first_row; oy < min(first_row + {rows}u, {oh}u); oy += {r}u) {{");
        let _ = writeln!(s, "    let y0 = i32(oy * {sy}u) - {top};");
        let _ = writeln!(s, "    let dy_row = (n * {oc}u + o0) * {}u + oy * {ow}u;", oh * ow);
        // Whole groups of `p` positions, then the row's last `ow mod p` as a group of their own: a
        // position past the row would multiply a zero gradient by a real input column, and 0 · ∞ is
        // NaN where PyTorch never forms that product.
        let (whole, tail) = (ow - ow % p, ow % p);
        if whole > 0 {
            let _ = writeln!(s, "    for (var ox = 0u; ox < {whole}u; ox += {p}u) {{");
            self.position_group(&mut s, p);
            let _ = writeln!(s, "    }}");
        }
        if tail > 0 {
            let _ = writeln!(s, "    {{");
            let _ = writeln!(s, "        let ox = {whole}u;");
            self.position_group(&mut s, tail);
            let _ = writeln!(s, "    }}");
        }
        let _ = writeln!(s, "    }}");
        let per_block = ob * ic * kh * kw;
        let _ = writeln!(s, "    let first = o0 * {}u;", ic * kh * kw);
        for o in 0..ob {
            let _ = writeln!(s, "    if (o0 + {o}u < {oc}u) {{");
            for k in 0..ic * kh * kw {
                let e = o * ic * kh * kw + k;
                let _ = writeln!(s, "        partials[(first + {e}u) * {parts}u + part] = a{e};");
            }
            if self.bias {
                let row = oc * ic * kh * kw;
                let _ = writeln!(s, "        partials[({row}u + o0 + {o}u) * {parts}u + part] = b{o};");
            }
            let _ = writeln!(s, "    }}");
        }
        debug_assert!(per_block <= MAX_SUMS);
        s.push_str("}\n");
        s
    }

    /// Writes the sums of one group of `p` consecutive output positions from `ox` of the row at
    /// `dy_row` (`y0` its first input row): the output gradients of each channel of the block, then
    /// per input row of the window its loads, each used for every tap and channel that reads it.
    fn position_group(&self, s: &mut String, p: usize) {
        let ([ic, ih, iw], [oc, oh, ow]) = (self.input, self.output);
        let c = &self.conv;
        let ([kh, kw], [sy, sx], [dy, dx]) = (c.kernel, c.stride, c.dilation);
        debug_assert!(p <= self.positions);
        let Pad4 { left, .. } = c.padding;
        let ob = self.channels;
        let (in_len, out_len) = (self.n * ic * ih * iw, self.n * oc * oh * ow);
        let _ = writeln!(s, "        let x0 = i32(ox * {sx}u) - {left};");
        let r = self.step_rows;
        for o in 0..ob {
            for row in 0..r {
                // Channels past the last (a partial block) read as zero; their sums are not written.
                let loads: Vec<(String, usize, String)> =
                    (0..p).map(|j| (format!("g{o}_{row}_{j}"), j, format!("o0 + {o}u < {oc}u"))).collect();
                let start = format!("i32(dy_row + {}u + ox)", o * oh * ow + row * ow);
                aligned_loads(s, "        ", &format!("g{o}_{row}"), "dy", &start, &loads, out_len);
                if self.bias {
                    // In position order.
                    let sums: String = (0..p).map(|j| format!(" b{o} += g{o}_{row}_{j};")).collect();
                    let _ = writeln!(s, "       {sums}");
                }
            }
        }
        let columns = window_columns(p, kw, sx, dx);
        window_setup(s, "        ", &columns, iw);
        for ci in 0..ic {
            let channel = format!("item + {}", ci * ih * iw);
            let source = RowSource {
                buffer: "x",
                input: self.input,
                len: in_len,
                channel: &channel,
                rows_inside: false,
                columns_checked: true,
            };
            for offset in row_offsets(r, kh, sy, dy) {
                let _ = writeln!(s, "        {{");
                row_window(s, "            ", &source, offset, &columns);
                for (row, y) in taps_reading(offset, r, kh, sy, dy) {
                    for xk in 0..kw {
                        for o in 0..ob {
                            let e = ((o * ic + ci) * kh + y) * kw + xk;
                            let _ = write!(s, "           ");
                            for j in 0..p {
                                let _ = write!(s, " a{e} += g{o}_{row}_{j} * v{};", j * sx + xk * dx);
                            }
                            let _ = writeln!(s);
                        }
                    }
                }
                let _ = writeln!(s, "        }}");
            }
        }
    }
}

impl KernelParams for UnrolledWeightGrad {
    fn kernel(&self) -> Kernel {
        let grid = grid_1d((self.blocks() * self.partials()) as u64);
        let consts = activation_consts(None).to_vec();
        Kernel { generated: Some(self.body()), ..Kernel::new(Family::ConvGradWeightUnrolled, consts, grid) }
    }

    fn samples() -> Vec<UnrolledWeightGrad> {
        let conv = |stride: usize, padding: usize, dilation: usize| Conv2d {
            in_channels: 2,
            out_channels: 3,
            kernel: [3, 2],
            stride: [stride, stride],
            padding: Pad4::uniform(padding),
            dilation: [dilation, dilation],
            groups: 1,
            bias: false,
        };
        let mut samples: Vec<UnrolledWeightGrad> = [(conv(1, 0, 1), [3, 5, 6]), (conv(2, 1, 2), [3, 3, 4])]
            .into_iter()
            .filter_map(|(c, output)| UnrolledWeightGrad::fits(2, [2, 7, 7], output, &c))
            .collect();
        samples[0].bias = true;
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(ic: usize, oc: usize, k: usize, groups: usize) -> Conv2d {
        Conv2d {
            in_channels: ic,
            out_channels: oc,
            kernel: [k, k],
            stride: [1, 1],
            padding: Pad4::uniform(0),
            dilation: [1, 1],
            groups,
            bias: true,
        }
    }

    #[test]
    fn only_small_convolutions_of_one_group_unroll() {
        // LeNet's: 450 and 2,400 weights. The first at batch 64: all 6 channels, 4 rows of 14
        // positions (8 input rows of 6 vec4s per input channel for 336 outputs).
        let first = UnrolledConv::fits(64, [3, 32, 32], [6, 28, 28], &conv(3, 6, 5, 1)).expect("unrolls");
        assert_eq!((first.channels, first.rows, first.positions), (6, 4, 14));
        let second = UnrolledConv::fits(64, [6, 14, 14], [16, 10, 10], &conv(6, 16, 5, 1)).expect("unrolls");
        assert_eq!((second.channels, second.rows, second.positions), (16, 5, 5));
        assert_eq!(second.invocations(), 256);
        // At batch 8, 1 row of 5 positions: 160 invocations.
        let second = UnrolledConv::fits(8, [6, 14, 14], [16, 10, 10], &conv(6, 16, 5, 1)).expect("unrolls");
        assert_eq!((second.channels, second.rows, second.positions, second.invocations()), (16, 1, 5, 160));
        // Its input gradient, a convolution padded by 4: at batch 64 a whole item of two channels an
        // invocation (the padding's taps all left out), at batch 8 whole rows, two at a time, to
        // keep 128 invocations.
        let padded = Conv2d { padding: Pad4::uniform(4), ..conv(16, 6, 5, 1) };
        let grad = UnrolledConv::fits(64, [16, 10, 10], [6, 14, 14], &padded).expect("unrolls");
        assert_eq!((grad.channels, grad.rows, grad.positions, grad.invocations()), (2, 14, 14, 192));
        let grad = UnrolledConv::fits(8, [16, 10, 10], [6, 14, 14], &padded).expect("unrolls");
        assert_eq!((grad.channels, grad.rows, grad.positions, grad.invocations()), (2, 2, 14, 168));
        // A large output: the chooser stays within the sums an invocation keeps.
        let large = UnrolledConv::fits(64, [1, 516, 516], [16, 512, 512], &conv(1, 16, 5, 1)).expect("unrolls");
        assert!(large.channels * large.rows * large.positions <= MAX_SUMS_PER_INVOCATION);
        assert!(UnrolledConv::fits(1, [64, 56, 56], [64, 56, 56], &conv(64, 64, 3, 1)).is_none());
        assert!(UnrolledConv::fits(1, [4, 8, 8], [4, 6, 6], &conv(4, 4, 3, 2)).is_none());
        assert!(UnrolledConv::fits(1, [16, 8, 8], [16, 8, 8], &conv(16, 16, 1, 1)).is_none());
        assert!(UnrolledConv::fits(1, [3, 9, 9], [32, 7, 7], &conv(3, 32, 3, 1)).is_none());
        // Never more positions than the row has.
        assert_eq!(UnrolledConv::fits(1, [1, 5, 3], [1, 3, 1], &conv(1, 1, 3, 1)).unwrap().positions, 1);
        // Never more rows than the output has.
        assert_eq!(UnrolledConv::fits(1, [1, 3, 9], [1, 1, 7], &conv(1, 1, 3, 1)).unwrap().rows, 1);
    }

    #[test]
    fn the_flipped_conformance_case_splits_its_output_channels() {
        // The input gradient of `src/conformance/backward.rs`'s "3x2 kernel, stride 1, …" case: 60
        // positions per channel at batch 2 leave 128 invocations only with one channel a block, so
        // the case checks the flipped weights' block offsets too.
        let padding = Pad4 { top: 1, bottom: 2, left: 2, right: 1 };
        let transposed = Conv2d { kernel: [3, 2], padding, dilation: [1, 2], bias: false, ..conv(6, 4, 3, 1) };
        let grad = UnrolledConv::fits(2, [6, 4, 5], [4, 5, 6], &transposed).expect("unrolls");
        assert_eq!(grad.channels, 1);
    }

    #[test]
    fn taps_in_the_padding_are_left_out_where_known() {
        let padded = Conv2d { padding: Pad4::uniform(4), ..conv(16, 6, 5, 1) };
        let at = |rows, positions| UnrolledConv {
            n: 1,
            input: [16, 10, 10],
            output: [6, 14, 14],
            conv: padded.clone(),
            positions,
            rows,
            channels: 6,
            activation: None,
            flipped: false,
        };
        // Every row and column: only the 10 input rows and columns, from offset 4.
        let whole = at(14, 14).reads();
        assert_eq!(whole.offsets, (4..14).collect::<Vec<_>>());
        assert_eq!(whole.columns, (4..14).collect::<Vec<_>>());
        // Rows in groups: any offset may fall inside for some group; columns still known.
        let banded = at(2, 14).reads();
        assert_eq!((banded.offsets.len(), banded.columns.len()), (6, 10));
        // The left-out taps are left out of the cost too: 10 × 10 × 25 per input and output channel
        // (each output tap inside), against 14 × 14 × 25 with the padding.
        assert_eq!(at(14, 14).cost(), 16 * (10 * 4 * LOAD_COST + 6 * 10 * 10 * 25));
        assert!(at(7, 7).cost() > at(14, 14).cost());
    }

    #[test]
    fn weight_gradients_split_output_channels_to_bound_the_sums() {
        let first = UnrolledWeightGrad::fits(64, [3, 32, 32], [6, 28, 28], &conv(3, 6, 5, 1)).expect("unrolls");
        // Eight rows per invocation (4 chunks of 28 rows, 256 invocations), two at a step.
        assert_eq!((first.channels, first.positions, first.rows, first.partials()), (6, 5, 8, 64 * 4));
        assert_eq!(first.step_rows, 2);
        let second = UnrolledWeightGrad::fits(64, [6, 14, 14], [16, 10, 10], &conv(6, 16, 5, 1)).expect("unrolls");
        // Four blocks of 4 channels: 256 invocations of all 10 rows, 2 a step (6 input rows loaded
        // for 2 output rows, where 1 a step loads 5 for 1).
        assert_eq!((second.channels, second.blocks(), second.rows, second.step_rows), (4, 4, 10, 2));
        // Rows per step divide the rows per invocation and the output's rows: 86 items want 3 chunks
        // of at most 4 of the 10 rows, and 4 rows a step would not divide 10.
        let odd = UnrolledWeightGrad::fits(86, [1, 13, 13], [1, 10, 10], &conv(1, 1, 4, 1)).expect("unrolls");
        assert_eq!((odd.rows, odd.step_rows), (4, 2));
        // Too few items and rows for the invocations wanted: one row each.
        assert_eq!(UnrolledWeightGrad::fits(2, [3, 32, 32], [6, 28, 28], &conv(3, 6, 5, 1)).unwrap().rows, 1);
        assert!(UnrolledWeightGrad::fits(1, [16, 8, 8], [16, 8, 8], &conv(16, 16, 1, 1)).is_none());
        // Too many partial sums for one scratch buffer: the general kernel runs.
        assert!(UnrolledWeightGrad::fits(8192, [6, 200, 200], [16, 196, 196], &conv(6, 16, 5, 1)).is_none());
    }
}
