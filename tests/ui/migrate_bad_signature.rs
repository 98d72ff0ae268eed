use sagaflow::prelude::*;

#[migrate(from = v1::lookup)]
async fn no_target(_a: u32, _b: u32) {}

#[migrate(from = "v1", to = lookup, into = lookup)]
fn bad_arguments(old: u32) -> Migration<u32> {
    Migration::To(old)
}

fn main() {}
