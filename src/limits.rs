//! Every denial-of-service bound in one place, each with the attack it stops.
//!
//! Code elsewhere refers to these constants (or to a struct built from them) instead
//! of writing numbers inline, so that a reviewer can audit the whole attack surface
//! by reading this file.

/// Largest TTLV message the server reads by default (1 MiB).
///
/// Stops: a peer announcing a huge length in the 8-byte header so that we allocate
/// (or wait for) gigabytes. vCenter's largest request, a batch of three Add
/// Attribute items, is well under 2 KiB; 1 MiB leaves room for Register of large
/// opaque objects. Configurable downward or upward in the server config.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Upper bound accepted for a configured maximum message size (64 MiB).
///
/// Stops: an operator typo that would let one connection pin a large buffer.
pub const MAX_MESSAGE_BYTES_CEILING: usize = 64 * 1024 * 1024;

/// Deepest nesting of Structures accepted by the decoder.
///
/// Stops: 100k nested structures exhausting the stack of a recursive decoder (and
/// every later recursive walk of the tree). Real KMIP 1.x/2.x messages nest at most
/// about 10 deep (message / batch item / payload / template attribute / attribute /
/// value / key block / key value / key material / transparent key fields).
pub const MAX_DEPTH: usize = 32;

/// Most items one Structure may hold.
///
/// Stops: a structure of millions of empty items that is cheap on the wire (8 bytes
/// each) but costly to hold as a tree (tens of bytes each). Locate answers with many
/// identifiers stay far below this.
pub const MAX_ITEMS_PER_STRUCTURE: usize = 65_536;

/// Most items in one whole message.
///
/// Stops: the same amplification spread over many structures.
pub const MAX_ITEMS_PER_MESSAGE: usize = 262_144;

/// Most batch items in one request.
///
/// Stops: one request fanning out into thousands of HSM operations. vCenter sends
/// at most three.
pub const MAX_BATCH_ITEMS: usize = 256;

/// Audit events queued for the audit writer before new ones are dropped (and counted).
///
/// Stops: a stalled journal or a slow disk making the server's memory grow without
/// bound, or making request handling wait on audit I/O. 8192 events is several
/// seconds of a busy vCenter's traffic; a drop is itself reported as an event.
pub const AUDIT_QUEUE_EVENTS: usize = 8192;

/// Longest text (bytes) kept in one audit event field; longer text is cut.
///
/// Stops: a client-chosen string (a 1 MiB unique identifier or x-Name) being copied
/// into every journal entry and audit file line it touches.
pub const AUDIT_FIELD_MAX_BYTES: usize = 1024;

/// Longest audit file line the reader accepts (64 KiB); longer lines are skipped.
///
/// Stops: a damaged or foreign audit file making `keyward audit` read it whole into
/// memory as one line. A well-formed event is under 12 KiB (bounded fields).
pub const AUDIT_LINE_MAX_BYTES: usize = 64 * 1024;

/// Most scrape connections the metrics listener serves at once; further ones are
/// closed at accept.
///
/// Stops: a scraper (or anyone who can reach the port) holding tasks and sockets
/// without end. Prometheus needs one.
pub const METRICS_MAX_CONNECTIONS: usize = 8;

