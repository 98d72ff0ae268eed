//! The private `serde::Deserializer` the tracer drives ([`De`]): it feeds
//! each value a sample, each struct its fields by name, each enum the
//! variant the tracer chose, and tells the tracer what it met. Apart from
//! the tracer's state and choices (`tracer.rs`), which it only calls.

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::model::Shape;
use super::registry::{Body, Feed, Fields, Node, Step, Var, render};
use super::tracer::{DeError, Res, Tracer};

const MAX_TUPLE: usize = 4096;
const RAW_VALUE: &str = "$serde_json::private::RawValue";
const STRS: [&str; 13] = [
    "",
    "0",
    "00000000-0000-0000-0000-000000000000",
    "1970-01-01T00:00:00Z",
    "127.0.0.1",
    "a",
    "1970-01-01",
    "1970-01-01T00:00:00",
    "00:00:00",
    "127.0.0.1:0",
    "::1",
    "[::1]:0",
    "http://localhost/",
];
const BYTES: [&[u8]; 2] = [b"", b"0"];

impl Tracer {
    /// Runs one nested deserialization below `step`; returns its value and
    /// node. Path, stack and depth are restored even after an error (which a
    /// visitor may swallow and go on).
    fn nested<R>(
        &mut self,
        step: Option<Step>,
        f: impl FnOnce(De<'_>) -> Res<R>,
    ) -> Res<(R, Node)> {
        let saved = (self.path.len(), self.stack.len(), self.depth, self.cut);
        self.descend()?;
        self.path.extend(step);
        self.last = None;
        let value = f(De { t: &mut *self });
        self.path.truncate(saved.0);
        self.stack.truncate(saved.1);
        (self.depth, self.cut) = (saved.2, saved.3);
        Ok((value?, self.take_last()))
    }
}

/// Deserializes one value through `seed` below `step`; returns it and its node.
fn sub<'de, S: DeserializeSeed<'de>>(
    t: &mut Tracer,
    step: Option<Step>,
    seed: S,
) -> Res<(S::Value, Node)> {
    t.nested(step, |de| seed.deserialize(de))
}

fn ident(name: &'static str) -> StrDeserializer<'static, DeError> {
    name.into_deserializer()
}

pub(super) struct De<'a> {
    pub(super) t: &'a mut Tracer,
}

macro_rules! leaves {
    ($($method:ident $shape:ident $samples:expr => $visit:ident $(($conv:path))?;)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
            let samples = $samples;
            let i = self.t.feed(Feed::Sample(samples.len())).min(samples.len() - 1);
            let value = v.$visit($($conv)?(samples[i]))?;
            self.t.last = Some(Node::Leaf(Shape::$shape));
            Ok(value)
        }
    )*};
}

