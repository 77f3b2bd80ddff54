//! A bound on the size of Inspector's ScanSbom answer.
//!
//! The SDK reads a whole answer into memory before parsing it, with no
//! limit of its own, and an answer is not ours: an endpoint that is not
//! Inspector (a misconfigured `AWS_ENDPOINT_URL_INSPECTOR_SCAN`, a proxy)
//! or a fault could stream gigabytes at a worker sized for one image. The
//! service's model sets no size on the answer; an SBOM of at most 5,000
//! components (the service's limit) with every vulnerability Inspector
//! knows for each stays well below [`MAX_ANSWER_BYTES`], so the cap only
//! ever stops what is not a real answer. The interceptor refuses a declared
//! `Content-Length` above the cap before reading anything, and meters a
//! chunked body as it is read, failing at the first byte over the cap.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_inspectorscan::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_inspectorscan::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest ScanSbom answer read (64 MiB).
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// The marker error the SDK carries out of a capped answer.
#[derive(Debug, thiserror::Error)]
#[error("the ScanSbom answer is larger than {limit} bytes")]
pub struct AnswerTooLarge {
    pub limit: u64,
}

/// Whether `e` (an SDK error) failed because the answer was over the cap.
pub fn too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<AnswerTooLarge>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Caps the answer of the operation it is attached to.
#[derive(Debug, Clone, Copy)]
pub struct CapAnswer(pub u64);

impl Intercept for CapAnswer {
    fn name(&self) -> &'static str {
        "scangate::CapAnswer"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let limit = self.0;
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(Box::new(AnswerTooLarge { limit }));
        }
        let body = response.take_body();
        *response.body_mut() = SdkBody::from_body_1_x(Capped {
            inner: body,
            left: limit,
            limit,
        });
        Ok(())
    }
}

/// A body that fails once more than `limit` bytes came through it.
struct Capped {
    inner: SdkBody,
    left: u64,
    limit: u64,
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            if n > self.left {
                let limit = self.limit;
                self.left = 0;
                return Poll::Ready(Some(Err(Box::new(AnswerTooLarge { limit }))));
            }
            self.left -= n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// Reads the whole body, as the SDK does.
    async fn collect(mut body: Capped) -> Result<usize, BoxError> {
        let mut n = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            n += frame?.data_ref().map_or(0, |d| d.len());
        }
        Ok(n)
    }

    fn capped(len: usize, limit: u64) -> Capped {
        Capped {
            inner: SdkBody::from(vec![b'x'; len]),
            left: limit,
            limit,
        }
    }

    #[tokio::test]
    async fn a_body_within_the_cap_passes_whole() {
        assert_eq!(collect(capped(4000, 4000)).await.unwrap(), 4000);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_fails() {
        let e = collect(capped(4001, 4000)).await.unwrap_err();
        assert!(too_large(e.as_ref()), "{e}");
        assert!(e.to_string().contains("larger than 4000 bytes"), "{e}");
    }
}
