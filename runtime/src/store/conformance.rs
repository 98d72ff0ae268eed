//! The store conformance suite: one set of checks every `Store` must pass.
