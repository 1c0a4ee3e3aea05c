//! Which token holds the root keys: a label (and optionally a slot), or an
//! RFC 7512 PKCS#11 URI naming the token by label, manufacturer, model,
//! serial number and slot id — what HSM vendors print and administrators copy
//! (`p11tool --list-tokens`, a cloud HSM's console).
//!
//! Only token selection is read from a URI. The rest of what RFC 7512 allows
//! is refused with the configuration key that does it instead, never ignored:
//! an administrator who wrote `pin-value` or `object` meant something, and a
//! URI half applied would select a token other than the one they think.
//! - `pin-value`, `pin-source`: the PIN comes from `pin_file` or the systemd
//!   credential, never from the configuration itself;
//! - `module-path`, `module-name`: `module`;
//! - `object`, `id`, `type`: keyward names its root keys itself
//!   (`keyward-crk-<n>`);
//! - `library-*`, `slot-description`, `slot-manufacturer`: not used for
//!   selection (name the token by serial, or its slot by `slot-id`).

use std::fmt;

/// How the token is found among the module's slots: every field given must
/// match (token fields compared without their blank padding).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSelector {
    pub label: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub slot_id: Option<u64>,
}

/// What a slot's token says of itself (from `C_GetTokenInfo`).
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    pub slot_id: u64,
    pub label: &'a str,
    pub manufacturer: &'a str,
    pub model: &'a str,
    pub serial: &'a str,
}

/// Longest values of the token fields (PKCS#11 `CK_TOKEN_INFO`, blank padded).
const LABEL_BYTES: usize = 32;
const MANUFACTURER_BYTES: usize = 32;
const MODEL_BYTES: usize = 16;
const SERIAL_BYTES: usize = 16;
/// Longest URI read; a real one is well under 300 bytes.
const MAX_URI_BYTES: usize = 1024;

/// Why a token selection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// Not `pkcs11:` followed by attributes.
    NotPkcs11,
    /// A malformed attribute or percent-encoding; the text says where.
    Malformed(String),
    /// An attribute keyward does not use for selection, with what to use instead.
    Unsupported {
        attribute: String,
        instead: &'static str,
    },
    /// An attribute given twice (RFC 7512 §2.3 forbids it).
    Repeated(String),
    /// A value longer than its PKCS#11 field, or empty.
    BadValue { attribute: &'static str, why: String },
    /// Nothing to select a token by.
    Empty,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::NotPkcs11 => f.write_str("not a PKCS#11 URI (it must start with \"pkcs11:\")"),
            UriError::Malformed(why) => write!(f, "malformed PKCS#11 URI: {why}"),
            UriError::Unsupported { attribute, instead } => {
                write!(f, "PKCS#11 URI attribute {attribute:?} is not used by keyward: {instead}")
            }
            UriError::Repeated(attribute) => write!(f, "PKCS#11 URI attribute {attribute:?} is given twice"),
            UriError::BadValue { attribute, why } => write!(f, "PKCS#11 URI attribute {attribute:?}: {why}"),
            UriError::Empty => f.write_str(
                "the PKCS#11 URI selects no token (give at least one of token, manufacturer, model, serial, slot-id)",
            ),
        }
    }
}

impl std::error::Error for UriError {}

impl TokenSelector {
    /// The token with this label, in any slot.
    pub fn by_label(label: impl Into<String>) -> Self {
        TokenSelector {
            label: Some(label.into()),
            ..TokenSelector::default()
        }
    }

    /// Whether `token` is the one selected.
    pub fn matches(&self, token: &TokenFacts<'_>) -> bool {
        let same = |wanted: &Option<String>, have: &str| wanted.as_ref().is_none_or(|w| w == have.trim_end());
        self.slot_id.is_none_or(|id| id == token.slot_id)
            && same(&self.label, token.label)
            && same(&self.manufacturer, token.manufacturer)
            && same(&self.model, token.model)
            && same(&self.serial, token.serial)
    }

    /// The slot id, when it is all that selects the token: the only way to
    /// select a token that cannot describe itself.
    pub fn slot_only(&self) -> Option<u64> {
        let only_slot = self.label.is_none()
            && self.manufacturer.is_none()
            && self.model.is_none()
            && self.serial.is_none();
        self.slot_id.filter(|_| only_slot)
    }

