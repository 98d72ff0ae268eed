//! The lowering's output: the statement tree (items, blocks, sites), the
//! control-flow graph (nodes, edges) and the machine codegen reads.

use std::collections::BTreeSet;

use proc_macro2::Span;
use syn::{Attribute, Expr, Ident, Pat, Path, PathArguments, Stmt, Type};

use super::super::names::type_string;

/// A variable of the body, identified by its declaration (not its name).
pub type BindingId = usize;

/// A node of the control-flow graph.
pub type NodeId = usize;

/// What the macro knows of a variable's type.
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq))]
pub enum VarType {
    /// Written by the user (a parameter, an annotation, or part of one).
    Written(Type),
    /// `let x = step(..).await?`: the step's output.
    StepOutput(Path),
    /// `let r = step(..).await`: the step's result, kept.
    StepResult(Path),
    /// `let x = sagaflow::child(wf, ..).await?`: the child workflow's output.
    ChildOutput(Path),
    /// `let r = sagaflow::child(wf, ..).await`: the child's result, kept.
    ChildResult(Path),
    /// The `Err` of a kept step result.
    StepError,
    /// `<C as IntoIterator>::Item`: an element of a collection `for` iterates.
    Element(Box<VarType>),
    /// `Vec<T>`: the collection a `for` loop with steps stores.
    VecOf(Box<VarType>),
    /// `Range<T>`: the rest of a range a `for` loop with steps stores.
    RangeOf(Box<VarType>),
    /// `let (a, b) = sagaflow::join!(..)?`: the tuple of the branches' outputs.
    JoinOutput(Vec<Path>),
    /// `let r = sagaflow::join!(..)`: the join's result, kept.
    JoinResult(Vec<Path>),
    /// A part of a value of another type a pattern takes apart: the `x` of
    /// `Some(x)`, `Ok(x)`, `Err(x)`, or the `a` of `(a, b)`.
    Part(Box<VarType>, Part),
    /// `a * b` (any arithmetic or bit operator): `<A as Mul<B>>::Output`,
    /// with the operator's trait.
    Operated(Box<VarType>, &'static str, Box<VarType>),
    /// Not nameable: an error if held across a step.
    Unknown,
}

/// Which part of a value a [`VarType::Part`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `T` of `Option<T>`.
    Some,
    /// `T` of `Result<T, E>`.
    Ok,
    /// `E` of `Result<T, E>`.
    Err,
    /// Element `i` of a tuple.
    Element(usize),
}

