//! The tracer: a private `serde::Deserializer` driven over passes (see the
//! module documentation of [`super`]).

use std::collections::HashMap;
use std::fmt::{self, Display, Write as _};

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::model::{Field, Shape, ShapeError, Variant, VariantShape};

const MAX_PASSES: usize = 10_000;
const MAX_DEPTH: usize = 128;
const MAX_NODES: usize = 100_000;
const MAX_TUPLE: usize = 4096;
const MAX_WORK: usize = 5_000_000;
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

/// Traces the shape of `T` (see the module documentation for how, and what fails).
pub fn trace<T: de::DeserializeOwned>() -> Result<Shape, ShapeError> {
    let mut t = Tracer {
        root: short_name(std::any::type_name::<T>()),
        ..Tracer::default()
    };
    let fail = |t: &Tracer, m: String| ShapeError(format!("cannot trace `{}`{m}", t.root));
    let mut root = Node::Leaf(Shape::Unknown);
    for _ in 0..MAX_PASSES {
        let before = t.changes;
        t.stack.clear();
        (t.cut, t.depth, t.last, t.fatal, t.last_feed) = (0, 0, None, None, Feed::Fixed);
        t.path.clear();
        t.last_fed.clear();
        match T::deserialize(De { t: &mut t }) {
            Ok(_) => {
                let node = t.take_last();
                let Some(changed) = merge(&mut root, node) else {
                    return Err(fail(&t, ": its shape depends on the data it reads".into()));
                };
                t.changes += u64::from(changed);
                match t.incomplete() {
                    None => {
                        let mut expand = Expand {
                            t: &t,
                            stack: Vec::new(),
                            budget: MAX_NODES,
                        };
                        return expand.node(&root).map_err(|m| fail(&t, m));
                    }
                    Some(what) if t.changes == before => {
                        return Err(fail(&t, format!(": {what} could not be reached")));
                    }
                    Some(_) => {}
                }
            }
            Err(e) => t.recover(e).map_err(|m| fail(&t, m))?,
        }
    }
    Err(fail(
        &t,
        format!(": not complete after {MAX_PASSES} passes"),
    ))
}

/// A shape while tracing: containers are registry ids.
#[derive(Clone, Debug)]
enum Node {
    Leaf(Shape),
    Option(Box<Node>),
    Seq(Box<Node>),
    Map(Box<Node>, Box<Node>),
    Tuple(Vec<Node>),
    Container(usize),
}

/// The contents of a struct-like container or of a variant.
#[derive(Debug)]
enum Fields {
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Vec<(&'static str, Node)>),
}

enum Body {
    /// `None` until one deserialization of it completed.
    Struct(Option<Fields>),
    Enum(Vec<Var>),
}

struct Var {
    name: &'static str,
    shape: Option<Fields>,
    /// Traced once outside any recursive occurrence.
    full: bool,
}

struct Container {
    name: &'static str,
    body: Body,
}

/// One step of a position's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Field(&'static str),
    Variant(&'static str),
    Index(usize),
    Key,
    Value,
}

/// What was fed last: decides how a failed pass is retried.
#[derive(Clone, Copy, Default)]
enum Feed {
    /// Nothing to vary: unit, `None`, an empty sequence or map.
    #[default]
    Fixed,
    /// One of this many samples.
    Sample(usize),
    /// Unit, for `deserialize_any`.
    Any,
    /// A field name of (container, 0 or variant index + 1).
    Key((usize, usize), &'static str),
}

/// A container being deserialized.
struct Frame {
    id: usize,
    /// The variant being traced (enums only).
    variant: usize,
    /// Met inside itself: raised `cut`.
    recursive: bool,
    /// Where its positions' paths start.
    base: usize,
}

#[derive(Default)]
struct Aliases {
    main: Vec<&'static str>,
    skip: Vec<&'static str>,
}

#[derive(Default)]
struct Tracer {
    root: String,
    containers: Vec<Container>,
    /// Containers by serde's name, then by the type name of their visitor.
    ids: HashMap<&'static str, Vec<(&'static str, usize)>>,
    aliases: HashMap<(usize, usize), Aliases>,
    /// Sample indexes by innermost container (`usize::MAX`: none) and path in it.
    samples: Vec<(usize, Vec<Step>, usize)>,
    stack: Vec<Frame>,
    /// Recursive occurrences on the stack: above 0, every choice is cut.
    cut: usize,
    depth: usize,
    work: usize,
    path: Vec<Step>,
    /// The node of the value deserialized last.
    last: Option<Node>,
    last_fed: Vec<Step>,
    /// The innermost container and where its path starts, when fed last.
    last_owner: (usize, usize),
    last_in: Option<&'static str>,
    last_feed: Feed,
    /// `body_rank` of each container, as of `changes == ranks_at`.
    ranks: Vec<Option<u32>>,
    ranks_at: Option<u64>,
    /// Counts everything learnt (progress).
    changes: u64,
    /// Set with an error no other pass can avoid.
    fatal: Option<String>,
}

impl Tracer {
    fn take_last(&mut self) -> Node {
        self.last.take().unwrap_or(Node::Leaf(Shape::Unknown))
    }

