//! The catalog: every operation a user can request, built-in or declared. The parser,
//! `!help`, `!whoami`, rules, config validation and slash commands all read it.

use std::sync::Arc;

use super::grammar::{OperationDef, Param};
use crate::domain::JobSpec;

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    operations: Vec<Arc<OperationDef>>,
}

impl Catalog {
    pub fn new(operations: Vec<Arc<OperationDef>>) -> Catalog {
        Catalog { operations }
    }

    /// This catalog with `more` added after its own operations.
    pub fn with(&self, more: impl IntoIterator<Item = Arc<OperationDef>>) -> Catalog {
        let mut operations = self.operations.clone();
        operations.extend(more);
        Catalog { operations }
    }

    pub fn operations(&self) -> &[Arc<OperationDef>] {
        &self.operations
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<OperationDef>> {
        self.operations.iter().find(|op| op.id == id)
    }

    /// The operation a verb and service (or alias) name.
    pub fn find(&self, verb: &str, service: &str) -> Option<&Arc<OperationDef>> {
        self.operations
            .iter()
            .find(|op| op.answers_to(verb, service))
    }

    /// The operation a rule's `command` names, e.g. `restart ddm`.
    pub fn by_key(&self, key: &str) -> Option<&Arc<OperationDef>> {
        let mut words = key.split_whitespace();
        let (verb, service) = (words.next()?, words.next()?);
        if words.next().is_some() {
            return None;
        }
        self.find(verb, service)
    }

    pub fn is_verb(&self, verb: &str) -> bool {
        self.operations
            .iter()
            .any(|op| op.verb.eq_ignore_ascii_case(verb))
    }

    /// The operations a verb starts.
    pub fn for_verb<'a>(&'a self, verb: &'a str) -> impl Iterator<Item = &'a Arc<OperationDef>> {
        self.operations
            .iter()
            .filter(move |op| op.verb.eq_ignore_ascii_case(verb))
    }

    /// Every usage line of a verb's operations, for a reply that cannot tell which was meant.
    pub fn usages_for_verb(&self, verb: &str) -> String {
        self.for_verb(verb)
            .map(|op| op.usage.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Services by their main name, each once, in catalog order.
    pub fn services(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for op in &self.operations {
            if !seen.contains(&op.service.as_str()) {
                seen.push(&op.service);
            }
        }
        seen
    }

    /// The service a name or alias stands for.
    pub fn service_named(&self, name: &str) -> Option<&str> {
        self.operations
            .iter()
            .find(|op| op.names_service(name))
            .map(|op| op.service.as_str())
    }

    /// The target parameters of a service (shared by all operations on it).
    pub fn target_params(&self, service: &str) -> Option<&[Param]> {
        self.operations
            .iter()
            .find(|op| op.service == service)
            .map(|op| op.target.as_slice())
    }

    /// What `spec` does in one line, e.g. `restart ddm orders-db hard`.
    pub fn action_of(&self, spec: &JobSpec) -> String {
        let op = self.by_id(&spec.operation);
        let (verb, service) = op.map_or(("run", spec.operation.as_str()), |o| {
            (o.verb.as_str(), o.service.as_str())
        });
        let mut out = format!("{verb} {service} {}", spec.target);
        if let Some(mode) = spec.param("mode") {
            out.push(' ');
            out.push_str(mode);
        }
        if let Some(op) = op {
            for arg in &op.args {
                if let Some(v) = spec.param(&arg.name) {
                    out.push(' ');
                    out.push_str(v);
                }
            }
        }
        out
    }

    /// The operation's verb, e.g. `restart` or `upgrade`, for sentences about the work.
    pub fn verb_of(&self, spec: &JobSpec) -> &str {
        self.by_id(&spec.operation).map_or("request", |o| &o.verb)
    }
}