impl VarType {
    /// The type of `v` in a pattern `Ok(v)`, `Err(v)` or `Some(v)` matched on this type.
    pub(crate) fn payload(&self, variant: &str) -> VarType {
        match (self, variant) {
            (VarType::StepResult(step), "Ok") => VarType::StepOutput(step.clone()),
            (VarType::StepResult(_), "Err") => VarType::StepError,
            (VarType::JoinResult(steps), "Ok") => VarType::JoinOutput(steps.clone()),
            (VarType::JoinResult(_), "Err") => VarType::StepError,
            (VarType::ChildResult(child), "Ok") => VarType::ChildOutput(child.clone()),
            (VarType::ChildResult(_), "Err") => VarType::StepError,
            (VarType::Written(ty), _) => {
                let mut ty = ty;
                while let Type::Paren(inner) = ty {
                    ty = &inner.elem;
                }
                let Type::Path(path) = ty else {
                    return VarType::Unknown;
                };
                let Some(last) = path.path.segments.last() else {
                    return VarType::Unknown;
                };
                let PathArguments::AngleBracketed(args) = &last.arguments else {
                    return VarType::Unknown;
                };
                let types: Vec<&Type> = args
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        syn::GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })
                    .collect();
                let index = match (last.ident.to_string().as_str(), variant, types.len()) {
                    ("Result", "Ok", 2) | ("Option", "Some", 1) => 0,
                    ("Result", "Err", 2) => 1,
                    _ => return self.part(variant),
                };
                VarType::Written(types[index].clone())
            }
            _ => self.part(variant),
        }
    }

    /// The payload of `Some`, `Ok` or `Err` of this type, as a projection.
    pub(crate) fn part(&self, variant: &str) -> VarType {
        let part = match variant {
            "Some" => Part::Some,
            "Ok" => Part::Ok,
            "Err" => Part::Err,
            _ => return VarType::Unknown,
        };
        match self {
            VarType::Unknown => VarType::Unknown,
            known => VarType::Part(Box::new(known.clone()), part),
        }
    }

    /// The type as shown in the state machine and hashed into the fingerprint.
    pub fn display(&self) -> String {
        match self {
            VarType::Written(ty) => type_string(ty),
            VarType::StepOutput(step) => format!("<{} as Step>::Output", type_string(step)),
            VarType::StepResult(step) => {
                format!("Result<<{} as Step>::Output, StepError>", type_string(step))
            }
            VarType::ChildOutput(child) => {
                format!("<{} as Workflow>::Output", type_string(child))
            }
            VarType::ChildResult(child) => {
                format!(
                    "Result<<{} as Workflow>::Output, StepError>",
                    type_string(child)
                )
            }
            VarType::StepError => "StepError".to_owned(),
            VarType::Element(collection) => {
                format!("<{} as IntoIterator>::Item", collection.display())
            }
            VarType::VecOf(element) => format!("Vec<{}>", element.display()),
            VarType::RangeOf(element) => format!("Range<{}>", element.display()),
            VarType::JoinOutput(steps) => join_output_display(steps),
            VarType::JoinResult(steps) => {
                format!("Result<{}, StepError>", join_output_display(steps))
            }
            VarType::Part(of, part) => match part {
                Part::Some => format!("<{} as OptionParts>::Some", of.display()),
                Part::Ok => format!("<{} as ResultParts>::Ok", of.display()),
                Part::Err => format!("<{} as ResultParts>::Err", of.display()),
                Part::Element(index) => {
                    format!("<{} as TupleElement<{index}>>::Type", of.display())
                }
            },
            VarType::Operated(left, op, right) => {
                format!("<{} as {op}<{}>>::Output", left.display(), right.display())
            }
            VarType::Unknown => "_".to_owned(),
        }
    }

    /// The type of the elements `for` yields from a collection of this type:
    /// `T` for the standard collections written out, else the projection.
    pub(crate) fn element(&self) -> VarType {
        if let VarType::Written(ty) = self {
            match ty {
                Type::Array(array) => return VarType::Written((*array.elem).clone()),
                Type::Path(path) if path.qself.is_none() => {
                    if let Some(last) = path.path.segments.last()
                        && let PathArguments::AngleBracketed(args) = &last.arguments
                    {
                        let types: Vec<&Type> = args
                            .args
                            .iter()
                            .filter_map(|arg| match arg {
                                syn::GenericArgument::Type(ty) => Some(ty),
                                _ => None,
                            })
                            .collect();
                        match (last.ident.to_string().as_str(), types.as_slice()) {
                            (
                                "Vec" | "VecDeque" | "BTreeSet" | "HashSet" | "LinkedList"
                                | "BinaryHeap" | "Option",
                                [element, ..],
                            ) => return VarType::Written((*element).clone()),
                            ("BTreeMap" | "HashMap", [key, value, ..]) => {
                                return VarType::Written(syn::parse_quote!((#key, #value)));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let VarType::VecOf(element) = self {
            return (**element).clone();
        }
        VarType::Element(Box::new(self.clone()))
    }
}

/// `(<a as Step>::Output, <b as Step>::Output)`: a join's outputs as shown.
pub(crate) fn join_output_display(steps: &[Path]) -> String {
    let outputs: Vec<String> = steps
        .iter()
        .map(|step| format!("<{} as Step>::Output", type_string(step)))
        .collect();
    format!("({})", outputs.join(", "))
}

/// A variable declared in the body (or a parameter).
#[derive(Clone, Debug)]
pub struct Binding {
    /// Its name as written.
    pub ident: Ident,
    /// Its type, if the macro can name it.
    pub ty: VarType,
    /// Whether it holds a reference.
    pub is_ref: bool,
    /// The node that declares it; `None` for parameters.
    pub declared_at: Option<NodeId>,
    /// Whether it is declared by `let x;`, with neither a type nor a value:
    /// rustc infers its type from its assignments, so a segment that never
    /// assigns it leaves that declaration out.
    pub deferred: bool,
}

/// What a suspension point waits for.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // a few per workflow, at compile time
pub enum SiteKind {
    /// A step call: the state runs one attempt of the step.
    Step,
    /// `sagaflow::sleep(duration)` or, with `until`, `sagaflow::sleep_until(time)`:
    /// the timer is evaluated when the state is entered.
    Sleep {
        /// Whether it is `sleep_until` (a wall-clock time).
        until: bool,
        /// The duration or time expression.
        arg: Expr,
    },
    /// `sagaflow::signal(name)` or, with a timeout, `sagaflow::signal_timeout(name, d)`.
    Signal {
        /// The signal's name.
        name: syn::LitStr,
        /// The value's type, from a turbofish or the `let`'s annotation.
        value: Option<Type>,
        /// The type the workflow's `signals(..)` declares for it, when it
        /// declares its signals: the wait's type when none is written, and
        /// the written one is checked against it.
        declared: Option<Type>,
        /// The timeout expression, evaluated when the state is entered.
        timeout: Option<Expr>,
    },
    /// `sagaflow::join!(a(..), b(..))`: the state runs every unfinished
    /// branch concurrently.
    Join {
        /// The branches, in the order written.
        branches: Vec<super::super::join::Branch>,
    },
    /// `sagaflow::child(workflow, input)`: a child workflow, started when
    /// the state is entered (the input is evaluated then and stored).
    Child {
        /// The child workflow, as written (its unit struct).
        workflow: Path,
        /// The input expression.
        input: Expr,
    },
}

impl SiteKind {
    /// Whether the state stores a `__timer` (its wake-up time).
    pub fn has_timer(&self) -> bool {
        matches!(
            self,
            SiteKind::Sleep { .. }
                | SiteKind::Signal {
                    timeout: Some(_),
                    ..
                }
        )
    }

    /// The timer or timeout expression and whether it is a wall-clock time.
    pub fn timer(&self) -> Option<(&Expr, bool)> {
        match self {
            SiteKind::Sleep { until, arg } => Some((arg, *until)),
            SiteKind::Signal {
                timeout: Some(timeout),
                ..
            } => Some((timeout, false)),
            _ => None,
        }
    }
}

/// A suspension point: a step call `path(args).await`, a durable timer or
/// a signal wait.
#[derive(Clone, Debug)]
pub struct Site {
    /// What it waits for.
    pub kind: SiteKind,
    /// The step, as written (also its type); for a wait, the function's path.
    pub step: Path,
    /// Where the call is written: every generated check points here.
    pub span: Span,
    /// The state's variant name, e.g. `ReserveInventory1`.
    pub variant: Ident,
    /// The argument expressions, as written.
    pub args: Vec<Expr>,
    /// The statement with the call replaced by `__result`.
    pub stmt: Stmt,
    /// Its CFG node.
    pub node: NodeId,
    /// Item and branch indexes from the body down to the call's statement.
    pub location: Vec<(usize, usize)>,
}

/// A statement of a lowered block.
#[derive(Clone, Debug)]
pub enum Item {
    /// Pure code, kept as written; `tail` when it is the block's value.
    Pure { stmt: Stmt, tail: bool },
    /// A suspension point.
    Step { site: usize },
    /// `if .. else if .. else ..` with steps in some branch.
    If(IfItem),
    /// `match` with steps in some arm.
    Match(MatchItem),
    /// `loop`, `while` or `for` with steps in its body.
    Loop(LoopItem),
}

/// A lowered loop whose body calls steps.
#[derive(Clone, Debug)]
pub struct LoopItem {
    /// The user's label, kept on the generated `loop`.
    pub label: Option<syn::Label>,
    /// How an iteration starts.
    pub head: LoopHead,
    /// The body.
    pub body: Block,
    /// The CFG node of the loop's head, where back edges lead.
    pub entry: NodeId,
    /// The CFG node control reaches when the loop ends.
    pub exit: NodeId,
    /// Whether the loop can end at all (a condition, an iterator or a `break`).
    pub exits: bool,
}

/// How an iteration of a lowered loop starts.
#[derive(Clone, Debug)]
pub enum LoopHead {
    /// `loop`: unconditionally.
    Loop,
    /// `while cond` or `while let pat = expr`: if the condition holds.
    While(Expr),
    /// `for pat in collection`: the collection is collected into a stored
    /// `Vec` once; each iteration clones the element at the stored position.
    ForEach {
        /// The loop's pattern.
        pat: Pat,
        /// The collection expression, evaluated once.
        collection: Expr,
        /// The stored `Vec` of elements.
        items: BindingId,
        /// The stored index of the next element.
        next: BindingId,
    },
    /// `for pat in a..b`: the rest of the range is stored.
    ForRange {
        /// The loop's pattern.
        pat: Pat,
        /// The range expression, evaluated once.
        range: Expr,
        /// The stored `Range`.
        rest: BindingId,
    },
}

/// A lowered `if` chain: `conds[i]` guards `blocks[i]`.
#[derive(Clone, Debug)]
pub struct IfItem {
    /// The conditions (`let` conditions included).
    pub conds: Vec<Expr>,
    /// The branches.
    pub blocks: Vec<Block>,
    /// The final `else`.
    pub else_block: Option<Block>,
}

/// A lowered `match`.
#[derive(Clone, Debug)]
pub struct MatchItem {
    /// The scrutinee.
    pub expr: Expr,
    /// The arms: attributes, pattern, guard, body.
    pub arms: Vec<(Vec<Attribute>, Pat, Option<Expr>, Block)>,
}

/// A lowered block.
#[derive(Clone, Debug)]
pub struct Block {
    /// Its statements.
    pub items: Vec<Item>,
    /// Whether its value is the workflow's return value.
    pub ret: bool,
}

/// How an edge of the CFG is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    /// Straight on.
    Normal,
    /// `?` on the step's own result.
    StepErr,
    /// A choice: `if`, `match`, pure `?`, `return` inside pure code.
    Branch,
}

/// What a node of the CFG is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// The `Start` state's entry.
    Start,
    /// A statement (or a condition, or an arm's pattern) of pure code.
    Pure,
    /// The step call at site `n` (0-based).
    Step(usize),
    /// The workflow returns `Ok`.
    ExitOk,
    /// The workflow returns `Err`.
    ExitErr,
    /// The workflow returns a value that is not syntactically `Ok`/`Err`.
    ExitAny,
}

pub(crate) const EXIT_OK: NodeId = 0;

pub(crate) const EXIT_ERR: NodeId = 1;

pub(crate) const EXIT_ANY: NodeId = 2;

pub(crate) const START: NodeId = 3;

/// A node of the CFG with its liveness facts.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Variables it reads.
    pub uses: BTreeSet<BindingId>,
    /// Variables it declares or assigns.
    pub defs: BTreeSet<BindingId>,
    /// Variables it assigns (`x = ..`), declared elsewhere.
    pub assigns: BTreeSet<BindingId>,
    /// Successors.
    pub succ: Vec<(NodeId, EdgeKind)>,
}

/// The end of a lowered edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetIr {
    /// A state, by index (0 is `Start`).
    State(usize),
    /// `Ok` returned.
    Complete,
    /// `Err` returned.
    Error,
}

/// The label of a lowered edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabelIr {
    /// Straight on after the step succeeded.
    Ok,
    /// `?` on the state's own step.
    Err,
    /// Through a choice.
    Branch,
}

/// An edge of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EdgeIr {
    /// Source state index.
    pub from: usize,
    /// Target.
    pub to: TargetIr,
    /// Label.
    pub label: LabelIr,
}

/// The lowered workflow: everything codegen needs.
#[derive(Debug)]
pub struct Machine {
    /// Every variable, parameters first.
    pub bindings: Vec<Binding>,
    /// Every suspension point, in source order.
    pub sites: Vec<Site>,
    /// The body.
    pub body: Block,
    /// Items declared at the body's top level, repeated in every segment.
    pub items: Vec<Stmt>,
    /// Per state (0 = `Start`): the stored variables, in declaration order.
    pub stored: Vec<Vec<BindingId>>,
    /// Per state: variables the segment assigns but neither stores nor declares.
    pub assigned: Vec<Vec<BindingId>>,
    /// Per state: the names of `let x;` declarations (no type, no value)
    /// the segment runs but never assigns; it leaves them out, as rustc
    /// could not infer their type there.
    pub unassigned: Vec<BTreeSet<String>>,
    /// Per state: the CFG nodes its segment runs (up to the next steps).
    pub segments: Vec<BTreeSet<NodeId>>,
    /// The machine's edges, sorted and deduped.
    pub edges: Vec<EdgeIr>,
    /// Site pairs `(a, b)` (0-based) where `a` may run before `b`.
    pub precedes: Vec<(usize, usize)>,
}

impl Block {
    /// Whether running the items from `from` on can reach the block's end
    /// (no `return`, step or all-diverging `if`/`match` stops it).
    pub fn falls_through(&self, from: usize) -> bool {
        self.items[from.min(self.items.len())..]
            .iter()
            .all(|item| match item {
                Item::Step { .. } => false,
                Item::Pure {
                    stmt: Stmt::Expr(Expr::Return(_) | Expr::Break(_) | Expr::Continue(_), _),
                    ..
                } => false,
                Item::Pure { tail: true, .. } => !self.ret,
                Item::Pure { .. } => true,
                Item::If(item_if) => {
                    item_if.else_block.is_none()
                        || item_if
                            .blocks
                            .iter()
                            .chain(&item_if.else_block)
                            .any(|block| block.falls_through(0))
                }
                Item::Match(item_match) => item_match.arms.iter().any(|arm| arm.3.falls_through(0)),
                Item::Loop(item_loop) => item_loop.exits,
            })
    }
}

impl Block {
    /// Whether control can go on after `item` (one of this block's items).
    pub fn falls_through_item(&self, item: &Item) -> bool {
        let single = Block {
            items: vec![item.clone()],
            ret: self.ret,
        };
        single.falls_through(0)
    }
}

impl Machine {
    /// The state's variant name (`Start` for 0).
    pub fn state_name(&self, state: usize) -> String {
        match state {
            0 => "Start".to_owned(),
            n => self.sites[n - 1].variant.to_string(),
        }
    }
}
