//! Drawing a graph: Graphviz DOT text, and SVG laid out in-process (no Graphviz needed).

use std::fmt::Write as _;

use cnnc_compiler::graph::{Graph, Node, Op};
mod layout;

/// The text shown in a node: path, op with its main attributes, output shape.
fn label(node: &Node) -> Vec<String> {
    let op = match &node.op {
        Op::Conv2d(c) => {
            let mut s = format!("conv {}×{}", c.kernel[0], c.kernel[1]);
            if c.stride != [1, 1] {
                let _ = write!(s, " /{}", c.stride[0]);
            }
            if c.groups > 1 {
                let _ = write!(s, " g{}", c.groups);
            }
            s
        }
        Op::MaxPool(p) | Op::AvgPool(p) => {
            format!("{} {}×{} /{}", node.op.name(), p.kernel[0], p.kernel[1], p.stride[0])
        }
        Op::Linear { out_features, .. } => format!("linear → {out_features}"),
        op => op.name().to_string(),
    };
    let mut lines = Vec::new();
    if !node.path.is_empty() {
        lines.push(node.path.clone());
    }
    lines.push(op);
    lines.push(node.shape.to_string());
    lines
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph as Graphviz DOT; training-only nodes are dashed.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
        escape(&graph.meta.name)
    );
    for (id, node) in graph.nodes() {
        let style = if node.training_only { ", style=dashed" } else { "" };
        let text = label(node).iter().map(|l| escape(l)).collect::<Vec<_>>().join("\\n");
        let _ = writeln!(out, "  n{} [label=\"{text}\"{style}];", id.index());
    }
    for (id, node) in graph.nodes() {
        for input in &node.inputs {
            let _ = writeln!(out, "  n{} -> n{};", input.index(), id.index());
        }
    }
    out.push_str("}\n");
    out
}

/// The graph drawn as SVG on a white background: one box per node, the main path in one straight
/// column and branches in columns to its right in spec order (see [`layout`]); training-only nodes
/// are dashed, and an edge that skips over boxes in its column (an identity shortcut) bends round
/// them on the right.
pub fn to_svg(graph: &Graph) -> String {
    const CHAR_W: f64 = 7.2;
    const LINE_H: f64 = 14.0;
    const ROW_GAP: f64 = 28.0;
    const LANE_GAP: f64 = 48.0;
    let labels: Vec<Vec<String>> = graph.nodes().map(|(_, n)| label(n)).collect();
    let width_of = |lines: &[String]| lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * CHAR_W + 16.0;
    let box_w = labels.iter().map(|l| width_of(l)).fold(0.0, f64::max);
    let box_h = labels.iter().map(Vec::len).max().unwrap_or(1) as f64 * LINE_H + 10.0;
    let place = layout::place(graph);
    let lane_w = box_w + LANE_GAP;
    let row_h = box_h + ROW_GAP;
    let centre_x = |i: usize| LANE_GAP / 2.0 + place.lane[i] as f64 * lane_w + box_w / 2.0;
    let top_y = |i: usize| ROW_GAP / 2.0 + place.row[i] as f64 * row_h;
    let (width, height) = (place.lanes() as f64 * lane_w, place.rows() as f64 * row_h);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"monospace\" font-size=\"12\">\n\
         <title>{}</title>\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        xml(&graph.meta.name)
    );
    // The rows each lane has a box in, sorted, to see whether a straight edge would cross one.
    let mut rows_of_lane = vec![Vec::new(); place.lanes()];
    for (k, &lane) in place.lane.iter().enumerate() {
        rows_of_lane[lane].push(place.row[k]);
    }
    rows_of_lane.iter_mut().for_each(|rows| rows.sort_unstable());
    let occupied = |lane: usize, from: usize, to: usize| {
        let rows: &Vec<usize> = &rows_of_lane[lane];
        rows.get(rows.partition_point(|r| *r <= from)).is_some_and(|r| *r < to)
    };
    for (id, node) in graph.nodes() {
        let t = id.index();
        let ty = top_y(t);
        for (k, input) in node.inputs.iter().enumerate() {
            // A join's inputs arrive side by side along its top, in input order.
            let spread = (k as f64 + 1.0) / (node.inputs.len() as f64 + 1.0) - 0.5;
            let tx = centre_x(t) + if node.inputs.len() > 1 { spread * box_w } else { 0.0 };
            let s = input.index();
            let (sx, sy) = (centre_x(s), top_y(s) + box_h);
            let path = if place.lane[s] == place.lane[t] && occupied(place.lane[t], place.row[s], place.row[t]) {
                let bx = sx + box_w / 2.0 + LANE_GAP / 3.0;
                format!(
                    "M{sx:.1},{sy:.1} C{bx:.1},{:.1} {bx:.1},{:.1} {bx:.1},{:.1} L{bx:.1},{:.1} C{bx:.1},{:.1} {tx:.1},{:.1} {tx:.1},{ty:.1}",
                    sy + ROW_GAP / 2.0,
                    sy + ROW_GAP / 2.0,
                    sy + ROW_GAP,
                    ty - ROW_GAP,
                    ty - ROW_GAP / 2.0,
                    ty - ROW_GAP / 2.0
                )
            } else if place.lane[s] == place.lane[t] {
                format!("M{sx:.1},{sy:.1} L{tx:.1},{ty:.1}")
            } else {
                // Down the source's column, then across into the target.
                let turn = ty - ROW_GAP / 2.0;
                format!("M{sx:.1},{sy:.1} L{sx:.1},{turn:.1} L{tx:.1},{ty:.1}")
            };
            let _ = writeln!(
                svg,
                "<path d=\"{path}\" fill=\"none\" stroke=\"#444\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>"
            );
        }
    }
    for (id, node) in graph.nodes() {
        let i = id.index();
        let (x, y) = (centre_x(i) - box_w / 2.0, top_y(i));
        let dash = if node.training_only { " stroke-dasharray=\"5,3\"" } else { "" };
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{box_w:.1}\" height=\"{box_h:.1}\" rx=\"4\" fill=\"#f4f6fa\" stroke=\"#333\"{dash}/>"
        );
        for (k, line) in labels[i].iter().enumerate() {
            let weight = if k == 0 && !node.path.is_empty() { " font-weight=\"bold\"" } else { "" };
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\"{weight}>{}</text>",
                centre_x(i),
                y + 5.0 + (k as f64 + 0.8) * LINE_H,
                xml(line)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
