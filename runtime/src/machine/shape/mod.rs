//! [`Shape`]: the structure of a stored type as serde's (human-readable,
//! JSON) deserialization sees it, traced from `T::deserialize` alone, with a
//! stable [`digest`](Shape::digest) for machine fingerprints and a
//! [`compare`](Shape::compare) that tells an operator what changed.
//!
//! # Tracing
//!
//! [`trace`] drives `T::deserialize` with a private `serde::Deserializer` over
//! as many passes as needed (at most 10,000; nesting at most 128 levels).
//! Every pass feeds one value: structs get every name of their `FIELDS`
//! (identifiers through `visit_str`), options `Some`, sequences and maps one
//! element, enums one variant, fed by name. What a pass learns is kept in a
//! registry of containers keyed by the name serde is given plus the type name
//! of the visitor (so `a::Kind` and `b::Kind`, or `Wrap<u32>` and
//! `Wrap<String>`, never mix; no address is used). The result is assembled
//! from the registry at the end, so an enum's variants seen at different
//! places of one type are all in the one shape.
//!
//! Exploration: for each enum the registry remembers which variants were
//! traced *in full* (not below a recursive occurrence). At each encounter an
//! enum picks its first variant not traced in full, else the first variant
//! whose traced contents lead (through containers not being traced right now)
//! to an enum with such a variant, else its first variant. Passes go on until
//! no enum lacks a variant; a pass that teaches nothing new ends the trace
//! with an error naming the variant not reached.
//!
//! Recursion: a container met again inside itself is a recursive occurrence;
//! below it every choice cuts: options are `None`, sequences and maps empty,
//! enums take the variant known to need the least nesting (else one not yet
//! traced and not in progress, else any not in progress). In the result the
//! inner occurrence is [`Shape::Ref`]. An infinite type hits the depth limit.
//!
//! Samples: numbers are fed 0 then 1, bools `false` then `true`, chars `'a'`
//! then `'0'`, strings `""`, `"0"`, a nil UUID, `"1970-01-01T00:00:00Z"`,
//! `"127.0.0.1"`, `"a"` and a few more dates, times, addresses and a URL (see
//! `STRS`). When a pass fails, the next sample is tried at the position fed
//! last before the error: the innermost container and the path of field and
//! variant names and element indexes inside it. A field name reported as a
//! duplicate (a `#[serde(alias)]`, which serde lists in `FIELDS`) is skipped
//! and the field's own name fed first from then on; variant aliases are
//! variants of their own.
//!
//! Not traceable (a [`ShapeError`] naming where): what calls `deserialize_any`
//! and rejects the unit fed to it (untagged and internally tagged enums, most
//! `#[serde(flatten)]` structs, `serde_json::Number`), adjacently tagged enums,
//! a container whose shape changes with the data it reads, types rejecting
//! every sample, infinite types. `deserialize_any` that accepts unit (e.g.
//! `serde_json::Value`, an untagged enum with a unit variant) traces to
//! [`Shape::Any`], and so does `serde_json::value::RawValue`.

mod compare;
mod de;
mod model;
mod registry;
#[cfg(test)]
mod tests;
mod trace;
mod tracer;

pub use model::{Field, Shape, ShapeChange, ShapeError, Variant, VariantShape};
pub use trace::trace;
