//! The static parts of a generated state machine: its states, steps,
//! stored variables and edges, as `#[workflow]` writes them into a
//! `static`. A leaf: the descriptions and diagrams build on it.

use serde::{Deserialize, Serialize};

use super::shape;
use crate::step::StepKind;

/// Traces the serde shape of a stored type (see [`shape::trace`]): what the
/// generated machine keeps for each stored variable, step argument tuple
/// and step output, so the fingerprint covers their shapes.
pub type ShapeFn = fn() -> Result<shape::Shape, shape::ShapeError>;

/// The policy of a workflow version towards instances of older versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upgrade {
    /// Instances stay on the version they started on (the default); an
    /// explicit migration (`#[migrate]`) may still move them.
    #[default]
    Pinned,
    /// An instance of an older version parked at a state whose shape is the
    /// same here (same state, same stored variables with compatible shapes,
    /// the same steps behind it) moves to this version at its next claim.
    Auto,
}

impl Upgrade {
    /// `pinned` or `auto`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Upgrade::Pinned => "pinned",
            Upgrade::Auto => "auto",
        }
    }
}

/// One state of a machine: `Start`, or a suspension point.
#[derive(Debug)]
pub struct StateInfo {
    /// The state enum's variant name, e.g. `ChargePayment1`.
    pub name: &'static str,
    /// The step this state runs, `None` for `Start` and for waits.
    pub step: Option<StepInfo>,
    /// What a durable wait waits for (`sleep`, `signal approval`,
    /// `child ship_order`, ...), `None` for `Start` and for steps.
    pub wait: Option<&'static str>,
    /// The variables the state stores, with their types as written.
    pub variables: &'static [Variable],
    /// Whether the code before the state computed something its step, or
    /// the choice of its step, depends on: an argument from a call or a
    /// macro, a local, a branch taken on a value. Entering it is then
    /// written before its step runs even when no step ran before it (the
    /// transition out of `Start`, the only one not written anyway), so
    /// every attempt of the step, in every process, gets the same values.
    pub commit_on_entry: bool,
    /// For a join (`sagaflow::join!`), the steps its branches run, in the
    /// order written; empty for every other state.
    pub branches: &'static [StepInfo],
}

impl StateInfo {
    /// Every step this state runs: its step, or a join's branches.
    pub fn steps(&self) -> impl Iterator<Item = &StepInfo> {
        self.step.iter().chain(self.branches)
    }
}

/// The step a state runs.
#[derive(Debug)]
pub struct StepInfo {
    /// The step's name.
    pub name: &'static str,
    /// Its kind.
    pub kind: StepKind,
    /// Its compensation's name, if it has one.
    pub compensation: Option<&'static str>,
    /// The shape of its owned argument tuple (kept on the compensation stack).
    pub args: ShapeFn,
    /// The shape of its output.
    pub output: ShapeFn,
}

/// A variable stored in a state.
#[derive(Debug)]
pub struct Variable {
    /// The variable's name.
    pub name: &'static str,
    /// Its type as written (or as the macro named it).
    pub ty: &'static str,
    /// Its serde shape.
    pub shape: ShapeFn,
}

/// Folds `value` into the fingerprint `hash` (FNV-1a over its 8 bytes);
/// `const`, so a workflow's structure hash can include its steps'.
#[doc(hidden)]
pub const fn fingerprint_combine(hash: u64, value: u64) -> u64 {
    let bytes = value.to_le_bytes();
    let mut hash = hash;
    let mut i = 0;
    while i < 8 {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// [`shape::trace`] as a [`ShapeFn`], for `T`.
pub const fn shape_of<T: serde::de::DeserializeOwned>() -> ShapeFn {
    shape::trace::<T>
}

/// A transition of the machine.
#[derive(Debug)]
pub struct Edge {
    /// Index of the source state in [`StateMachine::states`](super::StateMachine::states).
    pub from: usize,
    /// Where it leads.
    pub to: Target,
    /// Why it is taken.
    pub label: EdgeLabel,
}

/// The end of an [`Edge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Another state, by index in [`StateMachine::states`](super::StateMachine::states).
    State(usize),
    /// The workflow returns `Ok`: `Completed`.
    Complete,
    /// The workflow returns `Err`: `Compensated`, or `Failed` after the pivot.
    Error,
}

/// Why an [`Edge`] is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeLabel {
    /// The step succeeded and the code goes straight on.
    Ok,
    /// The step failed for good and `?` returned its error.
    Err,
    /// The code after the step chose this edge (`if`, `match`, `return`).
    Branch,
}

impl EdgeLabel {
    /// The label drawn on the edge.
    pub const fn as_str(self) -> &'static str {
        match self {
            EdgeLabel::Ok => "ok",
            EdgeLabel::Err => "err",
            EdgeLabel::Branch => "branch",
        }
    }
}

impl StateInfo {
    /// The workflow this state runs as a child (`sagaflow::child`), if it
    /// is a child workflow's state: its `wait` is `child {name}`.
    pub fn child_workflow(&self) -> Option<&'static str> {
        self.wait.and_then(|wait| wait.strip_prefix("child "))
    }
}
