//! The spec's modules as Rust structs: every instance of a module becomes a value of one struct
//! named after it (`Bottleneck`), whose fields are the instance's layers and nested module
//! instances. A layer or nested module that only some instances have (a conditional `downsample`)
//! is an `Option`. Layers belong to the innermost instance whose path starts their path.
//!
//! A struct records its fields in order, so the layers of each instance must run one after another
//! and in the same order in every instance; a module where that does not hold gets no struct, and
//! its layers become fields of the struct around it (the model's, at the top).

use std::collections::{HashMap, HashSet};

use super::names::{field_name, struct_name};
use crate::graph::{ModuleInstance, Op};
use cnnc_ir::plan::Layer;

/// What a field holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// The layer at this index of the plan.
    Layer(usize),
    /// The module instance at this index of [`ModuleTree::instances`].
    Instance(usize),
}

/// A field's type: a layer's GPU work or a module struct (by index in [`ModuleTree::structs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Layer,
    Module(usize),
}

/// One module instance with its fields.
#[derive(Clone, Debug)]
pub struct Instance {
    pub path: String,
    /// Its struct, an index in [`ModuleTree::structs`].
    pub structure: usize,
    /// Field name → what it holds, in execution order.
    pub fields: Vec<(String, Member)>,
}

/// A module struct: its Rust name, the spec module's name, and its fields in execution order with
/// whether some instances lack them.
#[derive(Clone, Debug)]
pub struct ModuleStruct {
    pub name: String,
    pub module: String,
    pub fields: Vec<(String, Kind, bool)>,
}

/// The model's fields grouped by module.
#[derive(Clone, Debug)]
pub struct ModuleTree {
    /// The model struct's own fields, in execution order.
    pub top: Vec<(String, Member)>,
    pub instances: Vec<Instance>,
    pub structs: Vec<ModuleStruct>,
}

/// Whether path `inner` lies in `outer` (equal, or below it).
fn within(outer: &str, inner: &str) -> bool {
    inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('.'))
}

/// Groups the plan's layers by module instance. A module whose instances cannot share a struct
/// (their layers differ in a way an `Option` cannot express, or do not run as one block) is left
/// out, its layers joining the instance around it. `reserved` are names the model struct uses.
pub fn module_tree(layers: &[Layer], modules: &[ModuleInstance], model_struct: &str, reserved: &[&str]) -> ModuleTree {
    let mut left_out: HashSet<&str> = HashSet::new();
    loop {
        match try_tree(layers, modules, model_struct, reserved, &left_out) {
            Ok(tree) => return tree,
            // Each round leaves out one more module, so this ends.
            Err(module) => {
                left_out.insert(module);
            }
        }
    }
}

