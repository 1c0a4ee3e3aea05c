//! A fake of IBM Key Protect's keys API v2 and IAM's token endpoint, on
//! 127.0.0.1, written from IBM's documentation and its Go client (no
//! emulator exists). It implements what keyward uses, with the documented
//! headers, statuses and error bodies:
//!
//! - `POST /identity/token` (form: `grant_type=urn:ibm:params:oauth:grant-type:apikey`,
//!   `apikey`): `{access_token, token_type, expires_in, expiration}`; an
//!   unknown key is 400 `BXNIM0415E`.
//! - `POST /api/v2/keys` (a collection of one standard key with `payload`,
//!   `aliases`): 201; a taken alias is 409 `KEY_ALIAS_NOT_UNIQUE_ERR`; a
//!   payload past 7,500 characters 400; with an alias cap set, one alias too
//!   many is 400 `KEY_ALIAS_QUOTA_ERR` (no code for it is documented).
//! - `GET /api/v2/keys?limit&offset&state&extractable&search`: pages in
//!   creation order, `limit` 1..=5000 (200 by default, else 400
//!   `INVALID_QUERY_PARAM_ERR`), deleted keys only when `state` names 5,
//!   no `resources` member when empty, no payloads.
//! - `GET /api/v2/keys/<id or alias>`: the key with its payload; a deleted
//!   key is 200 with state 5 and no payload; unknown 404 `KEY_NOT_FOUND_ERR`.
//! - `DELETE /api/v2/keys/<id or alias>`: 204 (200 with the key for
//!   `prefer: return=representation`); again 410 `KEY_DELETED_ERR`.
//! - Every `/api/v2` call needs a `bluemix-instance` GUID (else 400) and a
//!   valid bearer token (else 401).
//!
//! Faults are injected per request: a delay, a status with `Retry-After`, or
//! a connection dropped after the request took effect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The service instance the fake serves.
pub(crate) const INSTANCE: &str = "5d6f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
/// The one API key IAM accepts.
pub(crate) const API_KEY: &str = "fake-iam-api-key-Zx81+/=";
const KEY_TYPE: &str = "application/vnd.ibm.kms.key+json";
const MAX_PAYLOAD: usize = 7_500;

/// What a matching request meets.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Wait this long before handling the request.
    Delay(Duration),
    /// Answer this status (with `Retry-After` seconds when given) at once.
    Status(u16, Option<u64>),
    /// Handle the request, then drop the connection without an answer.
    ResetAfterProcessing,
}

struct Rule {
    method: &'static str,
    path_contains: String,
    fault: Fault,
    times: usize,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) correlation_id: Option<String>,
    pub(crate) instance: Option<String>,
}

/// One key as the fake keeps it.
#[derive(Debug, Clone)]
pub(crate) struct FakeKey {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) payload: Option<String>,
    pub(crate) state: u32,
    seq: u64,
}

#[derive(Default)]
struct State {
    keys: Vec<FakeKey>,
    seq: u64,
    tokens: HashMap<String, Instant>,
    token_ttl: u64,
    grants: usize,
    alias_cap: Option<usize>,
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// The fake server; stops when dropped.
pub(crate) struct KpFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KpFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KpFake {
    /// Starts on 127.0.0.1:0 in the current tokio runtime.
    pub(crate) async fn start() -> KpFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            token_ttl: 3600,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        KpFake { addr, state, task }
    }

