//! [`MachineDescription`]: an owned, serde-able copy of a [`StateMachine`](super::StateMachine),
//! and the one place diagrams are drawn from.
//!
//! A runtime writes the description of every machine it registers to the
//! store (`machines/{workflow}/{fingerprint}`, see [`machine_key`]), so a
//! tool that knows no workflows (the bare `sagaflow` binary) can still draw
//! them. [`StateMachine::to_mermaid`](super::StateMachine::to_mermaid) and [`StateMachine::to_dot`](super::StateMachine::to_dot) render
//! through this type too, so a stored diagram and a registered one cannot
//! drift apart.
//!
//! Adding a field to [`StateInfo`](super::StateInfo) means adding it here
//! with `#[serde(default)]` (descriptions written by older code lack it)
//! and copying it in the `From` impl.

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::graph::{EdgeLabel, ShapeFn, Target, Upgrade};
use super::shape::Shape;
use crate::record::format_fingerprint;
use crate::step::StepKind;

/// The version of the stored description's envelope.
pub const DESCRIPTION_FORMAT: u32 = 1;

/// The store key prefix of machine descriptions.
pub const MACHINES_PREFIX: &str = "machines/";

/// `machines/{workflow}/{fingerprint as 16 hex digits}`: where a runtime
/// writes the description of a machine it registers.
pub fn machine_key(workflow: &str, fingerprint: u64) -> String {
    format!(
        "{MACHINES_PREFIX}{workflow}/{}",
        format_fingerprint(fingerprint)
    )
}

/// An owned copy of a [`StateMachine`](super::StateMachine), as JSON in the store.
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[step(readonly)]
/// # async fn price(order: &str) -> Result<u64, StepError> { Ok(order.len() as u64) }
/// # #[workflow]
/// # async fn place_order(order: String) -> Result<u64, WorkflowError> {
/// #     let cents = price(&order).await?;
/// #     Ok(cents)
/// # }
/// # use sagaflow::machine::MachineDescription;
/// let description = MachineDescription::from(place_order.state_machine());
/// assert_eq!(description.to_mermaid(), place_order.state_machine().to_mermaid());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MachineDescription {
    /// The workflow's name.
    pub workflow: String,
    /// The machine's fingerprint, stored as 16 hex digits.
    #[serde(with = "hex_fingerprint")]
    pub fingerprint: u64,
    /// The workflow's version (1 in descriptions written before versions).
    #[serde(default = "first_version")]
    pub version: u32,
    /// Whether older versions' instances may move to this one by themselves.
    #[serde(default)]
    pub upgrade: Upgrade,
    /// The hash of the structure alone (see [`StateMachine::structure`](super::StateMachine::structure));
    /// `None` in descriptions written before shapes were traced, whose
    /// fingerprint was the structure's hash.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_option")]
    pub structure: Option<u64>,
    /// The shape of the workflow's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ShapeDescription>,
    /// Every state: `Start` first, then one per suspension point.
    pub states: Vec<StateDescription>,
    /// Every transition between states and into the terminal states.
    pub edges: Vec<EdgeDescription>,
}

fn first_version() -> u32 {
    1
}

/// A stored type's serde shape, or why it could not be traced (a type that
/// deserializes through `deserialize_any`, such as an untagged enum): then
/// only its name as written is covered by the fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeDescription {
    /// The traced shape.
    Traced(Shape),
    /// Why the shape could not be traced.
    Untraced(String),
}

impl ShapeDescription {
    pub(super) fn of(shape: ShapeFn) -> ShapeDescription {
        match shape() {
            Ok(shape) => ShapeDescription::Traced(shape),
            Err(error) => ShapeDescription::Untraced(error.to_string()),
        }
    }

    /// What the fingerprint folds in: the shape's digest; for a shape that
    /// could not be traced, the digest of `written` (the type as written,
    /// empty where the machine names none), never of the reason, whose
    /// wording may change.
    pub fn digest(&self, written: &str) -> u64 {
        match self {
            ShapeDescription::Traced(shape) => shape.digest(),
            ShapeDescription::Untraced(_) => {
                xxhash_rust::xxh3::xxh3_64(format!("untraced {written}").as_bytes())
            }
        }
    }

