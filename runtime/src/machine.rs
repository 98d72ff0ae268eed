//! The static description of a generated state machine, and its diagrams.

use std::collections::HashMap;
use std::time::Duration;

pub mod compat;
mod description;
mod graph;
pub mod shape;

pub use description::{
    DESCRIPTION_FORMAT, DescriptionError, DrawnEdge, DrawnTarget, EdgeDescription, MACHINES_PREFIX,
    MachineDescription, ShapeDescription, StateDescription, StepDescription, Terminal, Traced,
    VariableDescription, machine_key,
};
pub use graph::{
    Edge, EdgeLabel, ShapeFn, StateInfo, StepInfo, Target, Upgrade, Variable, fingerprint_combine,
    shape_of,
};

/// The state machine `#[workflow]` generated: static data, the same on every
/// run, so its diagrams can be snapshot-tested.
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
/// let mermaid = place_order.state_machine().to_mermaid();
/// assert!(mermaid.starts_with("stateDiagram-v2"));
/// // in a test: insta::assert_snapshot!(place_order.state_machine().to_mermaid());
/// ```
#[derive(Debug)]
pub struct StateMachine {
    /// The workflow's name (`#[workflow(name = "..")]`, else the function's).
    pub workflow: &'static str,
    /// The version (`#[workflow(version = N)]`, else 1). Versions of one
    /// workflow run side by side; `start` by name uses the newest.
    pub version: u32,
    /// Whether instances of older versions may move to this one where the
    /// machines prove it safe (`#[workflow(upgrade = "auto")]`).
    pub upgrade: Upgrade,
    /// Every state: `Start` first, then one per suspension point.
    pub states: &'static [StateInfo],
    /// Every transition between states and into the terminal states.
    pub edges: &'static [Edge],
    /// Stable hash of the name, states, stored variables with their types as
    /// written, edges and the signatures of the steps, computed by the macro.
    /// The [`fingerprint`](Self::fingerprint) adds the serde shapes of the
    /// stored types to it.
    pub structure: u64,
    /// The fingerprint sagaflow gave this machine before fingerprints
    /// covered shapes (the structure with the variables' types as
    /// written): records written then carry it, and run on this machine if
    /// their state decodes.
    pub legacy: u64,
    /// The shape of the workflow's output type.
    pub output: ShapeFn,
    /// The description with traced shapes and the fingerprint, made once.
    #[doc(hidden)]
    pub traced: Traced,
}

impl StateMachine {
    /// The state with this variant name.
    pub fn state(&self, name: &str) -> Option<&StateInfo> {
        self.states.iter().find(|state| state.name == name)
    }

    /// Whether the state at index `start` is on a cycle (inside a loop
    /// with suspension points): then its steps' idempotency keys carry the
    /// transition count.
    pub(crate) fn is_on_cycle(&self, start: usize) -> bool {
        let mut seen = vec![false; self.states.len()];
        let mut stack = vec![start];
        while let Some(from) = stack.pop() {
            for edge in self.edges.iter().filter(|edge| edge.from == from) {
                if let Target::State(to) = edge.to {
                    if to == start {
                        return true;
                    }
                    if !seen[to] {
                        seen[to] = true;
                        stack.push(to);
                    }
                }
            }
        }
        false
    }

    /// The fingerprint: a stable 64-bit hash of the
    /// [`structure`](Self#structfield.structure) and the serde shapes of
    /// every stored type (each state's variables, each step's arguments and
    /// output, the workflow's output). An instance resumes only on a machine
    /// with its fingerprint (or one it may move to, see [`Upgrade`]).
    pub fn fingerprint(&self) -> u64 {
        self.description().fingerprint
    }

    /// An owned copy, serde-able: what a runtime stores for tools that do
    /// not know the workflow.
    pub fn describe(&self) -> MachineDescription {
        self.description().clone()
    }

    /// The description, traced once.
    pub(crate) fn description(&self) -> &MachineDescription {
        self.traced.get_or_init(|| MachineDescription::trace(self))
    }

    /// The machine as a Mermaid `stateDiagram-v2`, deterministic. Drawn by
    /// [`MachineDescription::to_mermaid`], as stored machines are.
    pub fn to_mermaid(&self) -> String {
        self.describe().to_mermaid()
    }

