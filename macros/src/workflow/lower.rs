//! Stage 3: the body as a state machine. Builds, in one pass, a tree of the
//! statements that contain suspension points (for codegen, which keeps the
//! user's block structure) and a control-flow graph over them (for liveness
//! and edges). A loop with steps is a cycle in the same graph: its back
//! edges (`continue`, the end of the body) lead to its head.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, ExprCall, Ident, Pat, Path, PathArguments, Stmt, Type};

use super::Errors;
use super::names::{type_string, wait_name};
use super::parse::WorkflowFn;

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
    fn payload(&self, variant: &str) -> VarType {
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
    fn part(&self, variant: &str) -> VarType {
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
    fn element(&self) -> VarType {
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
fn join_output_display(steps: &[Path]) -> String {
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
        /// The timeout expression, evaluated when the state is entered.
        timeout: Option<Expr>,
    },
    /// `sagaflow::join!(a(..), b(..))`: the state runs every unfinished
    /// branch concurrently.
    Join {
        /// The branches, in the order written.
        branches: Vec<super::join::Branch>,
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

const EXIT_OK: NodeId = 0;
const EXIT_ERR: NodeId = 1;
const EXIT_ANY: NodeId = 2;
const START: NodeId = 3;

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

// Input:  the parsed function (`let reservation = reserve_inventory(&order).await?; ..`)
// Output: `Machine { sites: [ReserveInventory1, ..], stored: [[order], [order], ..], edges, .. }`
/// Lowers the body. Pushes every unsupported construct and every variable the
/// state cannot hold to `errors`; returns `None` if there were any.
pub fn lower(func: &WorkflowFn, errors: &mut Errors) -> Option<Machine> {
    let mut lowerer = Lowerer {
        errors,
        failed: false,
        bindings: Vec::new(),
        scopes: vec![Vec::new()],
        nodes: Vec::new(),
        sites: Vec::new(),
        location: Vec::new(),
        items: Vec::new(),
        loops: Vec::new(),
        for_loops: 0,
    };
    for kind in [
        NodeKind::ExitOk,
        NodeKind::ExitErr,
        NodeKind::ExitAny,
        NodeKind::Start,
    ] {
        lowerer.node(kind);
    }
    for param in &func.params {
        let id = lowerer.bindings.len();
        lowerer.bindings.push(Binding {
            ident: param.name.clone(),
            ty: VarType::Written(param.ty.clone()),
            is_ref: false,
            declared_at: None,
            deferred: false,
        });
        lowerer.scopes[0].push(id);
    }
    let (body, _) = lowerer.block(
        &func.body.stmts,
        true,
        vec![(START, EdgeKind::Normal)],
        true,
    );
    let params: Vec<BindingId> = (0..func.params.len()).collect();
    lowerer.finish(body, params)
}

type Preds = Vec<(NodeId, EdgeKind)>;

/// What a `for` loop with steps iterates.
enum ForSource {
    /// An owned collection, collected into a stored `Vec` of this element type.
    Collection(VarType),
    /// A range `a..b` of this element type, stored as a `Range`.
    Range(VarType),
}

/// Methods whose result borrows the collection they are called on.
const BORROWING: [&str; 14] = [
    "iter",
    "iter_mut",
    "chars",
    "char_indices",
    "bytes",
    "lines",
    "keys",
    "values",
    "values_mut",
    "windows",
    "chunks",
    "split",
    "split_whitespace",
    "drain",
];

struct Lowerer<'a> {
    errors: &'a mut Errors,
    failed: bool,
    bindings: Vec<Binding>,
    scopes: Vec<Vec<BindingId>>,
    nodes: Vec<Node>,
    sites: Vec<Site>,
    location: Vec<(usize, usize)>,
    items: Vec<Stmt>,
    /// The loops with steps around the statement being lowered, innermost last.
    loops: Vec<LoopContext>,
    /// How many `for` loops with steps were lowered: names their stored variables.
    for_loops: usize,
}

/// Where `break` and `continue` lead in a loop with steps.
struct LoopContext {
    label: Option<String>,
    head: NodeId,
    exit: NodeId,
}

impl Lowerer<'_> {
    fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.failed = true;
        self.errors.at(span, message);
    }

    fn error_spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.failed = true;
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    fn node(&mut self, kind: NodeKind) -> NodeId {
        self.nodes.push(Node {
            kind,
            uses: BTreeSet::new(),
            defs: BTreeSet::new(),
            assigns: BTreeSet::new(),
            succ: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn connect(&mut self, preds: Preds, to: NodeId) {
        for (from, kind) in preds {
            self.nodes[from].succ.push((to, kind));
        }
    }

    fn visible(&self) -> BTreeMap<String, BindingId> {
        let mut visible = BTreeMap::new();
        for scope in &self.scopes {
            for &id in scope {
                visible.insert(self.bindings[id].ident.to_string(), id);
            }
        }
        visible
    }

    fn uses_of(&self, visit_with: impl FnOnce(&mut Uses)) -> BTreeSet<BindingId> {
        let visible = self.visible();
        let mut uses = Uses {
            visible: &visible,
            shadowed: vec![HashSet::new()],
            found: BTreeSet::new(),
        };
        visit_with(&mut uses);
        uses.found
    }

    fn resolve(&self, name: &str) -> Option<BindingId> {
        self.visible().get(name).copied()
    }

    /// Lowers the statements of a block in a new scope.
    fn block(&mut self, stmts: &[Stmt], ret: bool, mut preds: Preds, top: bool) -> (Block, Preds) {
        self.scopes.push(Vec::new());
        let mut items = Vec::new();
        for (i, stmt) in stmts.iter().enumerate() {
            let tail = i + 1 == stmts.len() && matches!(stmt, Stmt::Expr(_, None));
            if top && matches!(stmt, Stmt::Item(_)) {
                self.items.push(stmt.clone());
                continue;
            }
            self.location.push((items.len(), 0));
            preds = self.stmt(stmt, tail, ret, preds, &mut items);
            self.location.pop();
        }
        self.scopes.pop();
        (Block { items, ret }, preds)
    }

    fn stmt(
        &mut self,
        stmt: &Stmt,
        tail: bool,
        ret: bool,
        preds: Preds,
        items: &mut Vec<Item>,
    ) -> Preds {
        let mut preds = preds;
        if let Some(preds) = self.join_stmt(stmt, tail, &mut preds, items) {
            return preds;
        }
        match stmt {
            Stmt::Local(local) => {
                if let Some(init) = &local.init
                    && init.diverge.is_none()
                    && let Some((call, path, has_try)) = step_call(&init.expr)
                {
                    let ty = match wait_value_type(path) {
                        Some(ty) => ty,
                        None if wait_name(path).as_deref() == Some("child") => {
                            child_value_type(call, has_try)
                        }
                        None if wait_name(path).is_some() => VarType::Unknown,
                        None if has_try => VarType::StepOutput(path.clone()),
                        None => VarType::StepResult(path.clone()),
                    };
                    let mut replaced = stmt.clone();
                    if let Stmt::Local(local) = &mut replaced {
                        let init = local.init.as_mut().expect("checked above");
                        replace_call(&mut init.expr);
                    }
                    return self.site(call, path, has_try, replaced, preds, items, |this, node| {
                        this.bind(&local.pat, ty, node);
                    });
                }
            }
            Stmt::Expr(expr, semi) => {
                if let Some((call, path, has_try)) = step_call(expr) {
                    if tail {
                        self.error(
                            call.func.span_of(),
                            "a step's result cannot be the workflow's value directly; the workflow returns `Result<T, E>` built from its steps' outputs; write `let output = step(..).await?; Ok(output)`",
                        );
                    }
                    let replaced: Stmt = if has_try {
                        syn::parse_quote!(__result?;)
                    } else {
                        syn::parse_quote!(let _ = __result;)
                    };
                    return self.site(call, path, has_try, replaced, preds, items, |_, _| {});
                }
                if let Some((left, right, plain)) = assignment(expr)
                    && let Some(root) = place_root(left)
                    && let Some((call, path, has_try)) = step_call(right)
                {
                    let mut replaced = stmt.clone();
                    if let Stmt::Expr(expr, _) = &mut replaced
                        && let Some(right) = assignment_right(expr)
                    {
                        replace_call(right);
                    }
                    let target = self.resolve(&root.to_string());
                    // `x = ..` replaces `x`; `x += ..`, `x.field = ..` and
                    // `x[i] = ..` read it (and `i`) after the step too.
                    let replaces = plain && single_ident(left).is_some();
                    let read = if replaces {
                        BTreeSet::new()
                    } else {
                        self.uses_of(|uses| uses.visit_expr(left))
                    };
                    // `x = step(..).await?` types a `let x;` by the step's output.
                    let output = (replaces && has_try && wait_name(path).is_none())
                        .then(|| VarType::StepOutput(path.clone()));
                    return self.site(call, path, has_try, replaced, preds, items, |this, node| {
                        this.nodes[node].uses.extend(read);
                        if let Some(id) = target {
                            this.nodes[node].defs.insert(id);
                            this.nodes[node].assigns.insert(id);
                            if let Some(output) = output
                                && matches!(this.bindings[id].ty, VarType::Unknown)
                            {
                                this.bindings[id].ty = output;
                            }
                        }
                    });
                }
                if contains_step(expr) {
                    match expr {
                        Expr::If(expr_if) => {
                            let _ = semi;
                            let (item, dangling) = self.lower_if(expr_if, tail && ret, preds);
                            items.push(Item::If(item));
                            return dangling;
                        }
                        Expr::Match(expr_match) => {
                            let (item, dangling) = self.lower_match(expr_match, tail && ret, preds);
                            items.push(Item::Match(item));
                            return dangling;
                        }
                        Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                            let (item, dangling) = self.lower_loop(expr, preds);
                            items.push(Item::Loop(item));
                            return dangling;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let Stmt::Local(local) = stmt
            && let Some(init) = &local.init
            && matches!(
                &*init.expr,
                Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_)
            )
            && contains_step(&*init.expr)
        {
            let keyword = match &*init.expr {
                Expr::Loop(expr_loop) => expr_loop.loop_token.span,
                Expr::While(expr_while) => expr_while.while_token.span,
                Expr::ForLoop(expr_for) => expr_for.for_token.span,
                _ => unreachable!("matched above"),
            };
            self.error(
                keyword,
                "a loop with steps whose value is bound with `let` is not supported; the value of `break value` cannot be carried across the loop's steps; declare the variable first and assign it before `break`: `let x: Type; loop { ..; x = value; break; }`",
            );
        } else if let Stmt::Local(local) = stmt
            && let Some(init) = &local.init
            && let Some((_, otherwise)) = &init.diverge
            && contains_step(&**otherwise)
        {
            self.error(
                first_step_span(&**otherwise),
                "a step inside the `else` of `let .. else` is not supported; the `else` block cannot resume after a step; use a `match` whose other arm runs the step and returns: `let x = match value { Some(x) => x, None => { step(..).await?; return Err(..); } };`",
            );
        } else if contains_step(stmt) {
            self.error(
                first_step_span(stmt),
                "this step call cannot run before the rest of its statement: a step nested in an expression (`Ok(step(..).await?)`, `price(..).await? * qty`, `f(step(..).await?)`) runs first, as a `let` of its own, which the macro does only when nothing before it in the statement can have an effect or leave early; here a call (other than `.clone()`), a `?` or a macro comes before it; bind the step's output first and use it: `let output = step(..).await?;`",
            );
        }
        self.pure(stmt, tail, ret, preds, items)
    }

    #[allow(clippy::too_many_arguments)]
    fn site(
        &mut self,
        call: &ExprCall,
        path: &Path,
        has_try: bool,
        stmt: Stmt,
        preds: Preds,
        items: &mut Vec<Item>,
        bind: impl FnOnce(&mut Self, NodeId),
    ) -> Preds {
        let index = self.sites.len();
        let kind = self.site_kind(call, path, has_try, &stmt);
        let uses = self.uses_of(|uses| {
            for arg in &call.args {
                uses.visit_expr(arg);
            }
        });
        let preds = if matches!(kind, SiteKind::Step) {
            preds
        } else {
            // A wait's arguments are evaluated by the code that enters its
            // state, so they are not stored in the state.
            let eval = self.node(NodeKind::Pure);
            self.connect(preds, eval);
            self.nodes[eval].uses = uses.clone();
            vec![(eval, EdgeKind::Normal)]
        };
        let node = self.node(NodeKind::Step(index));
        self.connect(preds, node);
        if matches!(kind, SiteKind::Step) {
            self.nodes[node].uses = uses;
        }
        bind(self, node);
        if has_try {
            self.nodes[node].succ.push((EXIT_ERR, EdgeKind::StepErr));
        }
        // A child's state is named after the child workflow, not `child`.
        let named = match &kind {
            SiteKind::Child { workflow, .. } => workflow.clone(),
            _ => path.clone(),
        };
        let last = named.segments.last().expect("a path has a segment");
        let variant = Ident::new(
            &format!("{}{}", camel_case(&last.ident.to_string()), index + 1),
            last.ident.span(),
        );
        let mut location = self.location.clone();
        location.last_mut().expect("inside a block").1 = 0;
        self.sites.push(Site {
            kind,
            step: path.clone(),
            span: last.ident.span(),
            variant,
            args: call.args.iter().cloned().collect(),
            stmt,
            node,
            location,
        });
        items.push(Item::Step { site: index });
        vec![(node, EdgeKind::Normal)]
    }

    // Input:  `let (flight, hotel) = sagaflow::join!(book_flight(&trip), book_hotel(&trip))?;`
    // Output: a `Join{n}` site with its branches; `flight`, `hotel` bound to the steps' outputs
    /// Lowers a statement that is a join (`let pat = join!(..)?;`,
    /// `x = join!(..)?;`, `join!(..)?;`); `None` for any other statement.
    fn join_stmt(
        &mut self,
        stmt: &Stmt,
        tail: bool,
        preds: &mut Preds,
        items: &mut Vec<Item>,
    ) -> Option<Preds> {
        let (mac, has_try, replaced, target) = match stmt {
            Stmt::Local(local) => {
                let init = local.init.as_ref().filter(|init| init.diverge.is_none())?;
                let (mac, has_try) = super::join::join_call(&init.expr)?;
                let mut replaced = stmt.clone();
                if let Stmt::Local(local) = &mut replaced
                    && let Some(init) = local.init.as_mut()
                {
                    replace_call(&mut init.expr);
                }
                (mac, has_try, replaced, None)
            }
            Stmt::Expr(Expr::Assign(assign), _) if single_ident(&assign.left).is_some() => {
                let (mac, has_try) = super::join::join_call(&assign.right)?;
                let mut replaced = stmt.clone();
                if let Stmt::Expr(Expr::Assign(assign), _) = &mut replaced {
                    replace_call(&mut assign.right);
                }
                let name = single_ident(&assign.left).map(Ident::to_string);
                (mac, has_try, replaced, name)
            }
            other => {
                let (mac, has_try) = super::join::join_stmt(other)?;
                if tail && !matches!(other, Stmt::Macro(_)) {
                    self.error(
                        mac.path.span_of(),
                        "a join's result cannot be the workflow's value directly; the workflow returns `Result<T, E>` built from its steps' outputs; write `let (a, b) = sagaflow::join!(..)?; Ok((a, b))`",
                    );
                }
                let replaced: Stmt = if has_try {
                    syn::parse_quote!(__result?;)
                } else {
                    syn::parse_quote!(let _ = __result;)
                };
                (mac, has_try, replaced, None)
            }
        };
        let branches = match super::join::branches(mac, None) {
            Some(branches) => branches,
            None => {
                // `check` reported why.
                self.failed = true;
                Vec::new()
            }
        };
        for branch in &branches {
            for arg in &branch.args {
                if contains_step(arg) {
                    self.error(
                        first_step_span(arg),
                        "a step cannot be called in the arguments of a join's branch; the workflow must stop at that step before the join starts; bind its output first: `let value = step(..).await?;`",
                    );
                }
            }
        }
        let index = self.sites.len();
        let uses = self.uses_of(|uses| {
            for branch in &branches {
                for arg in &branch.args {
                    uses.visit_expr(arg);
                }
            }
        });
        let node = self.node(NodeKind::Step(index));
        self.connect(std::mem::take(preds), node);
        self.nodes[node].uses = uses;
        let steps: Vec<Path> = branches.iter().map(|branch| branch.step.clone()).collect();
        match (stmt, target) {
            (Stmt::Local(local), _) => {
                let ty = if has_try {
                    VarType::JoinOutput(steps)
                } else {
                    VarType::JoinResult(steps)
                };
                self.bind(&local.pat, ty, node);
            }
            (_, Some(name)) => {
                if let Some(id) = self.resolve(&name) {
                    self.nodes[node].defs.insert(id);
                    self.nodes[node].assigns.insert(id);
                }
            }
            _ => {}
        }
        if has_try {
            self.nodes[node].succ.push((EXIT_ERR, EdgeKind::StepErr));
        }
        let span = mac
            .path
            .segments
            .last()
            .map_or_else(|| mac.path.span_of(), |segment| segment.ident.span());
        let variant = Ident::new(&format!("Join{}", index + 1), span);
        let mut location = self.location.clone();
        location.last_mut().expect("inside a block").1 = 0;
        self.sites.push(Site {
            kind: SiteKind::Join { branches },
            step: mac.path.clone(),
            span,
            variant,
            args: Vec::new(),
            stmt: replaced,
            node,
            location,
        });
        items.push(Item::Step { site: index });
        Some(vec![(node, EdgeKind::Normal)])
    }

    // Input:  `sagaflow::signal_timeout::<bool>("approval", wait)` (a call at a suspension point)
    // Output: `SiteKind::Signal { name: "approval", value: Some(bool), timeout: Some(wait) }`
    /// What the suspension point at `call` waits for; reports misuse of a wait.
    fn site_kind(&mut self, call: &ExprCall, path: &Path, has_try: bool, stmt: &Stmt) -> SiteKind {
        let Some(wait) = wait_name(path) else {
            return SiteKind::Step;
        };
        let span = path
            .segments
            .last()
            .map_or_else(Span::call_site, |s| s.ident.span());
        if wait == "child" {
            return self.child_kind(call, span);
        }
        if has_try {
            self.error(
                span,
                format!(
                    "`sagaflow::{wait}(..)` cannot fail, so `?` does not apply; a durable wait ends when its time comes or its signal arrives; remove the `?`"
                ),
            );
        }
        let expected = if wait == "signal_timeout" { 2 } else { 1 };
        let args: Vec<&Expr> = call.args.iter().collect();
        if args.len() != expected {
            let usage = match wait.as_str() {
                "sleep" => "sagaflow::sleep(Duration::from_secs(60)).await",
                "sleep_until" => "sagaflow::sleep_until(time).await",
                "signal" => "let value: T = sagaflow::signal(\"name\").await",
                _ => {
                    "let value: Option<T> = sagaflow::signal_timeout(\"name\", Duration::from_secs(60)).await"
                }
            };
            self.error(
                span,
                format!("`sagaflow::{wait}` takes {expected} argument(s); write `{usage};`"),
            );
            return SiteKind::Sleep {
                until: false,
                arg: syn::parse_quote!(::std::time::Duration::ZERO),
            };
        }
        match wait.as_str() {
            "sleep" | "sleep_until" => SiteKind::Sleep {
                until: wait == "sleep_until",
                arg: args[0].clone(),
            },
            _ => {
                let name = match args[0] {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(name),
                        ..
                    }) => name.clone(),
                    other => {
                        self.error_spanned(
                            other,
                            format!(
                                "the name of a signal must be a string literal; the instance is woken by that name, which the state machine records; write `sagaflow::{wait}(\"approval\"{})`",
                                if expected == 2 { ", timeout" } else { "" }
                            ),
                        );
                        syn::LitStr::new("_", Span::call_site())
                    }
                };
                let mut value = turbofish(path);
                if value.is_none()
                    && let Stmt::Local(local) = stmt
                    && let Pat::Type(pat_type) = &local.pat
                {
                    let ty = (*pat_type.ty).clone();
                    value = if expected == 2 {
                        option_inner(&ty)
                    } else {
                        Some(ty)
                    };
                }
                SiteKind::Signal {
                    name,
                    value,
                    timeout: (expected == 2).then(|| args[1].clone()),
                }
            }
        }
    }

    // Input:  `sagaflow::child(ship_order, order.clone())`
    // Output: `SiteKind::Child { workflow: ship_order, input: order.clone() }`
    /// A child workflow's suspension point; reports a call of another shape.
    fn child_kind(&mut self, call: &ExprCall, span: Span) -> SiteKind {
        let args: Vec<&Expr> = call.args.iter().collect();
        let workflow = match args.first() {
            Some(Expr::Path(path)) if path.qself.is_none() && args.len() == 2 => {
                Some(path.path.clone())
            }
            _ => None,
        };
        match workflow {
            Some(workflow) => SiteKind::Child {
                workflow,
                input: args[1].clone(),
            },
            None => {
                self.error(
                    span,
                    "`sagaflow::child` takes the child workflow's name and its input; the child is another `#[workflow] async fn`, named by the unit struct it generates; write `let output = sagaflow::child(ship_order, input).await?;`",
                );
                SiteKind::Child {
                    workflow: syn::parse_quote!(__unknown_child),
                    input: syn::parse_quote!(()),
                }
            }
        }
    }

    fn pure(
        &mut self,
        stmt: &Stmt,
        tail: bool,
        ret: bool,
        preds: Preds,
        items: &mut Vec<Item>,
    ) -> Preds {
        let node = self.node(NodeKind::Pure);
        self.connect(preds, node);
        let mut exits = Exits::default();
        let mut direct_exit = None;
        match stmt {
            Stmt::Local(local) => {
                let uses = self.uses_of(|uses| {
                    if let Some(init) = &local.init {
                        uses.visit_expr(&init.expr);
                        if let Some((_, diverge)) = &init.diverge {
                            uses.visit_expr(diverge);
                        }
                    }
                });
                if let Some(init) = &local.init {
                    exits.visit_expr(&init.expr);
                    if let Some((_, diverge)) = &init.diverge {
                        exits.visit_expr(diverge);
                    }
                }
                self.nodes[node].uses = uses;
                let is_ref = local
                    .init
                    .as_ref()
                    .is_some_and(|init| matches!(&*init.expr, Expr::Reference(_)));
                let ty = local
                    .init
                    .as_ref()
                    .map_or(VarType::Unknown, |init| self.copied_type(&init.expr));
                let ids = self.bind(&local.pat, ty, node);
                if let Pat::Ident(_) = &local.pat {
                    for id in ids {
                        self.bindings[id].is_ref |= is_ref;
                        self.bindings[id].deferred = local.init.is_none();
                    }
                }
            }
            Stmt::Expr(Expr::Assign(assign), _) if single_ident(&assign.left).is_some() => {
                let name = single_ident(&assign.left).expect("checked").to_string();
                let uses = self.uses_of(|uses| uses.visit_expr(&assign.right));
                exits.visit_expr(&assign.right);
                self.nodes[node].uses = uses;
                if let Some(id) = self.resolve(&name) {
                    self.nodes[node].defs.insert(id);
                    self.nodes[node].assigns.insert(id);
                    // `let x; .. x = y;` types `x` as a copy of `y`.
                    if matches!(self.bindings[id].ty, VarType::Unknown) {
                        self.bindings[id].ty = self.copied_type(&assign.right);
                    }
                }
            }
            Stmt::Expr(Expr::Return(ret_expr), _) => {
                let uses = self.uses_of(|uses| uses.visit_stmt(stmt));
                self.nodes[node].uses = uses;
                if let Some(value) = &ret_expr.expr {
                    exits.visit_expr(value);
                }
                direct_exit = Some(exit_of(ret_expr.expr.as_deref()));
            }
            Stmt::Expr(expr, None) if tail && ret => {
                let uses = self.uses_of(|uses| uses.visit_expr(expr));
                self.nodes[node].uses = uses;
                exits.visit_expr(expr);
                direct_exit = Some(exit_of(Some(expr)));
            }
            Stmt::Item(_) => {}
            _ => {
                let uses = self.uses_of(|uses| uses.visit_stmt(stmt));
                self.nodes[node].uses = uses;
                exits.visit_stmt(stmt);
                // `if c { x = 1; } else { x = 2; }`: what it assigns on every
                // path that goes on defines it here (liveness: no state
                // before holds it); what it may assign, the segment declares.
                if let Stmt::Expr(expr, _) = stmt {
                    let mut may = BTreeSet::new();
                    may_assign(expr, &mut may);
                    for name in &may {
                        if let Some(id) = self.resolve(name) {
                            self.nodes[node].assigns.insert(id);
                        }
                    }
                    if let Assigned::Names(names) = must_assign(expr) {
                        for name in &names {
                            if let Some(id) = self.resolve(name) {
                                self.nodes[node].defs.insert(id);
                            }
                        }
                    }
                }
            }
        }
        let direct_jump = matches!(stmt, Stmt::Expr(Expr::Break(_) | Expr::Continue(_), _));
        let jumps = self.exit_edges(node, &exits, direct_jump);
        items.push(Item::Pure {
            stmt: stmt.clone(),
            tail,
        });
        match direct_exit {
            Some(exit) => {
                self.nodes[node].succ.push((exit, EdgeKind::Normal));
                Vec::new()
            }
            None if direct_jump => Vec::new(),
            None if exits.returns.is_empty() && !exits.has_try && jumps == 0 => {
                vec![(node, EdgeKind::Normal)]
            }
            None => vec![(node, EdgeKind::Branch)],
        }
    }

    /// Adds the edges of the `return`s, `?`s, `break`s and `continue`s found
    /// in a node's pure code; returns how many jumps lead out of it to a loop
    /// with steps. `direct`: the statement is itself the `break`/`continue`.
    fn exit_edges(&mut self, node: NodeId, exits: &Exits, direct: bool) -> usize {
        for exit in &exits.returns {
            self.nodes[node].succ.push((*exit, EdgeKind::Branch));
        }
        if exits.has_try {
            self.nodes[node].succ.push((EXIT_ERR, EdgeKind::Branch));
        }
        let mut count = 0;
        for jump in &exits.jumps {
            let target = match &jump.label {
                None => self.loops.last(),
                Some(label) => self
                    .loops
                    .iter()
                    .rev()
                    .find(|context| context.label.as_deref() == Some(label.as_str())),
            };
            // A jump to no loop with steps targets an outer pure block; rustc judges it.
            let Some(target) = target else { continue };
            let (to, kind) = if jump.is_continue {
                (target.head, EdgeKind::Branch)
            } else if direct {
                (target.exit, EdgeKind::Normal)
            } else {
                (target.exit, EdgeKind::Branch)
            };
            if let Some(value) = &jump.value {
                self.error_spanned(
                    value,
                    "`break` with a value out of a loop with steps is not supported; the loop's value cannot be carried across its steps; assign a variable declared before the loop, then `break`: `let x: Type; loop { ..; x = value; break; }`",
                );
            }
            self.nodes[node].succ.push((to, kind));
            count += 1;
        }
        count
    }

    fn lower_if(&mut self, expr_if: &syn::ExprIf, ret: bool, preds: Preds) -> (IfItem, Preds) {
        let mut item = IfItem {
            conds: Vec::new(),
            blocks: Vec::new(),
            else_block: None,
        };
        let mut dangling = Vec::new();
        let mut preds = preds;
        let mut current = expr_if;
        loop {
            if contains_step(&*current.cond) {
                let message = if condition_lets(&current.cond).is_empty() {
                    "a step cannot be called here in an `if` condition: code before it in the condition (a call, a `?`, a macro) would have to run after it; bind the step's output first: `let output = step(..).await?; if .. {}`"
                } else {
                    "a step in an `if` let chain after its `let` (`if let P = .. && step(..).await? {`) is not supported; the step would have to run before the chain binds what it uses; nest it: `if let P = .. { if step(..).await? { .. } }`"
                };
                self.error(first_step_span(&*current.cond), message);
            }
            let cond = self.node(NodeKind::Pure);
            self.connect(preds, cond);
            self.nodes[cond].uses = self.uses_of(|uses| uses.visit_expr(&current.cond));
            let mut exits = Exits::default();
            exits.visit_expr(&current.cond);
            self.exit_edges(cond, &exits, false);
            self.scopes.push(Vec::new());
            // `if let P = a && let Q = b`: every `let` of the chain binds.
            self.bind_lets(&current.cond, cond);
            self.location.last_mut().expect("inside a block").1 = item.blocks.len();
            let (block, out) = self.block(
                &current.then_branch.stmts,
                ret,
                vec![(cond, EdgeKind::Branch)],
                false,
            );
            self.scopes.pop();
            item.conds.push((*current.cond).clone());
            item.blocks.push(block);
            dangling.extend(out);
            match &current.else_branch {
                Some((_, else_expr)) => match &**else_expr {
                    Expr::If(next) => {
                        preds = vec![(cond, EdgeKind::Branch)];
                        current = next;
                    }
                    Expr::Block(block) => {
                        self.location.last_mut().expect("inside a block").1 = item.blocks.len();
                        let (block, out) = self.block(
                            &block.block.stmts,
                            ret,
                            vec![(cond, EdgeKind::Branch)],
                            false,
                        );
                        item.else_block = Some(block);
                        dangling.extend(out);
                        break;
                    }
                    other => {
                        let stmts = vec![Stmt::Expr(other.clone(), None)];
                        let (block, out) =
                            self.block(&stmts, ret, vec![(cond, EdgeKind::Branch)], false);
                        item.else_block = Some(block);
                        dangling.extend(out);
                        break;
                    }
                },
                None => {
                    dangling.push((cond, EdgeKind::Branch));
                    break;
                }
            }
        }
        (item, dangling)
    }

    fn lower_match(
        &mut self,
        expr_match: &syn::ExprMatch,
        ret: bool,
        preds: Preds,
    ) -> (MatchItem, Preds) {
        if contains_step(&*expr_match.expr) {
            self.error(
                first_step_span(&*expr_match.expr),
                "a step cannot be called in a `match` scrutinee; the workflow must stop at the step before it chooses an arm; bind the step's result first: `let result = step(..).await; match result { .. }`",
            );
        }
        let scrutinee = self.node(NodeKind::Pure);
        self.connect(preds, scrutinee);
        self.nodes[scrutinee].uses = self.uses_of(|uses| uses.visit_expr(&expr_match.expr));
        let ty = self.type_of(&expr_match.expr);
        let mut item = MatchItem {
            expr: (*expr_match.expr).clone(),
            arms: Vec::new(),
        };
        let mut dangling = Vec::new();
        // One arm without a guard always matches: no choice is made there.
        let choice = if expr_match.arms.len() == 1 && expr_match.arms[0].guard.is_none() {
            EdgeKind::Normal
        } else {
            EdgeKind::Branch
        };
        for (index, arm) in expr_match.arms.iter().enumerate() {
            let arm_node = self.node(NodeKind::Pure);
            self.nodes[scrutinee].succ.push((arm_node, choice));
            self.scopes.push(Vec::new());
            self.bind(&arm.pat, ty.clone(), arm_node);
            if let Some((_, guard)) = &arm.guard
                && contains_step(&**guard)
            {
                self.error(
                    first_step_span(&**guard),
                    "a step, timer or signal cannot be awaited in a `match` guard; the workflow must stop there before it chooses an arm, and a guard is part of choosing; await it before the `match` and test its output in the guard: `let fired = ..; match x { a if fired => .. }`",
                );
            }
            if let Some((_, guard)) = &arm.guard {
                // The guard reads the arm's own bindings after they are bound.
                let uses = self.uses_of(|uses| uses.visit_expr(guard));
                let defs = &self.nodes[arm_node].defs;
                self.nodes[arm_node].uses = uses.difference(defs).copied().collect();
            }
            self.location.last_mut().expect("inside a block").1 = index;
            let preds = vec![(arm_node, EdgeKind::Normal)];
            let (block, out) = match &*arm.body {
                Expr::Block(block) if block.label.is_none() => {
                    self.block(&block.block.stmts, ret, preds, false)
                }
                other => {
                    let stmts = if ret {
                        vec![Stmt::Expr(other.clone(), None)]
                    } else {
                        vec![Stmt::Expr(other.clone(), Some(Default::default()))]
                    };
                    self.block(&stmts, ret, preds, false)
                }
            };
            self.scopes.pop();
            dangling.extend(out);
            item.arms.push((
                arm.attrs.clone(),
                arm.pat.clone(),
                arm.guard.as_ref().map(|(_, g)| (**g).clone()),
                block,
            ));
        }
        (item, dangling)
    }

    // Input:  `'outer: for item in items { let r = reserve(&item).await?; reserved.push(r); }`
    // Output: `LoopItem { head: ForEach { items: __for1_items, next: __for1_next, .. }, body, .. }`;
    //         CFG: preds → init → head ⇄ body (back edges `Branch`), head → exit
    fn lower_loop(&mut self, expr: &Expr, preds: Preds) -> (LoopItem, Preds) {
        let (label, body) = match expr {
            Expr::Loop(expr_loop) => (&expr_loop.label, &expr_loop.body),
            Expr::While(expr_while) => (&expr_while.label, &expr_while.body),
            Expr::ForLoop(expr_for) => (&expr_for.label, &expr_for.body),
            _ => unreachable!("called on loops"),
        };
        let head = self.node(NodeKind::Pure);
        let exit = self.node(NodeKind::Pure);
        // The loop's own bindings (the pattern of `for` and `while let`).
        self.scopes.push(Vec::new());
        let (head_ir, body_preds) = match expr {
            Expr::Loop(_) => {
                self.connect(preds, head);
                (LoopHead::Loop, vec![(head, EdgeKind::Normal)])
            }
            Expr::While(expr_while) => {
                // A condition with steps is a `loop` by now (`desugar`),
                // but for a let chain.
                let cond = &*expr_while.cond;
                if contains_step(cond) {
                    self.error(
                        first_step_span(cond),
                        "a step in a `while` condition that is a let chain (`while let P = .. && ..`) is not supported; the bindings of the chain cannot be carried into the loop's body around the step; write the loop with the step in its body: `loop { let value = step(..).await?; let P = value else { break }; .. }`",
                    );
                }
                self.connect(preds, head);
                self.nodes[head].uses = self.uses_of(|uses| uses.visit_expr(cond));
                let mut exits = Exits::default();
                exits.visit_expr(cond);
                self.exit_edges(head, &exits, false);
                self.bind_lets(cond, head);
                self.nodes[head].succ.push((exit, EdgeKind::Branch));
                (
                    LoopHead::While(cond.clone()),
                    vec![(head, EdgeKind::Branch)],
                )
            }
            Expr::ForLoop(expr_for) => {
                let collection = &*expr_for.expr;
                if contains_step(collection) {
                    self.error(
                        first_step_span(collection),
                        "a step cannot be called in a `for` loop's collection; the workflow must stop at the step before the loop starts; bind the step's output first: `let items = step(..).await?; for item in items { .. }`",
                    );
                }
                let init = self.node(NodeKind::Pure);
                self.connect(preds, init);
                self.nodes[init].uses = self.uses_of(|uses| uses.visit_expr(collection));
                let mut exits = Exits::default();
                exits.visit_expr(collection);
                self.exit_edges(init, &exits, false);
                self.connect(vec![(init, EdgeKind::Normal)], head);
                self.for_loops += 1;
                let number = self.for_loops;
                let (head_ir, element) = match self.for_source(&expr_for.pat, collection) {
                    Some(ForSource::Range(element)) => {
                        let rest = self.synthetic(
                            format!("__for{number}_range"),
                            VarType::RangeOf(Box::new(element.clone())),
                            init,
                        );
                        self.nodes[head].uses.insert(rest);
                        self.nodes[head].defs.insert(rest);
                        let head_ir = LoopHead::ForRange {
                            pat: (*expr_for.pat).clone(),
                            range: collection.clone(),
                            rest,
                        };
                        (head_ir, element)
                    }
                    source => {
                        // On an error, `_` keeps the pattern's bindings from
                        // being reported again as unnameable.
                        let element = match source {
                            Some(ForSource::Collection(element)) => element,
                            _ => VarType::Written(syn::parse_quote!(_)),
                        };
                        let items = self.synthetic(
                            format!("__for{number}_items"),
                            VarType::VecOf(Box::new(element.clone())),
                            init,
                        );
                        let next = self.synthetic(
                            format!("__for{number}_next"),
                            VarType::Written(syn::parse_quote!(usize)),
                            init,
                        );
                        self.nodes[head].uses.extend([items, next]);
                        self.nodes[head].defs.insert(next);
                        let head_ir = LoopHead::ForEach {
                            pat: (*expr_for.pat).clone(),
                            collection: collection.clone(),
                            items,
                            next,
                        };
                        (head_ir, element)
                    }
                };
                self.bind(&expr_for.pat, element, head);
                self.nodes[head].succ.push((exit, EdgeKind::Branch));
                (head_ir, vec![(head, EdgeKind::Branch)])
            }
            _ => unreachable!("called on loops"),
        };
        self.loops.push(LoopContext {
            label: label.as_ref().map(|label| label.name.ident.to_string()),
            head,
            exit,
        });
        self.location.last_mut().expect("inside a block").1 = 0;
        let (body, dangling) = self.block(&body.stmts, false, body_preds, false);
        self.loops.pop();
        self.scopes.pop();
        // The end of the body goes round again: a back edge.
        for (from, _) in dangling {
            self.nodes[from].succ.push((head, EdgeKind::Branch));
        }
        let exits = self
            .nodes
            .iter()
            .any(|node| node.succ.iter().any(|(to, _)| *to == exit));
        let item = LoopItem {
            label: label.clone(),
            head: head_ir,
            body,
            entry: head,
            exit,
            exits,
        };
        let dangling = if exits {
            vec![(exit, EdgeKind::Normal)]
        } else {
            Vec::new()
        };
        (item, dangling)
    }

    // Input:  `items`, `items.clone()`, `0..count` (the typed collection of a `for` with steps)
    // Output: the element type, or an error saying which collection to write
    /// What a `for` loop with steps iterates: the collection must be owned and
    /// its type nameable, since the loop stores it between steps.
    fn for_source(&mut self, pat: &Pat, collection: &Expr) -> Option<ForSource> {
        let mut expr = collection;
        while let Expr::Paren(paren) = expr {
            expr = &paren.expr;
        }
        let pat = type_string(pat);
        let borrowed = |this: &mut Self, written: &str| {
            let mut root = expr;
            loop {
                match root {
                    Expr::Reference(reference) => root = &reference.expr,
                    Expr::MethodCall(call) => root = &call.receiver,
                    Expr::Paren(paren) => root = &paren.expr,
                    _ => break,
                }
            }
            let items = single_ident(root).map_or_else(|| "items".to_owned(), Ident::to_string);
            this.error_spanned(
                collection,
                format!(
                    "`for` over `{written}` borrows the collection, but a loop with steps stores the collection and its position in the workflow's state between steps, and a state holds owned values; iterate over an owned collection: `for {pat} in {items}.clone() {{ .. }}`, or over indexes: `for index in 0..{items}.len() {{ .. }}`"
                ),
            );
            None
        };
        let unnameable = |this: &mut Self| {
            this.error_spanned(
                collection,
                format!(
                    "cannot name the type of the collection this `for` loop iterates; a loop with steps stores the collection in the workflow's state between steps, so the state declares a field for it; bind it with its type first: `let items: Vec<Item> = ..; for {pat} in items {{ .. }}`"
                ),
            );
            None
        };
        if let Expr::Range(range) = expr {
            if matches!(range.limits, syn::RangeLimits::Closed(_)) {
                let bound = |bound: &Option<Box<Expr>>| bound.as_ref().map(type_string);
                let (start, end) = (bound(&range.start), bound(&range.end));
                self.error_spanned(
                    collection,
                    format!(
                        "an inclusive range `a..=b` in a `for` loop with steps is not supported; the loop stores the rest of its range between steps as a `Range`; write the exclusive range `{}..{} + 1`",
                        start.as_deref().unwrap_or("a"),
                        end.as_deref().unwrap_or("b"),
                    ),
                );
                return None;
            }
            let (Some(start), Some(end)) = (&range.start, &range.end) else {
                self.error_spanned(
                    collection,
                    "a `for` loop with steps needs a range with both bounds; the loop stores the rest of its range between steps; write `start..end`",
                );
                return None;
            };
            let element = self.bound_type(start).or_else(|| self.bound_type(end));
            return match element {
                Some(element) => Some(ForSource::Range(element)),
                None => {
                    self.error_spanned(
                        collection,
                        "cannot name the type of this range's bounds; a loop with steps stores the rest of its range in the workflow's state; give a bound a type: `0u32..count`, or a variable annotated `let count: u32 = ..;`",
                    );
                    None
                }
            };
        }
        let root = match expr {
            Expr::Reference(_) => return borrowed(self, &expr_text(expr)),
            Expr::MethodCall(call) => {
                let mut receiver = &*call.receiver;
                let mut methods = vec![call.method.to_string()];
                while let Expr::MethodCall(inner) = receiver {
                    methods.push(inner.method.to_string());
                    receiver = &inner.receiver;
                }
                if matches!(receiver, Expr::Reference(_))
                    || methods
                        .iter()
                        .any(|method| BORROWING.contains(&method.as_str()))
                {
                    return borrowed(self, &expr_text(expr));
                }
                if !matches!(
                    call.method.to_string().as_str(),
                    "clone" | "into_iter" | "to_owned"
                ) || !call.args.is_empty()
                {
                    return unnameable(self);
                }
                &*call.receiver
            }
            other => other,
        };
        let Some(id) = single_ident(root).and_then(|name| self.resolve(&name.to_string())) else {
            return unnameable(self);
        };
        let binding = &self.bindings[id];
        if binding.is_ref || matches!(binding.ty, VarType::Written(Type::Reference(_))) {
            return borrowed(self, &expr_text(expr));
        }
        if matches!(binding.ty, VarType::Unknown) {
            let name = binding.ident.to_string();
            self.error_spanned(
                collection,
                format!(
                    "cannot name the type of `{name}`, which this `for` loop iterates; a loop with steps stores the collection in the workflow's state between steps, so the state declares a field for it; annotate it: `let {name}: Vec<Item> = ..;`"
                ),
            );
            return None;
        }
        Some(ForSource::Collection(binding.ty.element()))
    }

    /// The type of a range bound: a typed variable, a suffixed literal, a cast, or `.len()`.
    fn bound_type(&self, bound: &Expr) -> Option<VarType> {
        match bound {
            Expr::Paren(paren) => self.bound_type(&paren.expr),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(int),
                ..
            }) if !int.suffix().is_empty() => {
                Some(VarType::Written(syn::parse_str(int.suffix()).ok()?))
            }
            Expr::Cast(cast) => Some(VarType::Written((*cast.ty).clone())),
            Expr::MethodCall(call) if call.method == "len" && call.args.is_empty() => {
                Some(VarType::Written(syn::parse_quote!(usize)))
            }
            Expr::Binary(binary) => self
                .bound_type(&binary.left)
                .or_else(|| self.bound_type(&binary.right)),
            other => match self.type_of(other) {
                VarType::Unknown => None,
                ty => Some(ty),
            },
        }
    }

    /// A variable the lowering adds (a `for` loop's collection and position).
    fn synthetic(&mut self, name: String, ty: VarType, node: NodeId) -> BindingId {
        let id = self.bindings.len();
        self.bindings.push(Binding {
            ident: Ident::new(&name, Span::call_site()),
            ty,
            is_ref: false,
            declared_at: Some(node),
            deferred: false,
        });
        self.nodes[node].defs.insert(id);
        id
    }

    /// Binds the patterns of the `let`s of a condition (`while let`, let chains).
    fn bind_lets(&mut self, cond: &Expr, node: NodeId) {
        for expr_let in condition_lets(cond) {
            let ty = self.type_of(&expr_let.expr);
            self.bind(&expr_let.pat, ty, node);
        }
    }

    /// The type of a scrutinee that is a plain variable, or `v.pop()` on a
    /// typed `Vec`/`VecDeque` (for `while let Some(x) = queue.pop()`).
    fn type_of(&self, expr: &Expr) -> VarType {
        if let Expr::MethodCall(call) = expr
            && call.args.is_empty()
            && matches!(
                call.method.to_string().as_str(),
                "pop" | "pop_front" | "pop_back" | "pop_first" | "pop_last"
            )
        {
            return match self.type_of(&call.receiver) {
                ty @ VarType::Written(_) => match ty.element() {
                    VarType::Written(element) => {
                        VarType::Written(syn::parse_quote!(Option<#element>))
                    }
                    _ => VarType::Unknown,
                },
                _ => VarType::Unknown,
            };
        }
        match single_ident(expr).and_then(|name| self.resolve(&name.to_string())) {
            Some(id) => self.bindings[id].ty.clone(),
            None => VarType::Unknown,
        }
    }

    /// Declares the bindings of `pat` (matched against a value of type `ty`)
    /// in the current scope, defined by `node`.
    // Input:  `order`, `order.clone()`, with `order: Order` a parameter
    // Output: `Order`; `Unknown` for any other expression
    /// The type of a copy or clone of a local whose type is known.
    fn copied_type(&self, expr: &Expr) -> VarType {
        self.value_type(expr, &[])
    }

    // Input:  `match __step1 { Some(qty) => qty, None => return Ok(0) }`, with
    //         `__step1: StepOutput(lookup)`
    // Output: `Part(StepOutput(lookup), Some)`
    /// The type of a copy of a local (see [`Self::copied_type`]), also when
    /// it is the value of a block, `if` or `match`: the first tail whose
    /// type is known names it (every tail has the value's type). `bound`
    /// holds the names the enclosing patterns and `let`s bind there.
    fn value_type(&self, expr: &Expr, bound: &[(String, VarType)]) -> VarType {
        match expr {
            Expr::MethodCall(call) if call.method == "clone" && call.args.is_empty() => {
                self.value_type(&call.receiver, bound)
            }
            // The methods whose type their name says: `ToString` always
            // gives a `String`; `len` and `is_empty` are std's convention.
            Expr::MethodCall(call) if call.args.is_empty() => {
                match call.method.to_string().as_str() {
                    "to_string" => VarType::Written(syn::parse_quote!(::std::string::String)),
                    "len" => VarType::Written(syn::parse_quote!(usize)),
                    "is_empty" => VarType::Written(syn::parse_quote!(bool)),
                    _ => VarType::Unknown,
                }
            }
            // `n as u64`: the type written.
            Expr::Cast(cast) => VarType::Written((*cast.ty).clone()),
            // `format!(..)` is a `String`.
            Expr::Macro(expr_macro)
                if expr_macro
                    .mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|last| last.ident == "format") =>
            {
                VarType::Written(syn::parse_quote!(::std::string::String))
            }
            Expr::Paren(paren) => self.value_type(&paren.expr, bound),
            // `price * qty`: the operator trait's output for the operands'
            // types; an unsuffixed literal takes the other side's type.
            Expr::Binary(binary) if !is_compound(&binary.op) => {
                let Some(op) = operator_trait(&binary.op) else {
                    // Comparisons, `&&` and `||`.
                    return VarType::Written(syn::parse_quote!(bool));
                };
                let left = self.value_type(&binary.left, bound);
                let right = self.value_type(&binary.right, bound);
                let (left, right) = match (left, right) {
                    (VarType::Unknown, right) if is_unsuffixed_number(&binary.left) => {
                        (right.clone(), right)
                    }
                    (left, VarType::Unknown) if is_unsuffixed_number(&binary.right) => {
                        (left.clone(), left)
                    }
                    other => other,
                };
                if matches!(left, VarType::Unknown) || matches!(right, VarType::Unknown) {
                    return VarType::Unknown;
                }
                VarType::Operated(Box::new(left), op, Box::new(right))
            }
            // The deterministic helpers (`sagaflow::uuid()` ..), `String::new()`
            // and `String::from(..)`.
            Expr::Call(call) => helper_type(&call.func, call.args.len()),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Bool(_),
                ..
            }) => VarType::Written(syn::parse_quote!(bool)),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(int),
                ..
            }) if !int.suffix().is_empty() => {
                let suffix = Ident::new(int.suffix(), int.span());
                VarType::Written(syn::parse_quote!(#suffix))
            }
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Float(float),
                ..
            }) if !float.suffix().is_empty() => {
                let suffix = Ident::new(float.suffix(), float.span());
                VarType::Written(syn::parse_quote!(#suffix))
            }
            // `Receipt { order, slot }`: a struct named by one capitalised
            // segment is taken as its own type (`Shape::Circle { .. }` may be
            // a variant). A generic struct whose arguments rustc infers
            // (`Page { items }`) gets rustc's "missing generics" on the state.
            Expr::Struct(literal)
                if literal.qself.is_none()
                    && literal.path.segments.len() == 1
                    && literal.path.segments[0].arguments.is_none()
                    && literal.path.segments[0].ident != "Self"
                    && literal.path.segments[0]
                        .ident
                        .to_string()
                        .starts_with(|c: char| c.is_ascii_uppercase()) =>
            {
                let path = &literal.path;
                VarType::Written(syn::parse_quote!(#path))
            }
            Expr::Block(block) if block.label.is_none() => self.tail_type(&block.block, bound),
            Expr::If(expr_if) => {
                let mut inner = bound.to_vec();
                for expr_let in condition_lets(&expr_if.cond) {
                    let ty = self.type_of(&expr_let.expr);
                    inner.extend(pattern_types(&expr_let.pat, ty));
                }
                let then = self.tail_type(&expr_if.then_branch, &inner);
                match (&then, &expr_if.else_branch) {
                    (VarType::Unknown, Some((_, otherwise))) => self.value_type(otherwise, bound),
                    _ => then,
                }
            }
            Expr::Match(expr_match) => {
                let ty = self.type_of(&expr_match.expr);
                expr_match
                    .arms
                    .iter()
                    .map(|arm| {
                        let mut inner = bound.to_vec();
                        inner.extend(pattern_types(&arm.pat, ty.clone()));
                        self.value_type(&arm.body, &inner)
                    })
                    .find(|ty| !matches!(ty, VarType::Unknown))
                    .unwrap_or(VarType::Unknown)
            }
            other => {
                let Some(name) = single_ident(other).map(|name| name.to_string()) else {
                    return VarType::Unknown;
                };
                if let Some((_, ty)) = bound.iter().rev().find(|(bound, _)| *bound == name) {
                    return ty.clone();
                }
                self.resolve(&name)
                    .map(|id| &self.bindings[id])
                    .filter(|binding| !binding.is_ref)
                    .map_or(VarType::Unknown, |binding| binding.ty.clone())
            }
        }
    }

    /// The type of the value of `block` (see [`Self::value_type`]); the
    /// block's own `let`s shadow what they bind, with types not named.
    fn tail_type(&self, block: &syn::Block, bound: &[(String, VarType)]) -> VarType {
        let mut inner = bound.to_vec();
        for stmt in &block.stmts {
            if let Stmt::Local(local) = stmt {
                let names = pattern_names(&local.pat);
                inner.extend(names.into_iter().map(|name| (name, VarType::Unknown)));
            }
        }
        match block.stmts.last() {
            Some(Stmt::Expr(tail, None)) => self.value_type(tail, &inner),
            _ => VarType::Unknown,
        }
    }

    fn bind(&mut self, pat: &Pat, ty: VarType, node: NodeId) -> Vec<BindingId> {
        let mut ids = Vec::new();
        self.bind_into(pat, ty, node, &mut ids);
        ids
    }

    fn bind_into(&mut self, pat: &Pat, ty: VarType, node: NodeId, ids: &mut Vec<BindingId>) {
        let mut found = Vec::new();
        pattern_bindings(pat, ty, &mut found);
        for (pat_ident, ty) in found {
            if !is_binding_name(&pat_ident.ident) {
                continue;
            }
            let is_ref =
                pat_ident.by_ref.is_some() || matches!(&ty, VarType::Written(Type::Reference(_)));
            let id = self.bindings.len();
            self.bindings.push(Binding {
                ident: pat_ident.ident.clone(),
                ty,
                is_ref,
                declared_at: Some(node),
                deferred: false,
            });
            self.scopes.last_mut().expect("a scope").push(id);
            self.nodes[node].defs.insert(id);
            ids.push(id);
        }
    }

    // Input:  the CFG and the tree
    // Output: per state the stored variables (liveness), the edges, the site order pairs
    fn finish(mut self, body: Block, params: Vec<BindingId>) -> Option<Machine> {
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
    fn liveness(&self) -> Vec<BTreeSet<BindingId>> {
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
    fn segment(&self, state: usize, entry: NodeId) -> (Vec<EdgeIr>, BTreeSet<NodeId>) {
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

/// `step(args).await?` or `step(args).await`: the call, the path, whether `?` follows.
pub fn step_call(expr: &Expr) -> Option<(&ExprCall, &Path, bool)> {
    let (inner, has_try) = match expr {
        Expr::Try(expr_try) => (&*expr_try.expr, true),
        other => (other, false),
    };
    let Expr::Await(expr_await) = inner else {
        return None;
    };
    let Expr::Call(call) = &*expr_await.base else {
        return None;
    };
    let Expr::Path(path) = &*call.func else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    Some((call, &path.path, has_try))
}

/// The type of `sagaflow::child(wf, ..).await`, with or without `?`.
fn child_value_type(call: &ExprCall, has_try: bool) -> VarType {
    match call.args.first() {
        Some(Expr::Path(path)) if path.qself.is_none() => {
            let workflow = path.path.clone();
            if has_try {
                VarType::ChildOutput(workflow)
            } else {
                VarType::ChildResult(workflow)
            }
        }
        _ => VarType::Unknown,
    }
}

/// `T` of `sagaflow::signal::<T>`, if written.
fn turbofish(path: &Path) -> Option<Type> {
    let PathArguments::AngleBracketed(args) = &path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

/// `T` of a type written `Option<T>`.
fn option_inner(ty: &Type) -> Option<Type> {
    match VarType::Written(ty.clone()).payload("Some") {
        VarType::Written(inner) => Some(inner),
        _ => None,
    }
}

/// The type of the value a signal wait with a turbofish returns:
/// `T` for `signal::<T>`, `Option<T>` for `signal_timeout::<T>`.
fn wait_value_type(path: &Path) -> Option<VarType> {
    let wait = wait_name(path)?;
    let ty = turbofish(path)?;
    Some(VarType::Written(match wait.as_str() {
        "signal" => ty,
        "signal_timeout" => syn::parse_quote!(Option<#ty>),
        _ => return None,
    }))
}

fn replace_call(expr: &mut Expr) {
    match expr {
        Expr::Try(expr_try) => replace_call(&mut expr_try.expr),
        other => *other = syn::parse_quote!(__result),
    }
}

/// `items.iter()` rather than `items . iter()`: method chains as people write them.
fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::MethodCall(call) => format!(
            "{}.{}({})",
            expr_text(&call.receiver),
            call.method,
            type_string(&call.args)
        ),
        Expr::Reference(reference) => format!(
            "&{}{}",
            if reference.mutability.is_some() {
                "mut "
            } else {
                ""
            },
            expr_text(&reference.expr)
        ),
        Expr::Field(field) => format!("{}.{}", expr_text(&field.base), type_string(&field.member)),
        other => type_string(other),
    }
}

// Input:  `total += book(&item).await?`, `order.total = price(..).await?`
// Output: the place, the value, and whether it is a plain `=`
/// The parts of an assignment or a compound assignment.
fn assignment(expr: &Expr) -> Option<(&Expr, &Expr, bool)> {
    match expr {
        Expr::Assign(assign) => Some((&assign.left, &assign.right, true)),
        Expr::Binary(binary) if is_compound(&binary.op) => {
            Some((&binary.left, &binary.right, false))
        }
        _ => None,
    }
}

/// The value of an assignment or a compound assignment, to rewrite.
pub fn assignment_right(expr: &mut Expr) -> Option<&mut Expr> {
    match expr {
        Expr::Assign(assign) => Some(&mut assign.right),
        Expr::Binary(binary) if is_compound(&binary.op) => Some(&mut binary.right),
        _ => None,
    }
}

/// Whether `op` is a compound assignment (`+=`, `-=`, `|=`, ...).
pub fn is_compound(op: &syn::BinOp) -> bool {
    use syn::BinOp;
    matches!(
        op,
        BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_)
    )
}

// Input:  `total`, `order.lines[2].qty`, `(*counts)[i]`
// Output: the local the place is in: `total`, `order`, `counts`
/// The variable a place expression writes into.
fn place_root(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Field(field) => place_root(&field.base),
        Expr::Index(index) => place_root(&index.expr),
        Expr::Paren(paren) => place_root(&paren.expr),
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => place_root(&unary.expr),
        other => single_ident(other),
    }
}

/// The type of a call with `args` arguments of `sagaflow::uuid`,
/// `sagaflow::now` or `sagaflow::random` (the deterministic helpers, none),
/// `String::new` (none) or `String::from` (one); `Unknown` for any other.
fn helper_type(func: &Expr, args: usize) -> VarType {
    let Expr::Path(path) = func else {
        return VarType::Unknown;
    };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    if path.qself.is_some() || segments.len() != 2 {
        return VarType::Unknown;
    }
    match (segments[0].as_str(), segments[1].as_str(), args) {
        ("sagaflow", "uuid", 0) | ("String", "new", 0) | ("String", "from", 1) => {
            VarType::Written(syn::parse_quote!(::std::string::String))
        }
        ("sagaflow", "now", 0) => VarType::Written(syn::parse_quote!(::std::time::SystemTime)),
        ("sagaflow", "random", 0) => VarType::Written(syn::parse_quote!(u64)),
        _ => VarType::Unknown,
    }
}

/// The `std::ops` trait of an arithmetic or bit operator; `None` for a
/// comparison, `&&` and `||`, whose value is a `bool`.
fn operator_trait(op: &syn::BinOp) -> Option<&'static str> {
    use syn::BinOp;
    Some(match op {
        BinOp::Add(_) => "Add",
        BinOp::Sub(_) => "Sub",
        BinOp::Mul(_) => "Mul",
        BinOp::Div(_) => "Div",
        BinOp::Rem(_) => "Rem",
        BinOp::BitAnd(_) => "BitAnd",
        BinOp::BitOr(_) => "BitOr",
        BinOp::BitXor(_) => "BitXor",
        BinOp::Shl(_) => "Shl",
        BinOp::Shr(_) => "Shr",
        _ => return None,
    })
}

/// Whether `expr` is a number literal without a type suffix (`2`, `0.5`),
/// whose type rustc infers from the other operand.
fn is_unsuffixed_number(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => int.suffix().is_empty(),
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(float),
            ..
        }) => float.suffix().is_empty(),
        Expr::Paren(paren) => is_unsuffixed_number(&paren.expr),
        _ => false,
    }
}

/// What pure code assigns (`x = ..`) on every path that goes on after it.
#[derive(Debug, PartialEq)]
enum Assigned {
    /// These names, declared outside it.
    Names(BTreeSet<String>),
    /// It never goes on (`return`, a panic): anything.
    Diverges,
}

impl Assigned {
    fn none() -> Self {
        Assigned::Names(BTreeSet::new())
    }

    /// Both, one after the other.
    fn then(self, next: Assigned) -> Assigned {
        match (self, next) {
            (Assigned::Names(mut a), Assigned::Names(b)) => {
                a.extend(b);
                Assigned::Names(a)
            }
            _ => Assigned::Diverges,
        }
    }

    /// One or the other.
    fn or(self, other: Assigned) -> Assigned {
        match (self, other) {
            (Assigned::Names(a), Assigned::Names(b)) => {
                Assigned::Names(a.intersection(&b).cloned().collect())
            }
            (Assigned::Diverges, other) | (other, Assigned::Diverges) => other,
        }
    }

    /// Without what a nested scope declares under these names.
    fn without(self, shadowed: &BTreeSet<String>) -> Assigned {
        match self {
            Assigned::Names(names) => {
                Assigned::Names(names.difference(shadowed).cloned().collect())
            }
            Assigned::Diverges => Assigned::Diverges,
        }
    }
}

// Input:  `if c { x = 1; } else { match n { 0 => x = 2, _ => return Ok(0) } }`
// Output: `Names({x})`
/// The variables pure code assigns on every path out of it but `return`s
/// and panics (which leave the workflow). A `break` or `continue` counts as
/// assigning nothing, since the loop's next code may read the old value;
/// loops, closures and calls too: a def missed only keeps a variable stored.
fn must_assign(expr: &Expr) -> Assigned {
    match expr {
        Expr::Assign(assign) => {
            let value = must_assign(&assign.right);
            match single_ident(&assign.left) {
                Some(name) => value.then(Assigned::Names(BTreeSet::from([name.to_string()]))),
                None => value,
            }
        }
        Expr::If(expr_if) => {
            let cond = must_assign(&expr_if.cond);
            let branches = match &expr_if.else_branch {
                Some((_, otherwise)) => {
                    block_must_assign(&expr_if.then_branch).or(must_assign(otherwise))
                }
                None => Assigned::none(),
            };
            cond.then(branches)
        }
        Expr::Match(expr_match) => {
            let arms = expr_match
                .arms
                .iter()
                .map(|arm| must_assign(&arm.body).without(&pattern_names(&arm.pat)))
                .reduce(Assigned::or)
                // A match without arms never goes on.
                .unwrap_or(Assigned::Diverges);
            must_assign(&expr_match.expr).then(arms)
        }
        Expr::Block(block) if block.label.is_none() => block_must_assign(&block.block),
        Expr::Unsafe(block) => block_must_assign(&block.block),
        Expr::Paren(paren) => must_assign(&paren.expr),
        Expr::Return(_) => Assigned::Diverges,
        Expr::Macro(expr_macro) if is_panic(&expr_macro.mac) => Assigned::Diverges,
        _ => Assigned::none(),
    }
}

/// [`must_assign`] of a block: its statements in order, less its own `let`s.
fn block_must_assign(block: &syn::Block) -> Assigned {
    let mut assigned = Assigned::none();
    let mut shadowed = BTreeSet::new();
    for stmt in &block.stmts {
        let next = match stmt {
            Stmt::Local(local) => {
                let value = local
                    .init
                    .as_ref()
                    .map_or_else(Assigned::none, |init| must_assign(&init.expr));
                let value = value.without(&shadowed);
                shadowed.extend(pattern_names(&local.pat));
                value
            }
            Stmt::Expr(expr, _) => must_assign(expr).without(&shadowed),
            Stmt::Macro(stmt_macro) if is_panic(&stmt_macro.mac) => Assigned::Diverges,
            _ => Assigned::none(),
        };
        assigned = assigned.then(next);
        if assigned == Assigned::Diverges {
            break;
        }
    }
    assigned
}

/// The names `pat` binds.
fn pattern_names(pat: &Pat) -> BTreeSet<String> {
    let mut found = Vec::new();
    pattern_bindings(pat, VarType::Unknown, &mut found);
    found.iter().map(|(pat, _)| pat.ident.to_string()).collect()
}

/// Whether a macro is one that panics.
pub(super) fn is_panic(mac: &syn::Macro) -> bool {
    mac.path.segments.last().is_some_and(|last| {
        matches!(
            last.ident.to_string().as_str(),
            "panic" | "unreachable" | "todo" | "unimplemented"
        )
    })
}

/// Every variable pure code may assign (`x = ..`), outside closures and
/// nested items; a name a nested `let` or pattern shadows is kept too, which
/// at worst declares an unused variable.
fn may_assign(expr: &Expr, out: &mut BTreeSet<String>) {
    struct Assigns<'a>(&'a mut BTreeSet<String>);
    impl<'ast> Visit<'ast> for Assigns<'_> {
        fn visit_expr_assign(&mut self, assign: &'ast syn::ExprAssign) {
            if let Some(name) = single_ident(&assign.left) {
                self.0.insert(name.to_string());
            }
            visit::visit_expr_assign(self, assign);
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    Assigns(out).visit_expr(expr);
}

fn single_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident(),
        _ => None,
    }
}