    /// The traced shape, if there is one.
    pub fn shape(&self) -> Option<&Shape> {
        match self {
            ShapeDescription::Traced(shape) => Some(shape),
            ShapeDescription::Untraced(_) => None,
        }
    }
}

/// The traced description of a [`StateMachine`](super::StateMachine), made on first use: a
/// `static` machine holds one (`Traced::new()` in generated code).
#[derive(Debug, Default)]
pub struct Traced(OnceLock<MachineDescription>);

impl Traced {
    /// Nothing traced yet.
    pub const fn new() -> Traced {
        Traced(OnceLock::new())
    }

    pub(super) fn get_or_init(
        &self,
        init: impl FnOnce() -> MachineDescription,
    ) -> &MachineDescription {
        self.0.get_or_init(init)
    }
}

/// One state of a [`MachineDescription`] (see [`StateInfo`](super::StateInfo)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StateDescription {
    /// The state enum's variant name, e.g. `ChargePayment1`.
    pub name: String,
    /// The step this state runs, `None` for `Start` and for waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepDescription>,
    /// What a durable wait waits for, `None` for `Start` and for steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
    /// The variables the state stores, with their types as written.
    #[serde(default)]
    pub variables: Vec<VariableDescription>,
    /// For a join, the steps its branches run, in the order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<StepDescription>,
}

/// The step a state runs (see [`StepInfo`](super::StepInfo)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepDescription {
    /// The step's name.
    pub name: String,
    /// Its kind.
    pub kind: StepKind,
    /// Its compensation's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<String>,
    /// The shape of its owned argument tuple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<ShapeDescription>,
    /// The shape of its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ShapeDescription>,
}

/// A variable stored in a state (see [`Variable`](super::Variable)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VariableDescription {
    /// The variable's name.
    pub name: String,
    /// Its type as written.
    pub ty: String,
    /// Its serde shape (`None` in descriptions written before shapes were
    /// traced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<ShapeDescription>,
}

/// A transition (see [`Edge`](super::Edge)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EdgeDescription {
    /// Index of the source state in [`MachineDescription::states`].
    pub from: usize,
    /// Where it leads.
    pub to: Target,
    /// Why it is taken.
    pub label: EdgeLabel,
}

/// A stored description that cannot be used; nothing is drawn from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// The bytes are not a description envelope.
    #[error("not a machine description: {0}")]
    NotJson(#[from] serde_json::Error),
    /// Written by a sagaflow with another envelope format.
    #[error(
        "machine description format {found} is not supported (this build reads {DESCRIPTION_FORMAT})"
    )]
    Format {
        /// The format found.
        found: u32,
    },
    /// The description is inconsistent (a machine needs a `Start` state,
    /// and its edges must name its states).
    #[error("the machine description of `{workflow}` is inconsistent: {reason}")]
    Inconsistent {
        /// The workflow named in the description.
        workflow: String,
        /// What is wrong.
        reason: String,
    },
}

/// The JSON a runtime writes under [`machine_key`].
#[derive(Serialize, Deserialize)]
struct Envelope<M> {
    format: u32,
    /// When the runtime that wrote it was built (ms since the Unix epoch).
    registered_at: u64,
    machine: M,
}

/// A terminal state as drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Terminal {
    /// The workflow returned `Ok`.
    Completed,
    /// The workflow returned `Err` before its pivot: rolled back.
    Compensated,
    /// The workflow returned `Err` after its pivot: an operator's case.
    Failed,
}

impl Terminal {
    /// `Completed`, `Compensated`, `Failed`.
    pub const fn name(self) -> &'static str {
        match self {
            Terminal::Completed => "Completed",
            Terminal::Compensated => "Compensated",
            Terminal::Failed => "Failed",
        }
    }
}

/// Where an edge ends, as drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrawnTarget {
    /// A state, by index in [`MachineDescription::states`].
    State(usize),
    /// A terminal state.
    Terminal(Terminal),
}

/// An edge as drawn: its end resolved to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrawnEdge {
    /// Index of the source state.
    pub from: usize,
    /// Where it ends.
    pub to: DrawnTarget,
    /// Why it is taken.
    pub label: EdgeLabel,
}