    /// Reads an RFC 7512 URI's token selection.
    pub fn from_uri(uri: &str) -> Result<TokenSelector, UriError> {
        if uri.len() > MAX_URI_BYTES {
            return Err(UriError::Malformed(format!("longer than {MAX_URI_BYTES} bytes")));
        }
        let rest = uri.strip_prefix("pkcs11:").ok_or(UriError::NotPkcs11)?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut selector = TokenSelector::default();
        let mut seen: Vec<String> = Vec::new();
        let attributes = path.split(';').filter(|a| !a.is_empty()).map(|a| (a, ';'));
        let queries = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|a| !a.is_empty())
            .map(|a| (a, '&'));
        for (attribute, separator) in attributes.chain(queries) {
            let (name, raw) = attribute
                .split_once('=')
                .ok_or_else(|| UriError::Malformed(format!("{attribute:?} has no '='")))?;
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(UriError::Repeated(name));
            }
            seen.push(name.clone());
            // Refused by name before its value is even decoded: a PIN given
            // here must not end up quoted in an error message.
            if separator == '&' || name.starts_with("pin-") {
                return Err(unsupported_query(&name));
            }
            let value = percent_decode(&name, raw)?;
            selector.set(&name, value)?;
        }
        if selector == TokenSelector::default() {
            return Err(UriError::Empty);
        }
        Ok(selector)
    }

    fn set(&mut self, name: &str, value: String) -> Result<(), UriError> {
        let field = |attribute: &'static str, max: usize| -> Result<Option<String>, UriError> {
            if value.is_empty() || value.len() > max {
                return Err(UriError::BadValue {
                    attribute,
                    why: format!("must be 1 to {max} bytes"),
                });
            }
            Ok(Some(value.clone()))
        };
        match name {
            "token" => self.label = field("token", LABEL_BYTES)?,
            "manufacturer" => self.manufacturer = field("manufacturer", MANUFACTURER_BYTES)?,
            "model" => self.model = field("model", MODEL_BYTES)?,
            "serial" => self.serial = field("serial", SERIAL_BYTES)?,
            "slot-id" => {
                let id = value.parse::<u64>().map_err(|_| UriError::BadValue {
                    attribute: "slot-id",
                    why: format!("{value:?} is not a decimal slot number"),
                })?;
                self.slot_id = Some(id);
            }
            other => return Err(unsupported_path(other)),
        }
        Ok(())
    }
}

fn unsupported_path(name: &str) -> UriError {
    let instead = match name {
        "object" | "id" | "type" => {
            "keyward names its root keys itself (keyward-crk-<n>); name only the token"
        }
        n if n.starts_with("library-") => "select the module with [hsm] module, the token by token/serial",
        "slot-description" | "slot-manufacturer" => "select the slot with slot-id, or the token by serial",
        _ => "keyward selects a token by token, manufacturer, model, serial and slot-id only",
    };
    UriError::Unsupported {
        attribute: name.to_owned(),
        instead,
    }
}

fn unsupported_query(name: &str) -> UriError {
    let instead = match name {
        "pin-value" | "pin-source" => {
            "the PIN never goes in the configuration: use [hsm] pin_file or the systemd credential"
        }
        "module-path" | "module-name" => "give the module's path as [hsm] module",
        _ => "keyward reads no query attributes from a PKCS#11 URI",
    };
    UriError::Unsupported {
        attribute: name.to_owned(),
        instead,
    }
}

/// RFC 3986 percent-decoding into UTF-8 text. Errors name the attribute,
/// never its value.
fn percent_decode(name: &str, raw: &str) -> Result<String, UriError> {
    let hex_digit = |b: u8| char::from(b).to_digit(16);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = bytes.get(i + 1).and_then(|b| hex_digit(*b));
                let low = bytes.get(i + 2).and_then(|b| hex_digit(*b));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(UriError::Malformed(format!(
                        "bad percent-encoding in attribute {name:?}"
                    )));
                };
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| UriError::Malformed(format!("attribute {name:?} is not UTF-8 once decoded")))
}

