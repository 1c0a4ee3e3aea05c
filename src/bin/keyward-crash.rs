//! `keyward-crash`: crash cycles and soak against a keyward server that this tool
//! starts itself (and ends by its PID) from a `scripts/dev-env` folder.
//!
//! - `cycles`: N rounds of 8 writers (Create, and Add Attribute on keys already
//!   acknowledged) over kept-alive connections, `kill -9` of the server in the
//!   middle of the writes, restart, and a check that every acknowledged write is
//!   there (Get of every acknowledged key, Get Attributes naming every
//!   acknowledged added attribute with its value). Losses must be 0.
//! - `soak`: a paced, mixed vCenter flow (DESIGN §2: each step its own TLS
//!   connection opened with Discover Versions; Create, Get, Get Attributes(State),
//!   Activate, the `x-` look-ups, the Add Attribute batch of three, Locate by
//!   x-Name, power-on Gets) while the server's RSS, open files and the p99 of the
//!   last interval are sampled; says at the end whether they are flat.
//!
//! Loopback only: the server listens where its configuration says (`127.0.0.1:0`
//! from `scripts/dev-env --listen 127.0.0.1:0`); the address is read from its
//! "listening on" line at every start.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, Parser, Subcommand};
use keyward::kmip::attribute::Attribute;
use keyward::kmip::message::ResponseBatchItem;
use keyward::kmip::payload::{Payload, get, get_attributes, locate};
use keyward::kmip::{CryptographicAlgorithm, ObjectType, Operation, ResultStatus, tags};
use keyward::ttlv::{Item, Value};
use kmip_client::{Client, ClientTls, empty_payload};
use proc_stats::{open_files, rss_kib};

/// The KMIP test client, shared with the integration tests (one copy).
#[allow(dead_code)]
#[path = "../../tests/support/kmip_client.rs"]
mod kmip_client;
#[allow(dead_code)]
#[path = "../../tests/support/proc_stats.rs"]
mod proc_stats;

/// How long a server start may take before the run fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one operation (with its connect) may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// Keys checked per verification request (each key: a Get and a Get Attributes).
const VERIFY_CHUNK: usize = 32;
/// Connections a verification uses.
const VERIFY_CONNECTIONS: usize = 4;

#[derive(Debug, Parser)]
#[command(about = "Crash cycles and soak against a keyward server started from a dev-env folder")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// kill -9 cycles under writers; verifies every acknowledged write after each restart.
    Cycles(CyclesArgs),
    /// Mixed vCenter-flow load with RSS, open files and p99 sampled per interval.
    Soak(SoakArgs),
}

#[derive(Debug, ClapArgs)]
struct ServerArgs {
    /// The `scripts/dev-env` folder (keyward.toml, softhsm/, pki/).
    #[arg(long)]
    env: PathBuf,
    /// The keyward binary to run.
    #[arg(long)]
    keyward: PathBuf,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, ClapArgs)]
