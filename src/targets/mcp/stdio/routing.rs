//! Many concurrent requests over one pair of pipes: what goes out is numbered, what comes
//! back is routed by that number.
//!
//! - A response goes to the request with its id (a one-shot channel: it is never dropped
//!   for lack of room, and the reader never waits for a slow caller).
//! - `notifications/progress` goes to the request that asked for progress. The caller's
//!   `progressToken` is swapped for the request's own id on the way out and restored on the
//!   way back, because two callers may well pick the same token and stdio has no per-request
//!   stream to tell them apart.
//! - Everything else the server sends on its own (list changes, log messages) goes to the
//!   listener side; requests from the server are answered by the reader itself.
//!
//! Queues are bounded: a caller's progress queue and the listener queue drop what does not
//! fit (counted), so a flooding server costs a fixed amount of memory.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::targets::TargetError;

/// Progress notifications queued for one caller before newer ones are dropped.
const PROGRESS_QUEUE: usize = 32;

/// What a request waits on: its response, and its progress notifications when it asked.
pub struct Waiting {
    pub response: oneshot::Receiver<Result<Vec<u8>, TargetError>>,
    pub progress: Option<mpsc::Receiver<Vec<u8>>>,
}

struct Pending {
    method: String,
    response: oneshot::Sender<Result<Vec<u8>, TargetError>>,
    /// Where progress goes, and the token the caller chose.
    progress: Option<(mpsc::Sender<Vec<u8>>, Value)>,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    /// Set once the process is gone: later requests fail with it at once.
    gone: Option<TargetError>,
}

/// The requests in flight on one process.
#[derive(Default)]
pub struct Table {
    state: Mutex<State>,
}

impl Table {
    /// Registers request `id` before it is written, so its answer cannot arrive first.
    pub fn register(
        &self,
        id: u64,
        method: &str,
        caller_token: Option<Value>,
    ) -> Result<Waiting, TargetError> {
        let mut state = self.state.lock().expect("routing table");
        if let Some(gone) = &state.gone {
            return Err(gone.clone());
        }
        let (tx, response) = oneshot::channel();
        let (progress, progress_rx) = match caller_token {
            Some(token) => {
                let (ptx, prx) = mpsc::channel(PROGRESS_QUEUE);
                (Some((ptx, token)), Some(prx))
            }
            None => (None, None),
        };
        state.pending.insert(
            id,
            Pending {
                method: method.to_string(),
                response: tx,
                progress,
            },
        );
        Ok(Waiting {
            response,
            progress: progress_rx,
        })
    }

    /// Forgets request `id` (answered, abandoned by its caller, or never written).
    pub fn remove(&self, id: u64) {
        self.state
            .lock()
            .expect("routing table")
            .pending
            .remove(&id);
    }

    /// Delivers a response; false when no request waits for `id`.
    pub fn respond(&self, id: u64, message: Result<Vec<u8>, TargetError>) -> bool {
        let pending = self
            .state
            .lock()
            .expect("routing table")
            .pending
            .remove(&id);
        match pending {
            Some(p) => {
                let _ = p.response.send(message);
                true
            }
            None => false,
        }
    }

    /// Delivers a progress notification whose token is request `id`, with the caller's own
    /// token put back. Returns what happened, for the reader's counters.
    pub fn progress(&self, id: u64, mut notification: Value) -> Delivery {
        let state = self.state.lock().expect("routing table");
        let Some((sink, token)) = state.pending.get(&id).and_then(|p| p.progress.as_ref()) else {
            return Delivery::NoTaker;
        };
        if let Some(params) = notification
            .get_mut("params")
            .and_then(Value::as_object_mut)
        {
            params.insert("progressToken".into(), token.clone());
        }
        match sink.try_send(notification.to_string().into_bytes()) {
            Ok(()) => Delivery::Delivered,
            Err(_) => Delivery::Dropped,
        }
    }

    /// The process is gone: every waiting request fails now, and so will later ones.
    /// `error` words the failure for a request of the given method.
    pub fn close(&self, gone: TargetError, error: impl Fn(&str) -> TargetError) {
        let pending = {
            let mut state = self.state.lock().expect("routing table");
            state.gone = Some(gone);
            std::mem::take(&mut state.pending)
        };
        for (_, p) in pending {
            let _ = p.response.send(Err(error(&p.method)));
        }
    }

