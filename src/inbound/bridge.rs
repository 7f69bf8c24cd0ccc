//! What an upstream asks the client mid-call (sampling, elicitation, roots), carried across
//! protocol generations in both directions.
//!
//! - A 2026-07-28 caller of a legacy upstream: the upstream sends `elicitation/create` (say)
//!   as a request during the call. The call is parked ([`ParkedCalls`], in memory, bounded
//!   in count and time) and the caller gets an `input_required` result whose sealed
//!   `requestState` names the parked call; its retry delivers the answer to the waiting
//!   upstream request, and the call goes on (to its result, or to the next question).
//! - A legacy caller (one whose session declared the capability, see
//!   [`super::session`]) of a 2026-07-28 upstream: the upstream answers `input_required`.
//!   The sidecar sends each input request to the caller as a request on the call's event
//!   stream, as the caller's protocol expects, waits for the answers the caller POSTs back
//!   ([`ClientAnswers`]), and retries upstream with `inputResponses`, until the result.
//! - A legacy caller of a legacy upstream: each request is sent on to the caller the same
//!   way, and its answer back to the upstream.
//!
//! (A 2026-07-28 caller of a 2026-07-28 upstream needs none of this: `input_required` passes
//! through, see [`super::mrtr`].)

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::targets::{BoxFuture, ClientBridge, RelayRequest, Reply, Target, TargetError};

/// The caller's answer to one question: a result or an error object, raw.
pub type Answered = Result<Box<RawValue>, Box<RawValue>>;

fn error_object(code: i64, message: impl Into<String>) -> Box<RawValue> {
    serde_json::value::to_raw_value(&json!({ "code": code, "message": message.into() }))
        .expect("a JSON object serializes")
}

/// One question from the upstream, waiting for the caller's answer.
pub struct Asked {
    pub method: String,
    pub params: Option<Box<RawValue>>,
    pub reply: oneshot::Sender<Answered>,
}

/// The bridge a relayed call carries: hands the upstream's questions to whoever drives it.
#[derive(Debug)]
struct Questions {
    tx: mpsc::Sender<Asked>,
}

impl ClientBridge for Questions {
    fn ask<'a>(&'a self, method: &'a str, params: Option<&'a RawValue>) -> BoxFuture<'a, Answered> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let asked = Asked {
                method: method.to_string(),
                params: params.map(ToOwned::to_owned),
                reply,
            };
            if self.tx.send(asked).await.is_err() {
                return Err(error_object(-32603, "the caller is gone"));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(error_object(-32603, "the caller did not answer")))
        })
    }
}

/// A relayed call as the inbound side drives it: its outcome, its notifications, and the
/// questions its upstream asks.
type Outcome = Pin<Box<dyn Future<Output = Result<Reply, TargetError>> + Send>>;

pub struct Driver {
    call: Option<Outcome>,
    notes: Option<mpsc::Receiver<Bytes>>,
    asks: mpsc::Receiver<Asked>,
}

pub enum Step {
    Note(Bytes),
    Ask(Asked),
    Done(Result<Reply, TargetError>),
}

impl Driver {
    /// Starts `request` on `target`; `notes`: the caller takes notifications.
    pub fn start(target: Arc<dyn Target>, mut request: RelayRequest, notes: bool) -> Self {
        let (tx, asks) = mpsc::channel(4);
        request.bridge = Some(Arc::new(Questions { tx }));
        let (sink, notes) = if notes {
            let (tx, rx) = mpsc::channel(64);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            call: Some(Box::pin(async move { target.relay(request, sink).await })),
            notes,
            asks,
        }
    }

    /// The next thing that happens: notifications first (they precede the result), then
    /// questions, then the outcome.
    pub async fn next(&mut self) -> Step {
        let call = self.call.as_mut().expect("polled after the outcome");
        tokio::select! {
            biased;
            Some(note) = async { match &mut self.notes { Some(n) => n.recv().await, None => None } } => {
                Step::Note(note)
            }
            Some(asked) = self.asks.recv() => Step::Ask(asked),
            outcome = call => {
                self.call = None;
                // Notifications sent just before the result still come first.
                if let Some(notes) = &mut self.notes
                    && let Ok(note) = notes.try_recv()
                {
                    self.call = Some(Box::pin(std::future::ready(outcome)));
                    return Step::Note(note);
                }
                Step::Done(outcome)
            }
        }
    }
}

/// Questions the sidecar sent to legacy callers over a call's event stream, waiting for
/// the answers they POST back.
#[derive(Default)]
pub struct ClientAnswers {
    waiting: Mutex<HashMap<String, oneshot::Sender<Answered>>>,
}

