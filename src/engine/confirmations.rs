//! Requests waiting for their requester's typed confirmation (rules with `confirm = true`).
//!
//! They live only in memory: nothing is stored as requested until it is confirmed, so a
//! restart or the deadline passing forgets them silently, as the rule promises.

use std::collections::HashMap;

use super::{Effect, Engine};
use crate::command::OperationRequest;
use crate::domain::{Actor, ChannelId, UserId};
use crate::ports::chat::{FlowOut, Origin};

/// How long the requester has to type `!confirm`.
pub const WINDOW_MS: u64 = 60_000;
/// At most this many unconfirmed requests are kept (one chat cannot fill memory).
const MAX_OPEN: usize = 1_000;

pub struct Pending {
    pub actor_id: UserId,
    pub channel: ChannelId,
    pub request: OperationRequest,
    /// What must be typed: the target's name as the request gave it.
    pub expected: String,
    pub expires_ms: u64,
}

/// Why a `!confirm` did not confirm anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No such number open (never given, already used, or expired and forgotten).
    Unknown,
    /// Someone other than the requester, or from another channel.
    NotYours,
    /// The name typed was not the target's; the request stays open until its deadline.
    WrongName { expected: String },
}

#[derive(Default)]
pub struct Confirmations {
    open: HashMap<u64, Pending>,
}

impl Confirmations {
    /// Keeps `pending` and returns its number: three digits, unlike job numbers in a demo,
    /// and random so that a number typed from an old prompt rarely names a new request.
    pub fn open(&mut self, pending: Pending, now_ms: u64) -> Option<u64> {
        self.forget_expired(now_ms);
        if self.open.len() >= MAX_OPEN {
            return None;
        }
        // Also drop an earlier unconfirmed request of the same person on the same target.
        self.open
            .retain(|_, p| !(p.actor_id == pending.actor_id && p.expected == pending.expected));
        let number = loop {
            let n = fastrand::u64(100..10_000);
            if !self.open.contains_key(&n) {
                break n;
            }
        };
        self.open.insert(number, pending);
        Some(number)
    }

    /// Takes the request numbered `number` if `actor` in `origin` typed its target's name.
    pub fn confirm(
        &mut self,
        number: u64,
        actor: &Actor,
        origin: &Origin,
        typed: &str,
        now_ms: u64,
    ) -> Result<OperationRequest, Miss> {
        self.forget_expired(now_ms);
        let Some(p) = self.open.get(&number) else {
            return Err(Miss::Unknown);
        };
        if p.actor_id != actor.id || p.channel != origin.channel {
            return Err(Miss::NotYours);
        }
        if p.expected != typed.trim() {
            return Err(Miss::WrongName {
                expected: p.expected.clone(),
            });
        }
        self.open
            .remove(&number)
            .map(|p| p.request)
            .ok_or(Miss::Unknown)
    }

    fn forget_expired(&mut self, now_ms: u64) {
        self.open.retain(|_, p| p.expires_ms > now_ms);
    }
}

impl Engine {
    /// Keeps a request whose rule asks for typed confirmation and tells the requester how
    /// to confirm it. Nothing is stored.
    pub(super) fn ask_confirmation(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        req: OperationRequest,
        now: u64,
    ) {
        let expected = req.target.clone();
        let action = format!("{} {}", req.op.key(), req.target);
        let expires_ms = now + WINDOW_MS;
        let pending = Pending {
            actor_id: actor.id.clone(),
            channel: origin.channel.clone(),
            request: req,
            expected: expected.clone(),
            expires_ms,
        };
        let Some(number) = self.confirmations.open(pending, now) else {
            let msg = "Too many requests are waiting for confirmation; try again in a minute.";
            return self.refuse(origin, msg);
        };
        let text = format!(
            "⚠️ {action} needs your confirmation: type `{}confirm {number} {expected}` within {} s. Nothing was stored yet; unconfirmed, it lapses.",
            self.config.prefix,
            WINDOW_MS / 1000
        );
        self.effects.push(Effect::Flow(FlowOut::ConfirmPrompt {
            to: origin.clone(),
            number,
            expected,
            expires_ms,
            text,
        }));
    }

    pub(super) fn on_confirm(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        number: u64,
        typed: &str,
        now: u64,
    ) {
        match self
            .confirmations
            .confirm(number, actor, origin, typed, now)
        {
            Ok(req) => self.request(actor, origin, req, true, now),
            Err(Miss::Unknown) => {
                let msg = format!(
                    "There is no request {number} waiting for confirmation (it may have lapsed after {} s); ask again.",
                    WINDOW_MS / 1000
                );
                self.refuse(origin, msg)
            }
            Err(Miss::NotYours) => {
                let msg = format!(
                    "{}: request {number} is not yours to confirm (only its requester can, where it was asked).",
                    actor.name
                );
                self.refuse(origin, msg)
            }
            Err(Miss::WrongName { expected }) => {
                let msg = format!(
                    "That is not the target's name; type `{}confirm {number} {expected}` exactly. The request stays open until it lapses.",
                    self.config.prefix
                );
                self.refuse(origin, msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> OperationRequest {
        let op = crate::command::OperationDef {
            id: "db.restart".into(),
            verb: "restart".into(),
            service: "db".into(),
            aliases: vec![],
            provider: crate::domain::Provider::Huawei,
            target: vec![crate::command::Param::new(
                "instance_id",
                "<target>",
                &crate::command::ids::NAME,
            )],
            modes: None,
            args: vec![],
            usage: "!restart db <target>".into(),
            summary: String::new(),
            notes: String::new(),
            check: None,
            lock: None,
            origin: None,
        };
        let catalog = crate::command::Catalog::new(vec![std::sync::Arc::new(op)]);
        let targets = Default::default();
        match crate::command::parse("!restart db orders-db", "!", &targets, &catalog) {
            Ok(Some(crate::command::Command::Operation(r))) => r,
            other => panic!("{other:?}"),
        }
    }

    fn alice() -> Actor {
        Actor {
            id: "alice".into(),
            name: "alice".into(),
            roles: vec![],
        }
    }

    fn pending(expires_ms: u64) -> Pending {
        Pending {
            actor_id: "alice".into(),
            channel: "ops".into(),
            request: request(),
            expected: "orders-db".into(),
            expires_ms,
        }
    }

    #[test]
    fn only_the_requester_typing_the_name_in_time_confirms() {
        let mut c = Confirmations::default();
        let n = c.open(pending(60_000), 0).unwrap();
        let ops = Origin::channel("ops");
        let bob = Actor {
            id: "bob".into(),
            ..alice()
        };
        assert_eq!(
            c.confirm(n, &bob, &ops, "orders-db", 1).err(),
            Some(Miss::NotYours)
        );
        assert_eq!(
            c.confirm(n, &alice(), &Origin::channel("random"), "orders-db", 1)
                .err(),
            Some(Miss::NotYours)
        );
        assert!(matches!(
            c.confirm(n, &alice(), &ops, "orders", 1),
            Err(Miss::WrongName { .. })
        ));
        assert!(c.confirm(n, &alice(), &ops, "orders-db", 2).is_ok());
        // Used once.
        assert_eq!(
            c.confirm(n, &alice(), &ops, "orders-db", 3).err(),
            Some(Miss::Unknown)
        );
    }

    #[test]
    fn an_unconfirmed_request_expires() {
        let mut c = Confirmations::default();
        let n = c.open(pending(60_000), 0).unwrap();
        assert_eq!(
            c.confirm(n, &alice(), &Origin::channel("ops"), "orders-db", 60_000)
                .err(),
            Some(Miss::Unknown)
        );
    }
}
