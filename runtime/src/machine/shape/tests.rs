//! The tracer, digest, comparison and display, on fixture types.

use super::*;
use fx::*;
use serde::de;

/// The fixtures, one type a line.
#[rustfmt::skip]
#[allow(dead_code)]
mod fx {
    use std::collections::{BTreeMap, HashMap};
    use std::net::{IpAddr, SocketAddr};
    use std::num::NonZeroU32;
    use serde::{de, Deserialize};
    use serde_json::value::RawValue;

    #[derive(Deserialize)] pub struct Prims { a: bool, b: i8, c: i16, d: i32, e: i64, f: i128, g: u8, h: u16, i: u32, j: u64, k: u128, l: f32, m: f64, n: char, o: String, p: () }
    #[derive(Deserialize)] pub struct Item { qty: u32, sku: String }
    #[derive(Deserialize)] pub struct Order { id: String, items: Vec<Item>, note: Option<String>, priority: u8 }
    #[derive(Deserialize)] pub struct Reordered { priority: u8, note: Option<String>, items: Vec<Item>, id: String }
    #[derive(Deserialize)] pub struct Std { a: BTreeMap<String, u32>, b: HashMap<u64, Vec<bool>>, c: (String, u64), d: [u8; 4], e: Option<Option<i8>> }
    #[derive(Deserialize)] #[serde(rename_all = "camelCase")]
    pub struct Attrs { #[serde(rename = "ID")] id: u64, first_name: String, #[serde(default)] retries: u32, #[serde(skip)] cache: Vec<u8>, #[serde(alias = "count")] total: u32, #[serde(alias = "zz")] aa: bool }
    #[derive(Deserialize)] pub enum Kind { A, B(u32), C { x: i64 }, D(String, bool) }
    #[derive(Deserialize)] pub struct Unit;
    #[derive(Deserialize)] pub struct Newtype(Unit);
    #[derive(Deserialize)] pub struct Pair(u8, Kind);
    #[derive(Deserialize)] pub enum Inner { P, Q(u8), R { z: bool } }
    #[derive(Deserialize)] pub enum Outer { A, B(u32), C(Inner), D(Option<Vec<Deep>>), E(BTreeMap<String, Inner>) }
    #[derive(Deserialize)] pub enum Deep { X, Y(Deeper) }
    #[derive(Deserialize)] pub enum Deeper { M, N(u8), O { k: Deepest } }
    #[derive(Deserialize)] pub enum Deepest { Last, Found(char) }
    pub mod a { #[derive(serde::Deserialize)] pub enum Kind { X, Y } }
    pub mod b { #[derive(serde::Deserialize)] pub enum Kind { P(u8), Q, R } }
    #[derive(Deserialize)] pub struct Labeled<T> { v: T }
    #[derive(Deserialize)] pub struct Twins { a: a::Kind, b: b::Kind, c: Labeled<u32>, d: Labeled<Labeled<String>> }
    #[derive(Deserialize)] pub struct Tree { children: Vec<Tree>, label: String }
    #[derive(Deserialize)] pub enum List { Nil, Cons(u32, Box<List>) }
    #[derive(Deserialize)] pub enum E { A(Box<E>), B }
    #[derive(Deserialize)] pub struct Link { next: Option<Box<Link>>, map: BTreeMap<String, Link> }
    #[derive(Deserialize)] pub struct Ping { pong: Box<Pong> }
    #[derive(Deserialize)] pub enum Pong { Stop, Again(Ping) }
    #[derive(Deserialize)] pub struct W(Option<Box<W>>);
    #[derive(Deserialize)] pub enum Expr { Add(Box<Expr>, Box<Expr>), Neg(Box<Expr>), Lit(i64), Let { name: String, value: Box<Expr>, kind: Inner } }
    #[derive(Deserialize)] pub struct Infinite { again: Box<Infinite> }
    #[derive(Deserialize)] pub enum Loop { A(Box<Loop>), B(Box<Loop>, u8) }
    #[derive(Deserialize)] pub enum Never {}