    /// Notes what is fed here; returns the sample index for this position.
    fn feed(&mut self, feed: Feed) -> usize {
        self.last_fed.clear();
        self.last_fed.extend_from_slice(&self.path);
        self.last_in = self.stack.last().map(|f| self.containers[f.id].name);
        self.last_feed = feed;
        self.last_owner = self
            .stack
            .last()
            .map_or((usize::MAX, 0), |f| (f.id, f.base));
        let (owner, base) = self.last_owner;
        self.sample(owner, &self.path[base..])
            .map_or(0, |i| self.samples[i].2)
    }

    fn sample(&self, owner: usize, rel: &[Step]) -> Option<usize> {
        self.samples
            .iter()
            .position(|(o, p, _)| *o == owner && p == rel)
    }

    fn fatal(&mut self, msg: String) -> DeError {
        self.fatal = Some(msg.clone());
        de::Error::custom(msg)
    }

    fn descend(&mut self) -> Res<()> {
        (self.depth, self.work) = (self.depth + 1, self.work + 1);
        if self.work > MAX_WORK {
            return Err(self.fatal(": too large to trace".into()));
        }
        if self.depth <= MAX_DEPTH {
            return Ok(());
        }
        let at = render(&self.root, &self.path);
        Err(self.fatal(format!(
            ": deeper than {MAX_DEPTH} levels at `{at}` (a type that cannot be built finitely?)"
        )))
    }

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

    fn enter(
        &mut self,
        name: &'static str,
        visitor: &'static str,
        body: impl FnOnce() -> Body,
    ) -> Res<usize> {
        self.descend()?;
        let same = self.ids.entry(name).or_default();
        let id = match same.iter().find(|(v, _)| *v == visitor) {
            Some(&(_, id)) => id,
            None => {
                same.push((visitor, self.containers.len()));
                self.containers.push(Container { name, body: body() });
                self.changes += 1;
                self.containers.len() - 1
            }
        };
        let recursive = self.stack.iter().any(|f| f.id == id);
        self.cut += usize::from(recursive);
        let variant = usize::MAX;
        let base = self.path.len();
        self.stack.push(Frame {
            id,
            variant,
            recursive,
            base,
        });
        Ok(id)
    }

    fn leave(&mut self, id: usize) {
        if let Some(f) = self.stack.pop() {
            self.cut -= usize::from(f.recursive);
        }
        self.depth = self.depth.saturating_sub(1);
        self.last = Some(Node::Container(id));
    }