    /// The machine as a Graphviz `digraph`, deterministic. Drawn by
    /// [`MachineDescription::to_dot`], as stored machines are.
    pub fn to_dot(&self) -> String {
        self.describe().to_dot()
    }
}

/// The shapes traced while describing one machine, by the address of the
/// function that traces them: a type stored in many states (the input,
/// say) is traced once.
#[derive(Default)]
struct ShapeMemo(HashMap<usize, ShapeDescription>);

impl ShapeMemo {
    fn trace(&mut self, shape: ShapeFn) -> ShapeDescription {
        self.0
            .entry(shape as usize)
            .or_insert_with(|| ShapeDescription::of(shape))
            .clone()
    }

    fn step(&mut self, step: &StepInfo) -> StepDescription {
        StepDescription {
            name: step.name.to_owned(),
            kind: step.kind,
            compensation: step.compensation.map(str::to_owned),
            args: Some(self.trace(step.args)),
            output: Some(self.trace(step.output)),
        }
    }
}

impl From<&StateMachine> for MachineDescription {
    fn from(machine: &StateMachine) -> MachineDescription {
        machine.describe()
    }
}

impl MachineDescription {
    /// Describes `machine`, tracing the shape of every stored type, and
    /// computes its fingerprint: the structure's hash with the digest of
    /// each variable's shape (state by state, in order), each distinct
    /// step's argument and output shapes (in order of first call) and the
    /// workflow output's shape folded in.
    fn trace(machine: &StateMachine) -> MachineDescription {
        let mut memo = ShapeMemo::default();
        let states: Vec<StateDescription> = machine
            .states
            .iter()
            .map(|state| StateDescription {
                name: state.name.to_owned(),
                step: state.step.as_ref().map(|step| memo.step(step)),
                branches: state.branches.iter().map(|step| memo.step(step)).collect(),
                wait: state.wait.map(str::to_owned),
                variables: state
                    .variables
                    .iter()
                    .map(|variable| VariableDescription {
                        name: variable.name.to_owned(),
                        ty: variable.ty.to_owned(),
                        shape: Some(memo.trace(variable.shape)),
                    })
                    .collect(),
            })
            .collect();
        let output = memo.trace(machine.output);
        let mut fingerprint = machine.structure;
        let digests = |shape: &Option<ShapeDescription>, written: &str| {
            shape.as_ref().map_or(0, |shape| shape.digest(written))
        };
        for state in &states {
            for variable in &state.variables {
                fingerprint =
                    fingerprint_combine(fingerprint, digests(&variable.shape, &variable.ty));
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for step in states.iter().flat_map(StateDescription::steps) {
            if seen.contains(&step.name.as_str()) {
                continue;
            }
            seen.push(&step.name);
            // The step's own fingerprint (in the structure) covers its types
            // as written.
            fingerprint = fingerprint_combine(fingerprint, digests(&step.args, ""));
            fingerprint = fingerprint_combine(fingerprint, digests(&step.output, ""));
        }
        fingerprint = fingerprint_combine(fingerprint, output.digest(""));
        MachineDescription {
            workflow: machine.workflow.to_owned(),
            fingerprint,
            version: machine.version,
            upgrade: machine.upgrade,
            structure: Some(machine.structure),
            output: Some(output),
            edges: machine
                .edges
                .iter()
                .map(|edge| EdgeDescription {
                    from: edge.from,
                    to: edge.to,
                    label: edge.label,
                })
                .collect(),
            states,
        }
    }
}

/// `30s`, `1.5s`, `250ms`: a short human form of a duration.
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.3}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::StepKind;

    const fn step(
        name: &'static str,
        kind: StepKind,
        compensation: Option<&'static str>,
    ) -> Option<StepInfo> {
        Some(StepInfo {
            name,
            kind,
            compensation,
            args: shape_of::<(String,)>(),
            output: shape_of::<String>(),
        })
    }