impl MachineDescription {
    /// The JSON a runtime stores under [`machine_key`], stamped with
    /// `registered_at` (ms since the Unix epoch).
    pub fn to_stored(&self, registered_at: u64) -> Vec<u8> {
        let envelope = Envelope {
            format: DESCRIPTION_FORMAT,
            registered_at,
            machine: self,
        };
        // Strings, numbers and unit enums only: serializing cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// Decodes what [`to_stored`](Self::to_stored) wrote, checking that the
    /// machine is consistent; returns it with its `registered_at`.
    pub fn from_stored(bytes: &[u8]) -> Result<(MachineDescription, u64), DescriptionError> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let Format { format } = serde_json::from_slice(bytes)?;
        if format != DESCRIPTION_FORMAT {
            return Err(DescriptionError::Format { found: format });
        }
        let envelope: Envelope<MachineDescription> = serde_json::from_slice(bytes)?;
        envelope.machine.check()?;
        Ok((envelope.machine, envelope.registered_at))
    }

    /// Checks what rendering relies on: a `Start` state, edges between
    /// existing states.
    pub fn check(&self) -> Result<(), DescriptionError> {
        let inconsistent = |reason: String| DescriptionError::Inconsistent {
            workflow: self.workflow.clone(),
            reason,
        };
        if self.states.is_empty() {
            return Err(inconsistent("it has no states".to_owned()));
        }
        let states = self.states.len();
        for (index, edge) in self.edges.iter().enumerate() {
            let to = match edge.to {
                Target::State(to) => to,
                Target::Complete | Target::Error => 0,
            };
            if edge.from >= states || to >= states {
                return Err(inconsistent(format!(
                    "edge {index} names state {} but there are {states} states",
                    edge.from.max(to)
                )));
            }
        }
        Ok(())
    }

    /// The state with this variant name.
    pub fn state(&self, name: &str) -> Option<&StateDescription> {
        self.states.iter().find(|state| state.name == name)
    }

    /// For each state, whether a pivot step may already have succeeded when
    /// the state is entered (a pivot precedes it on some path).
    fn after_pivot(&self) -> Vec<bool> {
        let mut after = vec![false; self.states.len()];
        let mut changed = true;
        while changed {
            changed = false;
            for edge in self.valid_edges() {
                let Target::State(to) = edge.to else { continue };
                if (after[edge.from] || self.pivot_succeeds(edge)) && !after[to] {
                    after[to] = true;
                    changed = true;
                }
            }
        }
        after
    }

    /// Whether taking `edge` means its state's pivot step succeeded.
    fn pivot_succeeds(&self, edge: &EdgeDescription) -> bool {
        self.states[edge.from]
            .step
            .as_ref()
            .is_some_and(|step| step.kind.is_pivot() && edge.label != EdgeLabel::Err)
    }

    /// The edges whose ends name existing states (all of them, once
    /// [`check`](Self::check) passed).
    fn valid_edges(&self) -> impl Iterator<Item = &EdgeDescription> {
        let states = self.states.len();
        self.edges.iter().filter(move |edge| {
            edge.from < states && !matches!(edge.to, Target::State(to) if to >= states)
        })
    }

    /// Every edge with its end resolved, in edge order: an error before any
    /// pivot leads to `Compensated`, after one to `Failed`. Edges naming
    /// states that do not exist are left out.
    pub fn drawn_edges(&self) -> Vec<DrawnEdge> {
        let after = self.after_pivot();
        self.valid_edges()
            .map(|edge| {
                let to = match edge.to {
                    Target::State(index) => DrawnTarget::State(index),
                    Target::Complete => DrawnTarget::Terminal(Terminal::Completed),
                    Target::Error => {
                        DrawnTarget::Terminal(if after[edge.from] || self.pivot_succeeds(edge) {
                            Terminal::Failed
                        } else {
                            Terminal::Compensated
                        })
                    }
                };
                DrawnEdge {
                    from: edge.from,
                    to,
                    label: edge.label,
                }
            })
            .collect()
    }

    fn terminals(edges: &[DrawnEdge]) -> Vec<Terminal> {
        let mut terminals: Vec<Terminal> = edges
            .iter()
            .filter_map(|edge| match edge.to {
                DrawnTarget::Terminal(terminal) => Some(terminal),
                DrawnTarget::State(_) => None,
            })
            .collect();
        terminals.sort();
        terminals.dedup();
        terminals
    }

