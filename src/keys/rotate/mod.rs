//! Root rotation (DESIGN §1): re-seal every record under a newer CRK while the
//! service keeps serving, and the rule that makes a rotation resumable.
//!
//! # Why a rotation can be killed at any point
//!
//! A rotation keeps no state of its own: what it has done is what the HSM and
//! the store say. The HSM holds CRK versions; each record carries the version
//! its blob is sealed under; a record is re-sealed by one compare-and-swap that
//! replaces blob and version together, and the old CRK stays in the HSM until
//! `root retire`. So after a crash every record is readable (under the old or
//! the new CRK) and [`plan_rotation`] tells from the counts whether a rotation
//! was under way:
//!
//! - some record is sealed under a CRK older than the HSM's newest → the
//!   rotation to the newest is unfinished: resume it, create nothing;
//! - otherwise every record is under the newest (or there are none) → a new
//!   rotation: create newest + 1.
//!
//! A crash after creating CRK n+1 but before any re-seal leaves records under
//! n only, so the next run resumes to n+1 instead of making n+2. A crash after
//! the last re-seal leaves nothing to resume; the next run is a new rotation,
//! which is harmless.
//!
//! # Keys created during a rotation
//!
//! A running server follows the HSM's newest CRK ([`KeyService::follow_newest_crk`],
//! polled every couple of seconds), so keys created before it switches are
//! sealed under the old CRK. The rotation therefore repeats passes until the
//! store counts no record under an older CRK, and its last count happens at
//! least [`RotationOptions::switch_grace`] after the new CRK existed, when every
//! server has switched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{KeyError, KeyService, MAX_UPDATE_ATTEMPTS, StoredObject};
use crate::hsm::CrkVersion;
use crate::secret::SecretBytes;
use crate::store::{Query, Record, StoreError};

mod runner;
use runner::{Runner, Work};

/// Records fetched per page when a pass walks the store.
use crate::limits::ROTATION_PAGE_RECORDS as PAGE;

/// How often a record whose re-seal failed transiently (HSM or store blip) is
/// tried again before the pass gives up (the rotation can be resumed).
const TRANSIENT_ATTEMPTS: u32 = 5;

/// A record that opened and decoded ([`KeyService::check_record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCheck {
    /// It holds key material (it is not destroyed).
    pub has_material: bool,
    /// Its seal binds every field; `false` for a seal an earlier build made,
    /// which binds only the identity until the next change or root rotation.
    pub bound: bool,
}

/// What [`KeyService::reseal`] did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResealOutcome {
    /// Opened under its CRK and sealed again under the target.
    Resealed,
    /// No key material (destroyed, or a metadata-only object): only its CRK
    /// version moved, so that no record keeps the old CRK in use.
    Relabelled,
    /// Already under the target (created or re-sealed meanwhile).
    AlreadyCurrent,
    /// Deleted meanwhile.
    Gone,
}

/// Where a rotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStart {
    /// Every record is under the newest CRK: create this (newest + 1).
    Create(CrkVersion),
    /// Records remain under older CRKs: an earlier rotation to this (the
    /// newest) did not finish; continue it.
    Resume(CrkVersion),
}

impl RotationStart {
    pub fn target(self) -> CrkVersion {
        match self {
            RotationStart::Create(v) | RotationStart::Resume(v) => v,
        }
    }
}

/// Decides where a rotation goes from the HSM's CRK versions and the store's
/// record counts per CRK version (see the module documentation).
pub fn plan_rotation(
    hsm_versions: &[CrkVersion],
    counts: &BTreeMap<u32, u64>,
) -> Result<RotationStart, KeyError> {
    let newest = hsm_versions.iter().copied().max().ok_or_else(|| {
        KeyError::Invalid("the token holds no root key; run `keyward hsm init` first".into())
    })?;
    let older_in_use = counts
        .iter()
        .any(|(&v, &n)| n > 0 && v < newest.0 && hsm_versions.contains(&CrkVersion(v)));
    if older_in_use {
        return Ok(RotationStart::Resume(newest));
    }
    let next = newest
        .0
        .checked_add(1)
        .ok_or_else(|| KeyError::Invalid("no root key version left after this one".into()))?;
    Ok(RotationStart::Create(CrkVersion(next)))
}

