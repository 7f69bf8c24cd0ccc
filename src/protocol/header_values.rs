//! Header values sent on every call, built once: `HeaderValue::from_static` checks each
//! byte when it runs, and these went out on every request and answer (issue 15's profile).
//! Statics rather than consts, which would make a `Bytes` (interior mutability) per use;
//! cloning one of these copies a pointer.

use http::HeaderValue;

pub static USER_AGENT: HeaderValue = HeaderValue::from_static(crate::USER_AGENT);
pub static ANY: HeaderValue = HeaderValue::from_static("*/*");
pub static JSON: HeaderValue = HeaderValue::from_static("application/json");
pub static EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
/// What a streamable-HTTP POST accepts.
pub static JSON_OR_EVENT_STREAM: HeaderValue =
    HeaderValue::from_static("application/json, text/event-stream");
