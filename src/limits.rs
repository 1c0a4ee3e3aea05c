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