/// The tree without the modules `left_out`, or the first module that cannot be a struct.
fn try_tree<'m>(
    layers: &[Layer],
    modules: &'m [ModuleInstance],
    model_struct: &str,
    reserved: &[&str],
    left_out: &HashSet<&str>,
) -> Result<ModuleTree, &'m str> {
    // Instances at distinct, non-empty paths (a module whose body is one unnamed module call shares
    // its path with that call: the outer one is kept).
    let mut seen = HashSet::new();
    let instances: Vec<&ModuleInstance> = modules
        .iter()
        .filter(|m| !m.path.is_empty() && seen.insert(m.path.as_str()))
        .filter(|m| !left_out.contains(m.module.as_str()))
        .collect();
    let innermost = |path: &str, exclude: Option<usize>| {
        instances
            .iter()
            .enumerate()
            .filter(|(i, m)| Some(*i) != exclude && within(&m.path, path))
            .max_by_key(|(_, m)| m.path.len())
            .map(|(i, _)| i)
    };
    let owner: Vec<Option<usize>> = layers
        .iter()
        .map(|l| if l.op == Op::Input || l.path.is_empty() { None } else { innermost(&l.path, None) })
        .collect();
    let parent: Vec<Option<usize>> = (0..instances.len()).map(|i| innermost(&instances[i].path, Some(i))).collect();

    // Each instance's layers, directly or through nested instances, must run as one block.
    let mut span: Vec<Vec<usize>> = vec![Vec::new(); instances.len()];
    for (layer, o) in owner.iter().enumerate() {
        let mut at = *o;
        while let Some(i) = at {
            span[i].push(layer);
            at = parent[i];
        }
    }
    for (i, s) in span.iter().enumerate() {
        if let (Some(first), Some(last)) = (s.first(), s.last()) {
            if last - first + 1 != s.len() {
                return Err(&instances[i].module);
            }
        }
    }
    let kept = |i: usize| !span[i].is_empty();

    // Members of the model (`None`) and of each instance, ordered by when they start.
    let members = |container: Option<usize>| {
        let mut m: Vec<(usize, Member)> = owner
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == container)
            .map(|(l, _)| (l, Member::Layer(l)))
            .chain(
                (0..instances.len())
                    .filter(|i| kept(*i) && parent[*i] == container)
                    .map(|i| (span[i][0], Member::Instance(i))),
            )
            .collect();
        m.sort_by_key(|(start, _)| *start);
        m.into_iter().map(|(_, member)| member).collect::<Vec<_>>()
    };
    let name_members = |container: Option<usize>, taken: &mut HashSet<String>| {
        let prefix = container.map_or("", |i| instances[i].path.as_str());
        members(container)
            .into_iter()
            .map(|member| {
                let (path, op, value) = match &member {
                    Member::Layer(l) => (layers[*l].path.as_str(), layers[*l].op.name(), layers[*l].value.index()),
                    Member::Instance(i) => (instances[*i].path.as_str(), "module", 0),
                };
                let relative = path.strip_prefix(prefix).map_or(path, |r| r.trim_start_matches('.'));
                let name = match (container, relative.is_empty()) {
                    // A layer at the instance's own path (a join's result) is named by its op.
                    (Some(_), true) => field_name(op, op, 0, taken),
                    (None, _) if matches!(member, Member::Layer(l) if layers[l].op == Op::Input) => {
                        taken.insert("input".to_string());
                        "input".to_string()
                    }
                    _ => field_name(relative, op, value, taken),
                };
                (name, member)
            })
            .collect::<Vec<_>>()
    };

    // Structs, one per module name, in order of first use.
    let mut struct_of: HashMap<&str, usize> = HashMap::new();
    let mut structs: Vec<ModuleStruct> = Vec::new();
    let mut used_names: HashSet<String> = HashSet::from([model_struct.to_string()]);
    for m in instances.iter().enumerate().filter(|(i, _)| kept(*i)).map(|(_, m)| m) {
        if !struct_of.contains_key(m.module.as_str()) {
            let mut name = struct_name(&m.module);
            while !used_names.insert(name.clone()) {
                name.push_str("Block");
            }
            struct_of.insert(&m.module, structs.len());
            structs.push(ModuleStruct { name, module: m.module.clone(), fields: Vec::new() });
        }
    }
    let kind = |member: &Member| match member {
        Member::Layer(_) => Kind::Layer,
        Member::Instance(i) => Kind::Module(struct_of[instances[*i].module.as_str()]),
    };
    let mut tree_instances = Vec::new();
    let mut signatures: Vec<Vec<Vec<(String, Kind)>>> = vec![Vec::new(); structs.len()];
    for (i, m) in instances.iter().enumerate().filter(|(i, _)| kept(*i)) {
        let fields = name_members(Some(i), &mut HashSet::new());
        let structure = struct_of[m.module.as_str()];
        signatures[structure].push(fields.iter().map(|(n, member)| (n.clone(), kind(member))).collect());
        tree_instances.push((i, Instance { path: m.path.clone(), structure, fields }));
    }
    for (s, sigs) in signatures.iter().enumerate() {
        let module = modules.iter().find(|m| m.module == structs[s].module).map_or("", |m| m.module.as_str());
        let union = sigs.iter().try_fold(Vec::new(), |acc, sig| merge(&acc, sig)).ok_or(module)?;
        structs[s].fields = union
            .into_iter()
            .map(|(n, k)| (n.clone(), k, !sigs.iter().all(|sig| sig.iter().any(|f| f.0 == n))))
            .collect();
    }
    // Instances are addressed by their index among the kept ones.
    let renumber: HashMap<usize, usize> =
        tree_instances.iter().enumerate().map(|(new, (old, _))| (*old, new)).collect();
    let fix = |fields: Vec<(String, Member)>| {
        fields
            .into_iter()
            .map(|(n, m)| match m {
                Member::Instance(i) => (n, Member::Instance(renumber[&i])),
                layer => (n, layer),
            })
            .collect()
    };
    let mut taken: HashSet<String> = reserved.iter().map(|r| r.to_string()).collect();
    let top = fix(name_members(None, &mut taken));
    let instances = tree_instances.into_iter().map(|(_, inst)| Instance { fields: fix(inst.fields), ..inst }).collect();
    Ok(ModuleTree { top, instances, structs })
}

/// The shortest field list that holds `a` and `b` in order, with one kind per name; `None` when
/// their orders conflict.
fn merge(a: &[(String, Kind)], b: &[(String, Kind)]) -> Option<Vec<(String, Kind)>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i].0 == b[j].0 {
            if a[i].1 != b[j].1 {
                return None;
            }
            out.push(a[i].clone());
            i += 1;
            j += 1;
        } else if !a[i..].iter().any(|f| f.0 == b[j].0) {
            out.push(b[j].clone());
            j += 1;
        } else if !b[j..].iter().any(|f| f.0 == a[i].0) {
            out.push(a[i].clone());
            i += 1;
        } else {
            return None;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(names: &[&str]) -> Vec<(String, Kind)> {
        names.iter().map(|n| (n.to_string(), Kind::Layer)).collect()
    }

    #[test]
    fn merging_keeps_both_orders() {
        let with = sig(&["conv1", "conv2", "downsample", "conv3"]);
        let without = sig(&["conv1", "conv2", "conv3"]);
        assert_eq!(merge(&without, &with), Some(with.clone()));
        assert_eq!(merge(&with, &without), Some(with));
        assert_eq!(merge(&sig(&["a", "b"]), &sig(&["b", "a"])), None);
    }

    #[test]
    fn paths_nest_by_segment() {
        assert!(within("layer1.0", "layer1.0.conv1"));
        assert!(within("layer1.0", "layer1.0"));
        assert!(!within("layer1.0", "layer1.01.conv1"));
    }
}