    /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex digits).
    #[derive(Deserialize)] #[serde(try_from = "String")] pub struct Uuid;
    impl TryFrom<String> for Uuid {
        type Error = String;
        fn try_from(s: String) -> Result<Self, String> {
            let groups: Vec<usize> = s.split('-').map(str::len).collect();
            let hex = s.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
            (hex && groups == [8, 4, 4, 4, 12]).then_some(Uuid).ok_or(s)
        }
    }
    /// An RFC 3339 timestamp (checked loosely).
    #[derive(Deserialize)] pub struct Stamp(#[serde(deserialize_with = "rfc3339")] u64);
    fn rfc3339<'de, D: de::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        let b = s.as_bytes();
        let ok = b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z';
        ok.then_some(0).ok_or_else(|| de::Error::custom(format!("not RFC 3339: {s:?}")))
    }
    #[derive(Deserialize)] #[serde(try_from = "bool")] pub struct Truthy;
    impl TryFrom<bool> for Truthy {
        type Error = &'static str;
        fn try_from(b: bool) -> Result<Self, &'static str> { b.then_some(Truthy).ok_or("false") }
    }
    #[derive(Deserialize)] pub struct Range { start: NonZeroU32, end: NonZeroU32 }
    #[derive(Deserialize)] pub struct Validated { id: Uuid, at: Stamp, ip: IpAddr, peer: SocketAddr, range: Range, took: std::time::Duration, flag: Truthy }
    #[derive(Deserialize)] pub struct Picky { ok: u8, #[serde(deserialize_with = "never")] bad: String }
    fn never<'de, D: de::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Err(de::Error::custom(format!("no {:?}", String::deserialize(d)?)))
    }
    /// Reads a `Kind`, then a `u8` after `A` and a string after anything else.
    pub struct Dyn;
    impl<'de> Deserialize<'de> for Dyn {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> de::Visitor<'de> for V {
                type Value = Dyn;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("a pair") }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Dyn, A::Error> {
                    match seq.next_element::<Kind>()? {
                        Some(Kind::A) => seq.next_element::<u8>()?.map(drop),
                        _ => seq.next_element::<String>()?.map(drop),
                    };
                    Ok(Dyn)
                }
            }
            d.deserialize_tuple(2, V)
        }
    }
    #[derive(Deserialize)] pub struct Wrap { d: Dyn }
    /// A one-element tuple whose element's error is swallowed.
    pub struct Lenient;
    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> de::Visitor<'de> for V {
                type Value = Lenient;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("anything") }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
                    let _ = seq.next_element::<Picky>();
                    Ok(Lenient)
                }
            }
            d.deserialize_tuple(1, V)
        }
    }
    #[derive(Deserialize)] pub struct Calm { a: Lenient, b: Option<Box<Calm>>, c: Range }
    #[derive(Deserialize)] pub struct Raw { value: serde_json::Value, raw: Box<RawValue>, maybe: Option<Box<RawValue>>, map: serde_json::Map<String, serde_json::Value>, ignored: de::IgnoredAny }
    #[derive(Deserialize)] #[serde(untagged)] pub enum Untagged { N(u32), S(String) }
    #[derive(Deserialize)] #[serde(untagged)] pub enum UntaggedUnit { N(u32), Nothing }
    #[derive(Deserialize)] #[serde(tag = "type")] pub enum Internal { A { x: u8 }, B }
    #[derive(Deserialize)] #[serde(tag = "t", content = "c")] pub enum Adjacent { A(u8), B }
    #[derive(Deserialize)] pub struct Flat { id: u32, #[serde(flatten)] item: Item }
    #[derive(Deserialize)] pub struct Holder { name: String, payload: Untagged }
}

fn shown<T: de::DeserializeOwned>() -> String {
    trace::<T>().map_or_else(|e| format!("error: {e}"), |s| s.to_string())
}

