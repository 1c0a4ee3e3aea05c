//! Batch Error Continuation Option Undo (KMIP 1.4 §6.7): when an item fails,
//! what the items before it did is taken back and they answer Operation
//! Undone. Before each item that changes an object, the object's attributes
//! and state are kept; an object an item makes is noted. What cannot be
//! taken back — Destroy erases material; Re-key and Create Key Pair make and
//! change several objects — stays done and answers Success, so the response
//! says exactly what holds.

use super::context::Context;
use crate::kmip::State;
use crate::kmip::attribute::Attribute;
use crate::kmip::request::Request;

/// What undoing an item needs, known before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Reads only.
    Nothing,
    /// Changes the object it names (or the ID Placeholder).
    Changes(Option<String>),
    /// Makes an object.
    Makes,
    /// Cannot be taken back.
    Irreversible,
}

pub(super) fn plan(request: &Request) -> Plan {
    match request {
        Request::Activate(r) => Plan::Changes(r.unique_identifier.clone()),
        Request::Revoke(r) => Plan::Changes(r.unique_identifier.clone()),
        Request::AddAttribute(r) => Plan::Changes(r.unique_identifier.clone()),
        Request::ModifyAttribute(r) => Plan::Changes(r.unique_identifier.clone()),
        Request::DeleteAttribute(r) => Plan::Changes(r.unique_identifier.clone()),
        // A first Get clears Fresh.
        Request::Get(r) => Plan::Changes(r.unique_identifier.clone()),
        Request::Create(_) | Request::Register(_) => Plan::Makes,
        Request::Destroy(_) | Request::ReKey(_) | Request::CreateKeyPair(_) => Plan::Irreversible,
        _ => Plan::Nothing,
    }
}

enum Step {
    PutBack {
        uid: String,
        attributes: Vec<Attribute>,
        state: State,
    },
    TakeBack {
        uid: String,
    },
}

/// The steps that take back a batch's items, in batch order.
#[derive(Default)]
pub(super) struct UndoLog {
    steps: Vec<(usize, Step)>,
}

impl UndoLog {
    /// Before item `index` runs: keeps what it may change.
    pub(super) async fn before(&mut self, ctx: &Context<'_>, index: usize, plan: &Plan) {
        let Plan::Changes(named) = plan else { return };
        let Ok(uid) = ctx.uid(named) else { return };
        // An object the caller cannot see cannot be changed either.
        if let Ok(visible) = ctx.keys.load(ctx.caller, &uid, ctx.now).await {
            let object = visible.into_object();
            self.steps.push((
                index,
                Step::PutBack {
                    uid,
                    attributes: object.attributes,
                    state: object.state,
                },
            ));
        }
    }

    /// After item `index` succeeded: notes the object it made.
    pub(super) fn made(&mut self, index: usize, plan: &Plan, uid: Option<&str>) {
        if let (Plan::Makes, Some(uid)) = (plan, uid) {
            self.steps.push((index, Step::TakeBack { uid: uid.to_owned() }));
        }
    }

    /// Takes back every step, last first; returns the items whose work was
    /// all taken back. A step that cannot be taken back (the store failed)
    /// leaves its item answered as it was.
    pub(super) async fn undo(self, ctx: &Context<'_>, succeeded: &[usize]) -> Vec<usize> {
        let mut failed = Vec::new();
        for (index, step) in self.steps.into_iter().rev() {
            let done = match step {
                Step::PutBack {
                    uid,
                    attributes,
                    state,
                } => match ctx.keys.load(ctx.caller, &uid, ctx.now).await {
                    Ok(target) => ctx
                        .keys
                        .put_back(target, attributes, state, ctx.now)
                        .await
                        .is_ok(),
                    Err(_) => false,
                },
                Step::TakeBack { uid } => match ctx.keys.load(ctx.caller, &uid, ctx.now).await {
                    Ok(target) => ctx.keys.take_back_new(target).await.is_ok(),
                    Err(_) => false,
                },
            };
            if !done {
                failed.push(index);
            }
        }
        succeeded
            .iter()
            .copied()
            .filter(|i| !failed.contains(i))
            .collect()
    }
}