    fn node_name(&self, target: DrawnTarget) -> &str {
        match target {
            DrawnTarget::State(index) => &self.states[index].name,
            DrawnTarget::Terminal(terminal) => terminal.name(),
        }
    }

    /// The machine as a Mermaid `stateDiagram-v2`, deterministic.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        for state in self.states.iter().skip(1) {
            let _ = writeln!(
                out,
                "    state \"{}\" as {}",
                state.describe(" / "),
                state.name
            );
        }
        let edges = self.drawn_edges();
        for edge in &edges {
            let from = if edge.from == 0 {
                "[*]"
            } else {
                &self.states[edge.from].name
            };
            let to = self.node_name(edge.to);
            let _ = writeln!(out, "    {from} --> {to} : {}", edge.label.as_str());
        }
        for terminal in Self::terminals(&edges) {
            let _ = writeln!(out, "    {} --> [*]", terminal.name());
        }
        out
    }

    /// The machine as a Graphviz `digraph`, deterministic.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", self.workflow);
        out.push_str("    rankdir=TB;\n    node [shape=box, style=rounded];\n");
        for (index, state) in self.states.iter().enumerate() {
            if index == 0 {
                let _ = writeln!(out, "    {} [shape=point, label=\"\"];", state.name);
            } else {
                let label = format!("{}\\n{}", state.name, state.describe("\\n"));
                let _ = writeln!(
                    out,
                    "    {} [label=\"{}\"];",
                    state.name,
                    label.replace('"', "\\\"")
                );
            }
        }
        let edges = self.drawn_edges();
        for terminal in Self::terminals(&edges) {
            let _ = writeln!(out, "    {} [shape=doublecircle];", terminal.name());
        }
        for edge in &edges {
            let _ = writeln!(
                out,
                "    {} -> {} [label=\"{}\"];",
                self.states[edge.from].name,
                self.node_name(edge.to),
                edge.label.as_str()
            );
        }
        out.push_str("}\n");
        out
    }
}

impl StateDescription {
    /// Every step this state runs: its step, or a join's branches.
    pub fn steps(&self) -> impl Iterator<Item = &StepDescription> {
        self.step.iter().chain(&self.branches)
    }

    /// `reserve_inventory / compensable, undo: release_inventory` (with
    /// `separator` between the step and its kind), or what a wait waits for.
    pub fn describe(&self, separator: &str) -> String {
        if let Some(wait) = &self.wait {
            return wait.clone();
        }
        if !self.branches.is_empty() {
            let branches: Vec<String> = self
                .branches
                .iter()
                .map(|step| match &step.compensation {
                    Some(undo) => format!("{} ({}, undo: {undo})", step.name, step.kind),
                    None => format!("{} ({})", step.name, step.kind),
                })
                .collect();
            return format!("join{separator}{}", branches.join(separator));
        }
        match &self.step {
            Some(step) => match &step.compensation {
                Some(undo) => format!("{}{separator}{}, undo: {undo}", step.name, step.kind),
                None => format!("{}{separator}{}", step.name, step.kind),
            },
            None => self.name.clone(),
        }
    }

    /// The step's name, what the state waits for, or a join's steps
    /// (`join book_flight, book_hotel`).
    pub fn step_or_wait(&self) -> Option<String> {
        match (&self.step, &self.wait) {
            (Some(step), _) => Some(step.name.clone()),
            (None, Some(wait)) => Some(wait.clone()),
            (None, None) if !self.branches.is_empty() => {
                let names: Vec<&str> = self
                    .branches
                    .iter()
                    .map(|step| step.name.as_str())
                    .collect();
                Some(format!("join {}", names.join(", ")))
            }
            (None, None) => None,
        }
    }
}

/// An optional fingerprint as 16 hex digits.
mod hex_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::hex_fingerprint::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct Hex(#[serde(with = "super::hex_fingerprint")] u64);
        Ok(Option::<Hex>::deserialize(deserializer)?.map(|Hex(value)| value))
    }
}

/// Fingerprints as 16 hex digits, as in instance records (a JSON number
/// would lose precision in JavaScript).
mod hex_fingerprint {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::record::{format_fingerprint, parse_fingerprint};

    pub(super) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_fingerprint(*value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_fingerprint(&text)
            .ok_or_else(|| D::Error::custom(format!("fingerprint `{text}` is not 16 hex digits")))
    }
}
