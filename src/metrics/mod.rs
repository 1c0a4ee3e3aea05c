//! Metrics and health for operators: Prometheus text exposition (through the
//! `prometheus-client` crate) and `/health/live`, `/health/ready` on a listener of
//! their own ([`serve`]).
//!
//! Layer 0: this module imports no other keyward module. Lower layers hold cheap
//! instrument handles ([`HsmInstruments`], [`StoreInstruments`]) and record into
//! them; the layers above call the methods on [`Metrics`] (per request, per
//! connection, per TLS handshake, key state changes, CRK version).
//!
//! Label values are `&'static str` wherever a request is being recorded: operation
//! names and result reasons come from keyward's own tables, never from what a client
//! sent, so the number of series stays bounded whatever the clients do.
//!
//! There is no global registry: the service builds one [`Metrics`] and hands clones
//! (one `Arc` each) to whoever records.

mod http;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

pub use http::{MetricsServer, serve};

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) for latency histograms: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds for the number of writes committed together.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// What the HSM layer records: call latency by call, and whether the HSM answers.
/// Cheap to clone (a few `Arc`s); `AsyncHsm::with_instruments` takes one.
#[derive(Clone, Debug)]
pub struct HsmInstruments {
    up: Gauge,
    calls: Histograms<CallLabel>,
}

impl HsmInstruments {
    /// One HSM call named `call` took `elapsed`; `available` is false when it failed
    /// because the HSM did not answer (timeout, unavailable).
    pub fn observe_call(&self, call: &'static str, elapsed: Duration, available: bool) {
        self.calls
            .get_or_create(&CallLabel { call })
            .observe(elapsed.as_secs_f64());
        self.set_available(available);
    }

    /// The HSM is usable (1) or not (0), e.g. from the service's health probe.
    pub fn set_available(&self, available: bool) {
        self.up.set(i64::from(available));
    }

    pub fn available(&self) -> bool {
        self.up.get() == 1
    }
}

/// What the store records: commit latency, batch size, and whether it commits.
/// Cheap to clone; the SQLite writer takes one.
#[derive(Clone, Debug)]
pub struct StoreInstruments {
    up: Gauge,
    commit_seconds: Histogram,
    batch_size: Histogram,
}

impl StoreInstruments {
    /// One commit of `batch` writes took `elapsed`; `ok` is whether it committed.
    pub fn observe_commit(&self, elapsed: Duration, batch: usize, ok: bool) {
        self.commit_seconds.observe(elapsed.as_secs_f64());
        self.batch_size.observe(batch as f64);
        self.set_available(ok);
    }

    /// The store is usable (1) or not (0), e.g. from the service's health probe.
    pub fn set_available(&self, available: bool) {
        self.up.set(i64::from(available));
    }

    pub fn available(&self) -> bool {
        self.up.get() == 1
    }
}

type SampleFn = Box<dyn Fn() -> u64 + Send + Sync>;

/// A value read when scraped, from a function set later (the audit queue, which
/// counts for itself; reading it costs nothing on the request path).
#[derive(Clone, Default)]
struct Sampled {
    source: Arc<Mutex<Option<SampleFn>>>,
}

impl std::fmt::Debug for Sampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sampled")
    }
}

impl Sampled {
    fn set(&self, source: SampleFn) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    fn read(&self) -> u64 {
        self.source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |f| f())
    }
}

/// [`Sampled`] exposed as a gauge.
#[derive(Clone, Debug, Default)]
struct SampledGauge(Sampled);

impl TypedMetric for SampledGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for SampledGauge {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&i64::try_from(self.0.read()).unwrap_or(i64::MAX))
    }
    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// [`Sampled`] exposed as a counter (the source only ever grows).
#[derive(Clone, Debug, Default)]
struct SampledCounter(Sampled);