    fn record(&mut self, id: usize, variant: Option<usize>, fields: Fields) -> Res<()> {
        let full = self.cut == 0;
        let slot = match (self.containers.get_mut(id).map(|c| &mut c.body), variant) {
            (Some(Body::Struct(slot)), None) => slot,
            (Some(Body::Enum(vars)), Some(i)) => match vars.get_mut(i) {
                Some(var) => {
                    self.changes += u64::from(full && !var.full);
                    var.full |= full;
                    &mut var.shape
                }
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let changed = match slot {
            Some(old) => merge_fields(old, fields),
            None => {
                *slot = Some(fields);
                Some(true)
            }
        };
        match changed {
            Some(changed) => {
                self.changes += u64::from(changed);
                Ok(())
            }
            None => {
                let name = self.containers[id].name;
                Err(self.fatal(format!(
                    ": the shape of `{name}` depends on the data it reads"
                )))
            }
        }
    }

    fn choose(&mut self, id: usize) -> usize {
        if self.cut > 0 && self.ranks_at != Some(self.changes) {
            let mut ranks = vec![None; self.containers.len()];
            while let Some((i, r)) = (0..ranks.len())
                .filter(|&i| ranks[i].is_none())
                .find_map(|i| Some((i, self.body_rank(i, &ranks)?)))
            {
                ranks[i] = Some(r);
            }
            (self.ranks, self.ranks_at) = (ranks, Some(self.changes));
        }
        let Some(Body::Enum(vars)) = self.containers.get(id).map(|c| &c.body) else {
            return 0;
        };
        let pick =
            |f: &dyn Fn(usize, &Var) -> bool| vars.iter().enumerate().position(|(i, v)| f(i, v));
        if self.cut == 0 {
            let leads = |_: usize, v: &Var| {
                v.shape
                    .as_ref()
                    .is_some_and(|f| self.fields_lead(f, &mut vec![]))
            };
            return pick(&|_, v| !v.full).or_else(|| pick(&leads)).unwrap_or(0);
        }
        let busy = |i| self.stack.iter().any(|f| f.id == id && f.variant == i);
        let rank = |v: &Var| fields_rank(v.shape.as_ref()?, &self.ranks);
        let finite = vars
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((rank(v)?, i)));
        finite
            .min()
            .map(|(_, i)| i)
            .or_else(|| pick(&|i, v| v.shape.is_none() && !busy(i)))
            .or_else(|| pick(&|i, _| !busy(i)))
            .unwrap_or(0)
    }

    /// How deep a value of this container must be with every choice cut
    /// (`None`: not known to be finite).
    fn body_rank(&self, id: usize, ranks: &[Option<u32>]) -> Option<u32> {
        match &self.containers[id].body {
            Body::Struct(f) => fields_rank(f.as_ref()?, ranks),
            Body::Enum(vars) => vars
                .iter()
                .filter_map(|v| fields_rank(v.shape.as_ref()?, ranks))
                .min(),
        }
    }

    /// Whether `fields` lead to an enum lacking a variant, through containers
    /// not being traced right now.
    fn fields_lead(&self, fields: &Fields, seen: &mut Vec<usize>) -> bool {
        fields_nodes(fields).any(|n| self.node_leads(n, seen))
    }

    fn node_leads(&self, node: &Node, seen: &mut Vec<usize>) -> bool {
        match node {
            Node::Leaf(_) => false,
            Node::Option(n) | Node::Seq(n) => self.node_leads(n, seen),
            Node::Map(k, v) => self.node_leads(k, seen) || self.node_leads(v, seen),
            Node::Tuple(ns) => ns.iter().any(|n| self.node_leads(n, seen)),
            Node::Container(id) => {
                if seen.contains(id) || self.stack.iter().any(|f| f.id == *id) {
                    return false;
                }
                seen.push(*id);
                match self.containers.get(*id).map(|c| &c.body) {
                    Some(Body::Struct(Some(f))) => self.fields_lead(f, seen),
                    Some(Body::Enum(vars)) => vars.iter().any(|v| {
                        !v.full || v.shape.as_ref().is_some_and(|f| self.fields_lead(f, seen))
                    }),
                    _ => false,
                }
            }
        }
    }

    fn incomplete(&self) -> Option<String> {
        self.containers.iter().find_map(|c| match &c.body {
            Body::Enum(vars) => vars
                .iter()
                .find(|v| !v.full)
                .map(|v| format!("variant `{}` of `{}`", v.name, c.name)),
            Body::Struct(_) => None,
        })
    }

    /// Prepares the next pass after a failed one, or says why there is none.
    fn recover(&mut self, e: DeError) -> Result<(), String> {
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        let mut at = format!(" at `{}`", render(&self.root, &self.last_fed));
        if let Some(name) = self.last_in {
            let _ = write!(at, " (in `{name}`)");
        }
        match (self.last_feed, e.duplicate) {
            (Feed::Key(owner, name), Some(main)) => {
                let a = self.aliases.entry(owner).or_default();
                let new_main = !a.main.contains(&main);
                let new_skip = name != main && !a.skip.contains(&name);
                if new_main {
                    a.main.push(main);
                }
                if new_skip {
                    a.skip.push(name);
                }
                match new_main || new_skip {
                    true => Ok(()),
                    false => Err(format!("{at}: {}", e.msg)),
                }
            }
            (Feed::Sample(n), _) => {
                let (owner, base) = self.last_owner;
                let rel = &self.last_fed[base.min(self.last_fed.len())..];
                match self.sample(owner, rel) {
                    Some(i) if self.samples[i].2 + 1 < n => self.samples[i].2 += 1,
                    None if n > 1 => self.samples.push((owner, rel.to_vec(), 1)),
                    _ => return Err(format!("{at}: every sample was rejected (last: {})", e.msg)),
                }
                Ok(())
            }
            (Feed::Any, _) => Err(format!(
                "{at}: it takes any value but not null (untagged or internally tagged \
                 enum, or #[serde(flatten)]): its shape cannot be traced ({})",
                e.msg
            )),
            _ => Err(format!("{at}: {}", e.msg)),
        }
    }
}

/// Builds the result from the registry: a container met again inside
/// itself becomes a `Ref`.
struct Expand<'a> {
    t: &'a Tracer,
    stack: Vec<usize>,
    budget: usize,
}

impl Expand<'_> {
    fn node(&mut self, node: &Node) -> Result<Shape, String> {
        self.budget = self.budget.checked_sub(1).ok_or(": too many nodes")?;
        Ok(match node {
            Node::Leaf(s) => s.clone(),
            Node::Option(n) => Shape::Option(Box::new(self.node(n)?)),
            Node::Seq(n) => Shape::Seq(Box::new(self.node(n)?)),
            Node::Map(k, v) => Shape::Map {
                key: Box::new(self.node(k)?),
                value: Box::new(self.node(v)?),
            },
            Node::Tuple(ns) => Shape::Tuple(self.all(ns)?),
            Node::Container(id) => {
                let Some(c) = self.t.containers.get(*id) else {
                    return Ok(Shape::Unknown);
                };
                let name = c.name.to_owned();
                if self.stack.contains(id) {
                    return Ok(Shape::Ref(name));
                }
                self.stack.push(*id);
                let shape = match &c.body {
                    Body::Struct(None) => Shape::Unknown,
                    Body::Struct(Some(f)) => match self.fields(f)? {
                        VariantShape::Unit => Shape::UnitStruct(name),
                        VariantShape::Newtype(inner) => Shape::NewtypeStruct { name, inner },
                        VariantShape::Tuple(fields) => Shape::TupleStruct { name, fields },
                        VariantShape::Struct(fields) => Shape::Struct { name, fields },
                    },
                    Body::Enum(vars) => {
                        let mut variants = Vec::with_capacity(vars.len());
                        for v in vars {
                            let f = v.shape.as_ref().ok_or(": a variant was never traced")?;
                            let (name, shape) = (v.name.to_owned(), self.fields(f)?);
                            variants.push(Variant { name, shape });
                        }
                        Shape::Enum { name, variants }
                    }
                };
                self.stack.pop();
                shape
            }
        })
    }

