//! Compile errors: one trybuild case per diagnostic under `tests/ui/`, each
//! with its reviewed `.stderr`. The messages are compiler-version specific,
//! so they run on the toolchain they were written for.

#[rustversion::attr(not(stable(1.95)), ignore = "ui output is written for rustc 1.95")]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
