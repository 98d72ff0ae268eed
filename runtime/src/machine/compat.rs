//! Whether an instance of one machine may move to another, decided per state
//! from the two machines' descriptions (see [`MachineDescription`]).
//!
//! An instance parked at state `S` of machine `old` may continue on machine
//! `new` when, in both:
//!
//! - `S` exists and runs the same thing: the same step (name, kind,
//!   compensation), the same join branches, or the same wait;
//! - `S` stores the same variables, each with a compatible shape: the same,
//!   or the new one only adds to the old (a field or an enum variant more;
//!   the runtime then also decodes the instance's stored state with the new
//!   type before it moves it, so a new field without `#[serde(default)]`
//!   keeps the instance where it is);
//! - the same steps and child workflows can have run before `S` (every
//!   state from which `S` is reachable): same names, kinds, compensations
//!   and compatible argument and output shapes, so the compensation stack
//!   the instance carries means the same on the new machine.
//!
//! What `S` leads to may differ: that is the new code the instance moves to.
//! Shapes that could not be traced (or descriptions written before shapes
//! were) are compared by their types as written.

use super::description::{MachineDescription, ShapeDescription, StateDescription, StepDescription};
use super::shape::{Shape, ShapeChange};
use super::{Target, Upgrade};

/// What [`state`] and [`stack`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The instance may move; the notes say what changed compatibly (a
    /// field added, ...), empty when nothing did.
    Compatible(Vec<String>),
    /// It may not; every reason found.
    Incompatible(Vec<String>),
}

impl Verdict {
    /// Whether the instance may move.
    pub fn is_compatible(&self) -> bool {
        matches!(self, Verdict::Compatible(_))
    }

    fn of(notes: Vec<String>, reasons: Vec<String>) -> Verdict {
        if reasons.is_empty() {
            Verdict::Compatible(notes)
        } else {
            Verdict::Incompatible(reasons)
        }
    }
}

/// Whether an instance at state `name` of `old` may continue at the same
/// state of `new`.
pub fn state(old: &MachineDescription, new: &MachineDescription, name: &str) -> Verdict {
    let (Some(from), Some(to)) = (old.state(name), new.state(name)) else {
        let missing = if old.state(name).is_none() {
            version_label(old)
        } else {
            version_label(new)
        };
        return Verdict::Incompatible(vec![format!("{missing} has no state `{name}`")]);
    };
    let mut notes = Vec::new();
    let mut reasons = Vec::new();
    let (old_label, new_label) = (version_label(old), version_label(new));
    if from.step_or_wait() != to.step_or_wait() {
        reasons.push(format!(
            "state `{name}` runs {} in {old_label} but {} in {new_label}",
            what_runs(from),
            what_runs(to)
        ));
    }
    for (a, b) in from.steps().zip(to.steps()) {
        compare_step(a, b, &mut notes, &mut reasons);
    }
    for variable in &from.variables {
        match to.variables.iter().find(|v| v.name == variable.name) {
            None => reasons.push(format!(
                "state `{name}` stores `{}` in {old_label} but not in {new_label}",
                variable.name
            )),
            Some(other) => compare(
                &format!("variable `{}` of state `{name}`", variable.name),
                (variable.shape.as_ref(), &variable.ty),
                (other.shape.as_ref(), &other.ty),
                &mut notes,
                &mut reasons,
            ),
        }
    }
    for variable in &to.variables {
        if !from.variables.iter().any(|v| v.name == variable.name) {
            reasons.push(format!(
                "state `{name}` stores `{}` in {new_label} but not in {old_label}",
                variable.name
            ));
        }
    }
    let behind_old = behind(old, name);
    let behind_new = behind(new, name);
    for (label, step) in &behind_old {
        match behind_new.iter().find(|(other, _)| other == label) {
            None => reasons.push(format!(
                "{label} may have run before state `{name}` in {old_label}, but not in {new_label}"
            )),
            Some((_, other)) => {
                if let (Some(a), Some(b)) = (step, other) {
                    compare_step(a, b, &mut notes, &mut reasons);
                }
            }
        }
    }
    for (label, _) in &behind_new {
        if !behind_old.iter().any(|(other, _)| other == label) {
            reasons.push(format!(
                "{label} runs before state `{name}` in {new_label}, but not in {old_label}: \
                 an instance there never ran it"
            ));
        }
    }
    Verdict::of(notes, reasons)
}

