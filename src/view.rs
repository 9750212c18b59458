//! Drawing a graph: Graphviz DOT text, and SVG laid out in-process (no Graphviz needed).

use std::fmt::Write as _;

use cnnc_compiler::graph::{Graph, Node, Op};
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

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

/// The graph laid out and drawn as SVG.
pub fn to_svg(graph: &Graph) -> String {
    let mut vg = VisualGraph::new(Orientation::TopToBottom);
    let mut handles = Vec::with_capacity(graph.len());
    for (_, node) in graph.nodes() {
        let lines = label(node);
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * 7.5 + 20.0;
        let height = lines.len() as f64 * 15.0 + 12.0;
        let element = Element::create(
            ShapeKind::new_box(&lines.join("\n")),
            StyleAttr::simple(),
            Orientation::TopToBottom,
            Point::new(width, height),
        );
        handles.push(vg.add_node(element));
    }
    for (id, node) in graph.nodes() {
        for input in &node.inputs {
            vg.add_edge(Arrow::simple(""), handles[input.index()], handles[id.index()]);
        }
    }
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    svg.finalize()
}
