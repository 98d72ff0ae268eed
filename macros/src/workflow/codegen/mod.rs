//! Stage 4: the lowered machine as Rust: the unit struct, the state enum, the
//! `Workflow` impl with its resume segments, the static `StateMachine`, and
//! the compile-time saga checks.
//!
//! One file per thing generated: `generate.rs` the unit struct, the state
//! enum and `impl Workflow` (`begin`, `resume`'s match, `suspension`);
//! `resume.rs` how each state resumes (its step's attempt, a join's
//! branches, a wait's result) and `segment.rs` the code it runs then, up to
//! the next state; `machine.rs` the static `StateMachine` and the
//! fingerprints; `compensate.rs` the compensation dispatch; `checks.rs` the
//! compile-time saga checks; `fallback.rs` what is emitted beside errors.
//! `types.rs` holds the types they all name.

mod checks;
mod compensate;
mod declared;
mod fallback;
mod generate;
mod machine;
mod resume;
mod segment;
mod types;

pub use fallback::fallback;
pub use generate::generate;
// For the lowering's tests, which show a stored variable's type as written.
#[cfg(test)]
pub(super) use types::type_tokens;
