//! Rust expressions that rebuild the compiler's values: one function per type, one arm per op.
//! Type names are left unqualified: the generated module imports them from `cnnc_runtime::plan`,
//! which re-exports them.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, ToTokens};

use crate::graph::{
    Activation, Conv2d, FoldedBatchNorm, Fused, Graph, Meta, Op, Pad4, Param, ParamKind, Pool2d, Resize, Shape,
    WeightTable,
};
use cnnc_ir::plan::{Layer, Operand, SlotId, ValueId, ValueLayout};
use cnnc_ir::span::Span;

pub fn usize(v: usize) -> Literal {
    Literal::usize_unsuffixed(v)
}

pub fn u64(v: u64) -> Literal {
    Literal::u64_unsuffixed(v)
}

/// A `Vec` of `items`, written without the `vec!` macro (whose contents formatters leave alone).
fn vec(items: impl Iterator<Item = TokenStream>) -> TokenStream {
    let items: Vec<TokenStream> = items.collect();
    if items.is_empty() {
        quote!(Vec::new())
    } else {
        quote!(Vec::from([#(#items),*]))
    }
}

/// A float, written so that it parses back to the same value (`-` as a separate token).
pub fn float(v: f64) -> TokenStream {
    let lit = Literal::f64_unsuffixed(v.abs());
    if v.is_sign_negative() {
        quote!(-#lit)
    } else {
        quote!(#lit)
    }
}

pub fn dims(d: &[usize]) -> TokenStream {
    let d = d.iter().map(|v| usize(*v));
    quote!([#(#d),*])
}

fn pair(v: [usize; 2]) -> TokenStream {
    dims(&v)
}

pub fn shape(s: &Shape) -> TokenStream {
    let d = dims(s.dims());
    quote!(Shape::of(&#d))
}

fn string(s: &str) -> TokenStream {
    quote!(#s.to_string())
}

fn option<T>(v: &Option<T>, f: impl Fn(&T) -> TokenStream) -> TokenStream {
    match v {
        Some(x) => {
            let x = f(x);
            quote!(Some(#x))
        }
        None => quote!(None),
    }
}

fn pad4(p: &Pad4) -> TokenStream {
    if p.top == p.bottom && p.left == p.right && p.top == p.left {
        let v = usize(p.top);
        return quote!(Pad4::uniform(#v));
    }
    let [t, b, l, r] = [p.top, p.bottom, p.left, p.right].map(usize);
    quote!(Pad4 { top: #t, bottom: #b, left: #l, right: #r })
}

pub fn activation(a: &Activation) -> TokenStream {
    match a {
        Activation::Relu => quote!(Activation::Relu),
        Activation::Relu6 => quote!(Activation::Relu6),
        Activation::LeakyRelu { slope } => {
            let slope = float(*slope);
            quote!(Activation::LeakyRelu { slope: #slope })
        }
        Activation::Silu => quote!(Activation::Silu),
        Activation::Sigmoid => quote!(Activation::Sigmoid),
        Activation::HardSwish => quote!(Activation::HardSwish),
        Activation::HardSigmoid => quote!(Activation::HardSigmoid),
        Activation::Tanh => quote!(Activation::Tanh),
        Activation::Gelu => quote!(Activation::Gelu),
    }
}

fn conv2d(c: &Conv2d) -> TokenStream {
    let (ic, oc, groups, bias) = (usize(c.in_channels), usize(c.out_channels), usize(c.groups), c.bias);
    let (kernel, stride, dilation, padding) = (pair(c.kernel), pair(c.stride), pair(c.dilation), pad4(&c.padding));
    quote!(Conv2d {
        in_channels: #ic,
        out_channels: #oc,
        kernel: #kernel,
        stride: #stride,
        padding: #padding,
        dilation: #dilation,
        groups: #groups,
        bias: #bias,
    })
}

fn pool2d(p: &Pool2d) -> TokenStream {
    let (kernel, stride, dilation, padding) = (pair(p.kernel), pair(p.stride), pair(p.dilation), pad4(&p.padding));
    let (ceil_mode, count_include_pad) = (p.ceil_mode, p.count_include_pad);
    quote!(Pool2d {
        kernel: #kernel,
        stride: #stride,
        padding: #padding,
        dilation: #dilation,
        ceil_mode: #ceil_mode,
        count_include_pad: #count_include_pad,
    })
}

fn floats(v: &[f64]) -> TokenStream {
    vec(v.iter().map(|x| float(*x)))
}

pub fn op(op: &Op) -> TokenStream {
    match op {
        Op::Input => quote!(Op::Input),
        Op::Conv2d(c) => {
            let c = conv2d(c);
            quote!(Op::Conv2d(#c))
        }
        Op::Linear { in_features, out_features, bias } => {
            let (i, o) = (usize(*in_features), usize(*out_features));
            quote!(Op::Linear { in_features: #i, out_features: #o, bias: #bias })
        }
        Op::BatchNorm { channels, eps, momentum } => {
            let (c, eps, momentum) = (usize(*channels), float(*eps), float(*momentum));
            quote!(Op::BatchNorm { channels: #c, eps: #eps, momentum: #momentum })
        }
        Op::Activation(a) => {
            let a = activation(a);
            quote!(Op::Activation(#a))
        }
        Op::MaxPool(p) => {
            let p = pool2d(p);
            quote!(Op::MaxPool(#p))
        }
        Op::AvgPool(p) => {
            let p = pool2d(p);
            quote!(Op::AvgPool(#p))
        }
        Op::AdaptiveAvgPool { size } => {
            let size = pair(*size);
            quote!(Op::AdaptiveAvgPool { size: #size })
        }
        Op::AdaptiveMaxPool { size } => {
            let size = pair(*size);
            quote!(Op::AdaptiveMaxPool { size: #size })
        }
        Op::Flatten => quote!(Op::Flatten),
        Op::Dropout { p } => {
            let p = float(*p);
            quote!(Op::Dropout { p: #p })
        }
        Op::StochasticDepth { p } => {
            let p = float(*p);
            quote!(Op::StochasticDepth { p: #p })
        }
        Op::Concat => quote!(Op::Concat),
        Op::Add => quote!(Op::Add),
        Op::Mul => quote!(Op::Mul),
        Op::ChannelShuffle { groups } => {
            let g = usize(*groups);
            quote!(Op::ChannelShuffle { groups: #g })
        }
        Op::Chunk { chunks, index } => {
            let (c, i) = (usize(*chunks), usize(*index));
            quote!(Op::Chunk { chunks: #c, index: #i })
        }
        Op::LocalResponseNorm { size, alpha, beta, k } => {
            let (size, alpha, beta, k) = (usize(*size), float(*alpha), float(*beta), float(*k));
            quote!(Op::LocalResponseNorm { size: #size, alpha: #alpha, beta: #beta, k: #k })
        }
        Op::Softmax => quote!(Op::Softmax),
        Op::ChannelAffine { scale, shift } => {
            let (scale, shift) = (floats(scale), floats(shift));
            quote!(Op::ChannelAffine { scale: #scale, shift: #shift })
        }
    }
}

pub fn param(p: &Param) -> TokenStream {
    let name = &p.name;
    let kind = match p.kind {
        ParamKind::Weight => quote!(Weight),
        ParamKind::Bias => quote!(Bias),
        ParamKind::RunningMean => quote!(RunningMean),
        ParamKind::RunningVar => quote!(RunningVar),
    };
    let shape = dims(&p.shape);
    quote!(Param::new(#name, ParamKind::#kind, &#shape))
}

fn params(ps: &[Param]) -> TokenStream {
    vec(ps.iter().map(param))
}

fn batch_norm(bn: &FoldedBatchNorm) -> TokenStream {
    let (eps, params) = (float(bn.eps), params(&bn.params));
    quote!(FoldedBatchNorm { eps: #eps, params: #params })
}

pub fn value(v: ValueId) -> TokenStream {
    let v = Literal::u32_unsuffixed(v.0);
    quote!(ValueId(#v))
}

fn slot(s: SlotId) -> TokenStream {
    let s = Literal::u32_unsuffixed(s.0);
    quote!(SlotId(#s))
}

fn span(s: Span) -> TokenStream {
    let file = Literal::u32_unsuffixed(s.file.index() as u32);
    let (start, end) = (usize(s.start), usize(s.end));
    quote!(Span::new(FileId::new(#file), #start, #end))
}

/// An operand, its value written as `value_name` names it.
fn operand(o: &Operand, value_name: &dyn Fn(ValueId) -> TokenStream) -> TokenStream {
    let (value, shape) = (value_name(o.value), dims(o.shape.dims()));
    if o.in_place {
        quote!(Operand::in_place(#value, &#shape))
    } else {
        quote!(Operand::new(#value, &#shape))
    }
}

/// A layer literal, every field written out; values are written as `value_name` names them.
pub fn layer(l: &Layer, value_name: &dyn Fn(ValueId) -> TokenStream) -> TokenStream {
    let path = string(&l.path);
    let span = span(l.span);
    let op = op(&l.op);
    let inputs = vec(l.inputs.iter().map(|o| operand(o, value_name)));
    let (value, shape) = (value_name(l.value), shape(&l.shape));
    let slot = option(&l.slot, |s| slot(*s));
    let params = params(&l.params);
    let batch_norm = option(&l.batch_norm, batch_norm);
    let residual = l.residual;
    let activation = option(&l.activation, activation);
    let into_concat = option(&l.into_concat, |t| {
        let (channels, offset) = (usize(t.channels), usize(t.offset));
        quote!(ConcatTarget { channels: #channels, offset: #offset })
    });
    quote!(Layer {
        path: #path,
        span: #span,
        op: #op,
        inputs: #inputs,
        value: #value,
        shape: #shape,
        slot: #slot,
        params: #params,
        batch_norm: #batch_norm,
        residual: #residual,
        activation: #activation,
        into_concat: #into_concat,
    })
}

/// The value layout; values are written as `value_name` names them.
pub fn layout(v: &ValueLayout, value_name: &dyn Fn(ValueId) -> TokenStream) -> TokenStream {
    let (values, input, output) = (usize(v.values), value_name(v.input), value_name(v.output));
    let (input_shape, output_shape) = (shape(&v.input_shape), shape(&v.output_shape));
    let slots = vec(v.slot_elements.iter().map(|e| u64(*e).into_token_stream()));
    quote!(ValueLayout {
        values: #values,
        input: #input,
        output: #output,
        input_shape: #input_shape,
        output_shape: #output_shape,
        slot_elements: #slots,
    })
}

pub fn weight_table(t: &WeightTable) -> TokenStream {
    let params = params(&t.params);
    let training_only = vec(t.training_only.iter().map(|n| string(n)));
    let aliases = aliases(&t.aliases);
    quote!(WeightTable {
        params: #params,
        training_only: #training_only,
        aliases: #aliases,
    })
}

/// The metadata, with `labels` as the expression for its label list.
pub fn meta(m: &Meta, labels: TokenStream) -> TokenStream {
    let name = string(&m.name);
    let resize = option(&m.resize, |v| match *v {
        Resize::ShorterSide(n) => {
            let n = usize(n);
            quote!(Resize::ShorterSide(#n))
        }
        Resize::Exact([h, w]) => {
            let (h, w) = (usize(h), usize(w));
            quote!(Resize::Exact([#h, #w]))
        }
    });
    let crop = option(&m.crop, |&[h, w]| {
        let (h, w) = (usize(h), usize(w));
        quote!([#h, #w])
    });
    let mean = option(&m.mean, |v| floats(v));
    let std = option(&m.std, |v| floats(v));
    let training_weights = m.training_weights;
    let aliases = aliases(&m.aliases);
    quote!(Meta {
        name: #name,
        resize: #resize,
        crop: #crop,
        mean: #mean,
        std: #std,
        labels: #labels,
        training_weights: #training_weights,
        aliases: #aliases,
    })
}

fn aliases(pairs: &[(String, String)]) -> TokenStream {
    vec(pairs.iter().map(|(from, to)| {
        let (from, to) = (string(from), string(to));
        quote!((#from, #to))
    }))
}

/// The statements of a function that rebuilds a checked graph node by node with the generated
/// module's `Builder` (inputs and the output by node index), auxiliary losses as `(node, weight)`;
/// the graph's metadata and module instances are left out.
///
/// # Panics
/// On a node with work fused into it: only a checked, unlowered graph is written.
pub fn graph(g: &Graph) -> TokenStream {
    let input_shape = shape(&g.node(g.input).shape);
    let nodes = g.nodes().filter(|(id, _)| *id != g.input).map(|(_, node)| {
        assert!(node.fused == Fused::default(), "codegen writes a checked graph, not a lowered one");
        let op = op(&node.op);
        let inputs = node.inputs.iter().map(|i| usize(i.index()));
        let dims = dims(node.shape.dims());
        let path = &node.path;
        let params = params(&node.params);
        let training_only = node.training_only;
        quote!(b.push(#op, &[#(#inputs),*], &#dims, #path, #params, #training_only);)
    });
    let output = usize(g.output.index());
    let aux = g.aux_losses.iter().map(|a| {
        let (node, weight) = (usize(a.node.index()), float(a.weight));
        quote!((#node, #weight))
    });
    quote! {
        let mut b = Builder::new(#input_shape);
        #(#nodes)*
        b.finish(#output, &[#(#aux),*])
    }
}