    /// The Key Protect address (`[store] address`).
    pub(crate) fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The IAM token endpoint (`[store] iam_address`).
    pub(crate) fn iam_address(&self) -> String {
        format!("http://{}/identity/token", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The next `times` requests with `method` whose path contains
    /// `path_contains` meet `fault`.
    pub(crate) fn inject(&self, method: &'static str, path_contains: &str, fault: Fault, times: usize) {
        self.with(|s| {
            s.rules.push(Rule {
                method,
                path_contains: path_contains.to_owned(),
                fault,
                times,
            })
        });
    }

    /// Every token granted so far stops working (401).
    pub(crate) fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// Lifetime of the tokens granted from now on.
    pub(crate) fn set_token_ttl(&self, seconds: u64) {
        self.with(|s| s.token_ttl = seconds);
    }

    /// Tokens IAM granted so far.
    pub(crate) fn grants(&self) -> usize {
        self.with(|s| s.grants)
    }

    /// At most `cap` aliases in the instance (`None`: no cap).
    pub(crate) fn set_alias_cap(&self, cap: Option<usize>) {
        self.with(|s| s.alias_cap = cap);
    }

    /// Every key, deleted ones included, in creation order.
    pub(crate) fn keys(&self) -> Vec<FakeKey> {
        self.with(|s| s.keys.clone())
    }

    /// Every request seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// The customer deletes, in the console, every key named `name`.
    pub(crate) fn delete_in_console(&self, name: &str) -> usize {
        self.with(|s| {
            let mut n = 0;
            for key in s.keys.iter_mut().filter(|k| k.name == name && k.state != 5) {
                key.state = 5;
                key.payload = None;
                n += 1;
            }
            n
        })
    }
}

type Answer = Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>>;

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

/// Key Protect's error body.
fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({
            "metadata": { "collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1 },
            "resources": [{
                "errorMsg": message,
                "reasons": [{ "code": code, "message": message, "status": status,
                    "moreInfo": "https://cloud.ibm.com/apidocs/key-protect" }]
            }]
        }),
    )
}

fn collection(keys: Vec<Value>) -> Value {
    let mut body = json!({ "metadata": { "collectionType": KEY_TYPE, "collectionTotal": keys.len() } });
    if !keys.is_empty() {
        body["resources"] = Value::Array(keys);
    }
    body
}

fn render(key: &FakeKey, with_payload: bool) -> Value {
    let mut value = json!({
        "type": KEY_TYPE,
        "id": key.id,
        "name": key.name,
        "description": key.description,
        "aliases": key.aliases,
        "state": key.state,
        "extractable": true,
        "imported": true,
        "deleted": key.state == 5,
        "crn": format!("crn:v1:bluemix:public:kms:us-south:a/fake:{INSTANCE}:key:{}", key.id),
        "creationDate": format!("2026-12-06T00:00:{:02}Z", key.seq % 60),
    });
    if let Some(payload) = key.payload.as_ref().filter(|_| with_payload && key.state != 5) {
        value["payload"] = json!(payload);
    }
    value
}

fn query(path: &str) -> HashMap<String, String> {
    path.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Answer {
    let method = req.method().as_str().to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (correlation_id, instance, auth, prefer) = (
        header("correlation-id"),
        header("bluemix-instance"),
        header("authorization"),
        header("prefer"),
    );
    let body = req.into_body().collect().await?.to_bytes();
    let fault = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            correlation_id: correlation_id.clone(),
            instance: instance.clone(),
        });
        let hit = s
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.path_contains));
        hit.map(|rule| {
            rule.times -= 1;
            rule.fault.clone()
        })
    };
    let mut reset = false;
    match fault {
        Some(Fault::Delay(wait)) => tokio::time::sleep(wait).await,
        Some(Fault::Status(status, retry_after)) => {
            let mut answer = error(status, "TOO_MANY_REQUESTS_ERR", "Fake: injected failure");
            if let Some(after) = retry_after {
                answer
                    .headers_mut()
                    .insert("retry-after", after.to_string().parse().unwrap());
            }
            return Ok(answer);
        }
        Some(Fault::ResetAfterProcessing) => reset = true,
        None => {}
    }
    let answer = {
        let mut s = state.lock().unwrap();
        route(
            &mut s,
            &method,
            &path,
            &body,
            instance.as_deref(),
            auth.as_deref(),
            prefer.as_deref(),
        )
    };
    if reset {
        return Err("fake: connection dropped after the request took effect".into());
    }
    Ok(answer)
}