/// Record counts under CRK versions the HSM does not hold: their key material,
/// if any, cannot be opened by anyone.
pub fn missing_crks(hsm_versions: &[CrkVersion], counts: &BTreeMap<u32, u64>) -> Vec<(u32, u64)> {
    counts
        .iter()
        .filter(|&(&v, &n)| n > 0 && !hsm_versions.contains(&CrkVersion(v)))
        .map(|(&v, &n)| (v, n))
        .collect()
}

/// Tuning of a rotation.
#[derive(Debug, Clone)]
pub struct RotationOptions {
    /// Re-seals in flight at once (the store group-commits them).
    pub concurrency: usize,
    /// Most re-seals started per second (spares a production HSM); none by default.
    pub max_rate: Option<u32>,
    /// How long after the new CRK exists the last count may happen: longer
    /// than a running server needs to notice the new CRK and finish the
    /// Creates it already sealed under the old one.
    pub switch_grace: Duration,
    /// Passes before giving up on a store where records keep appearing under
    /// an old CRK (a server that does not follow the HSM's newest CRK).
    pub max_passes: u32,
}

impl Default for RotationOptions {
    fn default() -> Self {
        RotationOptions {
            concurrency: 32,
            max_rate: None,
            switch_grace: Duration::from_secs(5),
            max_passes: 20,
        }
    }
}

/// Where a rotation is, for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub pass: u32,
    /// Records of this pass dealt with.
    pub done: u64,
    /// Records under older CRKs when the pass started (an estimate: keys
    /// created meanwhile add to it).
    pub total: u64,
    /// Re-sealed so far, all passes.
    pub resealed: u64,
}

/// What a whole rotation did.
#[derive(Debug, Clone, Default)]
pub struct RotationReport {
    pub passes: u32,
    pub resealed: u64,
    pub relabelled: u64,
    /// Records found already under the target (keys created after the switch).
    pub already_current: u64,
    pub gone: u64,
    /// Records that could not be re-sealed, with why (uid → reason); they stay
    /// under their old CRK, which therefore cannot be retired.
    pub failed: BTreeMap<String, String>,
    /// Time spent re-sealing (passes only, not the wait for servers to switch).
    pub resealing: Duration,
}

impl RotationReport {
    /// Records re-sealed per second of re-sealing.
    pub fn rate(&self) -> f64 {
        let secs = self.resealing.as_secs_f64();
        if secs > 0.0 {
            self.resealed as f64 / secs
        } else {
            0.0
        }
    }

    fn add(&mut self, outcome: ResealOutcome) {
        match outcome {
            ResealOutcome::Resealed => self.resealed += 1,
            ResealOutcome::Relabelled => self.relabelled += 1,
            ResealOutcome::AlreadyCurrent => self.already_current += 1,
            ResealOutcome::Gone => self.gone += 1,
        }
    }
}

impl KeyService {
    /// Makes new seals use the HSM's newest CRK if it is newer than the
    /// current one and this process can use it (a probe seal and unseal).
    /// Returns the version switched to. A running server calls this every few
    /// seconds so that a rotation in another process takes effect.
    pub async fn follow_newest_crk(&self) -> Result<Option<CrkVersion>, KeyError> {
        let Some(newest) = self.hsm.crk_versions().await?.into_iter().max() else {
            return Ok(None);
        };
        if newest <= self.current_crk() {
            return Ok(None);
        }
        // Never switch to a CRK the HSM session cannot use: every Create would fail.
        let aad = b"keyward-crk-probe".to_vec();
        let probe = SecretBytes::new(vec![0u8; 32]);
        let blob = self.hsm.seal(newest, aad.clone(), probe).await?;
        self.hsm.unseal(newest, aad, blob).await?;
        self.set_current_crk(newest);
        Ok(Some(newest))
    }

    /// Re-seals the record `uid` under `to`: see [`KeyService::reseal_record`].
    pub async fn reseal(&self, uid: &str, to: CrkVersion) -> Result<ResealOutcome, KeyError> {
        match self.store.get(uid).await? {
            Some(record) => self.reseal_record(record, to).await,
            None => Ok(ResealOutcome::Gone),
        }
    }