struct CyclesArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// kill -9 cycles.
    #[arg(long, default_value_t = 100)]
    cycles: u32,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Fewest writes acknowledged in a cycle before its kill (the kill comes at a
    /// pseudo-random count between this and --max-acks).
    #[arg(long, default_value_t = 20)]
    min_acks: u64,
    /// Most writes acknowledged in a cycle before its kill.
    #[arg(long, default_value_t = 120)]
    max_acks: u64,
    /// Seed of the pseudo-random choices (kill points, keys given attributes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, ClapArgs)]
struct SoakArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Length of the run in seconds.
    #[arg(long, default_value_t = 3600.0)]
    seconds: f64,
    /// Sampling interval in seconds.
    #[arg(long, default_value_t = 60.0)]
    interval: f64,
    /// Concurrent vCenter workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Steps (connections) per second over all workers; 0: as fast as possible.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Relative growth of RSS / p99 (last third against middle third) still called flat.
    #[arg(long, default_value_t = 0.10)]
    rss_tolerance: f64,
    #[arg(long, default_value_t = 0.50)]
    p99_tolerance: f64,
    /// Open files the last third may hold above the middle third and still be flat.
    #[arg(long, default_value_t = 8)]
    fd_tolerance: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyward-crash: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Cmd::Cycles(args) => runtime.block_on(cycles(args)),
        Cmd::Soak(args) => runtime.block_on(soak(args)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("keyward-crash: error: {e}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// The server process

/// A keyward process this tool started.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// From spawn to the first answered Discover Versions.
    ready_after: Duration,
}

impl Server {
    /// Starts `keyward serve`, waits for its "listening on" line, then for a first
    /// answered Discover Versions (that is "ready").
    async fn start(args: &ServerArgs, tls: &ClientTls, n: u32) -> Result<Server, String> {
        let log_path = args.env.join(format!("serve-{n}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let begun = Instant::now();
        let mut child = Command::new(&args.keyward)
            .args(["serve", "--config"])
            .arg(args.env.join("keyward.toml"))
            .env("SOFTHSM2_CONF", args.env.join("softhsm/softhsm2.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", args.keyward.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("keyward: listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let waited = tokio::task::spawn_blocking(move || rx.recv_timeout(START_TIMEOUT))
            .await
            .map_err(|e| e.to_string())?;
        let addr = match waited.map(|a| a.parse::<SocketAddr>()) {
            Ok(Ok(addr)) if addr.ip().is_loopback() => addr,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("server did not start ({other:?}): {log}"));
            }
        };
        let mut server = Server {
            child,
            addr,
            ready_after: Duration::ZERO,
        };
        let deadline = begun + START_TIMEOUT;
        loop {
            match discover(addr, tls).await {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    server.kill9();
                    return Err(format!("server listening but not answering: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        server.ready_after = begun.elapsed();
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9` of this process (its own PID, through the child handle), and reap it.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM to this process by its PID, then wait for it.
    fn terminate(&mut self) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !matches!(sent, Ok(s) if s.success()) {
            self.kill9();
            return;
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A run that ends early (an error) leaves no server behind: the child is
    /// killed by its own handle (a no-op once it was reaped).
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One connection, one Discover Versions, close.
async fn discover(addr: SocketAddr, tls: &ClientTls) -> Result<(), String> {
    let client = open(addr, tls).await?;
    client.close().await;
    Ok(())
}

/// A connection opened the way vCenter opens one: TLS, then Discover Versions.
async fn open(addr: SocketAddr, tls: &ClientTls) -> Result<Client, String> {
    let mut client = Client::connect(addr, tls).await.map_err(|e| e.to_string())?;
    let item = client
        .call(Operation::DISCOVER_VERSIONS, empty_payload())
        .await
        .map_err(|e| e.to_string())?;
    succeeded(&item, "Discover Versions")?;
    Ok(client)
}

fn client_tls(env: &Path) -> Result<ClientTls, String> {
    let pki = env.join("pki");
    ClientTls::from_pem_files(
        &pki.join("ca.pem"),
        &pki.join("client.pem"),
        &pki.join("client.key"),
    )
    .map_err(|e| e.to_string())
}

/// What each open descriptor of a process points to, sockets as "socket" (their
/// inode numbers differ from run to run), sorted.
fn fd_targets(pid: u32) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| {
                    let t = p.display().to_string();
                    if t.starts_with("socket:") {
                        "socket".to_owned()
                    } else {
                        t
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Descriptors in `after` that `before` did not hold (a multiset difference).
fn fd_added(before: &[String], after: &[String]) -> Vec<String> {
    let mut left: Vec<&String> = before.iter().collect();
    let mut added = Vec::new();
    for t in after {
        match left.iter().position(|b| *b == t) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => added.push(t.clone()),
        }
    }
    added
}

// ---------------------------------------------------------------------------
// Requests

/// vCenter's batch item ids: `QLKC` and a little-endian counter.
fn batch_id(n: u32) -> Vec<u8> {
    let mut id = b"QLKC".to_vec();
    id.extend_from_slice(&n.to_le_bytes());
    id
}

fn text(tag: keyward::ttlv::Tag, v: &str) -> Item {
    Item::new(tag, Value::TextString(v.to_owned()))
}

fn attribute(name: &str, value: Value) -> Item {
    Item::structure(
        tags::ATTRIBUTE,
        vec![
            text(tags::ATTRIBUTE_NAME, name),
            Item::new(tags::ATTRIBUTE_VALUE, value),
        ],
    )
}

fn payload(items: Vec<Item>) -> Item {
    Item::structure(tags::REQUEST_PAYLOAD, items)
}

/// Create with vCenter's template (an Integer usage mask, no Name).
fn create_payload() -> Item {
    payload(vec![
        Item::new(tags::OBJECT_TYPE, Value::Enumeration(ObjectType::SYMMETRIC_KEY.0)),
        Item::structure(
            tags::TEMPLATE_ATTRIBUTE,
            vec![
                attribute(
                    "Cryptographic Algorithm",
                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                ),
                attribute("Cryptographic Usage Mask", Value::Integer(12)),
                attribute("Cryptographic Length", Value::Integer(256)),
            ],
        ),
    ])
}

fn uid_payload(uid: &str) -> Item {
    payload(vec![text(tags::UNIQUE_IDENTIFIER, uid)])
}

fn get_attributes_payload<'a>(uid: &str, names: impl IntoIterator<Item = &'a str>) -> Item {
    let mut items = vec![text(tags::UNIQUE_IDENTIFIER, uid)];
    items.extend(names.into_iter().map(|n| text(tags::ATTRIBUTE_NAME, n)));
    payload(items)
}

fn add_attribute_payload(uid: &str, name: &str, value: &str) -> Item {
    payload(vec![
        text(tags::UNIQUE_IDENTIFIER, uid),
        attribute(name, Value::TextString(value.to_owned())),
    ])
}

fn locate_by_x_name(name: &str) -> Item {
    locate::Request {
        attributes: vec![Attribute::new("x-Name", Value::TextString(name.to_owned()))],
        ..locate::Request::default()
    }
    .to_payload()
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

/// The Unique Identifier of a successful answer.
fn answered_uid(item: &ResponseBatchItem) -> Option<String> {
    item.payload
        .as_ref()?
        .child(tags::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .map(str::to_owned)
}

/// A small deterministic generator (xorshift64*): kill points and key choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn median_max(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
    (median, ms.last().copied().unwrap_or(0.0))
}

// ---------------------------------------------------------------------------
// Crash cycles

/// Writes acknowledged so far, shared by the writers (targets of Add Attribute).
#[derive(Default)]
struct Ledger {
    keys: Vec<String>,
    /// (index into `keys`, attribute name, value).
    attributes: Vec<(usize, String, String)>,
}

/// What the writers of one cycle did.
#[derive(Default)]
struct CycleTally {
    creates: u64,
    adds: u64,
    /// Sent, no answer (the server died with it in flight).
    failed: u64,
    /// Answered with a failure before the kill: a bug, reported.
    refused: u64,
    first_refusal: Option<String>,
}

struct CycleShared {
    ledger: Mutex<Ledger>,
    acked: AtomicU64,
    stop: AtomicBool,
}

enum WriteOutcome {
    Acked,
    Refused(String),
    /// No answer: the connection broke or timed out.
    Lost,
}

async fn write_one(
    client: &mut Client,
    shared: &CycleShared,
    rng: &mut Rng,
    label: &str,
    n: u64,
    tally: &mut CycleTally,
) -> WriteOutcome {
    // Every other write is an Add Attribute on an acknowledged key (once there is one).
    let target = if n % 2 == 1 {
        let ledger = shared.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let count = ledger.keys.len() as u64;
        (count > 0).then(|| {
            let i = rng.below(count) as usize;
            (i, ledger.keys[i].clone())
        })
    } else {
        None
    };
    let id = Some(batch_id(u32::try_from(n & 0xffff_ffff).unwrap_or(0)));
    match target {
        None => {
            let sent = client.batch(vec![(Operation::CREATE, id, create_payload())]);
            let answer = match tokio::time::timeout(OP_TIMEOUT, sent).await {
                Ok(Ok(mut items)) => items.pop(),
                _ => return WriteOutcome::Lost,
            };
            let Some(item) = answer else {
                return WriteOutcome::Refused("Create: no batch item".into());
            };
            if let Err(e) = succeeded(&item, "Create") {
                return WriteOutcome::Refused(e);
            }
            let Some(uid) = answered_uid(&item) else {
                return WriteOutcome::Refused("Create: no Unique Identifier".into());
            };
            shared
                .ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys
                .push(uid);
            tally.creates += 1;
            WriteOutcome::Acked
        }
        Some((index, uid)) => {
            let name = format!("x-crash-{label}-{n}");
            let value = format!("v{:016x}", rng.next());
            let sent = client.batch(vec![(
                Operation::ADD_ATTRIBUTE,
                id,
                add_attribute_payload(&uid, &name, &value),
            )]);
            let answer = match tokio::time::timeout(OP_TIMEOUT, sent).await {
                Ok(Ok(mut items)) => items.pop(),
                _ => return WriteOutcome::Lost,
            };
            let Some(item) = answer else {
                return WriteOutcome::Refused("Add Attribute: no batch item".into());
            };
            if let Err(e) = succeeded(&item, "Add Attribute") {
                return WriteOutcome::Refused(e);
            }
            shared
                .ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .attributes
                .push((index, name, value));
            tally.adds += 1;
            WriteOutcome::Acked
        }
    }
}

/// One writer of one cycle: writes over a kept-alive connection until the server
/// dies under it (or the cycle is told to stop).
async fn writer(
    addr: SocketAddr,
    tls: ClientTls,
    shared: Arc<CycleShared>,
    cycle: u32,
    w: usize,
    seed: u64,
) -> CycleTally {
    let mut tally = CycleTally::default();
    let mut rng = Rng::new(seed ^ (u64::from(cycle) << 20) ^ w as u64);
    let label = format!("c{cycle}-w{w}");
    let Ok(Ok(mut client)) = tokio::time::timeout(OP_TIMEOUT, Client::connect(addr, &tls)).await else {
        return tally;
    };
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        match write_one(&mut client, &shared, &mut rng, &label, n, &mut tally).await {
            WriteOutcome::Acked => {
                shared.acked.fetch_add(1, Ordering::Relaxed);
            }
            WriteOutcome::Refused(e) => {
                tally.refused += 1;
                tally.first_refusal.get_or_insert(e);
            }
            WriteOutcome::Lost => {
                tally.failed += 1;
                return tally;
            }
        }
        n += 1;
    }
    client.close().await;
    tally
}

/// What a verification found missing.
#[derive(Default)]
struct Losses {
    keys: u64,
    attributes: u64,
    examples: Vec<String>,
}

impl Losses {
    fn note(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

/// Checks every acknowledged key (Get) and attribute (Get Attributes naming it)
/// over a few connections, `VERIFY_CHUNK` keys per request.
async fn verify(addr: SocketAddr, tls: &ClientTls, ledger: &Ledger) -> Result<Losses, String> {
    let mut wanted: Vec<Vec<(String, String)>> = vec![Vec::new(); ledger.keys.len()];
    for (i, name, value) in &ledger.attributes {
        if let Some(w) = wanted.get_mut(*i) {
            w.push((name.clone(), value.clone()));
        }
    }
    let jobs: Vec<(String, Vec<(String, String)>)> = ledger.keys.iter().cloned().zip(wanted).collect();
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..VERIFY_CONNECTIONS {
        let (jobs, next, tls) = (Arc::clone(&jobs), Arc::clone(&next), tls.clone());
        tasks.push(tokio::spawn(async move {
            let mut losses = Losses::default();
            let mut client = tokio::time::timeout(OP_TIMEOUT, open(addr, &tls))
                .await
                .map_err(|_| "verify: connect timed out".to_owned())??;
            loop {
                let start = next.fetch_add(VERIFY_CHUNK as u64, Ordering::Relaxed) as usize;
                let Some(chunk) = jobs.get(start..(start + VERIFY_CHUNK).min(jobs.len())) else {
                    break;
                };
                if chunk.is_empty() {
                    break;
                }
                verify_chunk(&mut client, chunk, &mut losses).await?;
            }
            client.close().await;
            Ok::<Losses, String>(losses)
        }));
    }
    let mut all = Losses::default();
    for t in tasks {
        let l = t.await.map_err(|e| e.to_string())??;
        all.keys += l.keys;
        all.attributes += l.attributes;
        for e in l.examples {
            all.note(e);
        }
    }
    Ok(all)
}

/// The check must be able to see a loss: a key that was never created and an
/// attribute that was never added must both be reported missing.
async fn canary(addr: SocketAddr, tls: &ClientTls, ledger: &Ledger) -> Result<(), String> {
    let Some(real) = ledger.keys.first() else {
        return Err("no key acknowledged in the first cycle".into());
    };
    let fake = Ledger {
        keys: vec![real.clone(), "00000000-0000-4000-8000-00000000dead".to_owned()],
        attributes: vec![(0, "x-crash-never-added".to_owned(), "never".to_owned())],
    };
    let seen = verify(addr, tls, &fake).await?;
    if seen.keys != 1 || seen.attributes != 1 {
        return Err(format!(
            "the verification does not see losses (canary: {} keys, {} attributes missing; 1 and 1 expected)",
            seen.keys, seen.attributes
        ));
    }
    Ok(())
}

async fn verify_chunk(
    client: &mut Client,
    chunk: &[(String, Vec<(String, String)>)],
    losses: &mut Losses,
) -> Result<(), String> {
    let mut items = Vec::new();
    for (uid, attrs) in chunk {
        let request = get::Request {
            unique_identifier: Some(uid.clone()),
            ..get::Request::default()
        };
        items.push((Operation::GET, None, request.to_payload()));
        if !attrs.is_empty() {
            let names = attrs.iter().map(|(n, _)| n.as_str());
            items.push((
                Operation::GET_ATTRIBUTES,
                None,
                get_attributes_payload(uid, names),
            ));
        }
    }
    let sent = client.batch(items);
    let answers = tokio::time::timeout(OP_TIMEOUT, sent)
        .await
        .map_err(|_| "verify: request timed out".to_owned())?
        .map_err(|e| format!("verify: {e}"))?;
    let mut answers = answers.into_iter();
    for (uid, attrs) in chunk {
        let got = answers.next().ok_or("verify: too few answers")?;
        let key_ok = succeeded(&got, "Get").is_ok()
            && got
                .payload
                .as_ref()
                .and_then(|p| get::Response::from_payload(p).ok())
                .is_some_and(|r| &r.unique_identifier == uid);
        if !key_ok {
            losses.keys += 1;
            losses.note(format!(
                "key {uid}: {}",
                succeeded(&got, "Get")
                    .err()
                    .unwrap_or_else(|| "bad answer".into())
            ));
        }
        if attrs.is_empty() {
            continue;
        }
        let got = answers.next().ok_or("verify: too few answers")?;
        let found: Vec<Attribute> = got
            .payload
            .as_ref()
            .filter(|_| got.result_status == ResultStatus::SUCCESS)
            .and_then(|p| get_attributes::Response::from_payload(p).ok())
            .map(|r| r.attributes)
            .unwrap_or_default();
        for (name, value) in attrs {
            let present = found
                .iter()
                .any(|a| &a.name == name && a.value.as_text() == Some(value.as_str()));
            if !present {
                losses.attributes += 1;
                losses.note(format!("attribute {name} of {uid}"));
            }
        }
    }
    Ok(())
}

async fn cycles(args: CyclesArgs) -> Result<bool, String> {
    if args.writers == 0 || args.min_acks == 0 || args.max_acks < args.min_acks {
        return Err("need --writers ≥ 1 and 1 ≤ --min-acks ≤ --max-acks".into());
    }
    let tls = client_tls(&args.server.env)?;
    let mut rng = Rng::new(args.seed);
    let mut server = Server::start(&args.server, &tls, 0).await?;
    let first_start = server.ready_after;
    let mut ledger = Ledger::default();
    let mut total = CycleTally::default();
    let mut losses = Losses::default();
    let mut restarts = Vec::new();
    let mut verify_times = Vec::new();
    let began = Instant::now();
    for cycle in 0..args.cycles {
        let shared = Arc::new(CycleShared {
            ledger: Mutex::new(std::mem::take(&mut ledger)),
            acked: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let kill_at = args.min_acks + rng.below(args.max_acks - args.min_acks + 1);
        let writers: Vec<_> = (0..args.writers)
            .map(|w| {
                tokio::spawn(writer(
                    server.addr,
                    tls.clone(),
                    Arc::clone(&shared),
                    cycle,
                    w,
                    args.seed,
                ))
            })
            .collect();
        // Kill once the cycle's count of acknowledged writes is reached (polled,
        // with a deadline: writers that make no progress fail the run).
        let deadline = Instant::now() + Duration::from_secs(120);
        while shared.acked.load(Ordering::Relaxed) < kill_at {
            if Instant::now() >= deadline || writers.iter().all(|w| w.is_finished()) {
                shared.stop.store(true, Ordering::Relaxed);
                server.kill9();
                return Err(format!(
                    "cycle {cycle}: writers stalled at {} acknowledged writes",
                    shared.acked.load(Ordering::Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill9();
        for w in writers {
            let t = w.await.map_err(|e| e.to_string())?;
            total.creates += t.creates;
            total.adds += t.adds;
            total.failed += t.failed;
            total.refused += t.refused;
            if total.first_refusal.is_none() {
                total.first_refusal = t.first_refusal;
            }
        }
        ledger = Arc::try_unwrap(shared)
            .map_err(|_| "writers still hold the ledger".to_owned())?
            .ledger
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        server = Server::start(&args.server, &tls, cycle + 1).await?;
        restarts.push(server.ready_after);
        if cycle == 0 {
            canary(server.addr, &tls, &ledger).await?;
        }
        let checked = Instant::now();
        let l = verify(server.addr, &tls, &ledger).await?;
        verify_times.push(checked.elapsed());
        if l.keys + l.attributes > 0 {
            eprintln!(
                "cycle {cycle}: LOST {} keys, {} attributes: {:?}",
                l.keys, l.attributes, l.examples
            );
        }
        losses.keys += l.keys;
        losses.attributes += l.attributes;
        for e in l.examples {
            losses.note(e);
        }
        if !args.server.json && (cycle + 1) % 10 == 0 {
            eprintln!(
                "cycle {}: {} keys, {} attributes acknowledged so far, ready in {:.0} ms",
                cycle + 1,
                ledger.keys.len(),
                ledger.attributes.len(),
                server.ready_after.as_secs_f64() * 1000.0
            );
        }
    }
    server.terminate();
    let (ready_median, ready_max) = median_max(&restarts);
    let (verify_median, verify_max) = median_max(&verify_times);
    let lost = losses.keys + losses.attributes;
    let ok = lost == 0 && total.refused == 0;
    if args.server.json {
        let json = serde_json::json!({
            "cycles": args.cycles,
            "writers": args.writers,
            "acknowledged_creates": total.creates,
            "acknowledged_add_attributes": total.adds,
            "failed_attempts": total.failed,
            "refused": total.refused,
            "first_refusal": total.first_refusal,
            "lost_keys": losses.keys,
            "lost_attributes": losses.attributes,
            "losses": lost,
            "lost_examples": losses.examples,
            "first_start_ms": first_start.as_secs_f64() * 1000.0,
            "restart_ready_median_ms": ready_median,
            "restart_ready_max_ms": ready_max,
            "verify_median_ms": verify_median,
            "verify_max_ms": verify_max,
            "seconds": began.elapsed().as_secs_f64(),
        });
        println!("{json}");
    } else {
        println!("cycles: {} (kill -9 each, {} writers)", args.cycles, args.writers);
        println!("acknowledged Creates: {}", total.creates);
        println!("acknowledged Add Attributes: {}", total.adds);
        println!("failed (not acknowledged) attempts: {}", total.failed);
        println!(
            "refused before a kill: {}{}",
            total.refused,
            total
                .first_refusal
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        println!(
            "losses: {lost} ({} keys, {} attributes){}",
            losses.keys,
            losses.attributes,
            if losses.examples.is_empty() {
                String::new()
            } else {
                format!(" e.g. {:?}", losses.examples)
            }
        );
        println!(
            "restart to ready (spawn → first answered Discover Versions): median {ready_median:.0} ms, max {ready_max:.0} ms"
        );
        println!("verification per restart: median {verify_median:.0} ms, max {verify_max:.0} ms");
        println!("total {:.1} s", began.elapsed().as_secs_f64());
    }
    Ok(ok)
}

// ---------------------------------------------------------------------------
// Soak

/// Latencies and errors since the last sample, shared by the workers.
#[derive(Default)]
struct Interval {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

struct SoakShared {
    interval: Mutex<Interval>,
    /// (key id, VM name) of every VM encrypted so far.
    vms: Mutex<Vec<(String, String)>>,
    stop: AtomicBool,
    steps: AtomicU64,
}

impl SoakShared {
    fn record(&self, begun: Instant, result: Result<(), String>) {
        let mut i = self.interval.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                let us = u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX);
                // At most a few million samples per interval.
                if i.latencies_us.len() < 4_000_000 {
                    i.latencies_us.push(us);
                }
            }
            Err(e) => {
                i.errors += 1;
                i.first_error.get_or_insert(e);
            }
        }
    }
}

/// One vCenter step: a fresh connection, Discover Versions, one request, close.
async fn step(
    addr: SocketAddr,
    tls: &ClientTls,
    ids: &mut u32,
    items: Vec<(Operation, Item)>,
) -> Result<Vec<ResponseBatchItem>, String> {
    let run = async {
        let mut client = open(addr, tls).await?;
        let batch = items
            .into_iter()
            .map(|(op, p)| {
                *ids = ids.wrapping_add(1);
                (op, Some(batch_id(*ids)), p)
            })
            .collect();
        let answers = client.batch(batch).await.map_err(|e| e.to_string())?;
        client.close().await;
        Ok(answers)
    };
    tokio::time::timeout(OP_TIMEOUT, run)
        .await
        .map_err(|_| "step timed out".to_owned())?
}

/// One step whose every answer must be a success; its latency is recorded.
async fn timed_step(
    shared: &SoakShared,
    addr: SocketAddr,
    tls: &ClientTls,
    ids: &mut u32,
    what: &str,
    items: Vec<(Operation, Item)>,
) -> Result<Vec<ResponseBatchItem>, String> {
    let begun = Instant::now();
    let result = step(addr, tls, ids, items).await.and_then(|answers| {
        for a in &answers {
            succeeded(a, what)?;
        }
        Ok(answers)
    });
    shared.steps.fetch_add(1, Ordering::Relaxed);
    shared.record(begun, result.as_ref().map(|_| ()).map_err(Clone::clone));
    result
}

/// The encryption of one VM (DESIGN §2): Create, Get, State, Activate, State, the
/// six `x-` look-ups one by one, then the Add Attribute batch of three.
async fn encrypt_vm(
    shared: &SoakShared,
    addr: SocketAddr,
    tls: &ClientTls,
    ids: &mut u32,
    vm: &str,
    pace: &mut tokio::time::Interval,
) -> Result<String, String> {
    let answers = timed_step(
        shared,
        addr,
        tls,
        ids,
        "Create",
        vec![(Operation::CREATE, create_payload())],
    )
    .await?;
    let uid = answers.first().and_then(answered_uid).ok_or("Create: no id")?;
    let flow: Vec<(&str, Vec<(Operation, Item)>)> = vec![
        ("Get", vec![(Operation::GET, uid_payload(&uid))]),
        (
            "Get Attributes",
            vec![(Operation::GET_ATTRIBUTES, get_attributes_payload(&uid, ["State"]))],
        ),
        ("Activate", vec![(Operation::ACTIVATE, uid_payload(&uid))]),
        (
            "Get Attributes",
            vec![(Operation::GET_ATTRIBUTES, get_attributes_payload(&uid, ["State"]))],
        ),
    ];
    let lookups = [
        "x-Product_Version",
        "x-Vendor",
        "x-Product",
        "x-Identifier",
        "x-Component",
        "x-Name",
    ]
    .into_iter()
    .map(|n| {
        (
            "Get Attributes",
            vec![(Operation::GET_ATTRIBUTES, get_attributes_payload(&uid, [n]))],
        )
    });
    let tag = (
        "Add Attribute",
        vec![
            (
                Operation::ADD_ATTRIBUTE,
                add_attribute_payload(&uid, "x-Component", "Virtual Machine"),
            ),
            (
                Operation::ADD_ATTRIBUTE,
                add_attribute_payload(&uid, "x-Identifier", &format!("uuid-{vm}")),
            ),
            (
                Operation::ADD_ATTRIBUTE,
                add_attribute_payload(&uid, "x-Name", vm),
            ),
        ],
    );
    for (what, items) in flow.into_iter().chain(lookups).chain(std::iter::once(tag)) {
        pace.tick().await;
        if shared.stop.load(Ordering::Relaxed) {
            return Err("stopped".into());
        }
        timed_step(shared, addr, tls, ids, what, items).await?;
    }
    Ok(uid)
}

async fn soak_worker(addr: SocketAddr, tls: ClientTls, shared: Arc<SoakShared>, w: usize, period: Duration) {
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = Rng::new(0x50a4 ^ w as u64);
    let mut ids = 0u32;
    let mut n = 0u64;
    loop {
        pace.tick().await;
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        n += 1;
        let known = {
            let vms = shared.vms.lock().unwrap_or_else(|p| p.into_inner());
            let len = vms.len() as u64;
            (len > 0).then(|| vms[rng.below(len) as usize].clone())
        };
        match (n % 12, known) {
            // One VM encrypted in twelve rounds (its 12 steps weigh as much as the rest).
            (0, _) | (_, None) => {
                let vm = format!("soak-vm-{w}-{n}");
                if let Ok(uid) = encrypt_vm(&shared, addr, &tls, &mut ids, &vm, &mut pace).await {
                    shared
                        .vms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((uid, vm));
                }
            }
            // Finding a VM's key by its name (what vCenter does on re-registration).
            (r, Some((uid, vm))) if r % 4 == 0 => {
                let found = timed_step(
                    &shared,
                    addr,
                    &tls,
                    &mut ids,
                    "Locate",
                    vec![(Operation::LOCATE, locate_by_x_name(&vm))],
                )
                .await;
                if let Ok(answers) = found {
                    let has = answers
                        .first()
                        .and_then(|a| a.payload.as_ref())
                        .and_then(|p| locate::Response::from_payload(p).ok())
                        .is_some_and(|r| r.unique_identifiers.contains(&uid));
                    if !has {
                        shared.record(
                            Instant::now(),
                            Err(format!("Locate x-Name={vm} did not find {uid}")),
                        );
                    }
                }
            }
            // Power-on: Get, then Get Attributes(State), each its own connection.
            (_, Some((uid, _))) => {
                if timed_step(
                    &shared,
                    addr,
                    &tls,
                    &mut ids,
                    "Get",
                    vec![(Operation::GET, uid_payload(&uid))],
                )
                .await
                .is_ok()
                {
                    pace.tick().await;
                    let _ = timed_step(
                        &shared,
                        addr,
                        &tls,
                        &mut ids,
                        "Get Attributes",
                        vec![(Operation::GET_ATTRIBUTES, get_attributes_payload(&uid, ["State"]))],
                    )
                    .await;
                }
            }
        }
    }
}

/// One row of the soak table.
#[derive(Clone, serde::Serialize)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    open_files: u64,
    steps: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    vms: usize,
}

fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn soak(args: SoakArgs) -> Result<bool, String> {
    if !(args.seconds > 0.0 && args.interval > 0.0 && args.interval <= args.seconds) {
        return Err("need 0 < --interval ≤ --seconds".into());
    }
    if args.workers == 0 || args.rate < 0.0 {
        return Err("need --workers ≥ 1 and --rate ≥ 0".into());
    }
    let tls = client_tls(&args.server.env)?;
    let mut server = Server::start(&args.server, &tls, 0).await?;
    let pid = server.pid();
    let idle_rss = rss_kib(pid).unwrap_or(0);
    let idle_fds = open_files(pid).unwrap_or(0);
    let idle_targets = fd_targets(pid);
    let shared = Arc::new(SoakShared {
        interval: Mutex::new(Interval::default()),
        vms: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        steps: AtomicU64::new(0),
    });
    let period = if args.rate > 0.0 {
        Duration::from_secs_f64(args.workers as f64 / args.rate)
    } else {
        Duration::from_micros(1)
    };
    let workers: Vec<_> = (0..args.workers)
        .map(|w| {
            tokio::spawn(soak_worker(
                server.addr,
                tls.clone(),
                Arc::clone(&shared),
                w,
                period,
            ))
        })
        .collect();
    let began = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut first_error: Option<String> = None;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs_f64(args.interval),
        Duration::from_secs_f64(args.interval),
    );
    let count = (args.seconds / args.interval).round().max(1.0) as usize;
    if !args.server.json {
        println!("server pid {pid}; idle: RSS {idle_rss} KiB, open files {idle_fds}");
        println!("|   t (s) | RSS (KiB) | open files | steps | errors | p50 ms | p99 ms |  VMs |");
        println!("|--------:|----------:|-----------:|------:|-------:|-------:|-------:|-----:|");
    }
    let mut steps_before = 0;
    for _ in 0..count {
        tick.tick().await;
        let interval = std::mem::take(&mut *shared.interval.lock().unwrap_or_else(|p| p.into_inner()));
        let mut lat = interval.latencies_us;
        lat.sort_unstable();
        let steps = shared.steps.load(Ordering::Relaxed);
        let sample = Sample {
            at_s: began.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid).ok_or("server gone")?,
            open_files: open_files(pid).ok_or("server gone")?,
            steps: steps - steps_before,
            errors: interval.errors,
            p50_ms: quantile_ms(&lat, 0.50),
            p99_ms: quantile_ms(&lat, 0.99),
            vms: shared.vms.lock().unwrap_or_else(|p| p.into_inner()).len(),
        };
        steps_before = steps;
        if first_error.is_none() {
            first_error = interval.first_error;
        }
        if !args.server.json {
            println!(
                "| {:7.0} | {:9} | {:10} | {:5} | {:6} | {:6.2} | {:6.2} | {:4} |",
                sample.at_s,
                sample.rss_kib,
                sample.open_files,
                sample.steps,
                sample.errors,
                sample.p50_ms,
                sample.p99_ms,
                sample.vms
            );
        }
        samples.push(sample);
    }
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    // After the load: connections closed, descriptors given back (polled until no
    // socket but the listeners' is left, bounded).
    let settle = Instant::now() + Duration::from_secs(5);
    let sockets = |t: &[String]| t.iter().filter(|x| *x == "socket").count();
    let mut after_targets = fd_targets(pid);
    while sockets(&after_targets) > sockets(&idle_targets) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after_targets = fd_targets(pid);
    }
    let after_fds = after_targets.len() as u64;
    let added = fd_added(&idle_targets, &after_targets);
    let after_rss = rss_kib(pid).unwrap_or(0);
    let still_answers = discover(server.addr, &tls).await.is_ok();
    server.terminate();

    // Flat: the last third of the samples against the middle third.
    let third = samples.len() / 3;
    let (middle, last) = if third > 0 {
        (&samples[third..2 * third], &samples[samples.len() - third..])
    } else {
        (&samples[..], &samples[..])
    };
    let med = |s: &[Sample], f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
    let rss_mid = med(middle, |s| s.rss_kib as f64);
    let rss_last = med(last, |s| s.rss_kib as f64);
    let fd_mid = middle.iter().map(|s| s.open_files).max().unwrap_or(0);
    let fd_last = last.iter().map(|s| s.open_files).max().unwrap_or(0);
    let p99_mid = med(middle, |s| s.p99_ms);
    let p99_last = med(last, |s| s.p99_ms);
    let rss_flat = rss_last <= rss_mid * (1.0 + args.rss_tolerance);
    let fd_flat = fd_last <= fd_mid + args.fd_tolerance;
    // A p99 under 1 ms more is noise whatever the ratio.
    let p99_flat = p99_last <= p99_mid * (1.0 + args.p99_tolerance) + 1.0;
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    let steps: u64 = samples.iter().map(|s| s.steps).sum();
    let ok = rss_flat && fd_flat && p99_flat && errors == 0 && still_answers;
    if args.server.json {
        let json = serde_json::json!({
            "seconds": began.elapsed().as_secs_f64(),
            "workers": args.workers,
            "rate": args.rate,
            "steps": steps,
            "errors": errors,
            "first_error": first_error,
            "idle_rss_kib": idle_rss,
            "idle_open_files": idle_fds,
            "after_rss_kib": after_rss,
            "after_open_files": after_fds,
            "after_open_files_added": added,
            "still_answers": still_answers,
            "samples": samples,
            "rss_middle_kib": rss_mid,
            "rss_last_kib": rss_last,
            "open_files_middle_max": fd_mid,
            "open_files_last_max": fd_last,
            "p99_middle_ms": p99_mid,
            "p99_last_ms": p99_last,
            "rss_flat": rss_flat,
            "open_files_flat": fd_flat,
            "p99_flat": p99_flat,
        });
        println!("{json}");
    } else {
        let yes = |b: bool| if b { "flat" } else { "NOT flat" };
        println!(
            "{steps} steps, {errors} errors{} in {:.0} s ({} workers, {} steps/s asked)",
            first_error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
            began.elapsed().as_secs_f64(),
            args.workers,
            args.rate
        );
        println!(
            "RSS: middle third median {rss_mid:.0} KiB, last third {rss_last:.0} KiB: {} (threshold: ≤ +{:.0}%)",
            yes(rss_flat),
            args.rss_tolerance * 100.0
        );
        println!(
            "open files: middle third max {fd_mid}, last third max {fd_last}: {} (threshold: ≤ +{})",
            yes(fd_flat),
            args.fd_tolerance
        );
        println!(
            "p99: middle third median {p99_mid:.2} ms, last third {p99_last:.2} ms: {} (threshold: ≤ ×{:.2} + 1 ms)",
            yes(p99_flat),
            1.0 + args.p99_tolerance
        );
        println!(
            "after the load: RSS {after_rss} KiB, open files {after_fds} (idle before: {idle_rss} KiB, {idle_fds}); answers: {still_answers}"
        );
        if !added.is_empty() {
            println!("descriptors held after the load that idle did not: {added:?}");
        }
    }
    Ok(ok)
}
