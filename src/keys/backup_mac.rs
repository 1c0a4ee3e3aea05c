//! The MAC of a backup's manifest under the HSM's root key (issue 10).
//!
//! No new key type: the HSM's seal is AES-256-GCM under a root key (CRK)
//! inside the token, so a seal of a fixed plaintext whose additional data is
//! the manifest ([`ManifestBody::authenticated_data`], a domain of its own that
//! no record seal's additional data starts like) is a tag only the HSM can
//! make, and opening it with the same data checks it. The CRK version is in
//! the authenticated data and in the blob's header, so a manifest cannot
//! claim another root key than the one that made its tag.

use std::fmt;

use crate::hsm::{AsyncHsm, CrkVersion, HsmError};
use crate::secret::SecretBytes;
use crate::store::backup_manifest::{Manifest, ManifestBody};

/// What the MAC seals: public and fixed; the tag is the point.
const SEALED: &[u8] = b"keyward backup manifest";

/// The MAC of `body` under root key `crk`.
pub async fn mac_manifest(hsm: &AsyncHsm, crk: CrkVersion, body: &ManifestBody) -> Result<Vec<u8>, HsmError> {
    hsm.seal(
        crk,
        body.authenticated_data(crk.0),
        SecretBytes::from_slice(SEALED),
    )
    .await
}

/// Checks `manifest`'s MAC through the HSM.
pub async fn verify_manifest(hsm: &AsyncHsm, manifest: &Manifest) -> Result<(), ManifestMacError> {
    let crk = CrkVersion(manifest.crk_version);
    match hsm
        .unseal(crk, manifest.authenticated_data(), manifest.mac.clone())
        .await
    {
        Ok(opened) if opened.expose() == SEALED => Ok(()),
        Ok(_) | Err(HsmError::BadBlob) => Err(ManifestMacError::Mismatch),
        Err(HsmError::NotFound) => Err(ManifestMacError::RootKeyMissing(crk)),
        Err(e) => Err(ManifestMacError::Hsm(e)),
    }
}

/// Why a manifest's MAC was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestMacError {
    /// The root key the MAC was made under is not in the HSM.
    RootKeyMissing(CrkVersion),
    /// The MAC does not verify: the manifest was changed, or not made by this HSM.
    Mismatch,
    /// The HSM could not be asked.
    Hsm(HsmError),
}

impl fmt::Display for ManifestMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestMacError::RootKeyMissing(crk) => write!(
                f,
                "the manifest is MACed under root key {}, which the HSM does not hold \
                 (retired since, or another token)",
                crk.label()
            ),
            ManifestMacError::Mismatch => f.write_str(
                "manifest MAC does not verify: the manifest was changed, or the HSM did not make it",
            ),
            ManifestMacError::Hsm(e) => write!(f, "checking the manifest MAC: {e}"),
        }
    }
}

impl std::error::Error for ManifestMacError {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::keys::testing::PrefixHsm;
    use crate::store::backup_manifest::RecordsDigest;

    fn body() -> ManifestBody {
        ManifestBody::new(
            RecordsDigest {
                records: 3,
                digest: [7; 32],
            },
            1_700_000_000,
        )
    }

    #[tokio::test]
    async fn a_mac_verifies_only_over_its_own_manifest() {
        let hsm = AsyncHsm::new(Arc::new(PrefixHsm::default()), Duration::from_secs(5));
        let mac = mac_manifest(&hsm, CrkVersion(2), &body()).await.unwrap();
        let manifest = Manifest {
            body: body(),
            crk_version: 2,
            mac,
        };
        verify_manifest(&hsm, &manifest).await.unwrap();

        let changes: [fn(&mut Manifest); 6] = [
            |m| m.body.records += 1,
            |m| m.body.digest[0] ^= 1,
            |m| m.body.created_at += 1,
            |m| m.body.keyward_version.push('x'),
            |m| m.body.format += 1,
            |m| m.crk_version = 1,
        ];
        for change in changes {
            let mut changed = manifest.clone();
            change(&mut changed);
            assert_eq!(
                verify_manifest(&hsm, &changed).await,
                Err(ManifestMacError::Mismatch),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn the_mac_data_is_apart_from_every_record_seal() {
        let data = body().authenticated_data(1);
        for record_domain in [
            &b"keyward-record-v3\0"[..],
            b"keyward-object-v2\0",
            b"keyward-object-v1\0",
        ] {
            assert!(!data.starts_with(record_domain));
        }
        assert!(data.starts_with(b"keyward-backup-manifest-v1\0"));
    }
}
