//! The tracer's driver: [`trace`] runs `T::deserialize` pass after pass
//! until every variant is reached, then builds the result from the registry
//! ([`Expand`]). See the module documentation of [`super`]; the tracer's
//! state is in `tracer.rs`, the `serde::Deserializer` it drives in `de.rs`,
//! the registry's nodes in `registry.rs`.

use serde::de;

use super::de::De;
use super::model::{Field, Shape, ShapeError, Variant, VariantShape};
use super::registry::{Body, Feed, Fields, Node, merge, short_name};
use super::tracer::Tracer;

const MAX_PASSES: usize = 10_000;
const MAX_NODES: usize = 100_000;

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
