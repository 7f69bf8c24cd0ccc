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
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let accept = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase();
        if accept.is_empty() {
            return Self {
                sse: false,
                json: true,
            };
        }
        let any = accept.contains("*/*");
        Self {
            sse: any || accept.contains("text/event-stream"),
            json: any || accept.contains("application/json"),
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
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_decides_framing() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json, text/event-stream".parse().unwrap(),
        );
        assert!(!Accepts::from_headers(&h).sse_only());
        h.insert(http::header::ACCEPT, "text/event-stream".parse().unwrap());
        assert!(Accepts::from_headers(&h).sse_only());
        assert!(!Accepts::from_headers(&HeaderMap::new()).sse_only());
    }
}
