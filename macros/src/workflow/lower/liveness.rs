//! The machine from the graph: liveness (what each state stores), its
//! states and edges.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::super::names::type_string;
use super::ir::{
    BindingId, Block, EdgeIr, EdgeKind, LabelIr, Machine, NodeId, NodeKind, START, TargetIr,
    VarType,
};
use super::lowerer::Lowerer;

impl Lowerer<'_> {
    // Input:  the CFG and the tree
    // Output: per state the stored variables (liveness), the edges, the site order pairs
    pub(crate) fn finish(mut self, body: Block, params: Vec<BindingId>) -> Option<Machine> {
        let live_in = self.liveness();
        let mut stored = vec![params];
        for site in &self.sites {
            stored.push(live_in[site.node].iter().copied().collect());
        }
        // Errors on what the states cannot hold, each binding once.
        let mut reported = HashSet::new();
        for (state, vars) in stored.iter().enumerate().skip(1) {
            let step = type_string(&self.sites[state - 1].step);
            let mut by_name: BTreeMap<String, Vec<BindingId>> = BTreeMap::new();
            for &id in vars {
                by_name
                    .entry(self.bindings[id].ident.to_string())
                    .or_default()
                    .push(id);
            }
            for (name, ids) in by_name {
                if ids.len() > 1 && reported.insert(("shadow", ids[ids.len() - 1])) {
                    let later = &self.bindings[ids[ids.len() - 1]].ident;
                    self.errors.at(
                        later.span(),
                        format!(
                            "two different variables named `{name}` are both needed after step `{step}`; the state stored at that step has one field per name; rename one of them"
                        ),
                    );
                    self.failed = true;
                }
            }
            for &id in vars {
                let binding = &self.bindings[id];
                let name = binding.ident.to_string();
                if binding.is_ref {
                    if reported.insert(("ref", id)) {
                        self.errors.at(
                            binding.ident.span(),
                            format!(
                                "`{name}` is a reference held across step `{step}`; a workflow's state is stored between steps, so it keeps owned values; write `let {name} = value.clone();` or borrow again after the step"
                            ),
                        );
                        self.failed = true;
                    }
                } else if matches!(binding.ty, VarType::Unknown) && reported.insert(("type", id)) {
                    self.errors.at(
                        binding.ident.span(),
                        format!(
                            "cannot name the type of `{name}`, held across step `{step}`; the state stored at that step declares a field for it; annotate it: `let {name}: Type = ...;`"
                        ),
                    );
                    self.failed = true;
                }
            }
        }
        if self.failed {
            return None;
        }
        let entries: Vec<NodeId> = std::iter::once(START)
            .chain(self.sites.iter().map(|site| site.node))
            .collect();
        let mut edges = Vec::new();
        let mut assigned = Vec::new();
        let mut unassigned = Vec::new();
        let mut segments = Vec::new();
        for (state, &entry) in entries.iter().enumerate() {
            let (state_edges, segment) = self.segment(state, entry);
            edges.extend(state_edges);
            let declared: BTreeSet<BindingId> = (0..self.bindings.len())
                .filter(|&id| {
                    self.bindings[id]
                        .declared_at
                        .is_some_and(|node| segment.contains(&node))
                })
                .collect();
            let mut to_declare = BTreeSet::new();
            let mut assigns = BTreeSet::new();
            for &node in &segment {
                for &id in &self.nodes[node].assigns {
                    assigns.insert(id);
                    if !stored[state].contains(&id) && !declared.contains(&id) {
                        to_declare.insert(id);
                    }
                }
            }
            assigned.push(to_declare.into_iter().collect());
            // A name is left out only if no `let x;` of that name here is assigned.
            let deferred = declared.iter().filter(|&&id| self.bindings[id].deferred);
            let (kept, left): (Vec<_>, Vec<_>) = deferred.partition(|id| assigns.contains(id));
            let kept: BTreeSet<String> = kept
                .into_iter()
                .map(|&id| self.bindings[id].ident.to_string())
                .collect();
            unassigned.push(
                left.into_iter()
                    .map(|&id| self.bindings[id].ident.to_string())
                    .filter(|name| !kept.contains(name))
                    .collect(),
            );
            segments.push(segment);
        }
        edges.sort();
        edges.dedup();
        let mut precedes = Vec::new();
        for (a, site) in self.sites.iter().enumerate() {
            let mut seen = HashSet::new();
            let mut stack: Vec<NodeId> = self.nodes[site.node]
                .succ
                .iter()
                .filter(|(_, kind)| *kind != EdgeKind::StepErr)
                .map(|(to, _)| *to)
                .collect();
            while let Some(node) = stack.pop() {
                if !seen.insert(node) {
                    continue;
                }
                if let NodeKind::Step(b) = self.nodes[node].kind {
                    precedes.push((a, b));
                }
                stack.extend(self.nodes[node].succ.iter().map(|(to, _)| *to));
            }
        }
        precedes.sort();
        precedes.dedup();
        Some(Machine {
            bindings: self.bindings,
            sites: self.sites,
            body,
            items: self.items,
            stored,
            assigned,
            unassigned,
            segments,
            edges,
            precedes,
        })
    }

    /// Live-in sets of every node: backward dataflow to a fixpoint.
    pub(crate) fn liveness(&self) -> Vec<BTreeSet<BindingId>> {
        let mut live_in = vec![BTreeSet::new(); self.nodes.len()];
        let mut changed = true;
        while changed {
            changed = false;
            for id in (0..self.nodes.len()).rev() {
                let node = &self.nodes[id];
                let mut live: BTreeSet<BindingId> = BTreeSet::new();
                for (succ, _) in &node.succ {
                    live.extend(live_in[*succ].iter().copied());
                }
                for def in &node.defs {
                    live.remove(def);
                }
                live.extend(node.uses.iter().copied());
                if live != live_in[id] {
                    live_in[id] = live;
                    changed = true;
                }
            }
        }
        live_in
    }

    /// The edges leaving `state` and the nodes its segment runs (up to the
    /// next steps).
    pub(crate) fn segment(&self, state: usize, entry: NodeId) -> (Vec<EdgeIr>, BTreeSet<NodeId>) {
        let mut edges = Vec::new();
        let mut nodes = BTreeSet::from([entry]);
        let mut seen = HashSet::new();
        let mut stack: Vec<(NodeId, LabelIr)> = self.nodes[entry]
            .succ
            .iter()
            .map(|&(to, kind)| {
                let label = match kind {
                    EdgeKind::StepErr => LabelIr::Err,
                    EdgeKind::Branch => LabelIr::Branch,
                    EdgeKind::Normal => LabelIr::Ok,
                };
                (to, label)
            })
            .collect();
        while let Some((node, label)) = stack.pop() {
            if !seen.insert((node, label)) {
                continue;
            }
            match self.nodes[node].kind {
                NodeKind::Step(site) => edges.push(EdgeIr {
                    from: state,
                    to: TargetIr::State(site + 1),
                    label,
                }),
                NodeKind::ExitOk => edges.push(EdgeIr {
                    from: state,
                    to: TargetIr::Complete,
                    label,
                }),
                NodeKind::ExitErr => edges.push(EdgeIr {
                    from: state,
                    to: TargetIr::Error,
                    label,
                }),
                NodeKind::ExitAny => {
                    edges.push(EdgeIr {
                        from: state,
                        to: TargetIr::Complete,
                        label: LabelIr::Branch,
                    });
                    edges.push(EdgeIr {
                        from: state,
                        to: TargetIr::Error,
                        label: LabelIr::Branch,
                    });
                }
                NodeKind::Start | NodeKind::Pure => {
                    nodes.insert(node);
                    for &(to, kind) in &self.nodes[node].succ {
                        let label = if kind == EdgeKind::Branch && label == LabelIr::Ok {
                            LabelIr::Branch
                        } else {
                            label
                        };
                        stack.push((to, label));
                    }
                }
            }
        }
        (edges, nodes)
    }
}
