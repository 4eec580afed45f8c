//! Refuses oversized WebSocket messages from their headers, before their bytes
//! are buffered.
//!
//! actix-http's frame parser waits until a frame's whole declared payload has
//! arrived and only then compares its length with the maximum, and actix-ws
//! buffers everything the peer sends meanwhile: a header declaring 2^40 bytes
//! made the server hold whatever followed it (hundreds of megabytes per
//! connection). [`FrameSizeGuard`] sits between the request payload and actix-ws,
//! reads each frame header as the bytes pass, and fails the stream with
//! [`PayloadError::Overflow`] (the session closes with 1009) as soon as a data
//! frame, or the fragments of one message so far, declare more than the maximum.
//! It never buffers more than one header (14 bytes); everything else it passes
//! through untouched, and it leaves every other framing check to actix-http.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::Payload as DevPayload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use bytes::Bytes;
use futures_util::Stream;

/// Longest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Wraps an upgrade's request body in a [`FrameSizeGuard`] of `max_message` bytes.
pub fn guard_payload(req: &HttpRequest, body: web::Payload, max_message: usize) -> web::Payload {
    let guard = FrameSizeGuard::new(body.into_inner(), max_message);
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(guard);
    let mut payload = DevPayload::from(boxed);
    // Cannot fail: `web::Payload`'s extractor only takes the payload it is given.
    web::Payload::from_request(req, &mut payload)
        .into_inner()
        .expect("the payload extractor is infallible")
}

/// Where the guard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Passing bytes through.
    Passing,
    /// Delivered the bytes before an oversized frame; yields once so they are
    /// decoded, then fails.
    Failing,
    /// Failed; the stream has ended.
    Failed,
}

/// A payload stream that fails once a declared message size exceeds the maximum.
pub struct FrameSizeGuard<S> {
    /// The request payload.
    inner: S,
    /// Largest message (one frame, or the fragments of one) allowed, bytes.
    max: u64,
    /// The header being read, when it spans chunks.
    header: [u8; MAX_HEADER],
    /// Bytes of `header` read so far.
    header_len: usize,
    /// Payload bytes of the current frame still to pass.
    skip: u64,
    /// Declared bytes of the data message being received (fragments summed).
    message: u64,
    /// Passing or failing.
    state: State,
}

impl<S> FrameSizeGuard<S> {
    /// Guards `inner` with a maximum message size of `max` bytes.
    pub fn new(inner: S, max: usize) -> Self {
        Self {
            inner,
            max: max as u64,
            header: [0; MAX_HEADER],
            header_len: 0,
            skip: 0,
            message: 0,
            state: State::Passing,
        }
    }

    /// Follows the frames through `chunk`; returns where the header of an
    /// oversized frame starts in it (0 when it started in an earlier chunk).
    fn scan(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut i = 0;
        let mut header_start = 0;
        while i < chunk.len() {
            if self.skip > 0 {
                let n = self.skip.min((chunk.len() - i) as u64);
                self.skip -= n;
                i += n as usize;
                continue;
            }
            if self.header_len == 0 {
                header_start = i;
            }
            self.header[self.header_len] = chunk[i];
            self.header_len += 1;
            i += 1;
            if self.header_len < 2 {
                continue;
            }
            let (first, second) = (self.header[0], self.header[1]);
            let extended = match second & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask = if second & 0x80 != 0 { 4 } else { 0 };
            if self.header_len < 2 + extended + mask {
                continue;
            }
            let h = &self.header;
            let len = match extended {
                2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
                8 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                _ => u64::from(second & 0x7f),
            };
            self.header_len = 0;
            self.skip = len;
            match first & 0x0f {
                0 => self.message = self.message.saturating_add(len),
                1 | 2 => self.message = len,
                // Control frames (and bad opcodes) are actix-http's to check.
                _ => continue,
            }
            if self.message > self.max {
                return Some(header_start);
            }
            if first & 0x80 != 0 {
                self.message = 0;
            }
        }
        None
    }
}

impl<S> Stream for FrameSizeGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.state {
            State::Passing => {}
            State::Failing => {
                this.state = State::Failed;
                return Poll::Ready(Some(Err(PayloadError::Overflow)));
            }
            State::Failed => return Poll::Ready(None),
        }
        let chunk = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            other => return other,
        };
        match this.scan(&chunk) {
            None => Poll::Ready(Some(Ok(chunk))),
            Some(0) => {
                this.state = State::Failed;
                Poll::Ready(Some(Err(PayloadError::Overflow)))
            }
            Some(at) => {
                // The complete frames before it first: the reader decodes them
                // when this stream next returns Pending (woken at once).
                this.state = State::Failing;
                cx.waker().wake_by_ref();
                Poll::Ready(Some(Ok(chunk.slice(..at))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt};

    /// A masked client frame header with a 64-bit length.
    fn header(first: u8, len: u64) -> Vec<u8> {
        let mut h = vec![first, 0x80 | 127];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    async fn run(chunks: Vec<Vec<u8>>, max: usize) -> Vec<Result<Bytes, PayloadError>> {
        let inner = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        FrameSizeGuard::new(inner, max).collect().await
    }

    #[actix_rt::test]
    async fn passes_frames_within_the_limit_untouched() {
        let frames = [
            masked(0x82, &[1; 10]),
            masked(0x89, b"ping"),
            masked(0x82, &[2; 16]),
        ];
        let all = frames.concat();
        // Split at every position: headers spanning chunks are followed.
        for cut in 0..all.len() {
            let out = run(vec![all[..cut].to_vec(), all[cut..].to_vec()], 16).await;
            let bytes: Vec<u8> = out.into_iter().flat_map(|r| r.unwrap()).collect();
            assert_eq!(bytes, all, "cut at {cut}");
        }
    }

    #[actix_rt::test]
    async fn fails_at_a_huge_header_after_passing_what_came_before() {
        let before = masked(0x82, &[1; 10]);
        let chunk = [before.clone(), header(0x82, 1 << 40), vec![0; 32]].concat();
        let out = run(vec![chunk], 1024).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].as_ref().unwrap(), &before[..]);
        assert!(matches!(out[1], Err(PayloadError::Overflow)));
    }

    #[actix_rt::test]
    async fn sums_the_fragments_of_one_message() {
        let fragments = [
            masked(0x02, &[0; 100]),
            masked(0x89, b"ping in between"),
            masked(0x00, &[0; 100]),
        ]
        .concat();
        let out = run(vec![fragments.clone()], 200).await;
        assert!(out.iter().all(Result::is_ok), "within the limit");
        let over = [fragments, masked(0x80, &[0; 1])].concat();
        let out = run(vec![over], 200).await;
        assert!(matches!(out.last(), Some(Err(PayloadError::Overflow))));
    }
}
