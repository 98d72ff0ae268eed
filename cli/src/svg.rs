//! A state machine drawn as SVG, on the server: states as boxes in layers
//! (longest path from `Start`), the terminal states on the bottom row, edges
//! between adjacent layers as straight lines, longer edges and loops routed
//! around the side. No JavaScript, no fonts to load.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::admin::StateCounts;
use sagaflow::machine::{DrawnTarget, EdgeLabel, MachineDescription, Terminal};

/// What to mark on the drawing.
#[derive(Clone, Debug, Default)]
pub struct Highlight<'a> {
    /// The node the instance is at: a state name, or `Completed`,
    /// `Compensated`, `Failed` for an ended instance.
    pub current: Option<&'a str>,
    /// The state an ended instance stopped at (drawn dashed).
    pub stopped: Option<&'a str>,
    /// Instance counts to print on the nodes.
    pub counts: Option<&'a StateCounts>,
}

const TERMINALS: [&str; 3] = ["Completed", "Compensated", "Failed"];
const CHAR_WIDTH: f64 = 7.3;
const BOX_HEIGHT: f64 = 58.0;
const H_GAP: f64 = 36.0;
const V_GAP: f64 = 56.0;
const MARGIN: f64 = 24.0;
const CHANNEL_GAP: f64 = 12.0;

struct Node {
    name: String,
    lines: Vec<String>,
    terminal: bool,
    layer: usize,
    x: f64,
    y: f64,
    width: f64,
}

impl Node {
    fn center(&self) -> f64 {
        self.x + self.width / 2.0
    }
    fn bottom(&self) -> f64 {
        self.y + BOX_HEIGHT
    }
    fn middle(&self) -> f64 {
        self.y + BOX_HEIGHT / 2.0
    }
}

/// The machine's edges as (from node, to node, label), with the terminal
/// states numbered after the states, resolved as every diagram resolves them.
fn edges(machine: &MachineDescription) -> Vec<(usize, usize, EdgeLabel)> {
    let states = machine.states.len();
    machine
        .drawn_edges()
        .into_iter()
        .map(|edge| {
            let to = match edge.to {
                DrawnTarget::State(index) => index,
                DrawnTarget::Terminal(Terminal::Completed) => states,
                DrawnTarget::Terminal(Terminal::Compensated) => states + 1,
                DrawnTarget::Terminal(Terminal::Failed) => states + 2,
            };
            (edge.from, to, edge.label)
        })
        .collect()
}