fn is_binding_name(ident: &Ident) -> bool {
    let name = ident.to_string();
    let name = name.trim_start_matches("r#");
    name.starts_with(|c: char| c.is_lowercase() || c == '_') && name != "_"
}

/// `reserve_inventory` → `ReserveInventory`.
pub fn camel_case(name: &str) -> String {
    name.trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn exit_of(value: Option<&Expr>) -> NodeId {
    if let Some(Expr::Call(call)) = value
        && let Expr::Path(path) = &*call.func
        && let Some(last) = path.path.segments.last()
    {
        if last.ident == "Ok" {
            return EXIT_OK;
        }
        if last.ident == "Err" {
            return EXIT_ERR;
        }
    }
    EXIT_ANY
}

trait SpanOf {
    fn span_of(&self) -> Span;
}

impl<T: ToTokens> SpanOf for T {
    fn span_of(&self) -> Span {
        syn::spanned::Spanned::span(self)
    }
}

/// Finds step calls (`path(args).await`) outside closures, async blocks and
/// nested items (those are reported by `check`).
#[derive(Default)]
pub struct StepFinder {
    /// Span of the first step call found.
    pub found: Option<Span>,
}

impl<'ast> Visit<'ast> for StepFinder {
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if self.found.is_none() && super::join::is_join(mac) {
            self.found = Some(mac.path.span_of());
        }
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.found.is_some() {
            return;
        }
        match expr {
            Expr::Await(expr_await) => {
                if let Expr::Call(call) = &*expr_await.base
                    && let Expr::Path(_) = &*call.func
                {
                    self.found = Some(call.func.span_of());
                    return;
                }
                visit::visit_expr(self, expr);
            }
            Expr::Closure(_) | Expr::Async(_) => {}
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

pub(super) fn contains_step<T: StepSearch + ?Sized>(node: &T) -> bool {
    node.first_step().is_some()
}

fn first_step_span<T: StepSearch + ?Sized>(node: &T) -> Span {
    node.first_step().unwrap_or_else(Span::call_site)
}

pub(super) trait StepSearch {
    fn first_step(&self) -> Option<Span>;
}

impl StepSearch for Expr {
    fn first_step(&self) -> Option<Span> {
        let mut finder = StepFinder::default();
        finder.visit_expr(self);
        finder.found
    }
}

impl StepSearch for Stmt {
    fn first_step(&self) -> Option<Span> {
        let mut finder = StepFinder::default();
        finder.visit_stmt(self);
        finder.found
    }
}

/// `return`s, `?`s, and `break`s and `continue`s that leave the code, in
/// pure code (not inside closures, async blocks or items).
#[derive(Default)]
struct Exits {
    returns: Vec<NodeId>,
    has_try: bool,
    jumps: Vec<Jump>,
    /// Loops and labelled blocks inside the code: their label, whether a loop.
    inner: Vec<(Option<String>, bool)>,
}

/// A `break` or `continue` that leaves the code it is found in.
struct Jump {
    label: Option<String>,
    is_continue: bool,
    /// `break value`, when a value is given.
    value: Option<syn::ExprBreak>,
}

impl Exits {
    fn inside(&mut self, label: Option<&syn::Label>, is_loop: bool, expr: &Expr) {
        self.inner
            .push((label.map(|label| label.name.ident.to_string()), is_loop));
        visit::visit_expr(self, expr);
        self.inner.pop();
    }

    fn jump(
        &mut self,
        label: Option<&syn::Lifetime>,
        is_continue: bool,
        value: Option<syn::ExprBreak>,
    ) {
        let label = label.map(|label| label.ident.to_string());
        let inner = match &label {
            None => self.inner.iter().any(|(_, is_loop)| *is_loop),
            Some(label) => self
                .inner
                .iter()
                .any(|(inner, _)| inner.as_deref() == Some(label.as_str())),
        };
        if !inner {
            self.jumps.push(Jump {
                label,
                is_continue,
                value,
            });
        }
    }
}

impl<'ast> Visit<'ast> for Exits {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Loop(expr_loop) => self.inside(expr_loop.label.as_ref(), true, expr),
            Expr::While(expr_while) => self.inside(expr_while.label.as_ref(), true, expr),
            Expr::ForLoop(expr_for) => self.inside(expr_for.label.as_ref(), true, expr),
            Expr::Block(block) if block.label.is_some() => {
                self.inside(block.label.as_ref(), false, expr)
            }
            Expr::Break(expr_break) => {
                let value = expr_break.expr.as_ref().map(|_| expr_break.clone());
                self.jump(expr_break.label.as_ref(), false, value);
                visit::visit_expr(self, expr);
            }
            Expr::Continue(expr_continue) => {
                self.jump(expr_continue.label.as_ref(), true, None);
            }
            Expr::Return(ret) => {
                self.returns.push(exit_of(ret.expr.as_deref()));
                visit::visit_expr(self, expr);
            }
            Expr::Try(_) => {
                self.has_try = true;
                visit::visit_expr(self, expr);
            }
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The variables of the enclosing scopes an expression uses, resolved
/// lexically; closures' captures and format-string captures count.
struct Uses<'a> {
    visible: &'a BTreeMap<String, BindingId>,
    shadowed: Vec<HashSet<String>>,
    found: BTreeSet<BindingId>,
}

impl Uses<'_> {
    fn resolve(&mut self, name: &str) {
        if self.shadowed.iter().any(|scope| scope.contains(name)) {
            return;
        }
        if let Some(&id) = self.visible.get(name) {
            self.found.insert(id);
        }
    }

    fn shadow(&mut self, pat: &Pat) {
        let mut names = PatNames::default();
        names.visit_pat(pat);
        self.shadowed.last_mut().expect("a scope").extend(names.0);
    }

    fn scan_tokens(&mut self, tokens: TokenStream) {
        let mut after_dot = false;
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    if !after_dot {
                        self.resolve(&ident.to_string());
                    }
                    after_dot = false;
                }
                TokenTree::Punct(punct) => after_dot = punct.as_char() == '.',
                TokenTree::Group(group) => {
                    self.scan_tokens(group.stream());
                    after_dot = false;
                }
                TokenTree::Literal(literal) => {
                    for name in format_captures(&literal.to_string()) {
                        self.resolve(&name);
                    }
                    after_dot = false;
                }
            }
        }
    }
}