    fn all(&mut self, ns: &[Node]) -> Result<Vec<Shape>, String> {
        ns.iter().map(|n| self.node(n)).collect()
    }

    fn fields(&mut self, f: &Fields) -> Result<VariantShape, String> {
        Ok(match f {
            Fields::Unit => VariantShape::Unit,
            Fields::Newtype(n) => VariantShape::Newtype(Box::new(self.node(n)?)),
            Fields::Tuple(ns) => VariantShape::Tuple(self.all(ns)?),
            Fields::Struct(fs) => {
                let mut fields = Vec::with_capacity(fs.len());
                for (name, n) in fs {
                    let (name, shape) = ((*name).to_owned(), self.node(n)?);
                    fields.push(Field { name, shape });
                }
                VariantShape::Struct(fields)
            }
        })
    }
}

fn fields_nodes(f: &Fields) -> impl Iterator<Item = &Node> {
    let (one, many, named): (_, &[Node], &[_]) = match f {
        Fields::Unit => (None, &[], &[]),
        Fields::Newtype(n) => (Some(n), &[], &[]),
        Fields::Tuple(ns) => (None, ns, &[]),
        Fields::Struct(fs) => (None, &[], fs),
    };
    one.into_iter()
        .chain(many)
        .chain(named.iter().map(|(_, n)| n))
}

