//! Time limits a server puts on its clients, so that a client that stops reading
//! or sends slowly cannot hold memory or a connection for long.
//!
//! - [`StallGuard`] wraps an accepted connection: a write that makes no progress
//!   for the write-stall timeout fails (the client stopped reading; the answer it
//!   holds is dropped), and so does a read that waits longer than the read-stall
//!   timeout (a silent peer).
//! - [`DeadlineBody`] wraps a request body: it must keep up a minimum rate. Its
//!   deadline starts a grace period away and moves on by one second for every
//!   `rate` bytes that arrive, so a trickle of one byte a second is cut when the
//!   grace runs out, however steady it is, while a slow but real upload is not.
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

/// The error of a body that fell behind its minimum rate.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {deadline_ms} ms (it must keep up {rate_bytes_per_s} bytes a second after {grace_ms} ms)")]
pub struct BodyTooSlow {
    pub deadline_ms: u64,
    pub grace_ms: u64,
    pub rate_bytes_per_s: u64,
}

/// The pace a request body must keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    /// How long the first bytes may take.
    pub grace_ms: u64,
    /// Each this many bytes received move the deadline on by a second.
    pub rate_bytes_per_s: u64,
}

impl BodyPace {
    /// The deadline, in ms from the start, once `received_bytes` have arrived.
    pub fn deadline_ms(&self, received_bytes: u64) -> u64 {
        let earned_ms = received_bytes.saturating_mul(1_000) / self.rate_bytes_per_s.max(1);
        self.grace_ms.saturating_add(earned_ms)
    }
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

/// A request body that must keep up a [`BodyPace`].
pub struct DeadlineBody<B> {
    inner: B,
    pace: BodyPace,
    started: tokio::time::Instant,
    received_bytes: u64,
    timer: Pin<Box<Sleep>>,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, pace: BodyPace) -> Self {
        let started = tokio::time::Instant::now();
        DeadlineBody {
            inner,
            pace,
            started,
            received_bytes: 0,
            timer: Box::pin(tokio::time::sleep(Duration::from_millis(pace.grace_ms))),
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
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received_bytes += data.len() as u64;
                    let deadline_ms = this.pace.deadline_ms(this.received_bytes);
                    let deadline = this.started + Duration::from_millis(deadline_ms);
                    this.timer.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                    deadline_ms: this.pace.deadline_ms(this.received_bytes),
                    grace_ms: this.pace.grace_ms,
                    rate_bytes_per_s: this.pace.rate_bytes_per_s,
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PACE: BodyPace = BodyPace {
        grace_ms: 10_000,
        rate_bytes_per_s: 16 * 1024,
    };

    #[test]
    fn deadlines_move_on_with_the_bytes_received() {
        assert_eq!(PACE.deadline_ms(0), 10_000);
        assert_eq!(PACE.deadline_ms(16 * 1024), 11_000);
        assert_eq!(PACE.deadline_ms(32 * 1024 * 1024), 10_000 + 2_048_000);
        // No overflow, however much arrives.
        assert!(PACE.deadline_ms(u64::MAX) >= u64::MAX / (16 * 1024));
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
        let error = DeadlineBody::new(body, PACE).collect().await.err().unwrap();
        assert!(error.to_string().contains("within 10000 ms"), "{error}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_100));
        trickle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_the_pace_is_never_cut() {
        let (sender, body) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
            (tx, http_body_util::StreamBody::new(tokio_stream_from(rx)))
        };
        // 20 KiB a second for 60 s: above the 16 KiB/s the pace asks.
        let sender = tokio::spawn(async move {
            for _ in 0..60 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let chunk = Bytes::from(vec![0u8; 20 * 1024]);
                sender.send(Ok(Frame::data(chunk))).await.unwrap();
            }
        });
        let collected = DeadlineBody::new(body, PACE).collect();
        let (collected, _) = tokio::join!(collected, sender);
        assert_eq!(collected.unwrap().to_bytes().len(), 60 * 20 * 1024);
    }

    /// A stream over an mpsc receiver.
    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Unpin {
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
