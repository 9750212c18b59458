//! Stage 4 — the static graph: nodes in an arena, addressed by typed handles,
//! in topological order, each with its resolved op, inputs, output shape and parameters.

mod op;
mod recipe;

pub use op::{Activation, Conv2d, Op, Pad4, ParamKind, Pool2d, Shape};
pub use recipe::TrainRecipe;

use crate::span::Span;

/// A typed handle to a node of a [`Graph`]. Handles are only made by [`Graph::push`],
/// so inputs always point at earlier nodes and the arena order is a topological order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The model's input, always the first node.
    pub const INPUT: NodeId = NodeId(0);

    /// The position in the arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A parameter tensor of a node, under its state_dict name.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    pub shape: Vec<usize>,
}

impl Param {
    /// A parameter `name` of `kind` and `shape`.
    pub fn new(name: &str, kind: ParamKind, shape: &[usize]) -> Param {
        Param { name: name.to_string(), kind, shape: shape.to_vec() }
    }
}

/// One operation in the graph.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Output shape without batch.
    pub shape: Shape,
    /// The dotted layer path (`layer3.2.conv2`); empty for unnamed structural nodes.
    pub path: String,
    pub params: Vec<Param>,
    /// The spec text this node came from.
    pub span: Span,
    /// Part of a training-only branch: kept out of inference.
    pub training_only: bool,
    /// Work that lowering passes moved into this node (none in a freshly checked graph).
    pub fused: Fused,
}

/// Work a lowering pass fused into a node, applied to the node's own result in field order: the
/// folded batch-norm, then the residual add (of the node's last input), then the activation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fused {
    pub batch_norm: Option<FoldedBatchNorm>,
    /// The node's last input is added to its result (it is not an input of the op itself).
    pub residual: bool,
    pub activation: Option<Activation>,
    /// The node writes its result straight into a slice of a concat's output.
    pub into_concat: Option<ConcatSlice>,
}

/// Channels `offset..` of concat node `concat`'s output, where a producer writes in place (the
/// concat then copies only its other inputs).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConcatSlice {
    pub concat: NodeId,
    pub offset: usize,
}

impl Fused {
    /// Whether nothing is fused.
    pub fn is_empty(&self) -> bool {
        *self == Fused::default()
    }
}

/// A batch-norm folded into the convolution before it: its parameters (weight, bias, running mean,
/// running variance, by state_dict name) and epsilon. Executors fold the values at load time.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldedBatchNorm {
    pub eps: f64,
    pub params: Vec<Param>,
}

/// How an image is resized before its centre crop, as torchvision's `Resize(size)` takes `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// `Resize(n)`: the shorter side becomes `n` pixels and the longer keeps the aspect ratio
    /// (truncated).
    ShorterSide(usize),
    /// `Resize((height, width))`: exactly `height`×`width` pixels, whatever the aspect ratio.
    Exact([usize; 2]),
}

impl std::fmt::Display for Resize {
    /// As the spec writes it: `256` or `[224, 224]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resize::ShorterSide(n) => write!(f, "{n}"),
            Resize::Exact([h, w]) => write!(f, "[{h}, {w}]"),
        }
    }
}

/// Model metadata carried along with the graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub name: String,
    /// torchvision's `Resize`, applied first (`preprocess: {resize: ...}`).
    pub resize: Option<Resize>,
    /// torchvision's `CenterCrop((height, width))`, applied after the resize (`preprocess:
    /// {crop: N}` is `[N, N]`).
    pub crop: Option<[usize; 2]>,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    /// The label list, one class name per output.
    pub labels: Option<Vec<String>>,
    /// Whether checkpoints carry training-only weights.
    pub training_weights: bool,
    /// Checkpoint key rewrites `(from, to)`.
    pub aliases: Vec<(String, String)>,
}

impl Meta {
    /// The per-channel mean and std `Normalize` applies to an image of `channels` channels: the
    /// spec's values, one given for all broadcast as torchvision does, 0 and 1 where it gives none.
    /// `None` when a list has neither one value nor one per channel (`cnnc check` refuses that).
    pub fn normalisation(&self, channels: usize) -> Option<(Vec<f64>, Vec<f64>)> {
        let per_channel = |values: &Option<Vec<f64>>, default: f64| match values.as_deref() {
            None => Some(vec![default; channels]),
            Some([one]) => Some(vec![*one; channels]),
            Some(v) if v.len() == channels => Some(v.to_vec()),
            Some(_) => None,
        };
        Some((per_channel(&self.mean, 0.0)?, per_channel(&self.std, 1.0)?))
    }
}

/// What a checkpoint is matched against: the tensors a model needs, the weights of training-only
/// branches a checkpoint may carry without the model needing them, and the spec's key rewrites.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightTable {
    /// Every tensor the model needs, in state_dict order.
    pub params: Vec<Param>,
    /// Weights of training-only branches (ignored when present and not needed).
    pub training_only: Vec<String>,
    /// Checkpoint key rewrites `(from, to)`.
    pub aliases: Vec<(String, String)>,
}

/// Where the spec instantiated a module: the layer path of the instance (its layers' paths start
/// with it) and the module's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInstance {
    pub path: String,
    pub module: String,
}