impl fmt::Display for TokenSelector {
    /// As the administrator would recognise it: `token "keyward" in slot 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(label) = &self.label {
            parts.push(format!("token {label:?}"));
        } else {
            parts.push("a token".to_owned());
        }
        for (what, value) in [
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("serial", &self.serial),
        ] {
            if let Some(v) = value {
                parts.push(format!("{what} {v:?}"));
            }
        }
        if let Some(id) = self.slot_id {
            parts.push(format!("in slot {id}"));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(slot_id: u64, label: &'a str, serial: &'a str) -> TokenFacts<'a> {
        TokenFacts {
            slot_id,
            label,
            manufacturer: "SoftHSM project                 ",
            model: "SoftHSM v2      ",
            serial,
        }
    }

    #[test]
    fn a_uri_selects_by_every_token_field_percent_decoded() {
        let s = TokenSelector::from_uri(
            "pkcs11:token=keyward%20prod;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=7c1d9f0a5be4c2d1;slot-id=3",
        )
        .unwrap();
        assert_eq!(s.label.as_deref(), Some("keyward prod"));
        assert_eq!(s.slot_id, Some(3));
        assert!(s.matches(&facts(3, "keyward prod                    ", "7c1d9f0a5be4c2d1")));
        assert!(
            !s.matches(&facts(4, "keyward prod", "7c1d9f0a5be4c2d1")),
            "other slot"
        );
        assert!(
            !s.matches(&facts(3, "keyward prod", "0000000000000000")),
            "other serial"
        );
        assert!(
            !s.matches(&facts(3, "keyward", "7c1d9f0a5be4c2d1")),
            "other label"
        );
        assert_eq!(
            s.to_string(),
            "token \"keyward prod\" manufacturer \"SoftHSM project\" model \"SoftHSM v2\" serial \"7c1d9f0a5be4c2d1\" in slot 3"
        );
        // A serial alone is enough, and the attribute names ignore case.
        let by_serial = TokenSelector::from_uri("pkcs11:SERIAL=7c1d9f0a5be4c2d1").unwrap();
        assert!(by_serial.matches(&facts(9, "anything", "7c1d9f0a5be4c2d1")));
    }

    #[test]
    fn only_a_bare_slot_id_selects_a_token_that_cannot_describe_itself() {
        assert_eq!(
            TokenSelector::from_uri("pkcs11:slot-id=3").unwrap().slot_only(),
            Some(3)
        );
        assert_eq!(
            TokenSelector::from_uri("pkcs11:slot-id=3;token=k")
                .unwrap()
                .slot_only(),
            None
        );
        assert_eq!(
            TokenSelector::from_uri("pkcs11:serial=1").unwrap().slot_only(),
            None
        );
        assert_eq!(TokenSelector::by_label("k").slot_only(), None);
    }

    #[test]
    fn a_label_selects_as_before() {
        let s = TokenSelector::by_label("keyward");
        assert!(s.matches(&facts(0, "keyward                         ", "1")));
        assert!(!s.matches(&facts(0, "keyward2", "1")));
    }

    #[test]
    fn what_keyward_does_not_select_by_is_refused_with_what_to_use() {
        let refused = |uri: &str| TokenSelector::from_uri(uri).unwrap_err();
        assert_eq!(refused("file:/x"), UriError::NotPkcs11);
        assert_eq!(refused("pkcs11:"), UriError::Empty);
        let pin = refused("pkcs11:token=k?pin-value=1234").to_string();
        assert!(pin.contains("pin_file") && !pin.contains("1234"), "{pin}");
        assert!(matches!(
            refused("pkcs11:token=k?pin-source=file:/p"),
            UriError::Unsupported { .. }
        ));
        assert!(
            refused("pkcs11:token=k?module-path=/usr/lib/x.so")
                .to_string()
                .contains("[hsm] module")
        );
        assert!(
            refused("pkcs11:token=k;object=keyward-crk-1")
                .to_string()
                .contains("keyward-crk")
        );
        assert!(matches!(
            refused("pkcs11:token=k;library-version=2.6"),
            UriError::Unsupported { .. }
        ));
        assert!(matches!(
            refused("pkcs11:token=k;x-vendor=1"),
            UriError::Unsupported { .. }
        ));
        assert_eq!(
            refused("pkcs11:token=a;token=b"),
            UriError::Repeated("token".into())
        );
        assert!(matches!(refused("pkcs11:token=%zz"), UriError::Malformed(_)));
        assert!(matches!(refused("pkcs11:token=%+1"), UriError::Malformed(_)));
        // A PIN is refused before it is decoded, and never quoted back.
        for uri in [
            "pkcs11:token=k?pin-value=ab%zz",
            "pkcs11:token=k;pin-value=s3cr%ff",
        ] {
            let err = refused(uri).to_string();
            assert!(!err.contains("ab") && !err.contains("s3cr"), "{err}");
        }
        assert!(matches!(refused("pkcs11:token=%ff"), UriError::Malformed(_)));
        assert!(matches!(refused("pkcs11:token"), UriError::Malformed(_)));
        assert!(matches!(refused("pkcs11:slot-id=-1"), UriError::BadValue { .. }));
        assert!(matches!(
            refused(&format!("pkcs11:token={}", "a".repeat(33))),
            UriError::BadValue { .. }
        ));
        assert!(matches!(
            refused(&format!("pkcs11:serial={}", "1".repeat(17))),
            UriError::BadValue { .. }
        ));
        assert!(matches!(
            refused(&format!("pkcs11:token=a;{}", "x".repeat(2000))),
            UriError::Malformed(_)
        ));
    }
}
