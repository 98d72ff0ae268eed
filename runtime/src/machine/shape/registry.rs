//! What the tracer learns, kept in its registry: the [`Node`] of a value
//! while tracing, the contents of containers and their variants, where a
//! position is ([`Step`]) and what was fed there ([`Feed`]); with the pure
//! functions over them (merging what a pass learnt, how deep a value must
//! be, a path's text). Apart from the tracer, which fills the registry, and
//! from the deserializer, which feeds it.

use std::fmt::Write as _;

use super::model::Shape;

/// A shape while tracing: containers are registry ids.
#[derive(Clone, Debug)]
pub(super) enum Node {
    Leaf(Shape),
    Option(Box<Node>),
    Seq(Box<Node>),
    Map(Box<Node>, Box<Node>),
    Tuple(Vec<Node>),
    Container(usize),
}

/// The contents of a struct-like container or of a variant.
#[derive(Debug)]
pub(super) enum Fields {
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Vec<(&'static str, Node)>),
}

pub(super) enum Body {
    /// `None` until one deserialization of it completed.
    Struct(Option<Fields>),
    Enum(Vec<Var>),
}

pub(super) struct Var {
    pub(super) name: &'static str,
    pub(super) shape: Option<Fields>,
    /// Traced once outside any recursive occurrence.
    pub(super) full: bool,
}

pub(super) struct Container {
    pub(super) name: &'static str,
    pub(super) body: Body,
}

/// One step of a position's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    Field(&'static str),
    Variant(&'static str),
    Index(usize),
    Key,
    Value,
}

/// What was fed last: decides how a failed pass is retried.
#[derive(Clone, Copy, Default)]
pub(super) enum Feed {
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

#[derive(Default)]
pub(super) struct Aliases {
    pub(super) main: Vec<&'static str>,
    pub(super) skip: Vec<&'static str>,
}

pub(super) fn fields_nodes(f: &Fields) -> impl Iterator<Item = &Node> {
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

pub(super) fn fields_rank(f: &Fields, ranks: &[Option<u32>]) -> Option<u32> {
    fields_nodes(f).try_fold(0, |m, n| Some(m.max(node_rank(n, ranks)?)))
}

/// Merges what a pass learnt into what is known: whether something was new,
/// `None` when the two disagree (a shape that depends on the data).
pub(super) fn merge(old: &mut Node, new: Node) -> Option<bool> {
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

pub(super) fn merge_fields(old: &mut Fields, new: Fields) -> Option<bool> {
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

pub(super) fn render(root: &str, steps: &[Step]) -> String {
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
pub(super) fn short_name(full: &str) -> String {
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