fn route(
    s: &mut State,
    method: &str,
    path: &str,
    body: &[u8],
    instance: Option<&str>,
    auth: Option<&str>,
    prefer: Option<&str>,
) -> Response<Full<Bytes>> {
    let bare = path.split('?').next().unwrap_or("");
    if bare == "/identity/token" && method == "POST" {
        return grant(s, body);
    }
    if !bare.starts_with("/api/v2/") {
        return error(404, "NOT_FOUND_ERR", "Not Found");
    }
    if instance.is_none_or(|i| uuid::Uuid::parse_str(i).is_err()) {
        return error(
            400,
            "BAD_HEADERS_ERR",
            "Bad Request: Request requires valid Bluemix-Instance Header",
        );
    }
    if instance != Some(INSTANCE) {
        return error(
            401,
            "UNAUTHORIZED_ERR",
            "Unauthorized: The user does not have access to the specified resource",
        );
    }
    let valid = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|until| Instant::now() < *until);
    if !valid {
        return error(
            401,
            "UNAUTHORIZED_ERR",
            "Unauthorized: The user does not have access to the specified resource",
        );
    }
    match (method, bare) {
        ("POST", "/api/v2/keys") => import(s, body),
        ("GET", "/api/v2/keys") => list(s, path),
        (_, rest) if rest.starts_with("/api/v2/keys/") => {
            let target = &rest["/api/v2/keys/".len()..];
            let found = s
                .keys
                .iter()
                .position(|k| k.id == target)
                .or_else(|| s.keys.iter().position(|k| k.aliases.iter().any(|a| a == target)));
            let Some(at) = found else {
                return error(404, "KEY_NOT_FOUND_ERR", "Not Found: Key does not exist");
            };
            match method {
                "GET" => reply(200, collection(vec![render(&s.keys[at], true)])),
                "DELETE" => {
                    let key = &mut s.keys[at];
                    if key.state == 5 {
                        return error(410, "KEY_DELETED_ERR", "Gone: Key has already been deleted");
                    }
                    key.state = 5;
                    key.payload = None;
                    if prefer == Some("return=representation") {
                        reply(200, collection(vec![render(key, false)]))
                    } else {
                        Response::builder()
                            .status(204)
                            .body(Full::new(Bytes::new()))
                            .unwrap()
                    }
                }
                _ => error(405, "METHOD_NOT_ALLOWED_ERR", "Method Not Allowed"),
            }
        }
        _ => error(404, "NOT_FOUND_ERR", "Not Found"),
    }
}

fn grant(s: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let form = query(&format!("?{}", String::from_utf8_lossy(body)));
    if form.get("grant_type").map(String::as_str) != Some("urn:ibm:params:oauth:grant-type:apikey") {
        return reply(
            400,
            json!({ "errorCode": "BXNIM0103E", "errorMessage": "Unsupported grant type" }),
        );
    }
    if form.get("apikey").map(String::as_str) != Some(API_KEY) {
        return reply(
            400,
            json!({ "errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found." }),
        );
    }
    let token = format!("fake-token-{}", uuid::Uuid::new_v4());
    s.tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(s.token_ttl));
    s.grants += 1;
    reply(
        200,
        json!({
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": s.token_ttl,
            "expiration": 1_800_000_000u64 + s.token_ttl,
            "scope": "ibm openid",
        }),
    )
}

fn valid_alias(alias: &str) -> bool {
    (2..=90).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        && uuid::Uuid::parse_str(alias).is_err()
}