/// The names a format string captures: `"{label} {x:?}"` → `label`, `x`.
pub fn format_captures(literal: &str) -> Vec<String> {
    if !(literal.starts_with('"') || literal.starts_with("r\"") || literal.starts_with("r#")) {
        return Vec::new();
    }
    let mut names = Vec::new();
    let chars: Vec<char> = literal.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '{' {
            if chars.get(i + 1) == Some(&'{') {
                i += 2;
                continue;
            }
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            if end < chars.len()
                && matches!(chars[end], '}' | ':')
                && name.starts_with(|c: char| c.is_alphabetic() || c == '_')
            {
                names.push(name);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[derive(Default)]
struct PatNames(Vec<String>);

impl<'ast> Visit<'ast> for PatNames {
    fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
        if is_binding_name(&pat.ident) {
            self.0.push(pat.ident.to_string());
        }
        visit::visit_pat_ident(self, pat);
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
        {
            self.resolve(&ident.to_string());
        }
        visit::visit_expr_path(self, path);
    }

    // `x = value` writes `x` without reading it: a `let x;` assigned in
    // pure code is not live before it.
    fn visit_expr_assign(&mut self, assign: &'ast syn::ExprAssign) {
        if single_ident(&assign.left).is_some() {
            self.visit_expr(&assign.right);
        } else {
            visit::visit_expr_assign(self, assign);
        }
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.shadowed.push(HashSet::new());
        visit::visit_block(self, block);
        self.shadowed.pop();
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.shadow(&local.pat);
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        self.shadowed.push(HashSet::new());
        for input in &closure.inputs {
            self.shadow(input);
        }
        self.visit_expr(&closure.body);
        self.shadowed.pop();
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.shadowed.push(HashSet::new());
        self.shadow(&arm.pat);
        if let Some((_, guard)) = &arm.guard {
            self.visit_expr(guard);
        }
        self.visit_expr(&arm.body);
        self.shadowed.pop();
    }

    fn visit_expr_for_loop(&mut self, for_loop: &'ast syn::ExprForLoop) {
        self.visit_expr(&for_loop.expr);
        self.shadowed.push(HashSet::new());
        self.shadow(&for_loop.pat);
        self.visit_block(&for_loop.body);
        self.shadowed.pop();
    }

    fn visit_expr_let(&mut self, expr_let: &'ast syn::ExprLet) {
        self.visit_expr(&expr_let.expr);
        self.shadow(&expr_let.pat);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The `let`s of a condition: `let P = e`, or each of a chain `a && let P = e`.
pub(super) fn condition_lets(cond: &Expr) -> Vec<&syn::ExprLet> {
    match cond {
        Expr::Let(expr_let) => vec![expr_let],
        Expr::Binary(binary) if matches!(binary.op, syn::BinOp::And(_)) => {
            let mut lets = condition_lets(&binary.left);
            lets.extend(condition_lets(&binary.right));
            lets
        }
        Expr::Paren(paren) => condition_lets(&paren.expr),
        _ => Vec::new(),
    }
}

/// The names `pat` binds against a value of type `ty`, with their types
/// (not named for a binding by reference: a copy of it is not its type).
fn pattern_types(pat: &Pat, ty: VarType) -> Vec<(String, VarType)> {
    let mut found = Vec::new();
    pattern_bindings(pat, ty, &mut found);
    found
        .into_iter()
        .map(|(pat_ident, ty)| {
            let by_ref =
                pat_ident.by_ref.is_some() || matches!(&ty, VarType::Written(Type::Reference(_)));
            let ty = if by_ref { VarType::Unknown } else { ty };
            (pat_ident.ident.to_string(), ty)
        })
        .collect()
}

/// The identifiers `pat` binds, matched against a value of type `ty`, each
/// with its type as far as the macro can name it, in binding order.
// Input:  `(Some(a), b)` against `StepOutput(split)`
// Output: `a: Part(Part(StepOutput(split), Element(0)), Some)`, `b: Part(StepOutput(split), Element(1))`
fn pattern_bindings<'p>(pat: &'p Pat, ty: VarType, out: &mut Vec<(&'p syn::PatIdent, VarType)>) {
    match pat {
        Pat::Ident(pat_ident) => {
            if let Some((_, sub)) = &pat_ident.subpat {
                pattern_bindings(sub, ty.clone(), out);
            }
            out.push((pat_ident, ty));
        }
        Pat::Type(pat_type) => {
            pattern_bindings(&pat_type.pat, VarType::Written((*pat_type.ty).clone()), out)
        }
        Pat::Paren(paren) => pattern_bindings(&paren.pat, ty, out),
        Pat::Tuple(tuple) => {
            let elems = match &ty {
                VarType::JoinOutput(steps) if steps.len() == tuple.elems.len() => steps
                    .iter()
                    .map(|step| VarType::StepOutput(step.clone()))
                    .collect(),
                VarType::Written(Type::Tuple(types)) if types.elems.len() == tuple.elems.len() => {
                    types
                        .elems
                        .iter()
                        .map(|ty| VarType::Written(ty.clone()))
                        .collect()
                }
                VarType::Unknown => vec![VarType::Unknown; tuple.elems.len()],
                known => (0..tuple.elems.len())
                    .map(|index| VarType::Part(Box::new(known.clone()), Part::Element(index)))
                    .collect(),
            };
            for (pat, ty) in tuple.elems.iter().zip(elems) {
                pattern_bindings(pat, ty, out);
            }
        }
        Pat::TupleStruct(tuple) => {
            let variant = tuple
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            // `Some`, `Ok` and `Err` as written, or through their
            // enum's name: another enum's variant of that name is not
            // one of them.
            let std_variant = match tuple.path.segments.len() {
                1 => true,
                2 => matches!(
                    tuple.path.segments[0].ident.to_string().as_str(),
                    "Option" | "Result"
                ),
                _ => false,
            };
            let payload = if tuple.elems.len() == 1 && std_variant {
                ty.payload(&variant)
            } else {
                VarType::Unknown
            };
            for pat in &tuple.elems {
                pattern_bindings(pat, payload.clone(), out);
            }
        }
        Pat::Struct(pat_struct) => {
            for field in &pat_struct.fields {
                pattern_bindings(&field.pat, VarType::Unknown, out);
            }
        }
        Pat::Slice(slice) => {
            for pat in &slice.elems {
                pattern_bindings(pat, VarType::Unknown, out);
            }
        }
        Pat::Reference(reference) => pattern_bindings(&reference.pat, VarType::Unknown, out),
        Pat::Or(or) => {
            if let Some(first) = or.cases.first() {
                pattern_bindings(first, ty, out);
            }
        }
        _ => {}
    }
}