    /// The method of request `id`, if it is still waiting.
    pub fn method_of(&self, id: u64) -> Option<String> {
        let state = self.state.lock().expect("routing table");
        state.pending.get(&id).map(|p| p.method.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.state.lock().expect("routing table").pending.len()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    Dropped,
    NoTaker,
}

/// What one line from the server is.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A response to one of ours.
    Response(u64),
    /// A response with an id the sidecar never sent (not a number, or unknown).
    ForeignResponse,
    /// The server asks the client something (ping, sampling, roots, elicitation).
    Request { id: Value, method: String },
    /// Progress for the request whose id is the token.
    Progress { token: Option<u64>, message: Value },
    /// Any other notification (list changes, log messages, …).
    Notification,
    /// Not a JSON-RPC message.
    Invalid(String),
}

/// Classifies one line. Only the envelope is read; results stay raw.
pub fn classify(line: &[u8]) -> Incoming {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default, borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    let peek: Peek = match serde_json::from_slice(line) {
        Ok(p) => p,
        Err(e) => return Incoming::Invalid(e.to_string()),
    };
    match (peek.method, peek.id) {
        (Some(method), Some(id)) => Incoming::Request {
            id,
            method: method.into_owned(),
        },
        (Some(method), None) if method == "notifications/progress" => {
            match serde_json::from_slice::<Value>(line) {
                Ok(message) => Incoming::Progress {
                    token: message
                        .get("params")
                        .and_then(|p| p.get("progressToken"))
                        .and_then(Value::as_u64),
                    message,
                },
                Err(e) => Incoming::Invalid(e.to_string()),
            }
        }
        (Some(_), None) => Incoming::Notification,
        (None, Some(Value::Number(n))) => match n.as_u64() {
            Some(id) => Incoming::Response(id),
            None => Incoming::ForeignResponse,
        },
        (None, _) => Incoming::ForeignResponse,
    }
}

/// A message ready for the pipe: its id (none for a notification or an answer to the
/// server), the line to write, and the caller's progress token when it asked for progress.
#[derive(Debug)]
pub struct Outgoing {
    pub id: Option<u64>,
    pub line: Bytes,
    pub caller_token: Option<Value>,
}

/// Swaps a request's `_meta.progressToken` for its id `id`, and makes sure the message is one
/// line (JSON allows newlines only between tokens, where a space means the same).
pub fn prepare(body: Bytes, id: Option<u64>) -> Result<Outgoing, String> {
    let mut caller_token = None;
    let mut line = body;
    if let Some(id) = id
        && contains(&line, b"\"progressToken\"")
    {
        let mut message: Map<String, Value> = serde_json::from_slice(&line)
            .map_err(|e| format!("the outgoing message is not a JSON object: {e}"))?;
        if let Some(meta) = message
            .get_mut("params")
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
            && let Some(token) = meta.insert("progressToken".into(), Value::from(id))
        {
            caller_token = Some(token);
            line = Bytes::from(Value::Object(message).to_string());
        }
    }
    if line.iter().any(|&b| b == b'\n' || b == b'\r') {
        line = line
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect::<Vec<u8>>()
            .into();
    }
    Ok(Outgoing {
        id,
        line,
        caller_token,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_by_their_envelope() {
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":3,"result":{"big":[1,2,3]}}"#),
            Incoming::Response(3)
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":"x","error":{}}"#),
            Incoming::ForeignResponse
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#),
            Incoming::Request {
                id: Value::from(0),
                method: "ping".into()
            }
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#),
            Incoming::Notification
        );
        match classify(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":9,"progress":1}}"#,
        ) {
            Incoming::Progress { token, .. } => assert_eq!(token, Some(9)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(b"Starting server..."),
            Incoming::Invalid(_)
        ));
    }

    #[test]
    fn progress_tokens_are_swapped_out_and_back() {
        let body = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"t","_meta":{"progressToken":"abc"}}}"#,
        );
        let out = prepare(body, Some(17)).unwrap();
        assert_eq!(out.id, Some(17));
        assert_eq!(out.caller_token, Some(Value::from("abc")));
        let sent: Value = serde_json::from_slice(&out.line).unwrap();
        assert_eq!(sent["params"]["_meta"]["progressToken"], 17);

        let table = Table::default();
        let mut waiting = table.register(17, "tools/call", out.caller_token).unwrap();
        let note = serde_json::json!({"jsonrpc":"2.0","method":"notifications/progress",
            "params":{"progressToken":17,"progress":1}});
        assert_eq!(table.progress(17, note), Delivery::Delivered);
        let got: Value =
            serde_json::from_slice(&waiting.progress.as_mut().unwrap().try_recv().unwrap())
                .unwrap();
        assert_eq!(got["params"]["progressToken"], "abc");
        assert!(table.respond(17, Ok(b"{}".to_vec())));
        assert!(!table.respond(17, Ok(b"{}".to_vec())), "answered once");
    }

    #[test]
    fn outgoing_messages_become_one_line() {
        let out = prepare(
            Bytes::from_static(
                b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\n  \"name\": \"x\"\r\n}}",
            ),
            Some(5),
        )
        .unwrap();
        assert!(!out.line.contains(&b'\n') && !out.line.contains(&b'\r'));
        let parsed: Value = serde_json::from_slice(&out.line).unwrap();
        assert_eq!(parsed["params"]["name"], "x");
        assert_eq!(out.caller_token, None);
    }

    #[test]
    fn a_closed_table_fails_waiting_and_later_requests() {
        let table = Table::default();
        let waiting = table.register(1, "tools/call", None).unwrap();
        let gone = |m: &str| TargetError::new("t", crate::targets::FailureKind::Unreachable, m);
        table.close(gone("exited"), gone);
        let err = waiting.response.blocking_recv().unwrap().unwrap_err();
        assert_eq!(err.detail, "tools/call");
        assert_eq!(table.register(2, "x", None).err().unwrap().detail, "exited");
    }
}
