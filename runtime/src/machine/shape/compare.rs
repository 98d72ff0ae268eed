//! [`Shape::digest`] and [`Shape::compare`].

use std::fmt::Display;

use super::model::{Field, Shape, ShapeChange, Variant, VariantDisplay, VariantShape};

impl Shape {
    /// The digest tag and display name of a shape without contents.
    pub(super) fn leaf(&self) -> Option<(u8, &'static str)> {
        Some(match self {
            Shape::Bool => (0x01, "bool"),
            Shape::I8 => (0x02, "i8"),
            Shape::I16 => (0x03, "i16"),
            Shape::I32 => (0x04, "i32"),
            Shape::I64 => (0x05, "i64"),
            Shape::I128 => (0x06, "i128"),
            Shape::U8 => (0x07, "u8"),
            Shape::U16 => (0x08, "u16"),
            Shape::U32 => (0x09, "u32"),
            Shape::U64 => (0x0a, "u64"),
            Shape::U128 => (0x0b, "u128"),
            Shape::F32 => (0x0c, "f32"),
            Shape::F64 => (0x0d, "f64"),
            Shape::Char => (0x0e, "char"),
            Shape::Str => (0x0f, "str"),
            Shape::Bytes => (0x10, "bytes"),
            Shape::Unit => (0x11, "()"),
            Shape::Any => (0x2a, "any"),
            Shape::Unknown => (0x2b, "unknown"),
            _ => return None,
        })
    }

    /// A stable 64-bit digest: XXH3-64 (seed 0) of a canonical encoding that
    /// covers exactly what a JSON record can tell apart, so it is the same on
    /// every build, platform and Rust version.
    ///
    /// The encoding: one tag byte per shape, then its contents; counts and
    /// string lengths are `u32` little-endian, strings are UTF-8 after their
    /// length. Tags: `0x01`–`0x11` for `Bool`, `I8`, `I16`, `I32`, `I64`,
    /// `I128`, `U8`, `U16`, `U32`, `U64`, `U128`, `F32`, `F64`, `Char`, `Str`,
    /// `Bytes`, `Unit` in that order; `0x20` Option (inner); `0x21` Seq
    /// (element); `0x22` Map (key, value); `0x23` Tuple (count, elements);
    /// `0x24` UnitStruct; `0x25` NewtypeStruct (inner); `0x26` TupleStruct
    /// (count, fields); `0x27` Struct (count, then name and shape of each field
    /// **sorted by name**); `0x28` Enum (count, then per variant **sorted by
    /// name**: its name, a kind byte `0x30` unit, `0x31` newtype (shape),
    /// `0x32` tuple (count, shapes), `0x33` struct (fields as for Struct));
    /// `0x29` Ref (the `u32` number of containers between it and the nearest
    /// enclosing container of that name, 0 for the innermost); `0x2c` a Ref
    /// that no container encloses (its name); `0x2a` Any; `0x2b` Unknown.
    /// Container names are left out (JSON never writes them), and so is the
    /// order of struct fields; variant names are data and count.
    pub fn digest(&self) -> u64 {
        let mut out = Vec::new();
        self.encode(&mut out, &mut Vec::new());
        xxhash_rust::xxh3::xxh3_64(&out)
    }

