//! Taking back what an Undo batch did (KMIP 1.4 §6.7 Batch Error
//! Continuation Option Undo): an object the batch made is removed, and an
//! object the batch changed gets back the attributes and state it had.

use super::{KeyError, KeyService, Visible};
use crate::kmip::State;
use crate::kmip::attribute::Attribute;

impl KeyService {
    /// Removes an object made earlier in the same request and never handed
    /// out as working: a Create an Undo batch takes back (the item answers
    /// Operation Undone), the private half of a pair whose public half could
    /// not be stored.
    pub async fn take_back_new(&self, target: Visible) -> Result<(), KeyError> {
        let object = target.into_object();
        self.store
            .delete(&object.uid, Some(object.record_version))
            .await?;
        self.release_object(&object.group);
        self.state_changed(Some(object.state), None);
        Ok(())
    }

    /// Puts back the attributes and state an object had before the batch.
    /// Its material is untouched: the operations an Undo batch runs change
    /// metadata only.
    pub async fn put_back(
        &self,
        target: Visible,
        attributes: Vec<Attribute>,
        state: State,
        now: i64,
    ) -> Result<(), KeyError> {
        self.update(target, now, |object| {
            object.attributes = attributes.clone();
            object.set_state(state);
            Ok(())
        })
        .await
    }
}
