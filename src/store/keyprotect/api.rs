//! Key Protect's keys API v2 as keyward uses it: the shapes of its JSON, its
//! error bodies, and the one table that turns a [`Fault`] into a
//! [`StoreError`].

use http::StatusCode;
use serde::Deserialize;

use crate::store::remote::http::{Fault, is_transient_status, one_short_line};
use crate::store::{Conflict, StoreError};

/// The media type of a key and of a collection of keys.
pub(super) const KEY_TYPE: &str = "application/vnd.ibm.kms.key+json";
/// Key Protect's state of a deleted key (NIST SP 800-57 "Destroyed").
pub(super) const STATE_DELETED: u32 = 5;
/// Key Protect's code for an alias another key holds.
pub(super) const ALIAS_TAKEN: &str = "KEY_ALIAS_NOT_UNIQUE_ERR";
/// Marker of a version conflict found locally (never sent by the server).
const LOCAL_VERSION_CONFLICT: &str = "keyward: record version conflict";

/// One key as a listing or a GET gives it (the fields keyward reads).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Key {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) state: u32,
    #[serde(default)]
    pub(super) payload: Option<String>,
    #[serde(default)]
    pub(super) deleted: Option<bool>,
}

impl Key {
    /// Deleted (in the console or by keyward): never served.
    pub(super) fn is_deleted(&self) -> bool {
        self.state == STATE_DELETED || self.deleted == Some(true)
    }
}

/// `{"metadata": {...}, "resources": [...]}`; an empty listing has no
/// `resources` member at all.
#[derive(Deserialize)]
pub(super) struct Collection {
    #[serde(default)]
    pub(super) resources: Vec<Key>,
}

pub(super) fn decode_collection(body: &[u8], what: &str) -> Result<Collection, Fault> {
    serde_json::from_slice(body)
        .map_err(|_| Fault::Decode(format!("Key Protect {what} answer is not a key collection")))
}

/// The body of an import: a collection of exactly one standard key.
pub(super) fn import_body(
    name: &str,
    description: &str,
    alias: &str,
    payload: &str,
) -> Result<Vec<u8>, Fault> {
    serde_json::to_vec(&serde_json::json!({
        "metadata": { "collectionType": KEY_TYPE, "collectionTotal": 1 },
        "resources": [{
            "type": KEY_TYPE,
            "name": name,
            "description": description,
            "extractable": true,
            "payload": payload,
            "aliases": [alias],
        }],
    }))
    .map_err(|e| Fault::Local(format!("cannot encode a Key Protect import: {e}")))
}

/// Key Protect's error text: `"<reason code>: <errorMsg>"` from
/// `{"resources": [{"errorMsg": "...", "reasons": [{"code": "..."}]}]}`.
pub(super) fn kp_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        resources: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default, rename = "errorMsg")]
        message: String,
        #[serde(default)]
        reasons: Vec<Reason>,
    }
    #[derive(Deserialize)]
    struct Reason {
        #[serde(default)]
        code: String,
    }
    let Ok(errors) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let Some(first) = errors.resources.into_iter().next() else {
        return String::new();
    };
    match first.reasons.into_iter().next() {
        Some(reason) if !reason.code.is_empty() => {
            one_short_line(&format!("{}: {}", reason.code, first.message))
        }
        _ => one_short_line(&first.message),
    }
}

/// The import was refused because the alias is held by another key.
pub(super) fn is_alias_taken(fault: &Fault) -> bool {
    matches!(fault, Fault::Status { status, message, .. }
        if *status == StatusCode::CONFLICT && message.contains(ALIAS_TAKEN))
}

/// The import was refused because the instance holds as many aliases as it
/// may (sources disagree on whether such a cap exists: 1,000 per instance in
/// an older API document, none in a newer one). Recognised by the words of
/// the refusal, since no code for it is documented.
pub(super) fn is_alias_cap(fault: &Fault) -> bool {
    match fault {
        Fault::Status { status, message, .. }
            if status.is_client_error() && *status != StatusCode::CONFLICT =>
        {
            let text = message.to_ascii_lowercase();
            text.contains("alias")
                && ["limit", "quota", "exceed", "maximum", "too many"]
                    .iter()
                    .any(|w| text.contains(w))
        }
        _ => false,
    }
}

/// Absent: 404, or 410 (already deleted).
pub(super) fn is_gone(fault: &Fault) -> bool {
    matches!(fault.status(), Some(StatusCode::NOT_FOUND | StatusCode::GONE))
}

pub(super) fn version_conflict() -> Fault {
    Fault::Status {
        status: StatusCode::CONFLICT,
        message: LOCAL_VERSION_CONFLICT.to_owned(),
        retry_after: None,
    }
}