fn err<T: de::DeserializeOwned>() -> String {
    trace::<T>().map_or_else(|e| e.0, |s| format!("traced: {s}"))
}

fn strukt(name: &str, fields: &[(&str, Shape)]) -> Shape {
    let field = |(n, s): &(&str, Shape)| Field {
        name: (*n).into(),
        shape: s.clone(),
    };
    Shape::Struct {
        name: name.into(),
        fields: fields.iter().map(field).collect(),
    }
}

fn enm(name: &str, variants: &[(&str, VariantShape)]) -> Shape {
    let var = |(n, s): &(&str, VariantShape)| Variant {
        name: (*n).into(),
        shape: s.clone(),
    };
    Shape::Enum {
        name: name.into(),
        variants: variants.iter().map(var).collect(),
    }
}

fn seq(s: Shape) -> Shape {
    Shape::Seq(Box::new(s))
}

#[test]
fn primitives_std_types_and_attributes() {
    assert_eq!(
        shown::<Prims>(),
        "Prims { a: bool, b: i8, c: i16, d: i32, e: i64, f: i128, g: u8, h: u16, i: u32, \
         j: u64, k: u128, l: f32, m: f64, n: char, o: str, p: () }"
    );
    assert_eq!(trace::<u16>(), Ok(Shape::U16));
    assert_eq!(trace::<Unit>(), Ok(Shape::UnitStruct("Unit".into())));
    let order = "Order { id: str, items: [Item { qty: u32, sku: str }], note: str?, priority: u8 }";
    assert_eq!(shown::<Order>(), order);
    assert_eq!(
        shown::<Std>(),
        "Std { a: {str: u32}, b: {u64: [bool]}, c: (str, u64), d: (u8, u8, u8, u8), e: i8?? }"
    );
    assert_eq!(
        shown::<Attrs>(),
        "Attrs { ID: u64, firstName: str, retries: u32, total: u32, aa: bool }"
    );
}

#[test]
fn enums_of_every_kind_and_nested_enums() {
    let kind = "Kind { A | B(u32) | C { x: i64 } | D(str, bool) }";
    assert_eq!(shown::<Kind>(), kind);
    assert_eq!(
        shown::<(Newtype, Pair)>(),
        format!("(Newtype(Unit), Pair(u8, {kind}))")
    );
    let Ok(Shape::Enum { variants, .. }) = trace::<Kind>() else {
        panic!("not an enum")
    };
    let x = vec![Field {
        name: "x".into(),
        shape: Shape::I64,
    }];
    assert_eq!(variants[2].shape, VariantShape::Struct(x));
    let inner = "Inner { P | Q(u8) | R { z: bool } }";
    let deep = "Deep { X | Y(Deeper { M | N(u8) | O { k: Deepest { Last | Found(char) } } }) }";
    assert_eq!(
        shown::<Outer>(),
        format!("Outer {{ A | B(u32) | C({inner}) | D([{deep}]?) | E({{str: {inner}}}) }}")
    );
    assert_eq!(
        shown::<Twins>(),
        "Twins { a: Kind { X | Y }, b: Kind { P(u8) | Q | R }, c: Labeled { v: u32 }, \
         d: Labeled { v: Labeled { v: str } } }"
    );
}

#[test]
fn recursive_types_terminate() {
    assert_eq!(shown::<Tree>(), "Tree { children: [Tree], label: str }");
    assert_eq!(
        shown::<Vec<Tree>>(),
        "[Tree { children: [Tree], label: str }]"
    );
    assert_eq!(shown::<List>(), "List { Nil | Cons(u32, List) }");
    assert_eq!(shown::<E>(), "E { A(E) | B }");
    assert_eq!(shown::<Link>(), "Link { next: Link?, map: {str: Link} }");
    assert_eq!(shown::<W>(), "W(W?)");
    assert_eq!(
        shown::<Ping>(),
        "Ping { pong: Pong { Stop | Again(Ping) } }"
    );
    assert_eq!(
        shown::<Pong>(),
        "Pong { Stop | Again(Ping { pong: Pong }) }"
    );
    assert_eq!(
        shown::<Expr>(),
        "Expr { Add(Expr, Expr) | Neg(Expr) | Lit(i64) | \
         Let { name: str, value: Expr, kind: Inner { P | Q(u8) | R { z: bool } } } }"
    );
    let tree = strukt(
        "Tree",
        &[
            ("children", seq(Shape::Ref("Tree".into()))),
            ("label", Shape::Str),
        ],
    );
    assert_eq!(trace::<Tree>(), Ok(tree));
}