fn import(s: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let bad = |why: &str| error(400, "BAD_BODY_ERR", &format!("Bad Request: {why}"));
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad("body is not JSON");
    };
    let Some([key]) = body["resources"].as_array().map(Vec::as_slice) else {
        return bad("resources must hold exactly one key");
    };
    let name = key["name"].as_str().unwrap_or("");
    let description = key["description"].as_str().unwrap_or("");
    let payload = key["payload"].as_str().unwrap_or("");
    let aliases: Vec<String> = key["aliases"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if key["type"] != KEY_TYPE || !(2..=90).contains(&name.len()) || description.len() > 240 {
        return bad("invalid key type, name or description");
    }
    if key["extractable"] != true {
        return bad("only standard keys are faked");
    }
    if payload.len() > MAX_PAYLOAD || base64::engine::general_purpose::STANDARD.decode(payload).is_err() {
        return bad("payload must be base64 of at most 7500 characters");
    }
    if aliases.len() > 5 || !aliases.iter().all(|a| valid_alias(a)) {
        return bad("invalid aliases");
    }
    if s.keys
        .iter()
        .any(|k| k.aliases.iter().any(|a| aliases.contains(a)))
    {
        return error(
            409,
            "KEY_ALIAS_NOT_UNIQUE_ERR",
            "Conflict: Key alias already exists in the instance",
        );
    }
    if let Some(cap) = s.alias_cap {
        let held: usize = s
            .keys
            .iter()
            .filter(|k| k.state != 5)
            .map(|k| k.aliases.len())
            .sum();
        if held + aliases.len() > cap {
            return error(
                400,
                "KEY_ALIAS_QUOTA_ERR",
                &format!("Bad Request: Key alias quota exceeded: an instance may hold at most {cap} aliases"),
            );
        }
    }
    s.seq += 1;
    let key = FakeKey {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        description: description.to_owned(),
        aliases,
        payload: Some(payload.to_owned()),
        state: 1,
        seq: s.seq,
    };
    let answer = reply(201, collection(vec![render(&key, false)]));
    s.keys.push(key);
    answer
}

fn list(s: &State, path: &str) -> Response<Full<Bytes>> {
    let q = query(path);
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=5000).contains(&n) => n,
        Some(_) => {
            return error(
                400,
                "INVALID_QUERY_PARAM_ERR",
                "Bad Request: limit must be 1..5000",
            );
        }
    };
    let Ok(offset) = q.get("offset").map_or(Ok(0), |o| o.parse::<usize>()) else {
        return error(400, "INVALID_QUERY_PARAM_ERR", "Bad Request: invalid offset");
    };
    let states: Vec<u32> = match q.get("state") {
        None => vec![0, 1, 2, 3],
        Some(list) => match list.split(',').map(str::parse).collect::<Result<Vec<u32>, _>>() {
            Ok(states) => states,
            Err(_) => return error(400, "INVALID_QUERY_PARAM_ERR", "Bad Request: invalid state"),
        },
    };
    let search = q.get("search").cloned();
    let matches = |key: &FakeKey| -> bool {
        let Some(search) = &search else { return true };
        let (mut term, mut exact, mut negate, mut scope) = (search.as_str(), false, false, "all");
        loop {
            if let Some(rest) = term.strip_prefix("exact:") {
                exact = true;
                term = rest;
            } else if let Some(rest) = term.strip_prefix("not:") {
                negate = true;
                term = rest;
            } else if let Some(rest) = term.strip_prefix("escape:") {
                term = rest;
            } else if let Some(rest) = term.strip_prefix("alias:") {
                scope = "alias";
                term = rest;
            } else if let Some(rest) = term.strip_prefix("name:") {
                scope = "name";
                term = rest;
            } else {
                break;
            }
        }
        let hit = |text: &str| if exact { text == term } else { text.contains(term) };
        let found = (scope != "alias" && (hit(&key.name) || (scope == "all" && hit(&key.id))))
            || (scope != "name" && key.aliases.iter().any(|a| hit(a)));
        found != negate
    };
    let page: Vec<Value> = s
        .keys
        .iter()
        .filter(|k| states.contains(&k.state))
        .filter(|k| matches(k))
        .skip(offset)
        .take(limit)
        .map(|k| render(k, false))
        .collect();
    reply(200, collection(page))
}
