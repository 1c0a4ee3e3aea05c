//! Keeping the service running: what `keyward serve` does besides serving.
//!
//! Changes made by the administration commands reach the running service by
//! themselves: every [`WATCH_INTERVAL`] a background task stamps the files of
//! `tls.clients_dir` and the server certificate and key (size, mtime, inode) and,
//! when a stamp changed, reloads client trust or the server certificate. SIGHUP does
//! both at once, immediately. The same task writes the "last seen" map to
//! `<clients_dir>/.last-seen` when it changed. A failed reload keeps what is in force.
//! Another task, as often, switches new seals to the HSM's newest root key once
//! `keyward root rotate` has made one (see `follow_root_key`). Probes ask the HSM
//! every [`HSM_PROBE_INTERVAL`] and the store every [`STORE_PROBE_INTERVAL`] whether
//! they answer, record it in [`Health`], and log each change — one warning when one
//! becomes unavailable, one line when it is back — and show it in systemd's status
//! line. The service keeps serving meanwhile: what needs the HSM fails with "HSM
//! unavailable; retry" (every stored record is checked under the HSM before use),
//! Discover Versions and Query work, and the HSM layer reconnects by itself (the
//! probe also drives that when no client calls).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::{Health, ServeError, Service, serve};
use crate::auth::TrustStore;
use crate::config::{Config, FileStamp, clients};
use crate::keys::KeyService;
use crate::net::tls::ServerConfigSource;
use crate::store::Store;
use crate::system::notify;

/// How often the service looks for changed trust files and server certificate: short
/// enough that `keyward clients remove` applies "within seconds", long enough to cost
/// nothing (a few `stat` calls).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// How often the service checks that the HSM answers: an outage is in the log within
/// this time even when no client calls, and a probe every few seconds is nothing to
/// an HSM that serves thousands of calls a second.
pub const HSM_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How often the service checks that the store answers (a cheap read).
pub const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(2);

impl Service {
    /// Runs the daemon until SIGTERM or SIGINT: serves, supervises, tells
    /// systemd, then drains, saves the last-seen map and returns.
    pub async fn run_until_signal(self) -> Result<(), ServeError> {
        let Service {
            listener,
            sockets,
            local_addrs,
            trust,
            keys,
            index,
            health,
            metrics,
            mut watched,
            config,
        } = self;
        let serving_on = local_addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(addrs = %serving_on, "keyward serving");
        // Listener bound, HSM and store open: tell systemd (no-ops outside it).
        report_notify("READY", notify::ready());
        let status = Arc::new(StatusLine::new(serving_on.clone()));
        status.publish();
        // Pinged from the server's own runtime, so a stalled runtime stops the pings.
        let watchdog = notify::spawn_watchdog(|| true);
        let tls = Arc::clone(&listener.tls);
        if let Some(file) = &watched.last_seen_file
            && let Err(e) = trust.last_seen().load_file(file)
        {
            tracing::warn!(error = %e, "ignoring the last-seen file");
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
        let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
        // A root rotation runs in another process; new seals follow its new CRK.
        let follower = tokio::spawn(follow_root_key(Arc::clone(&keys), metrics, stop_rx.clone()));
        let hsm_probe = tokio::spawn(probe_hsm(
            Arc::clone(&keys),
            Arc::clone(&health),
            Arc::clone(&status),
            stop_rx.clone(),
        ));
        let store_probe = tokio::spawn(probe_store(
            Arc::clone(keys.store()),
            Arc::clone(&health),
            Arc::clone(&status),
            STORE_PROBE_INTERVAL,
            stop_rx.clone(),
        ));
        let index_sync = config.cluster.as_ref().zip(index).map(|(settings, index)| {
            tokio::spawn(super::cluster::sync_index(
                index,
                Arc::clone(&health),
                settings.sync_interval,
                stop_rx.clone(),
            ))
        });
        let audit = listener.handler.audit.clone();
        let serve_health = Arc::clone(&health);
        let serving = tokio::spawn(async move { serve(listener, sockets, &serve_health, stop_rx).await });
        let config_path = config.source.clone();
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    reload_trust(&trust, &config_path);
                    reload_certificate(&tls);
                }
                _ = ticks.tick() => {
                    health.set_audit(audit.dropped_total(), Some(audit.queue_depth()));
                    let (trust, tls, path) = (Arc::clone(&trust), Arc::clone(&tls), config_path.clone());
                    // File system calls stay off the async workers.
                    watched = tokio::task::spawn_blocking(move || {
                        watched.poll(&trust, &tls, &path);
                        watched
                    })
                    .await
                    .map_err(|source| ServeError::Task { what: "the file watcher", source })?;
                }
            }
        }
        tracing::info!("shutting down: draining connections");
        report_notify("STOPPING", notify::stopping());
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        let _ = stop_tx.send(true);
        serving.await.map_err(|source| ServeError::Task {
            what: "the server task",
            source,
        })?;
        follower.abort();
        hsm_probe.abort();
        store_probe.abort();
        if let Some(task) = index_sync {
            task.abort();
        }
        if let Some(file) = &watched.last_seen_file {
            save_last_seen(&trust, file);
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every [`WATCH_INTERVAL`], switches new seals to the HSM's newest root key
/// when `keyward root rotate` (another process, its own HSM session) made one.
/// Its own task, so that a slow HSM cannot delay trust reloads.
async fn follow_root_key(
    keys: Arc<KeyService>,
    metrics: crate::metrics::Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => match keys.follow_newest_crk().await {
                Ok(Some(crk)) => {
                    metrics.set_crk_version(crk.0);
                    tracing::info!(crk = %crk.label(), "new keys are now sealed under the newest root key");
                }
                Ok(None) => {}
                // An unavailable HSM is reported once by `probe_hsm`, not every tick here.
                Err(e) if e.is_transient() => tracing::debug!(error = %e, "cannot check the HSM for a newer root key"),
                Err(e) => tracing::warn!(error = %e, "cannot check the HSM for a newer root key"),
            },
        }
    }
}