pub(super) fn already_exists() -> Fault {
    Fault::Status {
        status: StatusCode::CONFLICT,
        message: String::new(),
        retry_after: None,
    }
}

pub(super) fn not_found() -> Fault {
    Fault::Status {
        status: StatusCode::NOT_FOUND,
        message: String::new(),
        retry_after: None,
    }
}

/// THE mapping from Key Protect faults to the store's error variants.
pub(super) fn to_store_error(fault: Fault) -> StoreError {
    if is_alias_cap(&fault) {
        let said = match &fault {
            Fault::Status { message, .. } => message.clone(),
            _ => String::new(),
        };
        return StoreError::Other(format!(
            "Key Protect refused another key alias ({said}): the instance reached its alias limit. \
             keyward keeps one alias per record (two while a record is updated); delete unused \
             keys or aliases, ask IBM to raise the limit, or use another store backend"
        ));
    }
    match fault {
        Fault::Timeout(after) => StoreError::Timeout(format!(
            "Key Protect gave no answer within {} ms; retry",
            after.as_millis()
        )),
        Fault::Transport(why) => StoreError::unavailable(format!("cannot reach Key Protect: {why}; retry")),
        Fault::Status {
            status,
            message,
            retry_after,
        } => {
            let code = status.as_u16();
            let said = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            match status {
                StatusCode::NOT_FOUND | StatusCode::GONE => StoreError::NotFound,
                StatusCode::CONFLICT if message == LOCAL_VERSION_CONFLICT => {
                    StoreError::Conflict(Conflict::Version)
                }
                StatusCode::CONFLICT => StoreError::Conflict(Conflict::Exists),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StoreError::Auth(format!(
                    "Key Protect refused keyward's credentials (HTTP {code}{said}): check the API key, \
                     store.instance_id, and the service ID's Writer/Manager role on the instance"
                )),
                StatusCode::PAYLOAD_TOO_LARGE => {
                    StoreError::TooLarge(format!("record too large for Key Protect{said}"))
                }
                s if is_transient_status(s) => {
                    let after = retry_after
                        .map(|d| format!("; retry after {} s", d.as_secs().max(1)))
                        .unwrap_or_else(|| "; retry".to_owned());
                    StoreError::Unavailable {
                        retry_after,
                        detail: format!("Key Protect answered HTTP {code}{said}{after}"),
                    }
                }
                _ => StoreError::Other(format!("Key Protect answered HTTP {code}{said}")),
            }
        }
        Fault::Decode(why) => StoreError::Corrupt(why),
        Fault::Local(why) => StoreError::Other(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(code: u16, message: &str) -> Fault {
        Fault::Status {
            status: StatusCode::from_u16(code).unwrap(),
            message: message.to_owned(),
            retry_after: None,
        }
    }

    #[test]
    fn error_bodies_and_statuses_map_to_store_errors() {
        let body = br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.error+json","collectionTotal":1},
            "resources":[{"errorMsg":"Conflict: Key alias already exists","reasons":[{"code":"KEY_ALIAS_NOT_UNIQUE_ERR","message":"x","status":409}]}]}"#;
        let message = kp_message(body);
        assert_eq!(
            message,
            "KEY_ALIAS_NOT_UNIQUE_ERR: Conflict: Key alias already exists"
        );
        assert!(is_alias_taken(&status(409, &message)));
        assert_eq!(
            to_store_error(status(409, &message)),
            StoreError::Conflict(Conflict::Exists)
        );
        assert_eq!(
            to_store_error(version_conflict()),
            StoreError::Conflict(Conflict::Version)
        );
        assert_eq!(to_store_error(status(404, "")), StoreError::NotFound);
        assert_eq!(
            to_store_error(status(410, "KEY_DELETED_ERR: gone")),
            StoreError::NotFound
        );
        assert!(matches!(to_store_error(status(401, "")), StoreError::Auth(_)));
        assert!(matches!(to_store_error(status(413, "")), StoreError::TooLarge(_)));
        let cap = to_store_error(status(
            400,
            "KEY_ALIAS_QUOTA_ERR: Number of key aliases exceeds the limit",
        ));
        assert!(
            matches!(&cap, StoreError::Other(m) if m.contains("alias limit")),
            "{cap}"
        );
        let busy = to_store_error(Fault::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        });
        assert!(
            busy.is_transient() && busy.to_string().contains("retry after 3 s"),
            "{busy}"
        );
        assert!(!to_store_error(status(501, "")).is_transient());
        assert_eq!(kp_message(b"not json"), "");
    }

    #[test]
    fn an_empty_listing_has_no_resources() {
        let list = decode_collection(
            br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":0}}"#,
            "list",
        )
        .unwrap();
        assert!(list.resources.is_empty());
    }
}
