//! Time limits a server puts on its clients, so that a client that stops reading
//! or sends slowly cannot hold memory or a connection for long.
//!
//! - [`StallGuard`] wraps an accepted connection: a write that makes no progress
//!   for the write-stall timeout fails (the client stopped reading; the answer it
//!   holds is dropped), and so does a read that waits longer than the read-stall
//!   timeout (a silent peer).
//! - [`DeadlineBody`] wraps a request body: it must arrive whole before its
//!   deadline, which grows with its declared length (a trickle of one byte a
//!   second is cut however steady it is).
//!
//! Both use `tokio::time`, so the simulation runs them in virtual time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// An accepted connection whose reads and writes may not stall for long.
pub struct StallGuard<T> {
    inner: T,
    read_stall: Duration,
    write_stall: Duration,
    /// Armed while a read is pending.
    read_timer: Option<Pin<Box<Sleep>>>,
    /// Armed while a write (or flush) is pending.
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, read_stall: Duration, write_stall: Duration) -> Self {
        StallGuard {
            inner,
            read_stall,
            write_stall,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// Polls `timer` (arming it first): an error once it has run out.
fn stalled(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    cx: &mut Context<'_>,
    what: &str,
) -> Poll<io::Error> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer made no progress {what} for {} ms",
                limit.as_millis()
            ),
        )),
        Poll::Pending => Poll::Pending,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(outcome) => {
                this.read_timer = None;
                Poll::Ready(outcome)
            }
            Poll::Pending => match stalled(&mut this.read_timer, this.read_stall, cx, "sending") {
                Poll::Ready(error) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T> StallGuard<T> {
    /// What a write (or flush) that polled `outcome` returns: a pending one arms
    /// the write timer, and fails once it runs out; any outcome disarms it.
    fn after_write<R>(
        &mut self,
        outcome: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match outcome {
            Poll::Ready(outcome) => {
                self.write_timer = None;
                Poll::Ready(outcome)
            }
            Poll::Pending => {
                match stalled(&mut self.write_timer, self.write_stall, cx, "reading") {
                    Poll::Ready(error) => Poll::Ready(Err(error)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(outcome, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.after_write(outcome, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(outcome, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The error of a body that missed its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {deadline_ms} ms")]
pub struct BodyTooSlow {
    pub deadline_ms: u64,
}

/// Whether `error`, or an error it wraps, is a body that missed its deadline.
/// Extractors wrap body errors in their own; some keep only the message.
pub fn is_body_too_slow(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.downcast_ref::<BodyTooSlow>().is_some()
            || error.to_string().contains(BodyTooSlow::MARK)
        {
            return true;
        }
        next = error.source();
    }
    false
}

impl BodyTooSlow {
    /// A part of the message that only this error has.
    const MARK: &'static str = "request body did not arrive within";
}

/// A request body that must arrive whole before a deadline.
pub struct DeadlineBody<B> {
    inner: B,
    deadline_ms: u64,
    timer: Pin<Box<Sleep>>,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, deadline_ms: u64) -> Self {
        DeadlineBody {
            inner,
            deadline_ms,
            timer: Box::pin(tokio::time::sleep(Duration::from_millis(deadline_ms))),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                    deadline_ms: this.deadline_ms,
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The deadline of a body of `declared_bytes` (if declared): `base_ms`, plus one
/// second per MiB (a client that sends at least 1 MiB/s always makes it).
pub fn body_deadline_ms(base_ms: u64, declared_bytes: Option<u64>) -> u64 {
    base_ms.saturating_add(declared_bytes.unwrap_or(0) / (1024 * 1024) * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn deadlines_grow_with_the_declared_length() {
        assert_eq!(body_deadline_ms(30_000, None), 30_000);
        assert_eq!(body_deadline_ms(30_000, Some(1000)), 30_000);
        assert_eq!(body_deadline_ms(30_000, Some(32 * 1024 * 1024)), 62_000);
        assert_eq!(body_deadline_ms(u64::MAX, Some(u64::MAX)), u64::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_stall_timeout() {
        // A pipe of 64 bytes whose far end is never read.
        let (near, _far) = tokio::io::duplex(64);
        let mut guarded =
            StallGuard::new(near, Duration::from_secs(30), Duration::from_millis(500));
        let started = tokio::time::Instant::now();
        let error = guarded.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(500) && waited < Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_stall_timer() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut guarded =
            StallGuard::new(near, Duration::from_millis(300), Duration::from_millis(300));
        // The peer sends a byte every 200 ms: never a stall of 300 ms.
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                far.write_all(b"x").await.unwrap();
            }
            far
        });
        let mut buf = [0u8; 5];
        guarded.read_exact(&mut buf).await.unwrap();
        let _far = sender.await.unwrap();
        // Then it falls silent: the next read fails after 300 ms.
        let error = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_cut_at_its_deadline() {
        let (sender, body) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
            let stream = tokio_stream_from(rx);
            (tx, http_body_util::StreamBody::new(stream))
        };
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if sender
                    .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let started = tokio::time::Instant::now();
        let error = DeadlineBody::new(body, 10_000)
            .collect()
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("10000 ms"), "{error}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_100));
        trickle.abort();
    }

    /// A stream over an mpsc receiver.
    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Unpin {
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