    /// Start → reserve (compensable) → ship (pivot) → confirm (retriable).
    static MACHINE: StateMachine = StateMachine {
        workflow: "order",
        states: &[
            StateInfo {
                name: "Start",
                step: None,
                wait: None,
                commit_on_entry: false,
                variables: &[Variable {
                    name: "order",
                    ty: "Order",
                    shape: shape_of::<String>(),
                }],
                branches: &[],
            },
            StateInfo {
                name: "Reserve1",
                step: step("reserve", StepKind::Compensable, Some("release")),
                wait: None,
                commit_on_entry: false,
                variables: &[Variable {
                    name: "order",
                    ty: "Order",
                    shape: shape_of::<String>(),
                }],
                branches: &[],
            },
            StateInfo {
                name: "Ship2",
                step: step("ship", StepKind::Pivot, None),
                wait: None,
                commit_on_entry: false,
                variables: &[],
                branches: &[],
            },
            StateInfo {
                name: "Confirm3",
                step: step("confirm", StepKind::Retriable, None),
                wait: None,
                commit_on_entry: false,
                variables: &[],
                branches: &[],
            },
        ],
        edges: &[
            Edge {
                from: 0,
                to: Target::State(1),
                label: EdgeLabel::Ok,
            },
            Edge {
                from: 1,
                to: Target::State(2),
                label: EdgeLabel::Ok,
            },
            Edge {
                from: 1,
                to: Target::Error,
                label: EdgeLabel::Err,
            },
            Edge {
                from: 2,
                to: Target::State(3),
                label: EdgeLabel::Ok,
            },
            Edge {
                from: 2,
                to: Target::Error,
                label: EdgeLabel::Err,
            },
            Edge {
                from: 3,
                to: Target::Complete,
                label: EdgeLabel::Ok,
            },
            Edge {
                from: 3,
                to: Target::Error,
                label: EdgeLabel::Err,
            },
        ],
        structure: 0x1234,
        legacy: 0x1234,
        version: 1,
        upgrade: Upgrade::Pinned,
        output: shape_of::<String>(),
        traced: Traced::new(),
    };

    #[test]
    fn mermaid_draws_failures_before_the_pivot_as_compensated_and_after_it_as_failed() {
        assert_eq!(
            MACHINE.to_mermaid(),
            "stateDiagram-v2
    state \"reserve / compensable, undo: release\" as Reserve1
    state \"ship / pivot\" as Ship2
    state \"confirm / retriable\" as Confirm3
    [*] --> Reserve1 : ok
    Reserve1 --> Ship2 : ok
    Reserve1 --> Compensated : err
    Ship2 --> Confirm3 : ok
    Ship2 --> Compensated : err
    Confirm3 --> Completed : ok
    Confirm3 --> Failed : err
    Completed --> [*]
    Compensated --> [*]
    Failed --> [*]
"
        );
    }

    #[test]
    fn dot_is_a_digraph_with_every_state_and_terminal() {
        let dot = MACHINE.to_dot();
        assert!(dot.starts_with("digraph order {\n"), "{dot}");
        assert!(
            dot.contains("    Start [shape=point, label=\"\"];\n"),
            "{dot}"
        );
        assert!(
            dot.contains(
                "    Reserve1 [label=\"Reserve1\\nreserve\\ncompensable, undo: release\"];\n"
            ),
            "{dot}"
        );
        assert!(
            dot.contains("    Confirm3 -> Failed [label=\"err\"];\n"),
            "{dot}"
        );
        assert!(dot.contains("    Failed [shape=doublecircle];\n"), "{dot}");
        assert!(dot.ends_with("}\n"));
        assert_eq!(dot, MACHINE.to_dot(), "rendering is deterministic");
    }

    #[test]
    fn state_lookup_and_fingerprint() {
        assert_eq!(
            MACHINE
                .state("Ship2")
                .and_then(|state| state.step.as_ref())
                .map(|s| s.kind),
            Some(StepKind::Pivot)
        );
        assert!(MACHINE.state("Nope").is_none());
        // The structure's hash with the shapes of the stored types folded in.
        assert_eq!(MACHINE.structure, 0x1234);
        assert_ne!(MACHINE.fingerprint(), MACHINE.structure);
        assert_eq!(MACHINE.fingerprint(), MACHINE.describe().fingerprint);
    }

