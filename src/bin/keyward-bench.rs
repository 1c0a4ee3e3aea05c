//! `keyward-bench`: a load generator for a running KMIP server (keyward or any
//! other) over mutual TLS on the loopback interface.
//!
//! Scenarios follow what vCenter sends (DESIGN §2):
//! - `get`: K keys are created first, then each connection Gets them by id over
//!   one kept-alive connection;
//! - `create`: Create AES-256 with vCenter's three-attribute template, kept-alive;
//! - `handshake`: a fresh mTLS connection, Discover Versions, close;
//! - `vcenter-get`: vCenter's power-on flow on its own connection: Discover
//!   Versions, Get, Get Attributes(State), close;
//! - `populate`: fills a store the way vCenter tags its keys: Create with a
//!   Name `key-<n>` and `x-Name` `vm-<n>` (n = `--population`, then on in
//!   order), every other key then Activated; run with `--requests N` for N keys;
//! - `locate-name`, `locate-x-name`, `locate-state`: Locate with Maximum
//!   Items 100 by the Name `key-<i>`, by the `x-Name` `vm-<i>` (i spread over
//!   `--population`, the keys `populate` made) or by State Active, kept-alive.
//!
//! Every run is bounded by `--duration` or `--requests`; latencies are kept as
//! sorted samples (one `u32` of microseconds each, capped in number).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use keyward::kmip::attribute::{Attribute, TemplateAttribute};
use keyward::kmip::message::{ProtocolVersion, ResponseBatchItem};
use keyward::kmip::payload::{Payload, create, get, get_attributes, locate};
use keyward::kmip::{CryptographicAlgorithm, ObjectType, Operation, ResultStatus};
use keyward::ttlv::Value;
use kmip_client::{Client, ClientError, ClientTls, ClientTlsOptions, empty_payload};
use proc_stats::{cpu_seconds, rss_kib};

/// The KMIP test client, shared with the integration tests (one copy).
#[allow(dead_code)]
#[path = "../../tests/support/kmip_client.rs"]
mod kmip_client;
#[allow(dead_code)]
#[path = "../../tests/support/proc_stats.rs"]
mod proc_stats;

/// Most latency samples kept per run (4 bytes each): bounds memory.
const MAX_SAMPLES: usize = 20_000_000;
/// Longest run accepted.
const MAX_DURATION_SECS: u64 = 600;
/// Most connections accepted.
const MAX_CONNECTIONS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Get,
    Create,
    /// Create, then Activate the new key: two requests, as a client that
    /// wants a usable key sends them.
    CreateActivate,
    Handshake,
    VcenterGet,
    Populate,
    LocateName,
    LocateXName,
    LocateState,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for a KMIP server over mutual TLS (loopback only)")]