/// An auxiliary classifier whose loss joins training: the output node of a training-only branch
/// (class scores `[K]`, the model output's shape) and its weight in the loss.
#[derive(Clone, Debug, PartialEq)]
pub struct AuxLoss {
    pub node: NodeId,
    pub weight: f64,
}

/// A checked static graph.
#[derive(Clone, Debug)]
pub struct Graph {
    nodes: Vec<Node>,
    pub input: NodeId,
    pub output: NodeId,
    pub meta: Meta,
    /// Every module instance, in the order expansion entered them (outer before inner).
    pub modules: Vec<ModuleInstance>,
    /// The auxiliary heads in the training loss (training branches with a `loss_weight`), in order.
    pub aux_losses: Vec<AuxLoss>,
    /// The spec's `train:` section, when it has one.
    pub train: Option<TrainRecipe>,
}

impl Graph {
    /// An empty graph whose first node is the input.
    pub fn new(input_shape: Shape, span: Span) -> Graph {
        let input = Node {
            op: Op::Input,
            inputs: Vec::new(),
            shape: input_shape,
            path: String::new(),
            params: Vec::new(),
            span,
            training_only: false,
            fused: Fused::default(),
        };
        Graph {
            nodes: vec![input],
            input: NodeId(0),
            output: NodeId(0),
            meta: Meta::default(),
            modules: Vec::new(),
            aux_losses: Vec::new(),
            train: None,
        }
    }

    /// Appends a node; its inputs must already be in the graph.
    pub fn push(&mut self, node: Node) -> NodeId {
        debug_assert!(node.inputs.iter().all(|i| i.index() < self.nodes.len()));
        self.nodes.push(node);
        NodeId(self.nodes.len() as u32 - 1)
    }

    /// The node behind a handle.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The node behind a handle, to rewrite in place (its op, say); its inputs and shape must stay
    /// as they are for the graph to remain checked.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.index()]
    }

    /// All nodes with their handles, in topological order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes.iter().enumerate().map(|(i, n)| (NodeId(i as u32), n))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has only its input.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Nodes that take part in inference.
    pub fn inference_nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes().filter(|(_, n)| !n.training_only)
    }

    /// Nodes that take part in a training step: the inference nodes and the training-only branches
    /// whose output is in the loss ([`Graph::aux_losses`]); branches without a loss weight are skipped.
    pub fn training_nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        let mut feeds_loss = vec![false; self.nodes.len()];
        for aux in &self.aux_losses {
            feeds_loss[aux.node.index()] = true;
        }
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if feeds_loss[i] {
                node.inputs.iter().for_each(|input| feeds_loss[input.index()] = true);
            }
        }
        self.nodes().filter(move |(id, n)| !n.training_only || feeds_loss[id.index()])
    }

    /// For each node, the arena index of the last inference node that reads it (its own index when
    /// nothing does); the output is read "at the end" (`usize::MAX`). Executors free values by it.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (id, node) in self.inference_nodes() {
            for input in &node.inputs {
                last[input.index()] = last[input.index()].max(id.index());
            }
        }
        last[self.output.index()] = usize::MAX;
        last
    }

    /// For each node, the inference nodes that read it, in order.
    pub fn readers(&self) -> Vec<Vec<NodeId>> {
        self.readers_among(self.inference_nodes())
    }

    /// For each node, the [training nodes](Graph::training_nodes) that read it, in order
    /// (auxiliary heads included).
    pub fn training_readers(&self) -> Vec<Vec<NodeId>> {
        self.readers_among(self.training_nodes())
    }

    fn readers_among<'a>(&'a self, nodes: impl Iterator<Item = (NodeId, &'a Node)>) -> Vec<Vec<NodeId>> {
        let mut readers = vec![Vec::new(); self.nodes.len()];
        for (id, node) in nodes {
            for input in &node.inputs {
                readers[input.index()].push(id);
            }
        }
        readers
    }

    /// The parameters an inference node reads: its own, then those of a batch-norm folded into it.
    pub fn node_params(&self, id: NodeId) -> impl Iterator<Item = &Param> {
        let node = self.node(id);
        node.params.iter().chain(node.fused.batch_norm.iter().flat_map(|bn| bn.params.iter()))
    }

    /// What a checkpoint is matched against (see [`WeightTable`]).
    pub fn weight_table(&self) -> WeightTable {
        WeightTable {
            params: self.weights().cloned().collect(),
            training_only: self
                .nodes()
                .filter(|(_, n)| n.training_only)
                .flat_map(|(_, n)| n.params.iter().map(|p| p.name.clone()))
                .collect(),
            aliases: self.meta.aliases.clone(),
        }
    }

    /// Every weight tensor a checkpoint must hold, in state_dict order.
    pub fn weights(&self) -> impl Iterator<Item = &Param> {
        let with_training = self.meta.training_weights;
        self.nodes
            .iter()
            .filter(move |n| with_training || !n.training_only)
            .flat_map(|n| n.params.iter().chain(n.fused.batch_norm.iter().flat_map(|bn| bn.params.iter())))
    }
}