    fn encode<'s>(&'s self, out: &mut Vec<u8>, scope: &mut Vec<&'s str>) {
        fn count(out: &mut Vec<u8>, n: usize) {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
        fn string(out: &mut Vec<u8>, s: &str) {
            count(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        fn all<'s>(out: &mut Vec<u8>, scope: &mut Vec<&'s str>, shapes: &'s [Shape]) {
            count(out, shapes.len());
            shapes.iter().for_each(|s| s.encode(out, scope));
        }
        fn fields<'s>(out: &mut Vec<u8>, scope: &mut Vec<&'s str>, fields: &'s [Field]) {
            let mut sorted: Vec<&Field> = fields.iter().collect();
            sorted.sort_by(|a, b| a.name.cmp(&b.name));
            count(out, sorted.len());
            for f in sorted {
                string(out, &f.name);
                f.shape.encode(out, scope);
            }
        }
        let (tag, name) = match self {
            Shape::Option(_) => (0x20, None),
            Shape::Seq(_) => (0x21, None),
            Shape::Map { .. } => (0x22, None),
            Shape::Tuple(_) => (0x23, None),
            Shape::UnitStruct(_) => (0x24, None),
            Shape::NewtypeStruct { name, .. } => (0x25, Some(name.as_str())),
            Shape::TupleStruct { name, .. } => (0x26, Some(name.as_str())),
            Shape::Struct { name, .. } => (0x27, Some(name.as_str())),
            Shape::Enum { name, .. } => (0x28, Some(name.as_str())),
            Shape::Ref(name) if scope.contains(&name.as_str()) => (0x29, None),
            Shape::Ref(_) => (0x2c, None),
            leaf => (leaf.leaf().map_or(0, |(tag, _)| tag), None),
        };
        out.push(tag);
        scope.extend(name);
        match self {
            Shape::Option(s) | Shape::Seq(s) | Shape::NewtypeStruct { inner: s, .. } => {
                s.encode(out, scope);
            }
            Shape::Map { key, value } => {
                key.encode(out, scope);
                value.encode(out, scope);
            }
            Shape::Tuple(v) | Shape::TupleStruct { fields: v, .. } => all(out, scope, v),
            Shape::Struct { fields: f, .. } => fields(out, scope, f),
            Shape::Enum { variants, .. } => {
                let mut sorted: Vec<&Variant> = variants.iter().collect();
                sorted.sort_by(|a, b| a.name.cmp(&b.name));
                count(out, sorted.len());
                for v in sorted {
                    string(out, &v.name);
                    match &v.shape {
                        VariantShape::Unit => out.push(0x30),
                        VariantShape::Newtype(s) => {
                            out.push(0x31);
                            s.encode(out, scope);
                        }
                        VariantShape::Tuple(v) => {
                            out.push(0x32);
                            all(out, scope, v);
                        }
                        VariantShape::Struct(f) => {
                            out.push(0x33);
                            fields(out, scope, f);
                        }
                    }
                }
            }
            Shape::Ref(name) => match scope.iter().rev().position(|s| s == name) {
                Some(up) => count(out, up),
                None => string(out, name),
            },
            _ => {}
        }
        if name.is_some() {
            scope.pop();
        }
    }

    /// How `new` differs from `old` (old = what stored records were written with).
    ///
    /// Structs match fields by name and enums variants by name; tuples, tuple
    /// structs and tuple variants match positionally (a length change is
    /// breaking); options, sequences and maps elementwise; other shapes must be
    /// of one kind (a `u32` wrapped in a newtype is a change). Container names
    /// are ignored (JSON never writes them): a renamed type with the same
    /// contents is `Same`, and a `Ref` equals a `Ref` to the container at the
    /// same distance up (or, enclosed by none, of the same name). `Unknown` on
    /// either side is `Same`; `Any` equals only `Any`. JSON's `null` (unit,
    /// unit structs, `None`) is not unified. Paths in the messages start at the
    /// root container's name (`$` for an unnamed root): `.field`, `[]` for a
    /// sequence's element, `{key}`/`{}` for a map's key/value, `.0` for a
    /// position, `::Variant` for a variant.
    pub fn compare(old: &Shape, new: &Shape) -> ShapeChange {
        let root = match new {
            Shape::UnitStruct(name)
            | Shape::NewtypeStruct { name, .. }
            | Shape::TupleStruct { name, .. }
            | Shape::Struct { name, .. }
            | Shape::Enum { name, .. } => name.clone(),
            _ => "$".to_owned(),
        };
        let mut c = Compare::default();
        c.walk(old, new, &root);
        match (c.breaking.is_empty(), c.additive.is_empty()) {
            (true, true) => ShapeChange::Same,
            (true, false) => ShapeChange::Additive(c.additive),
            (false, _) => ShapeChange::Breaking(c.breaking.into_iter().chain(c.additive).collect()),
        }
    }
}

#[derive(Default)]
struct Compare<'a> {
    additive: Vec<String>,
    breaking: Vec<String>,
    old_scope: Vec<&'a str>,
    new_scope: Vec<&'a str>,
}

fn at(path: &str, owner: &str) -> String {
    match path == owner {
        true => String::new(),
        false => format!(" at `{path}`"),
    }
}