impl De<'_> {
    fn fixed<'de, V: Visitor<'de>>(self, shape: Shape, v: V) -> Res<V::Value> {
        self.t.feed(if shape == Shape::Any {
            Feed::Any
        } else {
            Feed::Fixed
        });
        let value = v.visit_unit()?;
        self.t.last = Some(Node::Leaf(shape));
        Ok(value)
    }

    /// Feeds `len` elements; returns them, padded to `len` with `Unknown`.
    fn elems<'de, V: Visitor<'de>>(self, len: usize, v: V) -> Res<(V::Value, Vec<Node>)> {
        if len > MAX_TUPLE {
            let at = render(&self.t.root, &self.t.path);
            return Err(self
                .t
                .fatal(format!(": a tuple of {len} elements at `{at}`")));
        }
        if len == 0 {
            self.t.feed(Feed::Fixed);
        }
        let mut feed = Elems {
            t: self.t,
            len,
            nodes: Vec::new(),
        };
        let value = v.visit_seq(&mut feed)?;
        feed.nodes.resize(len, Node::Leaf(Shape::Unknown));
        Ok((value, feed.nodes))
    }
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = DeError;

    leaves! {
        deserialize_bool Bool [false, true] => visit_bool;
        deserialize_i8 I8 [0, 1] => visit_i8;
        deserialize_i16 I16 [0, 1] => visit_i16;
        deserialize_i32 I32 [0, 1] => visit_i32;
        deserialize_i64 I64 [0, 1] => visit_i64;
        deserialize_i128 I128 [0, 1] => visit_i128;
        deserialize_u8 U8 [0, 1] => visit_u8;
        deserialize_u16 U16 [0, 1] => visit_u16;
        deserialize_u32 U32 [0, 1] => visit_u32;
        deserialize_u64 U64 [0, 1] => visit_u64;
        deserialize_u128 U128 [0, 1] => visit_u128;
        deserialize_f32 F32 [0.0, 1.0] => visit_f32;
        deserialize_f64 F64 [0.0, 1.0] => visit_f64;
        deserialize_char Char ['a', '0'] => visit_char;
        deserialize_str Str STRS => visit_str;
        deserialize_string Str STRS => visit_string(String::from);
        deserialize_identifier Str STRS => visit_str;
        deserialize_bytes Bytes BYTES => visit_bytes;
        deserialize_byte_buf Bytes BYTES => visit_byte_buf(Vec::from);
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        self.fixed(Shape::Any, v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        self.fixed(Shape::Any, v)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        self.fixed(Shape::Unit, v)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Res<V::Value> {
        self.fixed(Shape::UnitStruct(name.to_owned()), v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        let (value, inner) = if self.t.cut > 0 {
            self.t.feed(Feed::Fixed);
            (v.visit_none()?, Node::Leaf(Shape::Unknown))
        } else {
            self.t.nested(None, |de| v.visit_some(de))?
        };
        self.t.last = Some(Node::Option(Box::new(inner)));
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        let len = usize::from(self.t.cut == 0);
        let t = &mut *self.t;
        let (value, mut nodes) = De { t: &mut *t }.elems(len, v)?;
        let elem = nodes.pop().unwrap_or(Node::Leaf(Shape::Unknown));
        t.last = Some(Node::Seq(Box::new(elem)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Res<V::Value> {
        let t = &mut *self.t;
        let (value, nodes) = De { t: &mut *t }.elems(len, v)?;
        t.last = Some(Node::Tuple(nodes));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Res<V::Value> {
        let id = self
            .t
            .enter(name, std::any::type_name::<V>(), || Body::Struct(None))?;
        let t = &mut *self.t;
        let (value, nodes) = De { t: &mut *t }.elems(len, v)?;
        t.record(id, None, Fields::Tuple(nodes))?;
        t.leave(id);
        Ok(value)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Res<V::Value> {
        if name == RAW_VALUE {
            self.t.feed(Feed::Fixed);
            let value = v.visit_map(RawMap(false))?;
            self.t.last = Some(Node::Leaf(Shape::Any));
            return Ok(value);
        }
        let id = self
            .t
            .enter(name, std::any::type_name::<V>(), || Body::Struct(None))?;
        let (value, inner) = self.t.nested(None, |de| v.visit_newtype_struct(de))?;
        self.t.record(id, None, Fields::Newtype(inner))?;
        self.t.leave(id);
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Res<V::Value> {
        let id = self
            .t
            .enter(name, std::any::type_name::<V>(), || Body::Struct(None))?;
        let mut feed = FieldFeed::new(self.t, (id, 0), fields);
        let value = v.visit_map(&mut feed)?;
        let fields = feed.finish();
        self.t.record(id, None, fields)?;
        self.t.leave(id);
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        let len = usize::from(self.t.cut == 0);
        if len == 0 {
            self.t.feed(Feed::Fixed);
        }
        let unknown = || Node::Leaf(Shape::Unknown);
        let mut feed = Entries {
            t: self.t,
            len,
            key: unknown(),
            value: unknown(),
        };
        let value = v.visit_map(&mut feed)?;
        let (key, val) = (Box::new(feed.key), Box::new(feed.value));
        feed.t.last = Some(Node::Map(key, val));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Res<V::Value> {
        if variants.is_empty() {
            return Err(self
                .t
                .fatal(format!(": enum `{name}` has no variant to deserialize")));
        }
        let visitor = std::any::type_name::<V>();
        if visitor.contains("AdjacentlyTagged") {
            let msg = format!(": adjacently tagged enum `{name}`: its shape cannot be traced");
            return Err(self.t.fatal(msg));
        }
        let id = self.t.enter(name, visitor, || {
            let var = |name| Var {
                name,
                shape: None,
                full: false,
            };
            Body::Enum(variants.iter().copied().map(var).collect())
        })?;
        let index = self.t.choose(id).min(variants.len() - 1);
        let vname = variants[index];
        if let Some(f) = self.t.stack.last_mut() {
            f.variant = index;
        }
        self.t.path.push(Step::Variant(vname));
        let value = v.visit_enum(EnumFeed {
            t: &mut *self.t,
            id,
            index,
            name: vname,
        })?;
        self.t.path.pop();
        self.t.leave(id);
        Ok(value)
    }

    fn is_human_readable(&self) -> bool {
        true
    }
}

struct Elems<'a> {
    t: &'a mut Tracer,
    len: usize,
    nodes: Vec<Node>,
}

impl<'de> SeqAccess<'de> for Elems<'_> {
    type Error = DeError;
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<Option<S::Value>> {
        if self.nodes.len() >= self.len {
            return Ok(None);
        }
        let (value, node) = sub(self.t, Some(Step::Index(self.nodes.len())), seed)?;
        self.nodes.push(node);
        Ok(Some(value))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.len.saturating_sub(self.nodes.len()))
    }
}

struct Entries<'a> {
    t: &'a mut Tracer,
    len: usize,
    key: Node,
    value: Node,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len = 0;
        let (key, node) = sub(self.t, Some(Step::Key), seed)?;
        self.key = node;
        Ok(Some(key))
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<S::Value> {
        let (value, node) = sub(self.t, Some(Step::Value), seed)?;
        self.value = node;
        Ok(value)
    }
}

/// The fields of a struct or struct variant, each fed once by name.
struct FieldFeed<'a> {
    t: &'a mut Tracer,
    owner: (usize, usize),
    names: &'static [&'static str],
    order: std::vec::IntoIter<usize>,
    key: Option<usize>,
    got: Vec<(usize, Node)>,
}

impl<'a> FieldFeed<'a> {
    fn new(t: &'a mut Tracer, owner: (usize, usize), names: &'static [&'static str]) -> Self {
        let mut order: Vec<usize> = (0..names.len()).collect();
        if let Some(a) = t.aliases.get(&owner) {
            order.retain(|&i| !a.skip.contains(&names[i]));
            order.sort_by_key(|&i| !a.main.contains(&names[i]));
        }
        let (order, key, got) = (order.into_iter(), None, Vec::new());
        FieldFeed {
            t,
            owner,
            names,
            order,
            key,
            got,
        }
    }

    fn finish(mut self) -> Fields {
        self.got.sort_by_key(|(i, _)| *i);
        Fields::Struct(
            self.got
                .into_iter()
                .map(|(i, n)| (self.names[i], n))
                .collect(),
        )
    }
}

impl<'de> MapAccess<'de> for FieldFeed<'_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        let Some(i) = self.order.next() else {
            return Ok(None);
        };
        self.key = Some(i);
        let name = self.names[i];
        self.t.path.push(Step::Field(name));
        self.t.feed(Feed::Key(self.owner, name));
        self.t.path.pop();
        seed.deserialize(ident(name)).map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<S::Value> {
        let Some(i) = self.key.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        let (value, node) = sub(self.t, Some(Step::Field(self.names[i])), seed)?;
        self.got.push((i, node));
        Ok(value)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.order.len())
    }
}

/// `serde_json::value::RawValue`'s private map: its token, then `null`.
struct RawMap(bool);

impl<'de> MapAccess<'de> for RawMap {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        match self.0 {
            true => Ok(None),
            false => seed.deserialize(ident(RAW_VALUE)).map(Some),
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<S::Value> {
        self.0 = true;
        seed.deserialize(ident("null"))
    }
}

struct EnumFeed<'a> {
    t: &'a mut Tracer,
    id: usize,
    index: usize,
    name: &'static str,
}

impl<'de> EnumAccess<'de> for EnumFeed<'_> {
    type Error = DeError;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Res<(S::Value, Self)> {
        Ok((seed.deserialize(ident(self.name))?, self))
    }
}

impl<'de> VariantAccess<'de> for EnumFeed<'_> {
    type Error = DeError;
    fn unit_variant(self) -> Res<()> {
        self.t.record(self.id, Some(self.index), Fields::Unit)?;
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Res<S::Value> {
        let (value, node) = sub(self.t, None, seed)?;
        self.t
            .record(self.id, Some(self.index), Fields::Newtype(node))?;
        Ok(value)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Res<V::Value> {
        let (value, nodes) = De { t: &mut *self.t }.elems(len, v)?;
        self.t
            .record(self.id, Some(self.index), Fields::Tuple(nodes))?;
        Ok(value)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Res<V::Value> {
        let mut feed = FieldFeed::new(self.t, (self.id, self.index + 1), fields);
        let value = v.visit_map(&mut feed)?;
        let fields = feed.finish();
        self.t.record(self.id, Some(self.index), fields)?;
        Ok(value)
    }
}
