//! Where each node of a graph is drawn: a row (its longest distance from the input) and a lane
//! (a column). The main path keeps one lane from input to output; each further consumer of a
//! value (a concat's second branch, a residual's shortcut, an auxiliary head) opens a lane to the
//! right, in the order the spec lists them, and a join goes back to its first input's lane.

use cnnc_compiler::graph::Graph;

/// Row and lane of every node, indexed like the graph's nodes.
pub struct Placement {
    pub row: Vec<usize>,
    pub lane: Vec<usize>,
}

impl Placement {
    pub fn rows(&self) -> usize {
        self.row.iter().max().map_or(0, |r| r + 1)
    }

    pub fn lanes(&self) -> usize {
        self.lane.iter().max().map_or(0, |l| l + 1)
    }
}

/// Places the nodes of `graph`, whose node order is topological (inputs before consumers).
pub fn place(graph: &Graph) -> Placement {
    let n = graph.len();
    let mut consumers = vec![Vec::new(); n];
    for (id, node) in graph.nodes() {
        for input in &node.inputs {
            consumers[input.index()].push(id.index());
        }
    }
    // The consumer that continues a node's lane: its first one outside training-only branches, so
    // that an auxiliary head tapping the main path is drawn beside it, not in its column.
    let training_only: Vec<bool> = graph.nodes().map(|(_, node)| node.training_only).collect();
    let heir = |p: usize| {
        let inference = consumers[p].iter().copied().find(|&c| !training_only[c]);
        inference.or_else(|| consumers[p].first().copied())
    };
    let mut row = vec![0; n];
    let mut lane = vec![0; n];
    let mut placed = vec![false; n];
    // Per lane: the last node placed in it and the lowest row a new node may take there.
    let mut owner: Vec<usize> = Vec::new();
    let mut free_from: Vec<usize> = Vec::new();
    for (id, node) in graph.nodes() {
        let i = id.index();
        row[i] = node.inputs.iter().map(|p| row[p.index()] + 1).max().unwrap_or(0);
        // A node stays in the lane of the input it continues: the heir of its first input, or for a join the first of its inputs that is still the last node of its lane.
        let continues = if node.inputs.len() > 1 {
            node.inputs.iter().map(|p| p.index()).find(|&p| owner[lane[p]] == p)
        } else {
            node.inputs.first().map(|p| p.index()).filter(|&p| heir(p) == Some(i) && owner[lane[p]] == p)
        };
        let chosen = match continues {
            Some(p) => lane[p],
            None => {
                let parent = node.inputs.iter().map(|p| lane[p.index()]).min().unwrap_or(0);
                let busy = |l: usize| consumers[owner[l]].iter().any(|&c| !placed[c]);
                match (parent + 1..owner.len()).find(|&l| !busy(l) && free_from[l] <= row[i]) {
                    Some(l) => l,
                    None => owner.len(),
                }
            }
        };
        if chosen == owner.len() {
            owner.push(i);
            free_from.push(0);
        }
        lane[i] = chosen;
        owner[chosen] = i;
        free_from[chosen] = row[i] + 1;
        placed[i] = true;
    }
    Placement { row, lane }
}