/// Every [`HSM_PROBE_INTERVAL`], asks the HSM which root keys it holds (a search and
/// a few attribute reads; `health()` is not used because listing mechanisms makes
/// cryptoki log an error line per mechanism it does not know), records the answer in
/// [`Health`] and logs when it turns from an error to a list or back: a warning when
/// it stops answering, a line when it is back (with how long it was away), and
/// systemd's status line says so meanwhile. The watchdog keeps being fed: a restart
/// would not bring the HSM back, and the service still serves.
async fn probe_hsm(
    keys: Arc<KeyService>,
    health: Arc<Health>,
    status: Arc<StatusLine>,
    mut stop: watch::Receiver<bool>,
) {
    let mut down_since: Option<Instant> = None;
    let mut ticks = tokio::time::interval(HSM_PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {}
        }
        match keys.hsm().crk_versions().await {
            Ok(_) => {
                health.set_hsm_usable(true);
                if let Some(since) = down_since.take() {
                    tracing::info!(
                        down_for_ms = since.elapsed().as_millis() as u64,
                        "HSM available again"
                    );
                    status.set_hsm_trouble(None);
                }
            }
            Err(e) => {
                health.set_hsm_usable(false);
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    tracing::warn!(
                        error = %e,
                        "HSM unavailable: key operations fail with \"HSM unavailable; retry\" until it is back"
                    );
                    status.set_hsm_trouble(Some(e.to_string()));
                }
            }
        }
    }
}

/// Every [`STORE_PROBE_INTERVAL`], asks the store whether it can serve
/// (`Store::health`), records it in [`Health`] and logs each change once.
async fn probe_store(
    store: Arc<dyn Store>,
    health: Arc<Health>,
    status: Arc<StatusLine>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut down_since: Option<Instant> = None;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {}
        }
        match store.health().await {
            Ok(()) => {
                health.set_store_usable(true);
                if let Some(since) = down_since.take() {
                    tracing::info!(
                        down_for_ms = since.elapsed().as_millis() as u64,
                        "store available again"
                    );
                    status.set_store_trouble(None);
                }
            }
            Err(e) => {
                health.set_store_usable(false);
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    tracing::warn!(error = %e, "store unavailable: key operations fail until it is back");
                    status.set_store_trouble(Some(e.to_string()));
                }
            }
        }
    }
}