/// Whether `new` can undo the steps `old` ran (an instance's compensation
/// stack, by step name; child entries need nothing of the machine).
pub fn stack<'a>(
    old: &MachineDescription,
    new: &MachineDescription,
    steps: impl IntoIterator<Item = &'a str>,
) -> Verdict {
    let mut notes = Vec::new();
    let mut reasons = Vec::new();
    for name in steps {
        let Some(step) = find_step(new, name) else {
            reasons.push(format!(
                "the compensation stack holds step `{name}`, which {} does not call",
                version_label(new)
            ));
            continue;
        };
        if step.compensation.is_none() {
            reasons.push(format!(
                "the compensation stack holds step `{name}`, which {} cannot undo (it is {})",
                version_label(new),
                step.kind
            ));
            continue;
        }
        if let Some(before) = find_step(old, name) {
            compare_step(before, step, &mut notes, &mut reasons);
        }
    }
    Verdict::of(notes, reasons)
}

/// Whether `new` declared that instances of older versions may move to it.
pub fn accepts_auto(new: &MachineDescription) -> bool {
    new.upgrade == Upgrade::Auto
}

/// `v2 (fingerprint 0123…)`: how messages name a machine.
pub fn version_label(machine: &MachineDescription) -> String {
    format!("v{}", machine.version)
}

fn what_runs(state: &StateDescription) -> String {
    match state.step_or_wait() {
        Some(what) => format!("`{what}`"),
        None => "nothing".to_owned(),
    }
}

/// The first state running step `name`, as a description.
fn find_step<'a>(machine: &'a MachineDescription, name: &str) -> Option<&'a StepDescription> {
    machine
        .states
        .iter()
        .flat_map(StateDescription::steps)
        .find(|step| step.name == name)
}