impl ClientAnswers {
    /// Sends `method` to the caller on `stream` and waits up to `timeout` for its answer.
    pub async fn ask_over(
        &self,
        stream: &mpsc::Sender<Bytes>,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Answered {
        let mut nonce = [0u8; 9];
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let id = format!("mcp-sidecar-{}", hex::encode(nonce));
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id.clone(), tx);
        let mut request = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if let Some(params) = params {
            request["params"] = serde_json::from_str(params.get()).unwrap_or(Value::Null);
        }
        let sent = stream.send(Bytes::from(request.to_string())).await.is_ok();
        let answer = match (sent, tokio::time::timeout(timeout, rx).await) {
            (true, Ok(Ok(answer))) => answer,
            (false, _) => Err(error_object(-32603, "the caller closed the stream")),
            _ => Err(error_object(
                -32603,
                format!(
                    "the caller did not answer {method} within {} s",
                    timeout.as_secs()
                ),
            )),
        };
        self.waiting.lock().unwrap().remove(&id);
        answer
    }

    /// A JSON-RPC response a client POSTed: delivered to the question it answers. False
    /// when nothing waits for it (unknown, answered or timed out).
    pub fn deliver(&self, message: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Response {
            id: Value,
            result: Option<Box<RawValue>>,
            error: Option<Box<RawValue>>,
        }
        let Ok(response) = serde_json::from_slice::<Response>(message) else {
            return false;
        };
        let Some(id) = response.id.as_str() else {
            return false;
        };
        let Some(waiter) = self.waiting.lock().unwrap().remove(id) else {
            return false;
        };
        let answer = match (response.result, response.error) {
            (Some(result), _) => Ok(result),
            (None, Some(error)) => Err(error),
            (None, None) => Err(error_object(
                -32603,
                "the answer had neither result nor error",
            )),
        };
        waiter.send(answer).is_ok()
    }
}

/// A call waiting for a 2026-07-28 caller's answer to its upstream's question.
pub struct Parked {
    pub driver: Driver,
    pub asked: Asked,
    pub expires: Instant,
}

/// The parked calls, bounded in number and time.
pub struct ParkedCalls {
    calls: Mutex<HashMap<String, Parked>>,
    max: usize,
}

impl ParkedCalls {
    pub fn new(max: usize) -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// Parks a call under a fresh key; gives it back when the limit is reached.
    pub fn park(&self, parked: Parked) -> Result<String, Parked> {
        let mut calls = self.calls.lock().unwrap();
        let now = Instant::now();
        // Expired calls are dropped here: their upstream requests end with them.
        calls.retain(|_, p| p.expires > now);
        if calls.len() >= self.max {
            return Err(parked);
        }
        let mut nonce = [0u8; 12];
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let key = hex::encode(nonce);
        calls.insert(key.clone(), parked);
        Ok(key)
    }

    /// Takes the call parked under `key`, if it is still there and in time.
    pub fn take(&self, key: &str) -> Option<Parked> {
        let parked = self.calls.lock().unwrap().remove(key)?;
        (parked.expires > Instant::now()).then_some(parked)
    }

    pub fn len(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An error object the caller's question could not be answered with.
pub fn refusal(message: impl Into<String>) -> Box<RawValue> {
    error_object(-32601, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_posted_back_reach_the_question() {
        let answers = Arc::new(ClientAnswers::default());
        let (tx, mut rx) = mpsc::channel(4);
        let asking = {
            let answers = answers.clone();
            tokio::spawn(async move {
                answers
                    .ask_over(&tx, "elicitation/create", None, Duration::from_secs(5))
                    .await
            })
        };
        let sent: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(sent["method"], "elicitation/create");
        let id = sent["id"].as_str().unwrap().to_string();
        assert!(!answers.deliver(br#"{"jsonrpc":"2.0","id":"other","result":{}}"#));
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": {"action": "accept"}});
        assert!(answers.deliver(reply.to_string().as_bytes()));
        let answer = asking.await.unwrap().unwrap();
        assert_eq!(answer.get(), r#"{"action":"accept"}"#);
        assert!(
            !answers.deliver(reply.to_string().as_bytes()),
            "answered once"
        );
    }

    #[tokio::test]
    async fn unanswered_questions_time_out() {
        let answers = ClientAnswers::default();
        let (tx, _rx) = mpsc::channel(4);
        let answer = answers
            .ask_over(
                &tx,
                "sampling/createMessage",
                None,
                Duration::from_millis(50),
            )
            .await;
        assert!(answer.unwrap_err().get().contains("did not answer"));
    }
}