#[test]
fn infinite_types_fail() {
    let e = err::<Infinite>();
    assert!(
        e.starts_with("cannot trace `Infinite`: deeper than 128 levels at `Infinite.again.again"),
        "{e}"
    );
    assert!(err::<Loop>().starts_with("cannot trace `Loop`: deeper than 128 levels at `Loop::A"));
    assert_eq!(
        err::<Never>(),
        "cannot trace `Never`: enum `Never` has no variant to deserialize"
    );
}

#[test]
fn validating_types_get_other_samples() {
    assert_eq!(
        shown::<Validated>(),
        "Validated { id: str, at: Stamp(str), ip: str, peer: str, range: Range { start: u32, \
         end: u32 }, took: Duration { secs: u64, nanos: u32 }, flag: bool }"
    );
    assert_eq!(
        err::<Picky>(),
        "cannot trace `Picky` at `Picky.bad` (in `Picky`): every sample was rejected \
         (last: no \"http://localhost/\")"
    );
}

#[test]
fn any_and_untraceable() {
    assert_eq!(
        shown::<Raw>(),
        "Raw { value: any, raw: any, maybe: any?, map: {str: any}, ignored: any }"
    );
    assert_eq!(trace::<serde_json::Value>(), Ok(Shape::Any));
    assert_eq!(
        trace::<UntaggedUnit>(),
        Ok(Shape::Any),
        "an untagged enum that takes `null`"
    );
    let untraceable = "enum, or #[serde(flatten)]): its shape cannot be traced";
    for e in [
        err::<Untagged>(),
        err::<Internal>(),
        err::<Flat>(),
        err::<Holder>(),
    ] {
        assert!(e.contains(untraceable), "{e}");
    }
    let e = err::<Holder>();
    assert!(
        e.starts_with("cannot trace `Holder` at `Holder.payload` (in `Holder`)"),
        "{e}"
    );
    assert_eq!(
        err::<Adjacent>(),
        "cannot trace `Adjacent`: adjacently tagged enum `Adjacent`: its shape cannot be traced"
    );
    assert_eq!(
        err::<Wrap>(),
        "cannot trace `Wrap`: the shape of `Wrap` depends on the data it reads"
    );
}

#[test]
fn swallowed_errors_leave_no_trace() {
    assert_eq!(
        shown::<Calm>(),
        "Calm { a: (unknown), b: Calm?, c: Range { start: u32, end: u32 } }"
    );
}

#[test]
fn deterministic() {
    assert_eq!(trace::<Outer>(), trace::<Outer>());
    assert_eq!(trace::<Expr>(), trace::<Expr>());
    let digest = || trace::<Validated>().map(|s| s.digest());
    assert_eq!(digest(), digest());
}