    #[test]
    fn a_wait_state_is_drawn_by_what_it_waits_for() {
        static WAIT: StateMachine = StateMachine {
            workflow: "wait",
            states: &[StateInfo {
                name: "SignalTimeout3",
                step: None,
                wait: Some("signal approval or timeout"),
                commit_on_entry: false,
                variables: &[],
                branches: &[],
            }],
            edges: &[],
            structure: 1,
            legacy: 1,
            version: 1,
            upgrade: Upgrade::Pinned,
            output: shape_of::<()>(),
            traced: Traced::new(),
        };
        assert_eq!(
            WAIT.describe().states[0].describe(" / "),
            "signal approval or timeout"
        );
    }

    #[test]
    fn a_join_state_is_drawn_with_its_branches() {
        static JOIN: StateMachine = StateMachine {
            workflow: "trip",
            states: &[StateInfo {
                name: "Join1",
                step: None,
                wait: None,
                commit_on_entry: false,
                variables: &[],
                branches: &[
                    StepInfo {
                        name: "book_flight",
                        kind: StepKind::Compensable,
                        compensation: Some("cancel_flight"),
                        args: shape_of::<(String,)>(),
                        output: shape_of::<String>(),
                    },
                    StepInfo {
                        name: "check_weather",
                        kind: StepKind::Readonly,
                        compensation: None,
                        args: shape_of::<(String,)>(),
                        output: shape_of::<bool>(),
                    },
                ],
            }],
            edges: &[],
            structure: 1,
            legacy: 1,
            version: 1,
            upgrade: Upgrade::Pinned,
            output: shape_of::<()>(),
            traced: Traced::new(),
        };
        let description = JOIN.describe();
        assert_eq!(
            description.states[0].describe(" / "),
            "join / book_flight (compensable, undo: cancel_flight) / check_weather (readonly)"
        );
        assert_eq!(
            description.states[0].step_or_wait().as_deref(),
            Some("join book_flight, check_weather")
        );
        let stored = description.to_stored(1);
        let (decoded, _) = MachineDescription::from_stored(&stored).unwrap();
        assert_eq!(decoded, description);
    }

    #[test]
    fn a_stored_description_decodes_to_the_same_machine_and_draws_the_same() {
        let description = MACHINE.describe();
        let stored = description.to_stored(1_700_000_000_000);
        let json: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(
            json["machine"]["fingerprint"],
            crate::record::format_fingerprint(MACHINE.fingerprint())
        );
        assert_eq!(json["machine"]["structure"], "0000000000001234");
        assert_eq!(json["machine"]["states"][1]["step"]["kind"], "compensable");
        assert_eq!(json["machine"]["edges"][0]["to"]["state"], 1);
        let (decoded, registered_at) = MachineDescription::from_stored(&stored).unwrap();
        assert_eq!(registered_at, 1_700_000_000_000);
        assert_eq!(decoded, description);
        assert_eq!(decoded.to_mermaid(), MACHINE.to_mermaid());
        assert_eq!(decoded.to_dot(), MACHINE.to_dot());
    }

    #[test]
    fn a_malformed_stored_description_is_a_typed_error() {
        let error = MachineDescription::from_stored(b"{\"format\":1,\"mach").unwrap_err();
        assert!(matches!(error, DescriptionError::NotJson(_)), "{error}");
        let error = MachineDescription::from_stored(b"{\"format\":2}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "machine description format 2 is not supported (this build reads 1)"
        );
        let mut broken = MACHINE.describe();
        broken.edges[3].to = Target::State(9);
        let error = MachineDescription::from_stored(&broken.to_stored(0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the machine description of `order` is inconsistent: edge 3 names state 9 but there \
             are 4 states"
        );
        // Drawing it anyway leaves the bad edge out instead of panicking.
        assert!(!broken.to_mermaid().contains("Ship2 --> Confirm3"));
        broken.states.clear();
        assert!(matches!(
            broken.check(),
            Err(DescriptionError::Inconsistent { .. })
        ));
        let fingerprint = br#"{"format":1,"registered_at":0,"machine":{"workflow":"w","fingerprint":"12","states":[],"edges":[]}}"#;
        let error = MachineDescription::from_stored(fingerprint).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("fingerprint `12` is not 16 hex digits"),
            "{error}"
        );
    }

    #[test]
    fn durations_print_short() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.500s");
    }
}
