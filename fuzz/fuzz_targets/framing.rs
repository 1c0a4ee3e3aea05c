//! The listener's framing over any byte stream, delivered in any pieces: every
//! message it hands on is exactly the next frame the bytes announce; it stops
//! with the error the bytes call for (a bad header, a cut message) and never
//! reads past one; the buffer it returns is the announced size and no larger;
//! the request budget is charged for what it holds and all given back.
//!
//! Input: byte 0 picks the maximum message size, bytes 1..=4 the sizes of the
//! pieces the stream is read in (cycled), the rest is the stream.
#![no_main]

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use keyward::limits::UNBUDGETED_REQUEST_BYTES;
use keyward::net::{FramingError, read_message};
use keyward::ttlv::{HEADER_LEN, frame_len};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::Semaphore;

/// Sizes that cover a tiny limit, the unbudgeted allowance and beyond it.
const MAX_MESSAGE_BYTES: [usize; 6] = [
    HEADER_LEN,
    64,
    4096,
    UNBUDGETED_REQUEST_BYTES,
    UNBUDGETED_REQUEST_BYTES + 4096,
    1 << 20,
];

/// A stream that hands out its bytes in pieces of the given sizes, in turn.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: [usize; 4],
    turn: usize,
    /// Bytes handed out so far.
    read: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.turn % 4];
        self.turn += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        self.read += n;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

/// What the framing must do with `stream`, message by message.
enum Expected<'a> {
    Message(&'a [u8]),
    BadHeader,
    Truncated,
}

fn expected(stream: &[u8], max: usize) -> Vec<Expected<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let rest = &stream[at..];
        if rest.len() < HEADER_LEN {
            out.push(Expected::Truncated);
            break;
        }
        let header: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().expect("8 bytes");
        match frame_len(&header, max) {
            Err(_) => {
                out.push(Expected::BadHeader);
                break;
            }
            Ok(total) if total > rest.len() => {
                out.push(Expected::Truncated);
                break;
            }
            Ok(total) => {
                out.push(Expected::Message(&rest[..total]));
                at += total;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let max = MAX_MESSAGE_BYTES[usize::from(data[0]) % MAX_MESSAGE_BYTES.len()];
    // Pieces of 1 to 256 bytes, some of them much larger.
    let piece = |b: u8| {
        if b >= 0xF0 {
            usize::from(b) * 1024
        } else {
            usize::from(b) + 1
        }
    };
    let sizes = [piece(data[1]), piece(data[2]), piece(data[3]), piece(data[4])];
    let stream = &data[5..];
    // As the listener does: the budget is at least one largest message.
    let budget_size = max.max(UNBUDGETED_REQUEST_BYTES);
    let budget = Semaphore::new(budget_size);
    let mut io = Pieces {
        data: stream,
        sizes,
        turn: 0,
        read: 0,
    };
    let want = expected(stream, max);
    runtime().block_on(async {
        let mut consumed = 0;
        for expect in want {
            let mut first = [0u8; 1];
            let n = io.read(&mut first).await.expect("memory never fails");
            assert_eq!(n, 1, "the model expects a message here");
            let got = read_message(&mut io, first[0], max, &budget).await;
            match (expect, got) {
                (Expected::Message(m), Ok((message, held))) => {
                    assert_eq!(message, m, "a different message than the bytes announce");
                    assert_eq!(message.capacity(), m.len(), "the buffer outgrew its message");
                    let charged = held.as_ref().map_or(0, |p| p.num_permits());
                    assert_eq!(charged, m.len().saturating_sub(UNBUDGETED_REQUEST_BYTES));
                    assert_eq!(budget.available_permits(), budget_size - charged);
                    consumed += m.len();
                    assert_eq!(io.read, consumed, "read past the end of a message");
                }
                (Expected::BadHeader, Err(FramingError::Frame(_))) => {
                    assert_eq!(io.read, consumed + HEADER_LEN, "read past a bad header");
                }
                (Expected::Truncated, Err(FramingError::Truncated)) => {
                    assert_eq!(io.read, stream.len());
                }
                (_, Ok((message, _))) => panic!("framed {} bytes the model refuses", message.len()),
                (_, Err(e)) => panic!("framing failed where the model does not: {e}"),
            }
        }
        // Nothing left over: the stream ends cleanly or the connection closes.
        assert_eq!(budget.available_permits(), budget_size, "budget not given back");
    });
});
