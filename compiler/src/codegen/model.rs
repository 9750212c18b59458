//! The generated module: the model struct, its constructors and its forward pass.

use std::collections::HashSet;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use super::literal;
use super::modules::{module_tree, Kind, Member, ModuleStruct, ModuleTree};
use super::names::{field_name, struct_name};
use crate::graph::Op;
use cnnc_ir::plan::{Layer, ValueId};

use crate::source::SourceMap;
use crate::summary::summarize;
use crate::Model;

/// The Rust module for a compiled model (written from its validated plan); `sources` locates its layers in the spec for comments
/// (files are named by their file name only, so the output does not depend on where they live).
pub fn generate(model: &Model, sources: &SourceMap) -> String {
    let graph = &model.graph;
    let plan = model.plan.plan();
    let summary = summarize(model, 1);
    let name = struct_name(&graph.meta.name);
    let ty = ident(&name);
    let module = ident(&module_name(&graph.meta.name));
    let spec_file = file_name(sources, graph.node(graph.input).span.file);

    let mut taken = HashSet::new();
    let fields: Vec<Ident> = plan
        .layers
        .iter()
        .map(|l| {
            let name = if l.op == Op::Input {
                taken.insert("input".to_string());
                "input".to_string()
            } else {
                field_name(&l.path, l.op.name(), l.value.index(), &mut taken)
            };
            ident(&name)
        })
        .collect();
    let descriptions: Vec<String> = plan.layers.iter().map(|l| describe(l, sources)).collect();
    let docs: Vec<String> = descriptions.iter().map(|d| format!(" {d}")).collect();
    let tree = module_tree(&plan.layers, &graph.modules, &name, &["program"]);
    let module_structs = tree.structs.iter().enumerate().map(|(s, def)| module_struct(s, def, &tree, &docs));
    let top_fields = tree.top.iter().map(|(field, member)| {
        let field = ident(field);
        let (doc, ty) = match member {
            Member::Layer(l) => (docs[*l].clone(), quote!(rt::gpu::GpuLayer)),
            Member::Instance(i) => {
                let def = &tree.structs[tree.instances[*i].structure];
                let ty = ident(&def.name);
                (format!(" `{}`: module `{}`", tree.instances[*i].path, def.module), quote!(#ty))
            }
        };
        quote!(#[doc = #doc] pub #field: #ty)
    });
    let top_values = tree.top.iter().map(|(field, member)| {
        let value = member_value(member, &tree, &fields);
        let field = ident(field);
        quote!(#field: #value)
    });
    let top_records =
        tree.top.iter().map(|(field, member)| record_field(Some(&ident(field)), &member_kind(member, &tree)));
    // Values are named after the layer that computes them (`CONV1` is `conv1`'s result).
    let value_names: std::collections::HashMap<ValueId, Ident> =
        plan.layers.iter().zip(&fields).map(|(l, f)| (l.value, ident(&f.to_string().to_uppercase()))).collect();
    let value_name = |v: ValueId| {
        let name = &value_names[&v];
        quote!(#name)
    };
    let value_consts = plan.layers.iter().zip(&fields).map(|(l, field)| {
        let name = &value_names[&l.value];
        let number = literal::value(l.value);
        let doc = format!(" The value `{field}` computes.");
        quote!(#[doc = #doc] pub const #name: ValueId = #number;)
    });
    let layer_fns = plan.layers.iter().zip(&fields).zip(&docs).map(|((l, field), doc)| {
        let layer = literal::layer(l, &value_name);
        quote! {
            #[doc = #doc]
            pub fn #field() -> Layer {
                #layer
            }
        }
    });
    let input_dims = literal::dims(plan.layout.input_shape.dims());
    let output_dims = literal::dims(plan.layout.output_shape.dims());
    let input_rank = literal::usize(plan.layout.input_shape.dims().len());
    let output_rank = literal::usize(plan.layout.output_shape.dims().len());
    let classes: usize = plan.layout.output_shape.dims().iter().product();
    let (params, macs) = (literal::u64(summary.params), literal::u64(summary.macs));
    let model_name = &graph.meta.name;
    let labels = match &graph.meta.labels {
        Some(labels) => quote!(Some(&[#(#labels),*])),
        None => quote!(None),
    };
    let meta = literal::meta(&graph.meta, quote!(Self::LABELS.map(|l| l.iter().map(|s| s.to_string()).collect())));
    let table = literal::weight_table(&graph.weight_table());
    let layout = literal::layout(&plan.layout, &|v| {
        let name = &value_names[&v];
        quote!(layers::#name)
    });
    let layer_count = literal::usize(plan.layers.len());
    let graph_body = literal::graph(graph);
    let struct_doc = format!(
        " `{model_name}` from `{spec_file}`: input `[N, {}]`, output `[N, {}]`, {} parameters, {} multiply-accumulates per image.",
        join(plan.layout.input_shape.dims()),
        join(plan.layout.output_shape.dims()),
        summary.params,
        summary.macs
    );
    let forward_doc = format!(
        " Runs a batch of `[{}]` items given as flat NCHW floats and returns the outputs, {classes} per item.",
        join(plan.layout.input_shape.dims())
    );

    let tokens = quote! {
        pub use #module::#ty;

        #[doc = #struct_doc]
        pub mod #module {
            use cnnc_runtime as rt;
            use rt::plan::*;

            #[doc = #struct_doc]
            pub struct #ty {
                program: rt::gpu::Program,
                #(#top_fields,)*
            }

            impl #ty {
                /// The spec's model name.
                pub const NAME: &'static str = #model_name;
                /// The shape of one input item (the batch dimension left out).
                pub const INPUT_SHAPE: [usize; #input_rank] = #input_dims;
                /// The shape of one output item.
                pub const OUTPUT_SHAPE: [usize; #output_rank] = #output_dims;
                /// Trainable parameters (running statistics excluded, as PyTorch counts them).
                pub const PARAMETERS: u64 = #params;
                /// Multiply-accumulates of the convolutions and linear layers for one image.
                pub const MACS: u64 = #macs;
                /// The class names, one per output, when the spec lists them.
                pub const LABELS: Option<&'static [&'static str]> = #labels;

                /// The spec's metadata: preprocessing, labels, checkpoint key rewrites.
                pub fn meta() -> Meta {
                    #meta
                }

                /// Every tensor a checkpoint must hold, by state_dict name and shape.
                pub fn weight_table() -> WeightTable {
                    #table
                }

                /// How the values are numbered and which buffer slot each size needs.
                fn layout() -> ValueLayout {
                    #layout
                }

                /// The layer plan, validated (a plan edited by hand is checked here, not trusted).
                pub fn plan() -> Result<ValidPlan, PlanError> {
                    LayerPlan { layout: Self::layout(), layers: Vec::from([#(layers::#fields()),*]) }.validate()
                }

                /// Loads a safetensors or PyTorch (`.pth`) checkpoint, matched by name against
                /// [`Self::weight_table`] (every missing, unexpected or misshapen tensor is
                /// reported), and builds the model for batches of `batch`.
                pub fn load(gpu: &rt::gpu::Gpu, path: impl AsRef<std::path::Path>, batch: usize) -> Result<Self, rt::RuntimeError> {
                    let file = rt::weights::read(path.as_ref())?;
                    let bound = rt::weights::bind(&Self::weight_table(), file, true)?;
                    Self::with_weights(gpu, &bound.weights, batch)
                }

                /// A fresh model, initialised as PyTorch does (kaiming-uniform convolutions and
                /// linear layers, batch-norm ones and zeros) from `seed`.
                pub fn random(gpu: &rt::gpu::Gpu, seed: u64, batch: usize) -> Result<Self, rt::RuntimeError> {
                    let weights = rt::synthetic::pytorch_init(&Self::weight_table().params, seed);
                    Self::with_weights(gpu, &weights, batch)
                }

                /// Builds the model on `gpu` for batches of `batch` (larger batches run in chunks),
                /// with tensors named as in [`Self::weight_table`]. Every pipeline, bind group and
                /// weight buffer is made here, once.
                pub fn with_weights(gpu: &rt::gpu::Gpu, weights: &rt::weights::Weights, batch: usize) -> Result<Self, rt::RuntimeError> {
                    rt::weights::check(&Self::weight_table(), weights)?;
                    let built = rt::gpu::build(gpu, &Self::plan()?, weights, batch, rt::gpu::PlanOptions::default())?;
                    let Ok([#(#fields),*]) = <[rt::gpu::GpuLayer; #layer_count]>::try_from(built.layers) else {
                        unreachable!("the builder makes one GPU layer per planned layer")
                    };
                    Ok(#ty { program: built.program, #(#top_values),* })
                }

                #[doc = #forward_doc]
                /// Each chunk of the batch is one command-buffer submission.
                pub fn forward(&self, input: &[f32]) -> Result<Vec<f32>, rt::RuntimeError> {
                    self.program.forward(input, |recorder| self.record(recorder))
                }

                /// Runs a batch tensor `[N, ...]` and returns `[N, ...]` outputs.
                pub fn run(&self, input: &rt::Tensor) -> Result<rt::Tensor, rt::RuntimeError> {
                    self.program.run(input, |recorder| self.record(recorder))
                }

                /// The checked graph, as training sees it: batch-norm unfolded, dropout and
                /// stochastic depth kept, training-only branches (auxiliary heads, with the loss
                /// weights the spec declares) included.
                pub fn graph() -> Graph {
                    let mut g = graph::build();
                    g.meta = Self::meta();
                    g
                }

                /// A trainer for the model on `gpu` (see [`rt::gpu::GpuTrainer`]): one training step
                /// (forward, loss, backward, optimizer) per batch of `batch` items, starting from
                /// `weights`, named as in [`Self::weight_table`] (training-only heads included:
                /// [`rt::synthetic::pytorch_init`] draws fresh ones). The parameters `trainable`
                /// accepts are trained; the others stay frozen.
                ///
                /// # Errors
                /// Weights missing or misshapen, or what the GPU refuses.
                pub fn trainer(
                    gpu: &rt::gpu::Gpu,
                    weights: &rt::weights::Weights,
                    trainable: impl Fn(&Param) -> bool,
                    optimizer: rt::train::OptimizerState,
                    options: &rt::train::StepOptions,
                    batch: usize,
                ) -> Result<rt::gpu::GpuTrainer, rt::RuntimeError> {
                    rt::gpu::GpuTrainer::new(gpu, &Self::graph(), weights, trainable, optimizer, options, batch)
                }

                /// Records every layer's work, in order.
                pub fn record(&self, recorder: &mut rt::gpu::Recorder) {
                    #(#top_records)*
                }
            }

            #(#module_structs)*

            /// The checked graph, node by node.
            mod graph {
                use super::*;

                pub fn build() -> Graph {
                    #graph_body
                }

                /// A graph under construction, with the handle of every node pushed so far.
                struct Builder {
                    graph: Graph,
                    nodes: Vec<NodeId>,
                }

                impl Builder {
                    fn new(input: Shape) -> Builder {
                        let graph = Graph::new(input, Span::default());
                        Builder { nodes: Vec::from([graph.input]), graph }
                    }

                    /// A node reading the nodes `inputs` (indices of earlier nodes).
                    fn push(&mut self, op: Op, inputs: &[usize], shape: &[usize], path: &str, params: Vec<Param>, training_only: bool) {
                        let node = Node {
                            op,
                            inputs: inputs.iter().map(|&i| self.nodes[i]).collect(),
                            shape: Shape::of(shape),
                            path: path.to_string(),
                            params,
                            span: Span::default(),
                            training_only,
                            fused: Fused::default(),
                        };
                        self.nodes.push(self.graph.push(node));
                    }

                    /// The graph with node `output` as its output and `aux` as its weighted auxiliary losses.
                    fn finish(mut self, output: usize, aux: &[(usize, f64)]) -> Graph {
                        self.graph.output = self.nodes[output];
                        self.graph.aux_losses = aux.iter().map(|&(node, weight)| AuxLoss { node: self.nodes[node], weight }).collect();
                        self.graph
                    }
                }
            }

            /// Each layer as the compiler planned it: shapes, buffer slot, fused work, weights.
            mod layers {
                use super::*;

                #(#value_consts)*

                #(#layer_fns)*
            }
        }
    };
    let file: syn::File = syn::parse2(tokens).expect("generated tokens form a Rust file");
    let code = prettyplease::unparse(&file);
    format!("// @generated by cnnc from `{spec_file}`. Do not edit: regenerate with `cnnc build`.\n\n{code}")
}

fn ident(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

fn member_kind(member: &Member, tree: &ModuleTree) -> Kind {
    match member {
        Member::Layer(_) => Kind::Layer,
        Member::Instance(i) => Kind::Module(tree.instances[*i].structure),
    }
}

/// The expression building a member from the layers built so far (locals named as `locals`).
fn member_value(member: &Member, tree: &ModuleTree, locals: &[Ident]) -> TokenStream {
    match member {
        Member::Layer(l) => {
            let local = &locals[*l];
            quote!(#local)
        }
        Member::Instance(i) => {
            let inst = &tree.instances[*i];
            let def = &tree.structs[inst.structure];
            let ty = ident(&def.name);
            let values = def.fields.iter().map(|(field, _, optional)| {
                let value = inst.fields.iter().find(|(f, _)| f == field).map(|(_, m)| member_value(m, tree, locals));
                let value = match (value, optional) {
                    (Some(v), false) => v,
                    (Some(v), true) => quote!(Some(#v)),
                    (None, _) => quote!(None),
                };
                let field = ident(field);
                quote!(#field: #value)
            });
            quote!(#ty { #(#values),* })
        }
    }
}

/// The statement recording a field: `self.<field>`, or the binding `field` of an optional one.
fn record_field(field: Option<&Ident>, kind: &Kind) -> TokenStream {
    match (field, kind) {
        (Some(f), Kind::Layer) => quote!(recorder.layer(&self.#f);),
        (Some(f), Kind::Module(_)) => quote!(self.#f.record(recorder);),
        (None, Kind::Layer) => quote!(recorder.layer(field);),
        (None, Kind::Module(_)) => quote!(field.record(recorder);),
    }
}

/// A module's struct and its `record`.
fn module_struct(index: usize, def: &ModuleStruct, tree: &ModuleTree, docs: &[String]) -> TokenStream {
    let ty = ident(&def.name);
    let users: Vec<&str> = tree.instances.iter().filter(|i| i.structure == index).map(|i| i.path.as_str()).collect();
    let doc = format!(" Module `{}` of the spec, {} instance(s): `{}`.", def.module, users.len(), users.join("`, `"));
    let fields = def.fields.iter().map(|(field, kind, optional)| {
        // A field's comment is the layer's as it first appears (shapes differ between instances).
        let first = tree
            .instances
            .iter()
            .filter(|i| i.structure == index)
            .find_map(|i| i.fields.iter().find(|(f, _)| f == field).map(|(_, m)| m.clone()));
        let doc = match first {
            Some(Member::Layer(l)) => format!("{} (first instance)", docs[l]),
            _ => format!(" module `{}`", field),
        };
        let inner = match kind {
            Kind::Layer => quote!(rt::gpu::GpuLayer),
            Kind::Module(s) => {
                let t = ident(&tree.structs[*s].name);
                quote!(#t)
            }
        };
        let ty = if *optional { quote!(Option<#inner>) } else { inner };
        let field = ident(field);
        quote!(#[doc = #doc] pub #field: #ty)
    });
    let records = def.fields.iter().map(|(field, kind, optional)| {
        let name = ident(field);
        if *optional {
            let record = record_field(None, kind);
            quote!(if let Some(field) = &self.#name { #record })
        } else {
            record_field(Some(&name), kind)
        }
    });
    quote! {
        #[doc = #doc]
        pub struct #ty {
            #(#fields,)*
        }

        impl #ty {
            /// Records the module's layers, in order.
            pub fn record(&self, recorder: &mut rt::gpu::Recorder) {
                #(#records)*
            }
        }
    }
}

/// The module name for a model: its name in snake case, a valid identifier.
pub(super) fn module_name(model: &str) -> String {
    let mut name: String =
        model.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "model_");
    }
    if syn::parse_str::<syn::Ident>(&name).is_err() {
        name.push('_');
    }
    name
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

fn file_name(sources: &SourceMap, file: crate::source::FileId) -> String {
    let name = &sources.file(file).name;
    std::path::Path::new(name).file_name().map_or(name.clone(), |n| n.to_string_lossy().into_owned())
}

/// One line about a layer: its path and place in the spec, what it computes with what was fused
/// into it, and its output shape.
fn describe(l: &Layer, sources: &SourceMap) -> String {
    let lc = sources.line_col(l.span.file, l.span.start);
    let place = format!("{}:{}:{}", file_name(sources, l.span.file), lc.line, lc.column);
    let name = if l.path.is_empty() { format!("({place}) ") } else { format!("`{}` ({place}): ", l.path) };
    let what = match &l.op {
        Op::Input => "the model's input".to_string(),
        Op::Conv2d(c) => {
            let mut s = format!("conv {}→{} {}×{}", c.in_channels, c.out_channels, c.kernel[0], c.kernel[1]);
            if c.stride != [1, 1] {
                s += &format!(" stride {}", c.stride[0]);
            }
            if c.groups > 1 {
                s += &format!(" groups {}", c.groups);
            }
            s
        }
        Op::Linear { in_features, out_features, .. } => format!("linear {in_features}→{out_features}"),
        op => op.name().to_string(),
    };
    let mut fused = String::new();
    if l.batch_norm.is_some() {
        fused += " + batch-norm";
    }
    if l.residual {
        fused += " + residual";
    }
    if let Some(a) = l.activation {
        fused += &format!(" + {}", a.name());
    }
    let into = match l.into_concat {
        Some(t) => format!(" (into concat channels {}..)", t.offset),
        None => String::new(),
    };
    let shape = l.shape.dims().iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    format!("{name}{what}{fused} → [{shape}]{into}")
}