/// The one line `systemctl status keyward` shows (sd_notify `STATUS=`), which the
/// appliance's console also shows: where the service listens and, while the
/// HSM or the store is unreachable, that it is degraded and why.
pub(super) struct StatusLine {
    serving_on: String,
    /// What is wrong with the HSM and with the store, if anything.
    trouble: std::sync::Mutex<(Option<String>, Option<String>)>,
}

impl StatusLine {
    pub(super) fn new(serving_on: String) -> StatusLine {
        StatusLine {
            serving_on,
            trouble: std::sync::Mutex::new((None, None)),
        }
    }

    fn set_hsm_trouble(&self, why: Option<String>) {
        self.trouble.lock().unwrap_or_else(|p| p.into_inner()).0 = why;
        self.publish();
    }

    fn set_store_trouble(&self, why: Option<String>) {
        self.trouble.lock().unwrap_or_else(|p| p.into_inner()).1 = why;
        self.publish();
    }

    pub(super) fn text(&self) -> String {
        let trouble = self.trouble.lock().unwrap_or_else(|p| p.into_inner());
        let mut parts = Vec::new();
        if let Some(why) = &trouble.0 {
            parts.push(format!("HSM unavailable: {why}"));
        }
        if let Some(why) = &trouble.1 {
            parts.push(format!("store unavailable: {why}"));
        }
        if parts.is_empty() {
            format!("serving KMIP on {}", self.serving_on)
        } else {
            format!(
                "DEGRADED: serving KMIP on {}; {}",
                self.serving_on,
                parts.join("; ")
            )
        }
    }

    fn publish(&self) {
        report_notify("STATUS", notify::status(&self.text()));
    }
}

/// The files the service watches and how they looked when last applied.
pub(super) struct Watched {
    clients_dir: Option<PathBuf>,
    last_seen_file: Option<PathBuf>,
    cert: PathBuf,
    key: PathBuf,
    clients_stamp: FileStamp,
    cert_stamp: FileStamp,
}

impl Watched {
    pub(super) fn new(config: &Config) -> Watched {
        let clients_dir = config.tls.clients_dir.clone();
        let clients_stamp = clients_dir.as_deref().map(FileStamp::of_dir).unwrap_or_default();
        Watched {
            last_seen_file: clients_dir.as_ref().map(|d| d.join(clients::LAST_SEEN_FILE)),
            clients_dir,
            cert_stamp: FileStamp::of_files(&[&config.tls.cert, &config.tls.key]),
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
            clients_stamp,
        }
    }

    /// One poll: reload what changed, save the last-seen map. A stamp is taken as
    /// applied even when its reload fails, so a broken file is reported once, not
    /// every poll; the next change to it is tried again.
    fn poll(&mut self, trust: &TrustStore, tls: &ServerConfigSource, config_path: &Path) {
        if let Some(dir) = &self.clients_dir {
            let stamp = FileStamp::of_dir(dir);
            if stamp != self.clients_stamp {
                self.clients_stamp = stamp;
                reload_trust(trust, config_path);
            }
        }
        let stamp = FileStamp::of_files(&[&self.cert, &self.key]);
        if stamp != self.cert_stamp {
            self.cert_stamp = stamp;
            reload_certificate(tls);
        }
        if let Some(file) = &self.last_seen_file {
            save_last_seen(trust, file);
        }
    }
}

/// Re-reads the configuration file's trust settings. A failed reload keeps the
/// trust in force.
fn reload_trust(trust: &TrustStore, config_path: &Path) {
    let reloaded = Config::load(config_path)
        .map_err(|e| e.to_string())
        .and_then(|config| trust.reload(&config.tls).map_err(|e| e.to_string()));
    match reloaded {
        Ok(()) => {
            let snapshot = trust.snapshot();
            tracing::info!(
                cas = snapshot.ca_count(),
                pins = snapshot.pin_count(),
                "client trust reloaded"
            );
        }
        Err(e) => tracing::warn!(error = %e, "trust reload failed; keeping the trust in force"),
    }
}

