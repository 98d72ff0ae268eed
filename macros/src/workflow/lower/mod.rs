//! Stage 3: the body as a state machine. Builds, in one pass, a tree of the
//! statements that contain suspension points (for codegen, which keeps the
//! user's block structure) and a control-flow graph over them (for liveness
//! and edges). A loop with steps is a cycle in the same graph: its back
//! edges (`continue`, the end of the body) lead to its head.

mod branches;
mod calls;
mod exits;
mod ir;
mod liveness;
mod loops;
mod lowerer;
mod pure;
mod sites;
mod types;
mod visitors;

pub use calls::{assignment_right, is_compound, step_call};
pub(crate) use exits::is_panic;
#[cfg(test)]
pub use ir::EdgeIr;
pub use ir::{
    Block, Item, LabelIr, LoopHead, LoopItem, Machine, NodeId, Part, Site, SiteKind, TargetIr,
    VarType,
};
pub use lowerer::lower;
pub use visitors::camel_case;
pub(crate) use visitors::{condition_lets, contains_step};