impl TypedMetric for SampledCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for SampledCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, u64, u64>(&self.0.read(), None)
    }
    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RequestLabels>,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabel, Counter>,
    handshakes: Family<ResultLabel, Counter>,
    handshake_seconds: Histogram,
    hsm: HsmInstruments,
    store: StoreInstruments,
    audit_queue_depth: SampledGauge,
    audit_dropped: SampledCounter,
    keys_by_state: Family<StateLabel, Gauge>,
    crk_version: Gauge,
    store_reach: Family<StateLabel, Gauge>,
    index_events: Family<ReasonLabel, Counter>,
}

/// Every metric keyward exposes. Clone it freely: clones share the values.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all zero (HSM and store not yet known to be up).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyward");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds: Histograms<RequestLabels> = Family::new_with_constructor(latency_histogram);
        let connections_open = Gauge::default();
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        let handshakes = Family::<ResultLabel, Counter>::default();
        let handshake_seconds = latency_histogram();
        let hsm = HsmInstruments {
            up: Gauge::default(),
            calls: Family::new_with_constructor(latency_histogram),
        };
        let store = StoreInstruments {
            up: Gauge::default(),
            commit_seconds: latency_histogram(),
            batch_size: Histogram::new(BATCH_BUCKETS),
        };
        let audit_queue_depth = SampledGauge::default();
        let audit_dropped = SampledCounter::default();
        let keys_by_state = Family::<StateLabel, Gauge>::default();
        let crk_version = Gauge::default();

        registry.register(
            "requests",
            "KMIP batch items answered, by operation and result reason",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a KMIP batch item, by operation and result reason",
            request_seconds.clone(),
        );
        registry.register(
            "connections_open",
            "KMIP connections open now",
            connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "KMIP connections refused, by reason",
            connections_refused.clone(),
        );
        registry.register("tls_handshakes", "TLS handshakes, by result", handshakes.clone());
        registry.register(
            "tls_handshake_duration_seconds",
            "Time to complete or fail a TLS handshake",
            handshake_seconds.clone(),
        );
        registry.register("hsm_up", "1 when the HSM answers, else 0", hsm.up.clone());
        registry.register(
            "hsm_call_duration_seconds",
            "Time of one HSM call, by call",
            hsm.calls.clone(),
        );
        registry.register("store_up", "1 when the store commits, else 0", store.up.clone());
        registry.register(
            "store_commit_duration_seconds",
            "Time of one store commit (one fsync for a batch of writes)",
            store.commit_seconds.clone(),
        );
        registry.register(
            "store_commit_batch_size",
            "Writes committed together",
            store.batch_size.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit events waiting to be written",
            audit_queue_depth.clone(),
        );
        registry.register(
            "audit_dropped",
            "Audit events dropped because the queue was full",
            audit_dropped.clone(),
        );
        registry.register("keys", "Managed objects, by state", keys_by_state.clone());
        registry.register(
            "crk_version",
            "Root key (CRK) version used for new seals",
            crk_version.clone(),
        );
        let store_reach = Family::<StateLabel, Gauge>::default();
        registry.register(
            "store_reach",
            "Where this node stands with its remote store: 1 on one of up, grace (reads from sealed copies), down",
            store_reach.clone(),
        );
        let index_events = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "store_index_events",
            "What this node's index of a remote store saw: records deleted in the store, rolled back, reads served from copies",
            index_events.clone(),
        );

        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                request_seconds,
                connections_open,
                connections_refused,
                handshakes,
                handshake_seconds,
                hsm,
                store,
                audit_queue_depth,
                audit_dropped,
                keys_by_state,
                crk_version,
                store_reach,
                index_events,
            }),
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would mean a bug in a
        // metric's encoding, and a partial page is still the best answer then.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }

    /// One KMIP batch item answered: `operation` (e.g. `"Get"`, `"Unknown"`),
    /// `reason` (`"Success"` or the KMIP result reason), and how long it took.
    pub fn record_request(&self, operation: &'static str, reason: &'static str, elapsed: Duration) {
        let labels = RequestLabels { operation, reason };
        self.inner.requests.get_or_create(&labels).inc();
        self.inner
            .request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A KMIP connection was accepted; it counts as open until the guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.inner.connections_open.inc();
        ConnectionGuard {
            gauge: self.inner.connections_open.clone(),
        }
    }

    /// A KMIP connection was refused (e.g. `"limit"`, `"tls"`, `"untrusted"`).
    pub fn connection_refused(&self, reason: &'static str) {
        self.inner
            .connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A TLS handshake ended with `result` (e.g. `"ok"`, `"failed"`, `"timeout"`).
    pub fn tls_handshake(&self, result: &'static str, elapsed: Duration) {
        self.inner.handshakes.get_or_create(&ResultLabel { result }).inc();
        self.inner.handshake_seconds.observe(elapsed.as_secs_f64());
    }

    /// The handle the HSM layer records into (`AsyncHsm::with_instruments`).
    pub fn hsm_instruments(&self) -> HsmInstruments {
        self.inner.hsm.clone()
    }

    /// The handle the store records into (`SqliteStore::set_instruments`).
    pub fn store_instruments(&self) -> StoreInstruments {
        self.inner.store.clone()
    }

    pub fn set_hsm_available(&self, available: bool) {
        self.inner.hsm.set_available(available);
    }

    pub fn set_store_available(&self, available: bool) {
        self.inner.store.set_available(available);
    }

    /// Where the audit queue's depth and drop count are read when scraped
    /// (`AuditSink::report_to` sets both).
    pub fn watch_audit_queue(
        &self,
        depth: impl Fn() -> u64 + Send + Sync + 'static,
        dropped_total: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        self.inner.audit_queue_depth.0.set(Box::new(depth));
        self.inner.audit_dropped.0.set(Box::new(dropped_total));
    }

    /// One object moved from state `from` to state `to`: `from` is `None` for a
    /// new object, `to` is `None` for one removed from the store.
    pub fn keys_state_changed(&self, from: Option<&str>, to: Option<&str>) {
        if from == to {
            return;
        }
        if let Some(state) = from {
            self.keys_gauge(state).dec();
        }
        if let Some(state) = to {
            self.keys_gauge(state).inc();
        }
    }

    /// The counts by state at start-up (one scan); later changes come through
    /// [`Metrics::keys_state_changed`]. States not listed are set to zero.
    pub fn set_keys_by_state<'a>(&self, counts: impl IntoIterator<Item = (&'a str, u64)>) {
        self.inner.keys_by_state.clear();
        for (state, count) in counts {
            self.keys_gauge(state)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    fn keys_gauge(&self, state: &str) -> Gauge {
        self.inner.keys_by_state.get_or_create_owned(&StateLabel {
            state: state.to_owned(),
        })
    }

    /// Where the node stands with its remote store (`up`, `grace`, `down`).
    pub fn set_store_reach(&self, reach: &str) {
        for state in ["up", "grace", "down"] {
            self.inner
                .store_reach
                .get_or_create_owned(&StateLabel {
                    state: state.to_owned(),
                })
                .set(i64::from(state == reach));
        }
    }

    /// One event of the index of a remote store (`deleted_in_store`,
    /// `rolled_back`, `served_from_copy`).
    pub fn index_event(&self, event: &'static str) {
        self.inner
            .index_events
            .get_or_create(&ReasonLabel { reason: event })
            .inc();
    }

    /// The CRK version new seals use.
    pub fn set_crk_version(&self, version: u32) {
        self.inner.crk_version.set(i64::from(version));
    }

    /// Ready when both the HSM and the store are known to be usable; otherwise the
    /// reason, for `/health/ready`. The default readiness check for [`serve`].
    pub fn readiness(&self) -> Result<(), String> {
        match (self.inner.hsm.available(), self.inner.store.available()) {
            (true, true) => Ok(()),
            (false, true) => Err("HSM unavailable".to_owned()),
            (true, false) => Err("store unavailable".to_owned()),
            (false, false) => Err("HSM and store unavailable".to_owned()),
        }
    }
}

/// Keeps a connection counted in `keyward_connections_open` until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests;