    /// Opens `record`'s seal under its CRK, seals it again under `to` bound to
    /// the record as stored next, and stores it with compare-and-swap; on a
    /// lost race it reloads and tries again. A record already under `to` is
    /// left alone; one without material gets a new seal of nothing (its
    /// binding). A record whose seal does not open is [`KeyError::Corrupt`]
    /// and is never re-sealed (rotation must not launder a tampered record);
    /// one an earlier build sealed comes out bound (rotation upgrades).
    pub async fn reseal_record(&self, mut record: Record, to: CrkVersion) -> Result<ResealOutcome, KeyError> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            if record.crk_version == to.0 {
                return Ok(ResealOutcome::AlreadyCurrent);
            }
            let opened = self.open_record(&record).await?;
            let outcome = match opened.material.expose().is_empty() {
                true => ResealOutcome::Relabelled,
                false => ResealOutcome::Resealed,
            };
            let expected = record.version;
            let next = expected
                .checked_add(1)
                .ok_or_else(|| KeyError::Invalid(format!("record {} is at its last version", record.uid)))?;
            record.crk_version = to.0;
            record.updated_at = crate::clock::unix_now();
            self.bind_record(&mut record, next, opened.material).await?;
            match self.store.update(&record, expected).await {
                Ok(_) => return Ok(outcome),
                Err(StoreError::Conflict(crate::store::Conflict::Version)) => {}
                Err(StoreError::NotFound) => return Ok(ResealOutcome::Gone),
                Err(e) => return Err(e.into()),
            }
            match self.store.get(&record.uid).await? {
                Some(fresh) => record = fresh,
                None => return Ok(ResealOutcome::Gone),
            }
        }
        Err(KeyError::Contended)
    }

    /// Opens `record`'s seal under its binding and decodes its key material,
    /// then drops it: proves the record is intact and readable with this HSM
    /// (restore verification). `Ok(false)` for a record without material.
    pub async fn check_opens(&self, record: Record) -> Result<bool, KeyError> {
        self.check_record(record).await.map(|check| check.has_material)
    }

    /// What [`KeyService::check_opens`] proves, and whether the record's seal
    /// binds all of it or is an earlier build's (`keyward store verify`).
    pub async fn check_record(&self, record: Record) -> Result<RecordCheck, KeyError> {
        let opened = self.open_record(&record).await?;
        let object = StoredObject::from_record(record)?;
        let has_material = object.has_material() && !opened.material.expose().is_empty();
        if has_material {
            super::decode_material(&object.uid, &opened.material)?;
        }
        Ok(RecordCheck {
            has_material,
            bound: !opened.legacy,
        })
    }

    /// Re-seals every record under a CRK other than `target` until none is
    /// left (see the module documentation). `target` must exist in the HSM
    /// since `target_since`. `progress` is called after each record.
    pub async fn rotate_to(
        self: &Arc<Self>,
        target: CrkVersion,
        target_since: Instant,
        options: &RotationOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RotationReport, KeyError> {
        let mut report = RotationReport::default();
        loop {
            if report.passes >= options.max_passes.max(1) {
                return Err(KeyError::Invalid(format!(
                    "records keep appearing under older root keys after {} passes; \
                     is a server running that does not follow the newest root key?",
                    report.passes
                )));
            }
            report.passes += 1;
            let started = Instant::now();
            let pending = self.pending(target, &report.failed).await?;
            if report.passes == 1 {
                self.walk_all(target, pending, options, &mut report, progress)
                    .await?;
            } else {
                self.reseal_listed(target, options, &mut report, progress).await?;
            }
            report.resealing += started.elapsed();
            if self.pending(target, &report.failed).await? > 0 {
                continue;
            }
            // Nothing left; make sure servers had time to switch, then count again.
            let ready = target_since + options.switch_grace;
            let now = Instant::now();
            if now < ready {
                tokio::time::sleep(ready - now).await;
            }
            if self.pending(target, &report.failed).await? == 0 {
                return Ok(report);
            }
        }
    }

    /// Records under any CRK but `target`, less those that already failed.
    async fn pending(&self, target: CrkVersion, failed: &BTreeMap<String, String>) -> Result<u64, KeyError> {
        let counts = self.store.count_by_crk().await?;
        let others: u64 = counts
            .iter()
            .filter(|&(&v, _)| v != target.0)
            .map(|(_, &n)| n)
            .sum();
        Ok(others.saturating_sub(failed.len() as u64))
    }

    /// First pass: every record in uid order, whole records from `list_page`.
    async fn walk_all(
        self: &Arc<Self>,
        target: CrkVersion,
        total: u64,
        options: &RotationOptions,
        report: &mut RotationReport,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), KeyError> {
        let mut runner = Runner::new(Arc::clone(self), target, options, report.passes, total);
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_page(after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.uid.clone());
            for record in page {
                if record.crk_version == target.0 {
                    // Created after the switch, or re-sealed before a crash.
                    report.already_current += 1;
                    continue;
                }
                runner.submit(Work::Record(record), report, progress).await?;
            }
        }
        runner.finish(report, progress).await
    }

    /// Later passes: only the records the store lists under older CRKs (keys
    /// created by a server that had not switched yet).
    async fn reseal_listed(
        self: &Arc<Self>,
        target: CrkVersion,
        options: &RotationOptions,
        report: &mut RotationReport,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), KeyError> {
        let counts = self.store.count_by_crk().await?;
        let mut uids = Vec::new();
        for (&version, _) in counts.iter().filter(|&(&v, &n)| v != target.0 && n > 0) {
            let query = Query {
                crk_version: Some(version),
                ..Query::default()
            };
            uids.extend(
                self.store
                    .find(&query)
                    .await?
                    .into_iter()
                    .filter(|uid| !report.failed.contains_key(uid)),
            );
        }
        let mut runner = Runner::new(
            Arc::clone(self),
            target,
            options,
            report.passes,
            uids.len() as u64,
        );
        for uid in uids {
            runner.submit(Work::Uid(uid), report, progress).await?;
        }
        runner.finish(report, progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::softhsm::run_isolated;
    use crate::hsm::{Hsm, Pkcs11Hsm};
    use crate::kmip::ObjectType;
    use crate::store::{MemoryStore, Store};
    use crate::ttlv::Item;

    fn counts(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
        pairs.iter().copied().collect()
    }

    fn v(n: u32) -> CrkVersion {
        CrkVersion(n)
    }

    #[test]
    fn plan_creates_when_every_record_is_under_the_newest() {
        // Fresh install, nothing stored.
        assert_eq!(
            plan_rotation(&[v(1)], &counts(&[])).unwrap(),
            RotationStart::Create(v(2))
        );
        // A finished rotation (old CRK retired or not).
        assert_eq!(
            plan_rotation(&[v(1), v(2)], &counts(&[(2, 10)])).unwrap(),
            RotationStart::Create(v(3))
        );
        assert_eq!(
            plan_rotation(&[v(2)], &counts(&[(1, 0), (2, 10)])).unwrap(),
            RotationStart::Create(v(3))
        );
    }

    #[test]
    fn plan_resumes_after_a_crash_at_any_point() {
        // Killed right after creating CRK 2: nothing re-sealed yet.
        assert_eq!(
            plan_rotation(&[v(1), v(2)], &counts(&[(1, 10)])).unwrap(),
            RotationStart::Resume(v(2))
        );
        // Killed half-way.
        assert_eq!(
            plan_rotation(&[v(1), v(2)], &counts(&[(1, 4), (2, 6)])).unwrap(),
            RotationStart::Resume(v(2))
        );
        // A rotation over several old CRKs.
        assert_eq!(
            plan_rotation(&[v(1), v(2), v(3)], &counts(&[(1, 1), (3, 6)])).unwrap(),
            RotationStart::Resume(v(3))
        );
        // Records under a CRK the HSM lost do not make a rotation "unfinished".
        assert_eq!(
            plan_rotation(&[v(2)], &counts(&[(1, 3), (2, 6)])).unwrap(),
            RotationStart::Create(v(3))
        );
        assert_eq!(missing_crks(&[v(2)], &counts(&[(1, 3), (2, 6)])), vec![(1, 3)]);
        assert!(plan_rotation(&[], &counts(&[])).is_err());
    }

    fn key_object(byte: u8) -> Item {
        use crate::kmip::object::{KeyBlock, ManagedObject};
        ManagedObject::SymmetricKey {
            key_block: KeyBlock::raw(
                crate::kmip::CryptographicAlgorithm::AES,
                SecretBytes::new(vec![byte; 32]),
            ),
        }
        .into_item()
    }

    async fn material(keys: &KeyService, uid: &str) -> Vec<u8> {
        let caller = crate::auth::Caller::for_tests("t", "g");
        let object = keys.load(&caller, uid, 0).await.unwrap();
        let object = keys.open(&object).await.unwrap();
        match object.key_block().and_then(|b| b.key_value.as_ref()) {
            Some(crate::kmip::object::KeyValue::Plain {
                key_material: crate::kmip::object::KeyMaterial::Bytes(b),
                ..
            }) => b.expose().to_vec(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rotation_reseals_relabels_and_refuses_tampered_records() {
        run_isolated(|token| {
            let hsm = Pkcs11Hsm::connect(&token.config()).unwrap();
            hsm.create_crk(v(1)).unwrap();
            let hsm = crate::hsm::AsyncHsm::new(Arc::new(hsm), Duration::from_secs(5));
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let keys = Arc::new(KeyService::new(hsm.clone(), Arc::clone(&store), v(1)));
                let caller = crate::auth::Caller::for_tests("t", "g");
                let mut uids = Vec::new();
                for i in 0..20u8 {
                    let uid = keys
                        .create("g", ObjectType::SYMMETRIC_KEY, &key_object(i), vec![], 0)
                        .await
                        .unwrap();
                    uids.push(uid);
                }
                let target = keys.load(&caller, &uids[0], 0).await.unwrap();
                keys.destroy(target, 0).await.unwrap();
                // Swap two blobs behind the service's back: neither may be re-sealed.
                let mut a = store.get(&uids[1]).await.unwrap().unwrap();
                let mut b = store.get(&uids[2]).await.unwrap().unwrap();
                std::mem::swap(&mut a.sealed, &mut b.sealed);
                store.update(&a, a.version).await.unwrap();
                store.update(&b, b.version).await.unwrap();

                hsm.create_crk(v(2)).await.unwrap();
                // A stale record (lost a CAS race) is reloaded and still re-sealed.
                let stale = store.get(&uids[3]).await.unwrap().unwrap();
                let target = keys.load(&caller, &uids[3], 1).await.unwrap();
                keys.update(target, 1, |_| Ok(())).await.unwrap();
                assert_eq!(
                    keys.reseal_record(stale, v(2)).await.unwrap(),
                    ResealOutcome::Resealed
                );
                assert_eq!(
                    keys.reseal(&uids[3], v(2)).await.unwrap(),
                    ResealOutcome::AlreadyCurrent
                );
                assert_eq!(
                    keys.reseal("no-such-uid", v(2)).await.unwrap(),
                    ResealOutcome::Gone
                );

                let options = RotationOptions {
                    switch_grace: Duration::ZERO,
                    concurrency: 4,
                    ..RotationOptions::default()
                };
                let report = keys
                    .rotate_to(v(2), Instant::now(), &options, &mut |_| {})
                    .await
                    .unwrap();
                assert_eq!(report.resealed, 16);
                assert_eq!(report.relabelled, 1);
                assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
                assert!(report.failed.contains_key(&uids[1]) && report.failed.contains_key(&uids[2]));
                let after = store.count_by_crk().await.unwrap();
                assert_eq!(after.get(&1), Some(&2), "tampered records stay where they were");
                assert_eq!(after.get(&2), Some(&18));
                for (i, uid) in uids.iter().enumerate().skip(3) {
                    assert_eq!(material(&keys, uid).await, vec![i as u8; 32]);
                }
            });
        })
        .unwrap();
    }
}
