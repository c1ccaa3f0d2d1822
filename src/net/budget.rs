//! A cap on the bytes of answers a server holds in flight, across all its
//! clients.
//!
//! An answer takes its share of the budget before its body is read (from the
//! `Content-Length` of the node's answer, or the size of the blob), and gives it
//! back when its body has been sent or dropped. When the budget is spent, the
//! answer is 503: clients that stop reading can hold at most the budget, never
//! memory without bound.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit, in bytes.
const UNIT_BYTES: u64 = 1024;

/// The budget of a server; cheap to clone (clones share it).
#[derive(Clone, Debug)]
pub struct ResponseBudget {
    units: Arc<Semaphore>,
    total_units: u32,
}

/// A share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Share {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ResponseBudget {
    /// A budget of `total_bytes` (rounded up to whole KiB, at most 4 TiB).
    pub fn new(total_bytes: u64) -> Self {
        let total_units = u32::try_from(total_bytes.div_ceil(UNIT_BYTES)).unwrap_or(u32::MAX);
        let total_units = total_units.min(Semaphore::MAX_PERMITS as u32);
        ResponseBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// A share of `bytes`, if that much is free now.
    pub fn try_take(&self, bytes: u64) -> Option<Share> {
        let units = bytes.div_ceil(UNIT_BYTES);
        if units == 0 {
            return Some(Share { _permit: None });
        }
        let units = u32::try_from(units)
            .ok()
            .filter(|&u| u <= self.total_units)?;
        let permit = self.units.clone().try_acquire_many_owned(units).ok()?;
        Some(Share {
            _permit: Some(permit),
        })
    }

    /// Bytes free now.
    pub fn free_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT_BYTES
    }

    /// The whole budget, in bytes.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT_BYTES
    }
}

/// A body that holds a share of the budget until its bytes are written or
/// dropped. hyper drops a body as soon as it has taken its last frame (for a
/// whole image, at once), while the frame still waits in its write queue: so
/// each frame carries the share too, and the share goes back when the last
/// frame's bytes are freed.
pub struct BudgetedBody<B> {
    inner: B,
    share: Option<Arc<Share>>,
}

impl<B> BudgetedBody<B> {
    pub fn new(inner: B, share: Option<Arc<Share>>) -> Self {
        BudgetedBody { inner, share }
    }
}

/// Bytes that hold a share of the budget while they live.
struct Charged {
    bytes: Bytes,
    _share: Arc<Share>,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<B> Body for BudgetedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match (polled, &this.share) {
            (Poll::Ready(Some(Ok(frame))), Some(share)) => {
                let frame = frame.map_data(|bytes| {
                    Bytes::from_owner(Charged {
                        bytes,
                        _share: share.clone(),
                    })
                });
                Poll::Ready(Some(Ok(frame)))
            }
            (Poll::Ready(None), _) => {
                // Sent whole: this body's hold goes; frames still queued keep theirs.
                this.share = None;
                Poll::Ready(None)
            }
            (polled, _) => polled,
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
    use http_body_util::{BodyExt, Full};

    #[test]
    fn shares_are_taken_up_to_the_total_and_given_back() {
        let budget = ResponseBudget::new(10 * 1024);
        assert_eq!(budget.total_bytes(), 10 * 1024);
        let a = budget.try_take(6 * 1024).expect("6 KiB of 10");
        assert!(budget.try_take(5 * 1024).is_none(), "only 4 KiB left");
        let b = budget.try_take(4 * 1024).expect("the last 4 KiB");
        assert_eq!(budget.free_bytes(), 0);
        assert!(budget.try_take(1).is_none());
        assert!(
            budget.try_take(0).is_some(),
            "an empty answer costs nothing"
        );
        drop(a);
        assert_eq!(budget.free_bytes(), 6 * 1024);
        drop(b);
        assert!(
            budget.try_take(11 * 1024).is_none(),
            "more than the whole budget"
        );
        assert!(budget.try_take(u64::MAX).is_none());
    }

    #[tokio::test]
    async fn a_body_gives_its_share_back_once_sent() {
        let budget = ResponseBudget::new(8 * 1024);
        let share = Arc::new(budget.try_take(8 * 1024).unwrap());
        let body = BudgetedBody::new(Full::new(Bytes::from_static(b"image")), Some(share));
        assert_eq!(budget.free_bytes(), 0);
        let mut body = std::pin::pin!(body);
        let frame = body.frame().await.unwrap().unwrap();
        let data = frame.into_data().unwrap();
        assert_eq!(data, "image");
        assert!(body.frame().await.is_none());
        assert_eq!(budget.free_bytes(), 0, "the frame's bytes still hold it");
        drop(data);
        assert_eq!(
            budget.free_bytes(),
            8 * 1024,
            "given back once they are freed"
        );
        // A body dropped half-sent gives it back too.
        let share = Arc::new(budget.try_take(8 * 1024).unwrap());
        drop(BudgetedBody::new(
            Full::new(Bytes::from_static(b"x")),
            Some(share),
        ));
        assert_eq!(budget.free_bytes(), 8 * 1024);
    }
}