/// The steps and child workflows of every state from which state `name`
/// can be reached (its own included when it is on a cycle), labelled
/// ``step `x` `` or ``child workflow `x` ``, sorted and without repeats.
fn behind<'a>(
    machine: &'a MachineDescription,
    name: &str,
) -> Vec<(String, Option<&'a StepDescription>)> {
    let Some(target) = machine.states.iter().position(|state| state.name == name) else {
        return Vec::new();
    };
    let mut reaches = vec![false; machine.states.len()];
    let mut stack = vec![target];
    while let Some(to) = stack.pop() {
        for edge in &machine.edges {
            if edge.to == Target::State(to) && edge.from < reaches.len() && !reaches[edge.from] {
                reaches[edge.from] = true;
                stack.push(edge.from);
            }
        }
    }
    let mut found: Vec<(String, Option<&StepDescription>)> = Vec::new();
    for (index, state) in machine.states.iter().enumerate() {
        if !reaches[index] {
            continue;
        }
        for step in state.steps() {
            found.push((format!("step `{}`", step.name), Some(step)));
        }
        if let Some(child) = state.wait.as_deref().and_then(|w| w.strip_prefix("child ")) {
            found.push((format!("child workflow `{child}`"), None));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    found
}

fn compare_step(
    old: &StepDescription,
    new: &StepDescription,
    notes: &mut Vec<String>,
    reasons: &mut Vec<String>,
) {
    if old.name != new.name {
        return;
    }
    if old.kind != new.kind {
        reasons.push(format!(
            "step `{}` is {} in one version and {} in the other",
            old.name, old.kind, new.kind
        ));
    }
    if old.compensation != new.compensation {
        reasons.push(format!(
            "step `{}` is undone by {} in one version and by {} in the other",
            old.name,
            old.compensation.as_deref().unwrap_or("nothing"),
            new.compensation.as_deref().unwrap_or("nothing"),
        ));
    }
    let name = &old.name;
    compare(
        &format!("the arguments of step `{name}`"),
        (old.args.as_ref(), ""),
        (new.args.as_ref(), ""),
        notes,
        reasons,
    );
    compare(
        &format!("the output of step `{name}`"),
        (old.output.as_ref(), ""),
        (new.output.as_ref(), ""),
        notes,
        reasons,
    );
}

/// Compares two stored types: by shape where both were traced, else by
/// the type as written (empty: unknown, taken as the same).
fn compare(
    what: &str,
    (old, old_ty): (Option<&ShapeDescription>, &str),
    (new, new_ty): (Option<&ShapeDescription>, &str),
    notes: &mut Vec<String>,
    reasons: &mut Vec<String>,
) {
    match (
        old.and_then(ShapeDescription::shape),
        new.and_then(ShapeDescription::shape),
    ) {
        (Some(old), Some(new)) => match Shape::compare(old, new) {
            ShapeChange::Same => {}
            ShapeChange::Additive(changes) => {
                notes.extend(
                    changes
                        .into_iter()
                        .map(|change| format!("{what}: {change}")),
                );
            }
            ShapeChange::Breaking(changes) => {
                reasons.extend(
                    changes
                        .into_iter()
                        .map(|change| format!("{what}: {change}")),
                );
            }
        },
        _ => {
            if !old_ty.is_empty() && !new_ty.is_empty() && old_ty != new_ty {
                reasons.push(format!(
                    "{what}: its type `{old_ty}` became `{new_ty}` (its shape was not traced)"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::description::{EdgeDescription, VariableDescription};
    use crate::machine::shape::Field;
    use crate::machine::{EdgeLabel, Target};
    use crate::step::StepKind;

    fn order(fields: &[&str]) -> ShapeDescription {
        ShapeDescription::Traced(Shape::Struct {
            name: "Order".to_owned(),
            fields: fields
                .iter()
                .map(|name| Field {
                    name: (*name).to_owned(),
                    shape: Shape::Str,
                })
                .collect(),
        })
    }

    fn step(name: &str, kind: StepKind, undo: Option<&str>) -> StepDescription {
        StepDescription {
            name: name.to_owned(),
            kind,
            compensation: undo.map(str::to_owned),
            args: Some(order(&["id"])),
            output: Some(ShapeDescription::Traced(Shape::Str)),
        }
    }

    fn state(name: &str, step: Option<StepDescription>, wait: Option<&str>) -> StateDescription {
        StateDescription {
            name: name.to_owned(),
            step,
            wait: wait.map(str::to_owned),
            variables: vec![VariableDescription {
                name: "order".to_owned(),
                ty: "Order".to_owned(),
                shape: Some(order(&["id"])),
            }],
            branches: Vec::new(),
        }
    }

    fn chain(version: u32, states: Vec<StateDescription>) -> MachineDescription {
        let edges = (0..states.len())
            .map(|from| EdgeDescription {
                from,
                to: if from + 1 < states.len() {
                    Target::State(from + 1)
                } else {
                    Target::Complete
                },
                label: EdgeLabel::Ok,
            })
            .collect();
        MachineDescription {
            workflow: "place_order".to_owned(),
            fingerprint: u64::from(version),
            version,
            upgrade: Upgrade::Auto,
            structure: None,
            output: None,
            states,
            edges,
        }
    }

    /// v1: reserve, wait for approval, charge.
    fn v1() -> MachineDescription {
        chain(
            1,
            vec![
                state("Start", None, None),
                state(
                    "Reserve1",
                    Some(step("reserve", StepKind::Compensable, Some("release"))),
                    None,
                ),
                state("Signal2", None, Some("signal approval")),
                state(
                    "Charge3",
                    Some(step("charge", StepKind::Compensable, Some("refund"))),
                    None,
                ),
            ],
        )
    }

    #[test]
    fn a_step_added_after_the_state_keeps_it_compatible() {
        let mut v2 = v1();
        v2.version = 2;
        v2.states.push(state(
            "Notify4",
            Some(step("notify", StepKind::Retriable, None)),
            None,
        ));
        v2.edges.last_mut().unwrap().to = Target::State(4);
        v2.edges.push(EdgeDescription {
            from: 4,
            to: Target::Complete,
            label: EdgeLabel::Ok,
        });
        assert_eq!(
            super::state(&v1(), &v2, "Signal2"),
            Verdict::Compatible(vec![])
        );
        assert_eq!(
            super::state(&v1(), &v2, "Charge3"),
            Verdict::Compatible(vec![])
        );
    }

    #[test]
    fn a_step_added_before_the_state_makes_it_incompatible() {
        let mut v2 = v1();
        v2.version = 2;
        v2.states[1].step = Some(step("check_fraud", StepKind::Readonly, None));
        let verdict = super::state(&v1(), &v2, "Signal2");
        let Verdict::Incompatible(reasons) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reasons.contains(
                &"step `check_fraud` runs before state `Signal2` in v2, but not in v1: an \
                  instance there never ran it"
                    .to_owned()
            ),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(
                &"step `reserve` may have run before state `Signal2` in v1, but not in v2"
                    .to_owned()
            ),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_field_added_is_a_note_and_a_field_removed_a_reason() {
        let mut v2 = v1();
        v2.version = 2;
        v2.states[2].variables[0].shape = Some(order(&["id", "priority"]));
        let Verdict::Compatible(notes) = super::state(&v1(), &v2, "Signal2") else {
            panic!()
        };
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("variable `order` of state `Signal2`: "),
            "{notes:?}"
        );
        let mut v0 = v1();
        v0.states[2].variables[0].shape = Some(order(&["id", "note"]));
        assert!(!super::state(&v0, &v1(), "Signal2").is_compatible());
    }

    #[test]
    fn untraced_shapes_compare_by_their_types_as_written() {
        let mut old = v1();
        old.states[2].variables[0].shape = None;
        assert!(super::state(&old, &v1(), "Signal2").is_compatible());
        let mut new = v1();
        new.states[2].variables[0].shape = Some(ShapeDescription::Untraced("any".to_owned()));
        new.states[2].variables[0].ty = "v2::Order".to_owned();
        let Verdict::Incompatible(reasons) = super::state(&old, &new, "Signal2") else {
            panic!()
        };
        assert_eq!(
            reasons,
            [
                "variable `order` of state `Signal2`: its type `Order` became `v2::Order` (its \
              shape was not traced)"
            ]
        );
    }

    #[test]
    fn another_wait_or_a_missing_state_is_incompatible() {
        let mut v2 = v1();
        v2.version = 2;
        v2.states[2].wait = Some("signal review".to_owned());
        assert_eq!(
            super::state(&v1(), &v2, "Signal2"),
            Verdict::Incompatible(vec![
                "state `Signal2` runs `signal approval` in v1 but `signal review` in v2".to_owned()
            ])
        );
        assert_eq!(
            super::state(&v1(), &v2, "Nope9"),
            Verdict::Incompatible(vec!["v1 has no state `Nope9`".to_owned()])
        );
    }

    #[test]
    fn a_stack_needs_every_step_compensable_in_the_new_machine() {
        let v2 = v1();
        assert!(super::stack(&v1(), &v2, ["reserve", "charge"]).is_compatible());
        let mut v3 = v1();
        v3.version = 3;
        v3.states[1].step = Some(step("reserve", StepKind::Pivot, None));
        let Verdict::Incompatible(reasons) = super::stack(&v1(), &v3, ["reserve", "shipx"]) else {
            panic!()
        };
        assert_eq!(
            reasons,
            [
                "the compensation stack holds step `reserve`, which v3 cannot undo (it is pivot)",
                "the compensation stack holds step `shipx`, which v3 does not call",
            ]
        );
    }
}