impl<'a> Compare<'a> {
    fn walk(&mut self, old: &'a Shape, new: &'a Shape, path: &str) {
        use Shape as S;
        match (old, new) {
            (S::Unknown, _) | (_, S::Unknown) => {}
            (S::Option(a), S::Option(b)) => self.walk(a, b, path),
            (S::Seq(a), S::Seq(b)) => self.walk(a, b, &format!("{path}[]")),
            (S::Map { key: k, value: v }, S::Map { key: k2, value: v2 }) => {
                self.walk(k, k2, &format!("{path}{{key}}"));
                self.walk(v, v2, &format!("{path}{{}}"));
            }
            (S::Tuple(a), S::Tuple(b)) => self.positional(a, b, path, &old, &new),
            (S::UnitStruct(_), S::UnitStruct(_)) => {}
            (S::NewtypeStruct { name: x, inner: a }, S::NewtypeStruct { name: y, inner: b }) => {
                self.scoped(x, y, |c| c.walk(a, b, path));
            }
            (S::TupleStruct { name: x, fields: a }, S::TupleStruct { name: y, fields: b }) => {
                self.scoped(x, y, |c| c.positional(a, b, path, &old, &new));
            }
            (S::Struct { name: x, fields: a }, S::Struct { name: y, fields: b }) => {
                self.scoped(x, y, |c| c.fields(a, b, y, path));
            }
            (
                S::Enum {
                    name: x,
                    variants: a,
                },
                S::Enum {
                    name: y,
                    variants: b,
                },
            ) => {
                self.scoped(x, y, |c| c.variants(a, b, y, path));
            }
            (S::Ref(x), S::Ref(y)) => {
                let up = |scope: &[&str], name: &str| scope.iter().rev().position(|s| *s == name);
                let same = match (up(&self.old_scope, x), up(&self.new_scope, y)) {
                    (None, None) => x == y,
                    (i, j) => i == j,
                };
                if !same {
                    self.changed(path, &old, &new);
                }
            }
            (a, b) if a.leaf().is_some() && a == b => {}
            _ => self.changed(path, &old, &new),
        }
    }

    fn changed(&mut self, path: &str, old: &dyn Display, new: &dyn Display) {
        self.breaking.push(format!("`{path}`: {old} became {new}"));
    }

    fn scoped(&mut self, old: &'a str, new: &'a str, f: impl FnOnce(&mut Self)) {
        self.old_scope.push(old);
        self.new_scope.push(new);
        f(self);
        self.old_scope.pop();
        self.new_scope.pop();
    }

    fn positional(
        &mut self,
        a: &'a [Shape],
        b: &'a [Shape],
        path: &str,
        old: &dyn Display,
        new: &dyn Display,
    ) {
        if a.len() != b.len() {
            let (x, y) = (a.len(), b.len());
            return self.breaking.push(format!(
                "`{path}`: {old} became {new} ({x} fields became {y})"
            ));
        }
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            self.walk(x, y, &format!("{path}.{i}"));
        }
    }

    fn fields(&mut self, a: &'a [Field], b: &'a [Field], owner: &str, path: &str) {
        for f in a {
            match b.iter().find(|g| g.name == f.name) {
                Some(g) => self.walk(&f.shape, &g.shape, &format!("{path}.{}", f.name)),
                None => {
                    let at = at(path, owner);
                    self.breaking
                        .push(format!("field `{}` removed from `{owner}`{at}", f.name));
                }
            }
        }
        for g in b.iter().filter(|g| !a.iter().any(|f| f.name == g.name)) {
            let (name, shape, at) = (&g.name, &g.shape, at(path, owner));
            self.additive
                .push(format!("field `{name}` ({shape}) added to `{owner}`{at}"));
        }
    }

    fn variants(&mut self, a: &'a [Variant], b: &'a [Variant], owner: &str, path: &str) {
        for v in a {
            let Some(w) = b.iter().find(|w| w.name == v.name) else {
                let at = at(path, owner);
                self.breaking
                    .push(format!("variant `{}` removed from `{owner}`{at}", v.name));
                continue;
            };
            let (path, owner) = (
                format!("{path}::{}", v.name),
                format!("{owner}::{}", v.name),
            );
            match (&v.shape, &w.shape) {
                (VariantShape::Unit, VariantShape::Unit) => {}
                (VariantShape::Newtype(x), VariantShape::Newtype(y)) => self.walk(x, y, &path),
                (VariantShape::Tuple(x), VariantShape::Tuple(y)) => {
                    self.positional(x, y, &path, &VariantDisplay(v), &VariantDisplay(w));
                }
                (VariantShape::Struct(x), VariantShape::Struct(y)) => {
                    self.fields(x, y, &owner, &path)
                }
                _ => self.changed(&path, &VariantDisplay(v), &VariantDisplay(w)),
            }
        }
        for w in b.iter().filter(|w| !a.iter().any(|v| v.name == w.name)) {
            let at = at(path, owner);
            self.additive
                .push(format!("variant `{}` added to `{owner}`{at}", w.name));
        }
    }
}
