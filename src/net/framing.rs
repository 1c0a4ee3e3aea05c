//! Framing of the KMIP byte stream: TTLV's 8-byte header announces a message's
//! length, and the rest is read into a buffer that grows with the bytes that
//! actually arrive. No I/O of its own beyond the stream it is given, no timeouts
//! (the listener wraps each message in its read timeout), nothing of KMIP beyond
//! the header — so that it can be driven from memory (see `fuzz/`).

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::ttlv::{FrameError, HEADER_LEN, frame_len};

/// Why a connection's next message could not be read; the connection is then
/// closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The stream failed.
    Io(String),
    /// The header announces no message this server reads (not a structure, a
    /// length not a multiple of 8, over the maximum).
    Frame(FrameError),
    /// The stream ended before the announced length.
    Truncated,
    /// A length that cannot be charged to the request budget.
    TooLarge,
    /// The shared request budget was closed (the server is stopping).
    BudgetClosed,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingError::Io(e) => write!(f, "read failed: {e}"),
            FramingError::Frame(e) => write!(f, "{e}"),
            FramingError::Truncated => f.write_str("connection closed in the middle of a message"),
            FramingError::TooLarge => f.write_str("message too large"),
            FramingError::BudgetClosed => f.write_str("request budget closed"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Reads one message whose first byte, `first`, has already been read (the
/// listener waits for it under the idle timeout, then for the rest under the
/// read timeout). Returns the whole message, header included, and the share of
/// `budget` it holds until dropped.
pub async fn read_message<'b, S: AsyncRead + Unpin>(
    io: &mut S,
    first: u8,
    max_message_bytes: usize,
    budget: &'b Semaphore,
) -> Result<(Vec<u8>, Option<SemaphorePermit<'b>>), FramingError> {
    let mut header = [0u8; HEADER_LEN];
    header[0] = first;
    io.read_exact(&mut header[1..])
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FramingError::Truncated,
            _ => FramingError::Io(e.to_string()),
        })?;
    let total = frame_len(&header, max_message_bytes).map_err(FramingError::Frame)?;
    read_body(io, header, total, budget).await
}