#[test]
fn digest() {
    let order = trace::<Order>().map(|s| s.digest());
    assert_eq!(
        order,
        trace::<Reordered>().map(|s| s.digest()),
        "field order is left out"
    );
    let small = strukt("Order", &[("id", Shape::Str), ("qty", Shape::U32)]);
    assert_eq!(
        small.digest(),
        0x60b1_a29e_b42c_d025,
        "the canonical encoding changed"
    );
    let renamed = strukt("Renamed", &[("qty", Shape::U32), ("id", Shape::Str)]);
    assert_eq!(small.digest(), renamed.digest());
    let other = [
        strukt(
            "Order",
            &[("id", Shape::Str), ("qty", Shape::U32), ("p", Shape::U8)],
        ),
        strukt("Order", &[("id", Shape::Str), ("qty", Shape::U64)]),
        strukt("Order", &[("id", Shape::Str), ("quantity", Shape::U32)]),
        strukt(
            "Order",
            &[
                ("id", Shape::Str),
                ("qty", Shape::Option(Box::new(Shape::U32))),
            ],
        ),
    ];
    for other in &other {
        assert_ne!(small.digest(), other.digest(), "{other}");
    }
    let (a, b) = (
        ("A", VariantShape::Unit),
        ("B", VariantShape::Newtype(Box::new(Shape::U8))),
    );
    let two = enm("K", &[a.clone(), b.clone()]);
    assert_eq!(two.digest(), enm("K", &[b.clone(), a.clone()]).digest());
    assert_ne!(
        two.digest(),
        enm("K", &[a.clone(), b, ("C", VariantShape::Unit)]).digest()
    );
    let tuple = ("B", VariantShape::Tuple(vec![Shape::U8]));
    assert_ne!(two.digest(), enm("K", &[a, tuple]).digest());
    let tree = |n: &str, r: &str| strukt(n, &[("kids", seq(Shape::Ref(r.into())))]);
    assert_eq!(tree("Tree", "Tree").digest(), tree("Node", "Node").digest());
    assert_ne!(tree("Tree", "Tree").digest(), tree("Tree", "X").digest());
}

#[test]
fn compare_structs() {
    let old = trace::<Order>().unwrap_or(Shape::Unknown);
    assert_eq!(Shape::compare(&old, &old), ShapeChange::Same);
    let Shape::Struct { fields, .. } = &old else {
        panic!("{old}")
    };
    let with = |f: &dyn Fn(&mut Vec<Field>)| {
        let mut fields = fields.clone();
        f(&mut fields);
        Shape::Struct {
            name: "Order".into(),
            fields,
        }
    };
    let added = with(&|f| {
        f.push(Field {
            name: "rush".into(),
            shape: Shape::Bool,
        })
    });
    let msg = "field `rush` (bool) added to `Order`";
    assert_eq!(
        Shape::compare(&old, &added),
        ShapeChange::Additive(vec![msg.into()])
    );
    let removed = with(&|f| f.retain(|f| f.name != "note"));
    let msg = "field `note` removed from `Order`";
    assert_eq!(
        Shape::compare(&old, &removed),
        ShapeChange::Breaking(vec![msg.into()])
    );
    let item = [
        ("sku", Shape::Str),
        ("qty", Shape::U64),
        ("gift", Shape::Bool),
    ];
    let deep = with(&|f| f[1].shape = seq(strukt("LineItem", &item)));
    let msgs = [
        "`Order.items[].qty`: u32 became u64",
        "field `gift` (bool) added to `LineItem` at `Order.items[]`",
    ];
    assert_eq!(
        Shape::compare(&old, &deep),
        ShapeChange::Breaking(msgs.map(String::from).into())
    );
    let renamed = strukt("Ticket", &[("id", Shape::Str)]);
    assert_eq!(
        Shape::compare(&strukt("Order", &[("id", Shape::Str)]), &renamed),
        ShapeChange::Same
    );
}