fn reload_certificate(tls: &ServerConfigSource) {
    match tls.reload_certificate() {
        Ok(()) => tracing::info!(
            fingerprint = %tls.certificate_fingerprint().map(|f| f.to_colon_hex()).unwrap_or_default(),
            "server certificate loaded"
        ),
        Err(e) => tracing::warn!(error = %e, "server certificate reload failed; keeping the one in force"),
    }
}

fn save_last_seen(trust: &TrustStore, file: &Path) {
    // No clients folder yet (nothing added): nothing to show, nowhere to write.
    if !file.parent().is_some_and(Path::is_dir) {
        return;
    }
    if let Err(e) = trust.last_seen().save_if_changed(file) {
        tracing::warn!(error = %e, file = %file.display(), "cannot save the last-seen file");
    }
}

/// A lost notification is worth a warning, never a failure: systemd acts on its absence.
fn report_notify(what: &str, result: std::io::Result<bool>) {
    if let Err(e) = result {
        tracing::warn!(notification = what, error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::store::{Export, MemoryStore, Query, Record, StoreError, StoreFuture};

    /// A memory store whose health the test switches.
    struct Flaky {
        inner: MemoryStore,
        up: AtomicBool,
        probed: tokio::sync::mpsc::UnboundedSender<bool>,
    }

    impl Store for Flaky {
        fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
            self.inner.create(record)
        }
        fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
            self.inner.get(uid)
        }
        fn update<'a>(&'a self, record: &'a Record, expected: u64) -> StoreFuture<'a, u64> {
            self.inner.update(record, expected)
        }
        fn delete<'a>(&'a self, uid: &'a str, expected: Option<u64>) -> StoreFuture<'a, bool> {
            self.inner.delete(uid, expected)
        }
        fn capabilities(&self) -> crate::store::Capabilities {
            self.inner.capabilities()
        }
        fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
            self.inner.find(query)
        }
        fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
            self.inner.count_by_crk()
        }
        fn list_page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
            self.inner.list_page(after, limit)
        }
        fn health(&self) -> StoreFuture<'_, ()> {
            let up = self.up.load(Ordering::SeqCst);
            let _ = self.probed.send(up);
            Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err(StoreError::unavailable("test outage"))
                }
            })
        }
        fn export(&self, page_size: usize) -> StoreFuture<'_, Export> {
            self.inner.export(page_size)
        }
        fn import(&self, records: Export, replace: bool) -> StoreFuture<'_, u64> {
            self.inner.import(records, replace)
        }
    }

    #[tokio::test]
    async fn the_store_probe_keeps_health_up_to_date() {
        let (probed_tx, mut probed) = tokio::sync::mpsc::unbounded_channel();
        let store = Arc::new(Flaky {
            inner: MemoryStore::new(),
            up: AtomicBool::new(false),
            probed: probed_tx,
        });
        let health = Arc::new(Health::new());
        health.set_store_usable(true);
        let (stop_tx, stop) = watch::channel(false);
        let status = Arc::new(StatusLine::new("127.0.0.1:5696".into()));
        let probe = tokio::spawn(probe_store(
            Arc::clone(&store) as Arc<dyn Store>,
            Arc::clone(&health),
            Arc::clone(&status),
            Duration::from_millis(1),
            stop,
        ));
        // A probe's answer is recorded before the next probe begins: wait for a probe
        // that saw the state, then for the one after it.
        async fn settled(probed: &mut tokio::sync::mpsc::UnboundedReceiver<bool>, want: bool) {
            while probed.recv().await.unwrap() != want {}
            probed.recv().await.unwrap();
        }
        settled(&mut probed, false).await;
        assert!(!health.snapshot().store_usable);
        assert!(
            status
                .text()
                .starts_with("DEGRADED: serving KMIP on 127.0.0.1:5696; store unavailable: "),
            "{}",
            status.text()
        );
        store.up.store(true, Ordering::SeqCst);
        settled(&mut probed, true).await;
        assert!(health.snapshot().store_usable);
        assert_eq!(status.text(), "serving KMIP on 127.0.0.1:5696");
        stop_tx.send(true).unwrap();
        probe.await.unwrap();
    }
}