/// Reads the rest of a message of `total` bytes whose header is `header`.
///
/// The buffer grows as bytes arrive — doubling, capped at `total` — so a peer
/// announcing 1 MiB and sending 24 bytes costs a few hundred bytes, not 1 MiB.
/// Capacity beyond [`crate::limits::UNBUDGETED_REQUEST_BYTES`] is taken from the
/// shared `budget` before it is allocated (waiting, within the caller's read
/// timeout, while other connections hold it); the permit returned with the
/// message gives it back once dropped.
pub(crate) async fn read_body<'b, S: AsyncRead + Unpin>(
    io: &mut S,
    header: [u8; HEADER_LEN],
    total: usize,
    budget: &'b Semaphore,
) -> Result<(Vec<u8>, Option<SemaphorePermit<'b>>), FramingError> {
    use crate::limits::{REQUEST_READ_CHUNK_BYTES, UNBUDGETED_REQUEST_BYTES};
    // `total` is at least the header (`frame_len` adds it).
    // A Register request carries key material: every buffer that held part of
    // it is wiped, the ones left behind by growing and the one of a message cut
    // short alike.
    let mut message = zeroize::Zeroizing::new(Vec::with_capacity(total.min(REQUEST_READ_CHUNK_BYTES)));
    message.extend_from_slice(&header);
    let mut held: Option<SemaphorePermit<'b>> = None;
    while message.len() < total {
        if message.len() == message.capacity() {
            let target = message.capacity().saturating_mul(2).min(total);
            let charged = |cap: usize| cap.saturating_sub(UNBUDGETED_REQUEST_BYTES);
            let extra = charged(target) - charged(message.capacity());
            if extra > 0 {
                let extra = u32::try_from(extra).map_err(|_| FramingError::TooLarge)?;
                let permit = budget
                    .acquire_many(extra)
                    .await
                    .map_err(|_| FramingError::BudgetClosed)?;
                match held.as_mut() {
                    Some(h) => h.merge(permit),
                    None => held = Some(permit),
                }
            }
            // Grown by hand, not by `reserve`: the old buffer is wiped when
            // its `Zeroizing` drops, where a reallocation would free it as is.
            let mut grown = zeroize::Zeroizing::new(Vec::with_capacity(target));
            grown.extend_from_slice(&message);
            message = grown;
        }
        let room = (total - message.len()).min(message.capacity() - message.len());
        let read = (&mut *io)
            .take(room as u64)
            .read_buf(&mut *message)
            .await
            .map_err(|e| FramingError::Io(e.to_string()))?;
        if read == 0 {
            return Err(FramingError::Truncated);
        }
    }
    Ok((std::mem::take(&mut *message), held))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    fn header_of(total: usize) -> [u8; HEADER_LEN] {
        let mut h = [0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0];
        h[4..].copy_from_slice(&u32::try_from(total - HEADER_LEN).unwrap().to_be_bytes());
        h
    }

    #[tokio::test]
    async fn a_request_buffer_grows_with_the_data_and_charges_the_shared_budget() {
        use crate::limits::UNBUDGETED_REQUEST_BYTES;
        let total = 256 * 1024;
        let (mut client, mut server) = tokio::io::duplex(1024 * 1024);
        // Only a few bytes of the announced 256 KiB arrive: the buffer stays small.
        client.write_all(&[7u8; 100]).await.unwrap();
        let budget = Semaphore::new(1024 * 1024);
        let reading = read_body(&mut server, header_of(total), total, &budget);
        tokio::pin!(reading);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut reading)
                .await
                .is_err()
        );
        assert_eq!(budget.available_permits(), 1024 * 1024, "nothing charged yet");
        client
            .write_all(&vec![7u8; total - HEADER_LEN - 100])
            .await
            .unwrap();
        let (message, held) = reading.await.unwrap();
        assert_eq!(message.len(), total);
        assert_eq!(message.capacity(), total, "doubling stops at the announced size");
        assert_eq!(
            budget.available_permits(),
            1024 * 1024 - (total - UNBUDGETED_REQUEST_BYTES),
            "capacity beyond the allowance is charged while the request is held"
        );
        drop(held);
        assert_eq!(budget.available_permits(), 1024 * 1024);
    }

    #[tokio::test]
    async fn an_exhausted_budget_holds_large_requests_but_not_small_ones() {
        let budget = Semaphore::new(0);
        // A small request never touches the budget.
        let (mut client, mut server) = tokio::io::duplex(1024 * 1024);
        client.write_all(&[1u8; 1000 - HEADER_LEN]).await.unwrap();
        let (small, held) = read_body(&mut server, header_of(1000), 1000, &budget)
            .await
            .unwrap();
        assert_eq!((small.len(), held.is_none()), (1000, true));
        // A large one waits for budget (the caller's read timeout then closes it).
        let total = 512 * 1024;
        client.write_all(&vec![1u8; total - HEADER_LEN]).await.unwrap();
        let large = read_body(&mut server, header_of(total), total, &budget);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), large)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_message_is_read_whole_and_bad_headers_are_named() {
        let budget = Semaphore::new(1024 * 1024);
        let mut stream: &[u8] = &[0x00, 0x78, 0x01, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let (message, held) = read_message(&mut stream, 0x42, 1024, &budget).await.unwrap();
        // The first byte came separately: the stream holds the other 15.
        assert_eq!(message.len(), 16);
        assert!(held.is_none());
        let mut short: &[u8] = &[0x00, 0x78];
        assert_eq!(
            read_message(&mut short, 0x42, 1024, &budget).await.unwrap_err(),
            FramingError::Truncated
        );
        let mut big: &[u8] = &[0x00, 0x78, 0x01, 0, 0, 0x10, 0];
        assert!(matches!(
            read_message(&mut big, 0x42, 1024, &budget).await.unwrap_err(),
            FramingError::Frame(FrameError::TooLarge { .. })
        ));
    }
}