/// How deep a value of this shape must be with every choice cut.
fn node_rank(n: &Node, ranks: &[Option<u32>]) -> Option<u32> {
    match n {
        Node::Container(id) => ranks.get(*id).copied().flatten().map(|r| r + 1),
        Node::Tuple(ns) => ns
            .iter()
            .try_fold(0, |m, n| Some(m.max(node_rank(n, ranks)?))),
        _ => Some(0),
    }
}

fn fields_rank(f: &Fields, ranks: &[Option<u32>]) -> Option<u32> {
    fields_nodes(f).try_fold(0, |m, n| Some(m.max(node_rank(n, ranks)?)))
}

/// Merges what a pass learnt into what is known: whether something was new,
/// `None` when the two disagree (a shape that depends on the data).
fn merge(old: &mut Node, new: Node) -> Option<bool> {
    match (old, new) {
        (_, Node::Leaf(Shape::Unknown)) => Some(false),
        (old @ Node::Leaf(Shape::Unknown), new) => {
            *old = new;
            Some(true)
        }
        (Node::Option(a), Node::Option(b)) | (Node::Seq(a), Node::Seq(b)) => merge(a, *b),
        (Node::Map(k, v), Node::Map(k2, v2)) => Some(merge(k, *k2)? | merge(v, *v2)?),
        (Node::Tuple(a), Node::Tuple(b)) => merge_all(a, b),
        (Node::Leaf(a), Node::Leaf(b)) if *a == b => Some(false),
        (Node::Container(a), Node::Container(b)) if *a == b => Some(false),
        _ => None,
    }
}

fn merge_all(a: &mut [Node], b: Vec<Node>) -> Option<bool> {
    if a.len() != b.len() {
        return None;
    }
    a.iter_mut()
        .zip(b)
        .try_fold(false, |c, (x, y)| Some(merge(x, y)? | c))
}

fn merge_fields(old: &mut Fields, new: Fields) -> Option<bool> {
    match (old, new) {
        (Fields::Unit, Fields::Unit) => Some(false),
        (Fields::Newtype(a), Fields::Newtype(b)) => merge(a, b),
        (Fields::Tuple(a), Fields::Tuple(b)) => merge_all(a, b),
        (Fields::Struct(a), Fields::Struct(b)) => b.into_iter().try_fold(false, |c, (name, n)| {
            match a.iter_mut().find(|(x, _)| *x == name) {
                Some((_, o)) => Some(merge(o, n)? | c),
                None => {
                    a.push((name, n));
                    Some(true)
                }
            }
        }),
        _ => None,
    }
}

fn render(root: &str, steps: &[Step]) -> String {
    let mut s = root.to_owned();
    for step in steps {
        let _ = match step {
            Step::Field(n) => write!(s, ".{n}"),
            Step::Variant(v) => write!(s, "::{v}"),
            Step::Index(i) => write!(s, "[{i}]"),
            Step::Key => s.write_str("{key}"),
            Step::Value => s.write_str("{value}"),
        };
    }
    s
}

/// `alloc::vec::Vec<my::Item>` → `Vec<Item>`.
fn short_name(full: &str) -> String {
    let (mut out, mut run) = (String::new(), String::new());
    for c in full.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            run.push(c);
        } else {
            out.push_str(run.rsplit("::").next().unwrap_or(""));
            run.clear();
            out.push(c);
        }
    }
    out.pop();
    out
}

#[derive(Debug)]
struct DeError {
    msg: String,
    /// The field a derived visitor reported as given twice (an alias).
    duplicate: Option<&'static str>,
}

impl Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: Display>(msg: T) -> Self {
        DeError {
            msg: msg.to_string(),
            duplicate: None,
        }
    }
    fn duplicate_field(field: &'static str) -> Self {
        DeError {
            msg: format!("duplicate field `{field}`"),
            duplicate: Some(field),
        }
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

type Res<T> = Result<T, DeError>;

struct De<'a> {
    t: &'a mut Tracer,
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