#[test]
fn compare_enums_tuples_refs_unknown() {
    let mk = |vs: &[(&str, VariantShape)]| strukt("Payment", &[("state", enm("PaymentState", vs))]);
    let paid = ("Paid", VariantShape::Tuple(vec![Shape::U64, Shape::Str]));
    let old = mk(&[("Open", VariantShape::Unit), paid.clone()]);
    let cases = [
        (
            mk(&[
                ("Open", VariantShape::Unit),
                paid.clone(),
                ("Refunded", VariantShape::Unit),
            ]),
            ShapeChange::Additive(vec![
                "variant `Refunded` added to `PaymentState` at `Payment.state`".into(),
            ]),
        ),
        (
            mk(&[
                ("Open", VariantShape::Unit),
                (
                    "Paid",
                    VariantShape::Tuple(vec![Shape::U64, Shape::Str, Shape::Bool]),
                ),
            ]),
            ShapeChange::Breaking(vec![
                "`Payment.state::Paid`: Paid(u64, str) became Paid(u64, str, bool) \
                                     (2 fields became 3)"
                    .into(),
            ]),
        ),
        (
            mk(&[
                ("Open", VariantShape::Newtype(Box::new(Shape::U8))),
                paid.clone(),
            ]),
            ShapeChange::Breaking(vec!["`Payment.state::Open`: Open became Open(u8)".into()]),
        ),
        (
            mk(&[paid]),
            ShapeChange::Breaking(vec![
                "variant `Open` removed from `PaymentState` at `Payment.state`".into(),
            ]),
        ),
    ];
    for (new, change) in cases {
        assert_eq!(Shape::compare(&old, &new), change, "{new}");
    }
    let t2 = Shape::Tuple(vec![Shape::Str, Shape::U64]);
    let t3 = Shape::Tuple(vec![Shape::Str, Shape::U64, Shape::U8]);
    let msg = "`$`: (str, u64) became (str, u64, u8) (2 fields became 3)";
    assert_eq!(
        Shape::compare(&t2, &t3),
        ShapeChange::Breaking(vec![msg.into()])
    );
    assert_eq!(
        Shape::compare(&seq(Shape::Unknown), &seq(Shape::U8)),
        ShapeChange::Same
    );
    assert_eq!(
        Shape::compare(&Shape::U8, &Shape::Unknown),
        ShapeChange::Same
    );
    assert_eq!(Shape::compare(&Shape::Any, &Shape::Any), ShapeChange::Same);
    assert!(matches!(
        Shape::compare(&Shape::Any, &Shape::Str),
        ShapeChange::Breaking(_)
    ));
    let tree = |n: &str, r: &str| strukt(n, &[("kids", seq(Shape::Ref(r.into())))]);
    assert_eq!(
        Shape::compare(&tree("Tree", "Tree"), &tree("Node", "Node")),
        ShapeChange::Same
    );
    let msg = "`Node.kids[]`: Tree became Tree";
    let change = Shape::compare(&tree("Tree", "Tree"), &tree("Node", "Tree"));
    assert_eq!(change, ShapeChange::Breaking(vec![msg.into()]));
}

#[test]
fn display_and_serde() {
    let kind = trace::<Kind>().unwrap_or(Shape::Unknown);
    let map = Shape::Map {
        key: Box::new(Shape::Str),
        value: Box::new(Shape::U32),
    };
    let pair = Shape::TupleStruct {
        name: "P".into(),
        fields: vec![Shape::Bytes, Shape::Unit],
    };
    let shapes = [
        (
            kind.clone(),
            "Kind { A | B(u32) | C { x: i64 } | D(str, bool) }",
        ),
        (map, "{str: u32}"),
        (Shape::Tuple(vec![Shape::Str, Shape::U64]), "(str, u64)"),
        (Shape::Ref("Tree".into()), "Tree"),
        (Shape::Any, "any"),
        (Shape::Unknown, "unknown"),
        (strukt("Empty", &[]), "Empty {}"),
        (enm("Void", &[]), "Void {}"),
        (pair, "P(bytes, ())"),
    ];
    for (shape, text) in shapes {
        assert_eq!(shape.to_string(), text);
    }
    let json = serde_json::to_string(&kind).unwrap_or_default();
    let start = r#"{"enum":{"name":"Kind","variants":[{"name":"A","shape":"unit"}"#;
    assert!(json.starts_with(start), "{json}");
    assert_eq!(serde_json::from_str::<Shape>(&json).ok(), Some(kind));
}
