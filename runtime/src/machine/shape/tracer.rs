//! The tracer's state across passes ([`Tracer`]): the registry of
//! containers, the samples and aliases learnt from failed passes, the stack
//! of containers being deserialized; how it chooses the variant to feed,
//! records what a pass learnt and prepares the next pass after a failure.
//! With [`DeError`], the error a pass fails with. Apart from the
//! `serde::Deserializer` that calls it (`de.rs`).

use std::collections::HashMap;
use std::fmt::{self, Display, Write as _};

use serde::de;

use super::model::Shape;
use super::registry::{
    Aliases, Body, Container, Feed, Fields, Node, Step, Var, fields_nodes, fields_rank,
    merge_fields, render,
};

const MAX_DEPTH: usize = 128;
const MAX_WORK: usize = 5_000_000;

/// A container being deserialized.
pub(super) struct Frame {
    id: usize,
    /// The variant being traced (enums only).
    pub(super) variant: usize,
    /// Met inside itself: raised `cut`.
    recursive: bool,
    /// Where its positions' paths start.
    base: usize,
}

#[derive(Default)]
pub(super) struct Tracer {
    pub(super) root: String,
    pub(super) containers: Vec<Container>,
    /// Containers by serde's name, then by the type name of their visitor.
    pub(super) ids: HashMap<&'static str, Vec<(&'static str, usize)>>,
    pub(super) aliases: HashMap<(usize, usize), Aliases>,
    /// Sample indexes by innermost container (`usize::MAX`: none) and path in it.
    pub(super) samples: Vec<(usize, Vec<Step>, usize)>,
    pub(super) stack: Vec<Frame>,
    /// Recursive occurrences on the stack: above 0, every choice is cut.
    pub(super) cut: usize,
    pub(super) depth: usize,
    pub(super) work: usize,
    pub(super) path: Vec<Step>,
    /// The node of the value deserialized last.
    pub(super) last: Option<Node>,
    pub(super) last_fed: Vec<Step>,
    /// The innermost container and where its path starts, when fed last.
    pub(super) last_owner: (usize, usize),
    pub(super) last_in: Option<&'static str>,
    pub(super) last_feed: Feed,
    /// `body_rank` of each container, as of `changes == ranks_at`.
    pub(super) ranks: Vec<Option<u32>>,
    pub(super) ranks_at: Option<u64>,
    /// Counts everything learnt (progress).
    pub(super) changes: u64,
    /// Set with an error no other pass can avoid.
    pub(super) fatal: Option<String>,
}

impl Tracer {
    pub(super) fn take_last(&mut self) -> Node {
        self.last.take().unwrap_or(Node::Leaf(Shape::Unknown))
    }

    /// Notes what is fed here; returns the sample index for this position.
    pub(super) fn feed(&mut self, feed: Feed) -> usize {
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

    pub(super) fn fatal(&mut self, msg: String) -> DeError {
        self.fatal = Some(msg.clone());
        de::Error::custom(msg)
    }

    pub(super) fn descend(&mut self) -> Res<()> {
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

    pub(super) fn enter(
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

    pub(super) fn leave(&mut self, id: usize) {
        if let Some(f) = self.stack.pop() {
            self.cut -= usize::from(f.recursive);
        }
        self.depth = self.depth.saturating_sub(1);
        self.last = Some(Node::Container(id));
    }

    pub(super) fn record(&mut self, id: usize, variant: Option<usize>, fields: Fields) -> Res<()> {
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

    pub(super) fn choose(&mut self, id: usize) -> usize {
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

    pub(super) fn incomplete(&self) -> Option<String> {
        self.containers.iter().find_map(|c| match &c.body {
            Body::Enum(vars) => vars
                .iter()
                .find(|v| !v.full)
                .map(|v| format!("variant `{}` of `{}`", v.name, c.name)),
            Body::Struct(_) => None,
        })
    }

    /// Prepares the next pass after a failed one, or says why there is none.
    pub(super) fn recover(&mut self, e: DeError) -> Result<(), String> {
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

#[derive(Debug)]
pub(super) struct DeError {
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

pub(super) type Res<T> = Result<T, DeError>;
