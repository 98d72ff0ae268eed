//! The shape types: what a trace yields and what a comparison reads.

use std::fmt::{self, Display};

use serde::{Deserialize, Serialize};

/// The shape of a stored type as serde's deserialization (human-readable, as JSON) sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `i128`.
    I128,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `u128`.
    U128,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string (`deserialize_str`, `_string` or `_identifier`).
    Str,
    /// A byte buffer (`deserialize_bytes` or `_byte_buf`).
    Bytes,
    /// `()`.
    Unit,
    /// An option.
    Option(Box<Shape>),
    /// A sequence.
    Seq(Box<Shape>),
    /// A map.
    Map {
        /// The key's shape.
        key: Box<Shape>,
        /// The value's shape.
        value: Box<Shape>,
    },
    /// A tuple (also an array `[T; N]`).
    Tuple(Vec<Shape>),
    /// A unit struct, by name.
    UnitStruct(String),
    /// A newtype struct.
    NewtypeStruct {
        /// The struct's name.
        name: String,
        /// The wrapped shape.
        inner: Box<Shape>,
    },
    /// A tuple struct.
    TupleStruct {
        /// The struct's name.
        name: String,
        /// The fields, in order.
        fields: Vec<Shape>,
    },
    /// A struct with named fields (in declaration order).
    Struct {
        /// The struct's name.
        name: String,
        /// The fields serde deserializes (skipped ones are absent).
        fields: Vec<Field>,
    },
    /// An (externally tagged) enum.
    Enum {
        /// The enum's name.
        name: String,
        /// The variants, in declaration order.
        variants: Vec<Variant>,
    },
    /// A reference to a container that encloses this point (recursive types), by name.
    Ref(String),
    /// Deserialized with `deserialize_any` (e.g. `serde_json::Value`): no fixed structure.
    Any,
    /// Never reached while tracing (e.g. the element of a sequence cut short by recursion).
    Unknown,
}

/// A named field of a struct or struct variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The field's name as serde reads it (after `rename`).
    pub name: String,
    /// The field's shape.
    pub shape: Shape,
}

/// A variant of an enum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// The variant's name as serde reads it (after `rename`).
    pub name: String,
    /// The variant's contents.
    pub shape: VariantShape,
}

/// The contents of an enum variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantShape {
    /// A unit variant.
    Unit,
    /// A newtype variant.
    Newtype(Box<Shape>),
    /// A tuple variant.
    Tuple(Vec<Shape>),
    /// A struct variant.
    Struct(Vec<Field>),
}

/// Why a type's shape could not be traced (e.g. an untagged enum, `#[serde(flatten)]`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

/// How a new shape differs from an old one (see [`Shape::compare`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeChange {
    /// No difference that JSON records could notice.
    Same,
    /// Only additions: new struct fields, new enum variants (anywhere in the tree). Each string
    /// says what and where, e.g. "field `priority` (u8) added to `Order`".
    Additive(Vec<String>),
    /// Anything else: a field or variant removed, a type changed, a tuple's length changed,
    /// a variant's kind changed. Lists every difference, breaking ones first, then any
    /// additive ones found beside them.
    Breaking(Vec<String>),
}
pub(super) struct VariantDisplay<'a>(pub(super) &'a Variant);

impl Display for VariantDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)?;
        match &self.0.shape {
            VariantShape::Unit => Ok(()),
            VariantShape::Newtype(s) => write!(f, "({s})"),
            VariantShape::Tuple(v) => write_list(f, "(", v, ")"),
            VariantShape::Struct(v) => write_fields(f, v),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, open: &str, items: &[Shape], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (i, s) in items.iter().enumerate() {
        write!(f, "{}{s}", if i > 0 { ", " } else { "" })?;
    }
    f.write_str(close)
}

fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[Field]) -> fmt::Result {
    if fields.is_empty() {
        return f.write_str(" {}");
    }
    for (i, field) in fields.iter().enumerate() {
        write!(
            f,
            "{}{}: {}",
            if i > 0 { ", " } else { " { " },
            field.name,
            field.shape
        )?;
    }
    f.write_str(" }")
}

/// Compact, deterministic, one line: `Order { id: str, note: str?, items: [Item { qty: u32 }] }`,
/// enums `Kind { A | B(u32) | C { x: i64 } }`, maps `{str: u32}`, tuples `(str, u64)`,
/// newtype and tuple structs `Id(str)`, a `Ref` and a unit struct by name, `any`, `unknown`,
/// unit `()`. Fields and variants appear in declaration order.
impl Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((_, name)) = self.leaf() {
            return f.write_str(name);
        }
        match self {
            Shape::Option(s) => write!(f, "{s}?"),
            Shape::Seq(s) => write!(f, "[{s}]"),
            Shape::Map { key, value } => write!(f, "{{{key}: {value}}}"),
            Shape::Tuple(v) => write_list(f, "(", v, ")"),
            Shape::UnitStruct(name) | Shape::Ref(name) => f.write_str(name),
            Shape::NewtypeStruct { name, inner } => write!(f, "{name}({inner})"),
            Shape::TupleStruct { name, fields } => write_list(f, &format!("{name}("), fields, ")"),
            Shape::Struct { name, fields } => {
                f.write_str(name)?;
                write_fields(f, fields)
            }
            Shape::Enum { name, variants } => {
                write!(f, "{name} {{")?;
                for (i, v) in variants.iter().enumerate() {
                    write!(
                        f,
                        "{}{}",
                        if i > 0 { " | " } else { " " },
                        VariantDisplay(v)
                    )?;
                }
                f.write_str(if variants.is_empty() { "}" } else { " }" })
            }
            _ => Ok(()),
        }
    }
}