struct Args {
    /// Scenario to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Server address (must be a loopback address).
    #[arg(long)]
    addr: SocketAddr,
    /// CA that issued the server's certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Client certificate.
    #[arg(long)]
    cert: PathBuf,
    /// Client private key.
    #[arg(long)]
    key: PathBuf,
    /// Concurrent connections (workers).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Run for this many seconds (default 10 unless --requests is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many operations in total.
    #[arg(long)]
    requests: Option<u64>,
    /// KMIP protocol version of the requests.
    #[arg(long, default_value = "1.1", value_parser = ["1.0", "1.1", "1.2", "1.3", "1.4"])]
    version: String,
    /// Keys created before a `get`/`vcenter-get` run.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Keys `populate` runs made before: the range the Locate scenarios draw
    /// their names from, and where a further `populate` run goes on numbering.
    #[arg(long, default_value_t = 0)]
    population: u64,
    /// Offer only TLS 1.2.
    #[arg(long)]
    tls12: bool,
    /// Resume TLS sessions on new connections (off: every handshake is full).
    #[arg(long)]
    resume: bool,
    /// Server process whose resident memory is reported before and after.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds one operation (with its connect) may take before it counts as an
    /// error; a run ends at most this long after its duration.
    #[arg(long, default_value_t = 5.0)]
    op_timeout: f64,
    /// Client runtime worker threads (the client shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// A label carried into the JSON (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// Settings every worker shares.
struct Plan {
    scenario: Scenario,
    addr: SocketAddr,
    tls: ClientTls,
    version: ProtocolVersion,
    keys: Vec<String>,
    deadline: Option<Instant>,
    /// Operations still to start when bounded by count.
    budget: Option<AtomicU64>,
    started: AtomicU64,
    per_worker_cap: usize,
    op_timeout: Duration,
    population: u64,
}

impl Plan {
    /// Claims the next operation; `None` when the run is over.
    fn next(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        if let Some(budget) = &self.budget {
            budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .ok()?;
        }
        Some(self.started.fetch_add(1, Ordering::Relaxed))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if !args.addr.ip().is_loopback() {
        return Err("the benchmark only targets loopback addresses".into());
    }
    if !(args.op_timeout > 0.0 && args.op_timeout <= 60.0) {
        return Err("--op-timeout must be in (0, 60]".into());
    }
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
    }
    let duration = match (args.duration, args.requests) {
        (Some(d), _) if !(d > 0.0 && d <= MAX_DURATION_SECS as f64) => {
            return Err(format!("--duration must be in (0, {MAX_DURATION_SECS}]"));
        }
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let version = match args.version.as_str() {
        "1.0" => ProtocolVersion::V1_0,
        "1.2" => ProtocolVersion::V1_2,
        "1.3" => ProtocolVersion::V1_3,
        "1.4" => ProtocolVersion::V1_4,
        _ => ProtocolVersion::V1_1,
    };
    let options = ClientTlsOptions {
        tls12_only: args.tls12,
        resumption: args.resume,
    };
    let tls = ClientTls::from_pem_files_with(&args.ca, &args.cert, &args.key, options)
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(measure(args, tls, version, duration))
}

async fn measure(
    args: Args,
    tls: ClientTls,
    version: ProtocolVersion,
    duration: Option<Duration>,
) -> Result<(), String> {
    let keys = if matches!(args.scenario, Scenario::Get | Scenario::VcenterGet) {
        prepare_keys(args.addr, &tls, version, args.keys.max(1)).await?
    } else {
        Vec::new()
    };
    let rss_before = args.server_pid.and_then(rss_kib);
    let server_cpu_before = args.server_pid.and_then(cpu_seconds);
    let client_cpu_before = cpu_seconds(std::process::id());
    let started_at = Instant::now();
    let plan = Arc::new(Plan {
        scenario: args.scenario,
        addr: args.addr,
        tls,
        version,
        keys,
        deadline: duration.map(|d| started_at + d),
        budget: args.requests.map(AtomicU64::new),
        started: AtomicU64::new(0),
        per_worker_cap: MAX_SAMPLES / args.connections,
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        population: args.population,
    });
    let workers: Vec<_> = (0..args.connections)
        .map(|w| tokio::spawn(worker(Arc::clone(&plan), w)))
        .collect();
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.map_err(|e| e.to_string())?;
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let elapsed = started_at.elapsed().as_secs_f64();
    let rss_after = args.server_pid.and_then(rss_kib);
    let cpu = Cpu {
        server: server_cpu_before
            .zip(args.server_pid.and_then(cpu_seconds))
            .map(|(b, a)| a - b),
        client: client_cpu_before
            .zip(cpu_seconds(std::process::id()))
            .map(|(b, a)| a - b),
    };
    report(&args, all, elapsed, (rss_before, rss_after), cpu);
    Ok(())
}

/// Creates the keys a Get scenario reads, over a few connections.
async fn prepare_keys(
    addr: SocketAddr,
    tls: &ClientTls,
    version: ProtocolVersion,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut client = connect(addr, tls, version).await.map_err(|e| e.to_string())?;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        let created = tokio::time::timeout(Duration::from_secs(30), create_key(&mut client)).await;
        keys.push(created.map_err(|_| "creating the keys to read timed out".to_owned())??);
    }
    client.close().await;
    Ok(keys)
}

async fn connect(addr: SocketAddr, tls: &ClientTls, version: ProtocolVersion) -> Result<Client, ClientError> {
    let mut client = Client::connect(addr, tls).await?;
    client.set_version(version);
    Ok(client)
}

async fn worker(plan: Arc<Plan>, index: usize) -> Tally {
    let mut tally = Tally::default();
    let mut kept: Option<Client> = None;
    let mut key = index;
    let keep_alive = !matches!(plan.scenario, Scenario::Handshake | Scenario::VcenterGet);
    while let Some(n) = plan.next() {
        if keep_alive && kept.is_none() {
            // The connect of a kept-alive connection is not part of an operation.
            let connecting = connect(plan.addr, &plan.tls, plan.version);
            match tokio::time::timeout(plan.op_timeout, connecting).await {
                Ok(Ok(client)) => kept = Some(client),
                Ok(Err(e)) => {
                    tally.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(_) => {
                    tally.error("connect timed out");
                    continue;
                }
            }
        }
        key = (key + 1) % plan.keys.len().max(1);
        let begun = Instant::now();
        let op = async {
            match (plan.scenario, kept.as_mut()) {
                (Scenario::Get, Some(client)) => get_key(client, &plan.keys[key]).await,
                (Scenario::Create, Some(client)) => create_key(client).await.map(|_| ()),
                (Scenario::CreateActivate, Some(client)) => {
                    let uid = create_key(client).await?;
                    activate_key(client, uid).await
                }
                (Scenario::Handshake, _) => handshake_op(&plan).await,
                (Scenario::VcenterGet, _) => vcenter_get_op(&plan, &plan.keys[key]).await,
                (Scenario::Populate, Some(client)) => populate_key(client, plan.population + n).await,
                (Scenario::LocateName | Scenario::LocateXName | Scenario::LocateState, Some(client)) => {
                    // Spread over the population, not in creation order.
                    let i = n.wrapping_mul(7_919) % plan.population.max(1);
                    locate(client, plan.scenario, i).await
                }
                (_, None) => Err("no connection".to_owned()),
            }
        };
        let result = tokio::time::timeout(plan.op_timeout, op)
            .await
            .unwrap_or_else(|_| Err("operation timed out".to_owned()));
        match result {
            Ok(()) => {
                if tally.latencies_us.len() < plan.per_worker_cap {
                    let us = begun.elapsed().as_micros();
                    tally.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Err(e) => {
                tally.error(e);
                kept = None;
                // A server that refuses connections must not turn into a busy loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    if let Some(client) = kept {
        client.close().await;
    }
    tally
}

async fn handshake_op(plan: &Plan) -> Result<(), String> {
    let mut client = connect(plan.addr, &plan.tls, plan.version)
        .await
        .map_err(|e| e.to_string())?;
    let item = client
        .call(Operation::DISCOVER_VERSIONS, empty_payload())
        .await
        .map_err(|e| e.to_string())?;
    succeeded(&item, "Discover Versions")?;
    client.close().await;
    Ok(())
}

async fn vcenter_get_op(plan: &Plan, uid: &str) -> Result<(), String> {
    let mut client = connect(plan.addr, &plan.tls, plan.version)
        .await
        .map_err(|e| e.to_string())?;
    let item = client
        .call(Operation::DISCOVER_VERSIONS, empty_payload())
        .await
        .map_err(|e| e.to_string())?;
    succeeded(&item, "Discover Versions")?;
    get_key(&mut client, uid).await?;
    let request = get_attributes::Request {
        unique_identifier: Some(uid.to_owned()),
        attribute_names: vec!["State".to_owned()],
        extra: Vec::new(),
    };
    let mut items = client
        .batch(vec![(
            Operation::GET_ATTRIBUTES,
            Some(batch_id(2)),
            request.to_payload(),
        )])
        .await
        .map_err(|e| e.to_string())?;
    let item = items.pop().ok_or("Get Attributes: no batch item")?;
    succeeded(&item, "Get Attributes")?;
    client.close().await;
    Ok(())
}

/// vCenter's batch item ids: `QLKC` and a little-endian counter.
fn batch_id(n: u32) -> Vec<u8> {
    let mut id = b"QLKC".to_vec();
    id.extend_from_slice(&n.to_le_bytes());
    id
}

async fn get_key(client: &mut Client, uid: &str) -> Result<(), String> {
    let request = get::Request {
        unique_identifier: Some(uid.to_owned()),
        ..get::Request::default()
    };
    let mut items = client
        .batch(vec![(Operation::GET, Some(batch_id(1)), request.to_payload())])
        .await
        .map_err(|e| e.to_string())?;
    let item = items.pop().ok_or("Get: no batch item")?;
    succeeded(&item, "Get")?;
    if item.payload.is_none() {
        return Err("Get: success without payload".into());
    }
    Ok(())
}

/// vCenter's Create template — exactly algorithm, usage mask (an Integer) and
/// length — followed by `extra`.
fn vcenter_template(extra: Vec<Attribute>) -> TemplateAttribute {
    let mut attributes = vec![
        Attribute::new(
            "Cryptographic Algorithm",
            Value::Enumeration(CryptographicAlgorithm::AES.0),
        ),
        Attribute::new("Cryptographic Usage Mask", Value::Integer(12)),
        Attribute::new("Cryptographic Length", Value::Integer(256)),
    ];
    attributes.extend(extra);
    TemplateAttribute::new(attributes)
}

/// Create with vCenter's template.
async fn create_key(client: &mut Client) -> Result<String, String> {
    let request = create::Request {
        object_type: ObjectType::SYMMETRIC_KEY,
        template_attribute: vcenter_template(Vec::new()),
        extra: Vec::new(),
    };
    let mut items = client
        .batch(vec![(Operation::CREATE, Some(batch_id(0)), request.to_payload())])
        .await
        .map_err(|e| e.to_string())?;
    let item = items.pop().ok_or("Create: no batch item")?;
    succeeded(&item, "Create")?;
    let payload = item.payload.as_ref().ok_or("Create: success without payload")?;
    let response = create::Response::from_payload(payload).map_err(|e| format!("Create: {e}"))?;
    Ok(response.unique_identifier)
}

/// Key `n` of a populated store: Create named `key-<n>`, tagged `x-Name`
/// `vm-<n>`; Activate when `n` is even.
async fn populate_key(client: &mut Client, n: u64) -> Result<(), String> {
    let name = Value::Structure(vec![
        keyward::ttlv::Item::new(
            keyward::kmip::tags::NAME_VALUE,
            Value::TextString(format!("key-{n}")),
        ),
        keyward::ttlv::Item::new(
            keyward::kmip::tags::NAME_TYPE,
            Value::Enumeration(keyward::kmip::NameType::UNINTERPRETED_TEXT_STRING.0),
        ),
    ]);
    let request = create::Request {
        object_type: ObjectType::SYMMETRIC_KEY,
        template_attribute: vcenter_template(vec![
            Attribute::new("Name", name),
            Attribute::new("x-Name", Value::TextString(format!("vm-{n}"))),
        ]),
        extra: Vec::new(),
    };
    let mut items = client
        .batch(vec![(Operation::CREATE, Some(batch_id(0)), request.to_payload())])
        .await
        .map_err(|e| e.to_string())?;
    let item = items.pop().ok_or("Create: no batch item")?;
    succeeded(&item, "Create")?;
    let payload = item.payload.as_ref().ok_or("Create: success without payload")?;
    let uid = create::Response::from_payload(payload)
        .map_err(|e| format!("Create: {e}"))?
        .unique_identifier;
    if n.is_multiple_of(2) {
        activate_key(client, uid).await?;
    }
    Ok(())
}

async fn activate_key(client: &mut Client, uid: String) -> Result<(), String> {
    let activate = keyward::ttlv::Item::structure(
        keyward::kmip::tags::REQUEST_PAYLOAD,
        vec![keyward::ttlv::Item::new(
            keyward::kmip::tags::UNIQUE_IDENTIFIER,
            Value::TextString(uid),
        )],
    );
    let mut items = client
        .batch(vec![(Operation::ACTIVATE, Some(batch_id(1)), activate)])
        .await
        .map_err(|e| e.to_string())?;
    succeeded(&items.pop().ok_or("Activate: no batch item")?, "Activate")
}

/// Locate with Maximum Items 100 by what `scenario` names, for key `i`.
async fn locate(client: &mut Client, scenario: Scenario, i: u64) -> Result<(), String> {
    let filter = match scenario {
        Scenario::LocateName => Attribute::new(
            "Name",
            Value::Structure(vec![
                keyward::ttlv::Item::new(
                    keyward::kmip::tags::NAME_VALUE,
                    Value::TextString(format!("key-{i}")),
                ),
                keyward::ttlv::Item::new(
                    keyward::kmip::tags::NAME_TYPE,
                    Value::Enumeration(keyward::kmip::NameType::UNINTERPRETED_TEXT_STRING.0),
                ),
            ]),
        ),
        Scenario::LocateXName => Attribute::new("x-Name", Value::TextString(format!("vm-{i}"))),
        _ => Attribute::new("State", Value::Enumeration(keyward::kmip::State::ACTIVE.0)),
    };
    let request = locate::Request {
        maximum_items: Some(100),
        attributes: vec![filter],
        ..locate::Request::default()
    };
    let mut items = client
        .batch(vec![(Operation::LOCATE, Some(batch_id(2)), request.to_payload())])
        .await
        .map_err(|e| e.to_string())?;
    let item = items.pop().ok_or("Locate: no batch item")?;
    succeeded(&item, "Locate")?;
    let found = item.payload.as_ref().map_or(0, |p| {
        p.children_with(keyward::kmip::tags::UNIQUE_IDENTIFIER).count()
    });
    // A populated store answers every name it made; State finds 100.
    let want = if scenario == Scenario::LocateState { 100 } else { 1 };
    if found != want {
        return Err(format!("Locate found {found} ids, want {want}"));
    }
    Ok(())
}

fn succeeded(item: &ResponseBatchItem, what: &str) -> Result<(), String> {
    if item.result_status == ResultStatus::SUCCESS {
        return Ok(());
    }
    Err(format!(
        "{what}: {} {}",
        item.result_reason.and_then(|r| r.name()).unwrap_or("(no reason)"),
        item.result_message.as_deref().unwrap_or("")
    ))
}

/// CPU seconds the run cost the server and this client: unlike ops/s, this
/// does not depend on what else the shared machine is running.
struct Cpu {
    server: Option<f64>,
    client: Option<f64>,
}

/// The sample at quantile `q` of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn report(args: &Args, mut tally: Tally, elapsed: f64, rss: (Option<u64>, Option<u64>), cpu: Cpu) {
    let (rss_before, rss_after) = rss;
    tally.latencies_us.sort_unstable();
    let lat = &tally.latencies_us;
    let ok = lat.len() as u64;
    let ops = if elapsed > 0.0 { ok as f64 / elapsed } else { 0.0 };
    // The name the command line takes (`vcenter-get`, `create-activate`).
    let scenario = args
        .scenario
        .to_possible_value()
        .map_or_else(|| format!("{:?}", args.scenario), |v| v.get_name().to_owned());
    let (p50, p90, p99, max) = (
        quantile_ms(lat, 0.50),
        quantile_ms(lat, 0.90),
        quantile_ms(lat, 0.99),
        quantile_ms(lat, 1.0),
    );
    let per_op_us = |secs: Option<f64>| secs.filter(|_| ok > 0).map(|s| s * 1e6 / ok as f64);
    let (server_us, client_us) = (per_op_us(cpu.server), per_op_us(cpu.client));
    if args.json {
        let json = serde_json::json!({
            "label": args.label,
            "scenario": scenario,
            "connections": args.connections,
            "version": args.version,
            "seconds": elapsed,
            "ok": ok,
            "errors": tally.errors,
            "first_error": tally.first_error,
            "ops_per_sec": ops,
            "p50_ms": p50,
            "p90_ms": p90,
            "p99_ms": p99,
            "max_ms": max,
            "server_rss_kib_before": rss_before,
            "server_rss_kib_after": rss_after,
            "server_cpu_us_per_op": server_us,
            "client_cpu_us_per_op": client_us,
        });
        println!("{json}");
        return;
    }
    println!(
        "{scenario} x{} (KMIP {}): {ok} ok, {} errors in {elapsed:.2} s = {ops:.0} ops/s",
        args.connections, args.version, tally.errors
    );
    println!("latency ms: p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  max {max:.3}");
    if let Some(e) = &tally.first_error {
        println!("first error: {e}");
    }
    if let Some(us) = server_us {
        println!("server CPU per op: {us:.0} µs");
    }
    if let Some(us) = client_us {
        println!("client CPU per op: {us:.0} µs");
    }
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        println!("server RSS: {b} KiB before, {a} KiB after");
    }
}
