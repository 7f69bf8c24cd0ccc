//! How an answer travels: one JSON body, or an event stream (`text/event-stream`) when the
//! client asked for one or the answer has notifications to carry before its result.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

/// What the client accepts, from its `Accept` header.
#[derive(Debug, Clone, Copy)]
pub struct Accepts {
    pub sse: bool,
    pub json: bool,
}

impl Accepts {
    /// Every `Accept` header counts (as if joined by commas); media types compare without
    /// regard to case, parameters (`;q=…`) aside. No `Accept` at all (or one empty header)
    /// means JSON.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let (mut values, mut empty, mut any, mut sse, mut json) = (0, true, false, false, false);
        for value in headers.get_all(http::header::ACCEPT) {
            let text = value.as_bytes();
            values += 1;
            // What the MCP SDKs send (and the sidecar sends upstream), matched whole before
            // any splitting.
            if value == crate::protocol::header_values::JSON_OR_EVENT_STREAM {
                (empty, sse, json) = (false, true, true);
                continue;
            }
            empty &= text.is_empty();
            for range in text.split(|b| *b == b',') {
                let media_type = range.split(|b| *b == b';').next().unwrap_or_default();
                let media_type = media_type.trim_ascii();
                any |= media_type == b"*/*";
                sse |= media_type.eq_ignore_ascii_case(b"text/event-stream");
                json |= media_type.eq_ignore_ascii_case(b"application/json");
            }
        }
        if values <= 1 && empty {
            return Self {
                sse: false,
                json: true,
            };
        }
        Self {
            sse: any || sse,
            json: any || json,
        }
    }

    /// A client that accepts only an event stream gets every answer as one.
    pub fn sse_only(self) -> bool {
        self.sse && !self.json
    }
}

/// One JSON-RPC answer as an HTTP response, in the framing the client asked for.
pub fn respond(status: StatusCode, body: Vec<u8>, accepts: Accepts) -> Response {
    if accepts.sse_only() && status == StatusCode::OK {
        return sse_response(Body::from(sse_frame(&body)));
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, crate::protocol::header_values::JSON.clone());
    response
}

/// An event-stream response around `body` (a stream of [`sse_frame`]s).
pub fn sse_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
            // Proxies (nginx) must not buffer a stream whose events are meant to arrive now.
            (http::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// One JSON-RPC message as an SSE event.
pub fn sse_frame(message: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(message.len() + 24);
    frame.extend_from_slice(b"event: message\ndata: ");
    frame.extend_from_slice(message);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// A response body that keeps `guard` alive until the body is dropped: sent whole, or
/// abandoned with its connection. Unlike a `map_frame` closure holding the guard, it passes
/// on the body's length and end, so an answer of known length keeps its `Content-Length`
/// rather than going out chunked (one more frame for hyper to write and the client to parse).
pub fn guarded<G: Unpin + Send + 'static>(body: Body, guard: G) -> Body {
    Body::new(Guarded {
        body,
        _guard: guard,
    })
}

struct Guarded<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> hyper::body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_guarded_body_keeps_its_length_and_holds_the_guard_until_dropped() {
        let guard = std::sync::Arc::new(());
        let body = guarded(Body::from("{\"a\":1}"), guard.clone());
        let hint = hyper::body::Body::size_hint(&body);
        assert_eq!(
            hint.exact(),
            Some(7),
            "a known length stays known (Content-Length)"
        );
        assert!(!hyper::body::Body::is_end_stream(&body));
        assert_eq!(std::sync::Arc::strong_count(&guard), 2);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{\"a\":1}");
        assert_eq!(
            std::sync::Arc::strong_count(&guard),
            1,
            "released with the body"
        );
        let empty = guarded(Body::empty(), ());
        assert!(hyper::body::Body::is_end_stream(&empty));
    }

    #[test]
    fn accept_header_decides_framing() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json, text/event-stream".parse().unwrap(),
        );
        let common = Accepts::from_headers(&h);
        assert!(common.sse && common.json);
        // The same value read range by range (as any other spelling is) gives the same.
        h.insert(
            http::header::ACCEPT,
            "application/json,text/event-stream".parse().unwrap(),
        );
        let spelled = Accepts::from_headers(&h);
        assert!(spelled.sse && spelled.json);
        h.insert(http::header::ACCEPT, "text/event-stream".parse().unwrap());
        assert!(Accepts::from_headers(&h).sse_only());
        assert!(!Accepts::from_headers(&HeaderMap::new()).sse_only());
        h.insert(http::header::ACCEPT, "Text/Event-Stream".parse().unwrap());
        assert!(Accepts::from_headers(&h).sse_only());
        h.append(http::header::ACCEPT, "APPLICATION/JSON".parse().unwrap());
        let both = Accepts::from_headers(&h);
        assert!(both.sse && both.json);
        h.insert(http::header::ACCEPT, "*/*".parse().unwrap());
        let any = Accepts::from_headers(&h);
        assert!(any.sse && any.json);
        h.insert(http::header::ACCEPT, "".parse().unwrap());
        let empty = Accepts::from_headers(&h);
        assert!(!empty.sse && empty.json);
        h.insert(http::header::ACCEPT, "text/html".parse().unwrap());
        let neither = Accepts::from_headers(&h);
        assert!(!neither.sse && !neither.json);
        // Media ranges, not substrings: parameters are set aside, look-alikes do not count.
        h.insert(
            http::header::ACCEPT,
            "application/json-seq, text/html;q=0.5,Text/Event-Stream ;q=0.9"
                .parse()
                .unwrap(),
        );
        let ranges = Accepts::from_headers(&h);
        assert!(ranges.sse_only());
    }
}