/// Edges that close a loop (to a node on the depth-first path from `Start`).
fn back_edges(nodes: usize, edges: &[(usize, usize, EdgeLabel)]) -> Vec<bool> {
    let mut back = vec![false; edges.len()];
    let mut state = vec![0u8; nodes]; // 0 new, 1 on the path, 2 done
    // Iterative DFS: (node, next outgoing edge index).
    let mut stack = vec![(0usize, 0usize)];
    state[0] = 1;
    while let Some((node, next)) = stack.last_mut() {
        let node = *node;
        match edges
            .iter()
            .enumerate()
            .skip(*next)
            .find(|(_, edge)| edge.0 == node)
        {
            Some((index, edge)) => {
                *next = index + 1;
                match state[edge.1] {
                    0 => {
                        state[edge.1] = 1;
                        stack.push((edge.1, 0));
                    }
                    1 => back[index] = true,
                    _ => {}
                }
            }
            None => {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    back
}

/// HTML-escapes `text`.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn count_label(counts: &StateCounts, name: &str, terminal: bool) -> Option<String> {
    if terminal {
        let phase = match name {
            "Completed" => sagaflow::record::Phase::Completed,
            "Compensated" => sagaflow::record::Phase::Compensated,
            _ => sagaflow::record::Phase::Failed,
        };
        let n = counts.ended(phase);
        return (n > 0).then(|| n.to_string());
    }
    let phases = counts.active.get(name)?;
    let parts: Vec<String> = phases
        .iter()
        .map(|(phase, n)| format!("{n} {}", phase.to_lowercase()))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Draws `machine` as a self-contained SVG document.
pub fn render(machine: &MachineDescription, highlight: &Highlight<'_>) -> String {
    let states = machine.states.len();
    let edges = edges(machine);
    let node_count = states + TERMINALS.len();
    let back = back_edges(node_count, &edges);
    let used_terminal: Vec<bool> = (0..TERMINALS.len())
        .map(|t| {
            edges.iter().any(|edge| edge.1 == states + t) || highlight.current == Some(TERMINALS[t])
        })
        .collect();

    // Layers: the longest path from Start over forward edges.
    let mut layer = vec![0usize; node_count];
    for _ in 0..node_count {
        let mut changed = false;
        for (index, (from, to, _)) in edges.iter().enumerate() {
            if back[index] || *to >= states {
                continue;
            }
            if layer[*to] < layer[*from] + 1 {
                layer[*to] = layer[*from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let bottom = layer[..states].iter().copied().max().unwrap_or(0) + 1;

    let mut nodes: Vec<Node> = Vec::new();
    let mut index_of: HashMap<usize, usize> = HashMap::new();
    for (index, state) in machine.states.iter().enumerate() {
        let mut lines = vec![state.name.clone()];
        if let Some(wait) = &state.wait {
            lines.push(wait.clone());
        } else if !state.branches.is_empty() {
            lines.push("join".to_owned());
            for step in &state.branches {
                lines.push(format!("{} · {}", step.name, step.kind));
            }
        } else if let Some(step) = &state.step {
            lines.push(format!("{} · {}", step.name, step.kind));
            if let Some(undo) = &step.compensation {
                lines.push(format!("undo: {undo}"));
            }
        } else if index == 0 {
            lines.push("input".to_owned());
        }
        index_of.insert(index, nodes.len());
        nodes.push(Node {
            name: state.name.clone(),
            lines,
            terminal: false,
            layer: layer[index],
            x: 0.0,
            y: 0.0,
            width: 0.0,
        });
    }
    for (t, name) in TERMINALS.iter().enumerate() {
        if !used_terminal[t] {
            continue;
        }
        index_of.insert(states + t, nodes.len());
        nodes.push(Node {
            name: (*name).to_owned(),
            lines: vec![(*name).to_owned()],
            terminal: true,
            layer: bottom,
            x: 0.0,
            y: 0.0,
            width: 0.0,
        });
    }
    for node in &mut nodes {
        let longest = node
            .lines
            .iter()
            .map(|line| line.chars().count())
            .max()
            .unwrap_or(0);
        node.width = (longest as f64 * CHAR_WIDTH + 28.0).max(110.0);
        if highlight.counts.is_some() {
            node.width += 16.0;
        }
    }

    // Rows, centred on the widest.
    let layers = bottom + 1;
    let row_width = |row: usize, nodes: &[Node]| -> f64 {
        let widths: Vec<f64> = nodes
            .iter()
            .filter(|node| node.layer == row)
            .map(|node| node.width)
            .collect();
        widths.iter().sum::<f64>() + H_GAP * widths.len().saturating_sub(1) as f64
    };
    let widest = (0..layers)
        .map(|row| row_width(row, &nodes))
        .fold(0.0, f64::max);
    // Channels for long edges (right) and loops (left).
    let long_edges: Vec<usize> = edges
        .iter()
        .enumerate()
        .filter(|(index, (from, to, _))| {
            !back[*index] && {
                let (a, b) = (index_of.get(from), index_of.get(to));
                matches!((a, b), (Some(a), Some(b)) if nodes[*b].layer > nodes[*a].layer + 1)
            }
        })
        .map(|(index, _)| index)
        .collect();
    let loops: Vec<usize> = (0..edges.len()).filter(|index| back[*index]).collect();
    let left_channels = loops.len() as f64 * CHANNEL_GAP;
    let right_channels = long_edges.len() as f64 * CHANNEL_GAP;
    // Loops' labels sit left of their channels.
    let origin = MARGIN + left_channels + if loops.is_empty() { 0.0 } else { 48.0 };
    for row in 0..layers {
        let mut x = origin + (widest - row_width(row, &nodes)) / 2.0;
        for node in nodes.iter_mut().filter(|node| node.layer == row) {
            node.x = x;
            node.y = MARGIN + row as f64 * (BOX_HEIGHT + V_GAP);
            x += node.width + H_GAP;
        }
    }
    let right_edge = origin + widest + 8.0;
    let width = right_edge + right_channels + MARGIN;
    let height = MARGIN * 2.0 + layers as f64 * BOX_HEIGHT + (layers - 1) as f64 * V_GAP;

    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"machine\" data-workflow=\"{}\" \
         width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         role=\"img\" aria-label=\"state machine of {}\">",
        escape(&machine.workflow),
        escape(&machine.workflow)
    );
    out.push_str(
        "<style>\
         .machine text{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;fill:#1f2933}\
         .machine .state rect{fill:#fff;stroke:#7b8794;stroke-width:1.2}\
         .machine .state .name{font-weight:bold}\
         .machine .terminal rect{fill:#f5f7fa;stroke:#52606d;stroke-width:2}\
         .machine .current rect{fill:#fff3c4;stroke:#de911d;stroke-width:3.5}\
         .machine .stopped rect{stroke:#cf1124;stroke-width:2.5;stroke-dasharray:6 3}\
         .machine .count rect{fill:#2680c2;stroke:none}\
         .machine .count text{fill:#fff;font-size:11px;font-weight:bold}\
         .machine .edge{fill:none;stroke:#616e7c;stroke-width:1.3}\
         .machine .edge.err{stroke:#cf1124;stroke-dasharray:5 3}\
         .machine .edge.branch{stroke:#7b8794;stroke-dasharray:2 2}\
         .machine .label{font-size:10px;fill:#616e7c}\
         </style>\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"#616e7c\"/></marker></defs>",
    );

    // Edges first, so boxes sit on top of them.
    let mut next_right = 0.0;
    let mut next_left = 0.0;
    for (index, (from, to, label)) in edges.iter().enumerate() {
        let (Some(&a), Some(&b)) = (index_of.get(from), index_of.get(to)) else {
            continue;
        };
        let (a, b) = (&nodes[a], &nodes[b]);
        let (path, label_at) = if back[index] {
            next_left += CHANNEL_GAP;
            let x = origin - 8.0 - next_left + CHANNEL_GAP;
            // Leave above the middle and come back below it, so a state's
            // loop onto itself is a visible hook.
            let (leave, enter) = (a.middle() - 10.0, b.middle() + 10.0);
            (
                format!("M{:.1},{leave:.1} H{x:.1} V{enter:.1} H{:.1}", a.x, b.x),
                (x - 3.0, leave - 2.0, "end"),
            )
        } else if b.layer > a.layer + 1 {
            next_right += CHANNEL_GAP;
            let x = right_edge + next_right - CHANNEL_GAP;
            let k = next_right / CHANNEL_GAP;
            let approach = (b.y - V_GAP * 0.7 + k * 6.0).min(b.y - 8.0);
            (
                // Into the right half of the target, apart from the
                // straight edges that arrive at its centre.
                format!(
                    "M{:.1},{:.1} H{x:.1} V{approach:.1} H{:.1} V{:.1}",
                    a.x + a.width,
                    a.middle(),
                    b.x + b.width * 0.75,
                    b.y
                ),
                (a.x + a.width + 4.0, a.middle() - 4.0, "start"),
            )
        } else {
            (
                format!(
                    "M{:.1},{:.1} L{:.1},{:.1}",
                    a.center(),
                    a.bottom(),
                    b.center(),
                    b.y
                ),
                (
                    (a.center() + b.center()) / 2.0 + 4.0,
                    (a.bottom() + b.y) / 2.0,
                    "start",
                ),
            )
        };
        let _ = write!(
            out,
            "<path class=\"edge {}\" data-from=\"{}\" data-to=\"{}\" d=\"{path}\" marker-end=\"url(#arrow)\"/>\
             <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text>",
            label.as_str(),
            escape(&a.name),
            escape(&b.name),
            label_at.0,
            label_at.1,
            label_at.2,
            label.as_str()
        );
    }

    for node in &nodes {
        let mut class = String::from(if node.terminal {
            "state terminal"
        } else {
            "state"
        });
        if highlight.current == Some(node.name.as_str()) {
            class.push_str(" current");
        } else if highlight.stopped == Some(node.name.as_str()) {
            class.push_str(" stopped");
        }
        let radius = if node.terminal { 22.0 } else { 6.0 };
        let _ = write!(
            out,
            "<g class=\"{class}\" data-state=\"{}\" id=\"state-{}\"><title>{}</title>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{BOX_HEIGHT}\" rx=\"{radius}\"/>",
            escape(&node.name),
            escape(&node.name),
            escape(&node.lines.join(" — ")),
            node.x,
            node.y,
            node.width
        );
        let line_height = 15.0;
        let first = node.middle() - (node.lines.len() as f64 - 1.0) * line_height / 2.0 + 4.0;
        for (i, line) in node.lines.iter().enumerate() {
            let _ = write!(
                out,
                "<text class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                if i == 0 { "name" } else { "detail" },
                node.center(),
                first + i as f64 * line_height,
                escape(line)
            );
        }
        if let Some(count) = highlight
            .counts
            .and_then(|counts| count_label(counts, &node.name, node.terminal))
        {
            let badge = count.chars().count() as f64 * 6.8 + 10.0;
            let _ = write!(
                out,
                "<g class=\"count\" data-count=\"{}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{badge:.1}\" height=\"16\" rx=\"8\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
                escape(&count),
                node.x + node.width - badge + 6.0,
                node.y - 8.0,
                node.x + node.width - badge / 2.0 + 6.0,
                node.y + 4.0,
                escape(&count)
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>\n");
    out
}