/// Longest a metrics client may take to send its request line and headers.
///
/// Stops: slow-loris clients holding one of the few metrics connection slots.
pub const METRICS_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest one metrics connection lives, request and response together.
///
/// Stops: a client that sends its request and then never reads the answer.
pub const METRICS_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest metrics request head buffered (hyper's minimum; a scrape needs a few
/// hundred bytes). Larger heads are answered 431 and the connection closed.
///
/// Stops: a client making the listener buffer large headers.
pub const METRICS_MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// Most request headers the metrics listener accepts.
///
/// Stops: header-count amplification in the HTTP parser.
pub const METRICS_MAX_HEADERS: usize = 32;

/// Most attributes one stored object may carry.
///
/// Stops: a client adding custom attributes until its record no longer decodes
/// (bricking the key) or bloats every Locate and Get Attributes. vCenter sets six.
pub const MAX_ATTRIBUTES_PER_OBJECT: usize = 1024;

/// Largest encoded attribute list of one stored object (256 KiB), far below
/// [`MAX_MESSAGE_BYTES`] so that Get Attributes of everything always fits an answer.
pub const MAX_ATTRIBUTE_BYTES_PER_OBJECT: usize = 256 * 1024;

/// Clients whose accepted KMIP credential is remembered (as a per-process HMAC);
/// past it the memory is cleared and each client pays one slow check again.
///
/// Stops: many trust entries (or one rotating its username) growing the
/// accepted-credential map without bound.
pub const MAX_REMEMBERED_CREDENTIALS: usize = 4096;

/// Full (slow, PBKDF2) credential checks that run at the same time.
///
/// Stops: wrong passwords sent in parallel (which never hit the accepted-credential
/// memory) taking every core from the other clients; they queue here instead.
pub const SLOW_CREDENTIAL_CHECKS: usize = 1;

/// Times an update of one object retries after losing a compare-and-swap race.
///
/// Stops: clients that keep changing one object making another client's update
/// spin (store reads and writes) without end; past it the client is told to retry.
pub const MAX_UPDATE_ATTEMPTS: usize = 8;

/// Entries the `x-Name` memo (VM names for audit events) holds before it starts
/// afresh.
///
/// Stops: a client creating and touching millions of objects growing the memo
/// without bound. A bound, not a cache policy: audit events are the only reader.
pub const X_NAME_MEMO_ENTRIES: usize = 65_536;

/// Longest x-Name (bytes) the memo keeps.
///
/// Stops: a client-set 256 KiB x-Name being held once per object in memory. VM
/// names are short, and the audit field is cut at [`AUDIT_FIELD_MAX_BYTES`] anyway.
pub const X_NAME_MEMO_BYTES: usize = 256;

/// Records one root-key rotation pass reads from the store at a time.
///
/// Stops: a rotation over millions of records holding them all in memory at once.
pub const ROTATION_PAGE_RECORDS: usize = 256;

/// Largest `.last-seen` file read (a few hundred bytes per client; 4 MiB).
///
/// Stops: a damaged or planted file making every start (and `clients list`) read
/// gigabytes into memory.
pub const LAST_SEEN_FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;

// ---- Network and authentication bounds (issue 10: hostile trusted client) ----

/// Connections still in their TLS handshake at once, by default (a part of the
/// connection cap, `server.max_handshakes`).
///
/// Stops: unauthenticated peers holding every connection slot through the
/// handshake timeout (2,000 idle TCP connections locked out trusted clients for
/// 5–8 s). A handshake takes milliseconds, so 256 at once is a boot storm of
/// hundreds of hosts, and 768 of the 1,024 slots stay for clients that proved
/// who they are.
pub const MAX_HANDSHAKES: usize = 256;

/// Connections still handshaking at once from one source (an IPv4 address or
/// an IPv6 /64), by default
/// (`server.max_handshakes_per_source`); one more is closed when accepted.
///
/// Stops: one host filling the whole handshake budget. vCenter opens a few
/// connections at a time, each finishing its handshake in milliseconds.
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 32;

/// Time from accepting a connection to the first byte of its ClientHello, by
/// default (`server.first_byte_timeout`).
///
/// Stops: idle connections holding a handshake slot for the whole handshake
/// timeout. A real client sends its ClientHello right after connecting; 3 s
/// leaves room for two TCP retransmissions on a lossy link.
pub const FIRST_BYTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Bytes of one request read before the shared request budget is charged (64 KiB).
///
/// Every vCenter request fits (under 2 KiB), so ordinary traffic never waits on
/// the budget; the connection cap bounds the total of these allowances.
pub const UNBUDGETED_REQUEST_BYTES: usize = 64 * 1024;

/// First allocation for a request body; the buffer then doubles as bytes arrive.
///
/// Stops: the 8-byte header alone pinning the announced length (1 MiB) per
/// connection.
pub const REQUEST_READ_CHUNK_BYTES: usize = 16 * 1024;

/// Request bytes being read or handled at once over all connections, beyond
/// [`UNBUDGETED_REQUEST_BYTES`] each (64 MiB); raised to the maximum message size
/// when that is configured larger.
///
/// Stops: a thousand connections each sending most of a 1 MiB request and
/// stalling, holding a GiB between them.
pub const MAX_REQUEST_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// Slow (PBKDF2) credential checks that run at the same time over all clients;
/// each client runs at most one at a time (it queues behind its own).
///
/// Stops: wrong passwords sent in parallel taking every core; and, with the
/// per-client queue, one client's wrong passwords making every other client's
/// first login wait behind them (200 wrong logins made another client wait 12 s).
pub const SLOW_CREDENTIAL_CHECKS_PER_CLIENT: usize = 1;

/// Longest a credential check waits in its client's queue before it is refused
/// (Authentication Not Successful).
///
/// Stops: a client's own queue of wrong passwords growing without bound and
/// holding connections (and their requests) while it waits.
pub const SLOW_CREDENTIAL_QUEUE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Wrong credentials one client may present within
/// [`CREDENTIAL_FAILURE_WINDOW`]; past it, its credentials are refused without
/// running the slow hash until the window has passed.
///
/// Stops: one client keeping a core busy with PBKDF2 on wrong passwords (and
/// online guessing). A remembered, correct credential still passes.
pub const MAX_CREDENTIAL_FAILURES: u32 = 10;

/// The window [`MAX_CREDENTIAL_FAILURES`] counts in.
pub const CREDENTIAL_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

// --- Operations under a hostile trusted client (issue 10, items 1–3) ---

/// Most Attribute Names one Get Attributes may give.
///
/// Stops: one request naming ~60,000 distinct attributes (cheap on the wire,
/// 16 bytes each) to make the server compare names for seconds before it even
/// looks the object up. An object holds at most [`MAX_ATTRIBUTES_PER_OBJECT`]
/// attributes, so naming more can never return more. vCenter names one.
pub const MAX_ATTRIBUTE_NAMES_PER_REQUEST: usize = MAX_ATTRIBUTES_PER_OBJECT;

/// Most attributes one Template-Attribute (Create, Register, Re-key) may hold.
///
/// Stops: a 24,000-attribute template costing seconds of checks, a random-number
/// call and a seal before the object-size bound refuses it. The new object
/// could not hold more than [`MAX_ATTRIBUTES_PER_OBJECT`] anyway. vCenter sends
/// three.
pub const MAX_ATTRIBUTES_PER_TEMPLATE: usize = MAX_ATTRIBUTES_PER_OBJECT;

/// Most attributes one Locate may filter on.
///
/// Stops: a filter of thousands of attributes turning into as many index
/// sub-queries in the store and as many comparisons per candidate. vCenter
/// locates by one; 64 covers every combination of the standard attributes.
pub const MAX_LOCATE_FILTER_ATTRIBUTES: usize = 64;

/// Identifiers a Locate answers when the client gives no Maximum Items.
///
/// Stops: one small Locate answering every identifier of a large group (20,000
/// ids, ~1 MB, in one response). A client that wants more pages with Maximum
/// Items and Offset Items.
pub const DEFAULT_LOCATE_ITEMS: usize = 1024;

/// Most identifiers one Locate answers, whatever Maximum Items asks (~100 KB).
///
/// Stops: the same as [`DEFAULT_LOCATE_ITEMS`], by a client that asks for
/// `i32::MAX`.
pub const MAX_LOCATE_ITEMS: usize = 2048;

/// Room (bytes) a batch item needs left in the response budget to be run at
/// all; with less, it fails with Response Too Large without running.
///
/// Stops: a batch that ran an operation with side effects (Create) and then
/// could not answer it. Every answer but those of Get, Get Attributes and
/// Locate (which only read) is far smaller than this. The response budget itself
/// is the configured maximum message size (default [`MAX_MESSAGE_BYTES`]) or
/// the client's Maximum Response Size, if smaller: a batch of 256 Get
/// Attributes of a 250 KiB attribute used to build a 65 MB response.
pub const RESPONSE_ITEM_MIN_ROOM: usize = 4096;

/// Objects one group may hold (every state, Destroyed included: the metadata
/// stays). Create, Register and Re-key beyond it fail.
///
/// Stops: one tenant growing its group without limit and then stalling the
/// store (and every Locate over it). Far above a vCenter's needs (one key per
/// VM and host); wants a `[server] max_objects_per_group` setting.
pub const MAX_OBJECTS_PER_GROUP: usize = 2_000_000;

/// Whole-store walks a remote store without server-side queries (OpenBao KV)
/// runs at once, over all callers.
///
/// Stops: a batch of Locates (or several clients' Locates) each listing and
/// reading every record of a remote store side by side, holding many copies of
/// the store in memory and loading the shared store, until the local index of
/// the cluster work answers Locate.
pub const STORE_SCAN_WALKS: usize = 1;

/// Refused connections audited one by one per second; more are counted and
/// summed up in one event.
///
/// Stops: a flood of failed handshakes (from many addresses, past the
/// per-source cap) filling the audit queue so that the events of real KMIP
/// operations are dropped. A real refusal burst (vCenter retrying before it is
/// trusted) is a few a second.
pub const AUDITED_REFUSALS_PER_SECOND: u64 = 100;
