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
//!
//! Only questions the caller declared it can answer are put to it (MRTR: a server must not
//! send an input request the client has no capability for); any other is refused to the
//! upstream at once, which then ends the call as it sees fit, as a legacy upstream does for
//! a client that cannot answer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::targets::{
    BoxFuture, ClientBridge, NotificationSink, RelayRequest, Reply, Target, TargetError,
};

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

/// Whether a caller that declared `declared` can be asked `method` (MRTR: a server must
/// not send an input request the client did not declare a capability for).
pub fn may_ask(declared: &Map<String, Value>, method: &str) -> bool {
    let needed = match method {
        "sampling/createMessage" => "sampling",
        "elicitation/create" => "elicitation",
        "roots/list" => "roots",
        _ => return false,
    };
    declared.contains_key(needed)
}

/// The bridge a relayed call carries: hands the upstream's questions to whoever drives it,
/// and refuses at once those its caller did not declare it can answer.
#[derive(Debug)]
struct Questions {
    tx: mpsc::Sender<Asked>,
    declared: Map<String, Value>,
}

impl ClientBridge for Questions {
    fn ask<'a>(&'a self, method: &'a str, params: Option<&'a RawValue>) -> BoxFuture<'a, Answered> {
        Box::pin(async move {
            if !may_ask(&self.declared, method) {
                return Err(refusal(format!(
                    "the client did not declare the capability {method} needs"
                )));
            }
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
        let declared = request.client.capabilities.clone().unwrap_or_default();
        request.bridge = Some(Arc::new(Questions { tx, declared }));
        let (sink, notes) = if notes {
            let (tx, rx) = mpsc::channel(64);
            (Some(NotificationSink::from(tx)), Some(rx))
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

    /// Parks a call under a fresh key; gives it back when the limit is reached. A call
    /// nobody resumes is dropped when it expires, and its upstream request (which holds one
    /// of the target's concurrency slots) ends with it.
    pub fn park(self: &Arc<Self>, parked: Parked) -> Result<String, Parked> {
        let expires = parked.expires;
        let key = {
            let mut calls = self.calls.lock().unwrap();
            let now = Instant::now();
            calls.retain(|_, p| p.expires > now);
            if calls.len() >= self.max {
                return Err(parked);
            }
            let mut nonce = [0u8; 12];
            let _ = aws_lc_rs::rand::fill(&mut nonce);
            let key = hex::encode(nonce);
            calls.insert(key.clone(), parked);
            key
        };
        let calls = Arc::downgrade(self);
        let expiring = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(expires).await;
            if let Some(calls) = calls.upgrade() {
                let mut waiting = calls.calls.lock().unwrap();
                if waiting
                    .get(&expiring)
                    .is_some_and(|p| p.expires <= Instant::now())
                {
                    let dropped = waiting.remove(&expiring);
                    drop(waiting);
                    drop(dropped);
                }
            }
        });
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
    async fn questions_the_caller_did_not_declare_are_refused_without_asking() {
        let (tx, mut asks) = mpsc::channel(4);
        let mut declared = Map::new();
        declared.insert("sampling".into(), json!({}));
        let questions = Questions { tx, declared };
        let refused = questions.ask("elicitation/create", None).await.unwrap_err();
        assert!(
            refused.get().contains("did not declare"),
            "{}",
            refused.get()
        );
        assert!(asks.try_recv().is_err(), "nothing was put to the caller");

        let asking =
            tokio::spawn(async move { questions.ask("sampling/createMessage", None).await });
        let asked = asks.recv().await.unwrap();
        assert_eq!(asked.method, "sampling/createMessage");
        asked
            .reply
            .send(Ok(RawValue::from_string("{}".into()).unwrap()))
            .unwrap();
        assert_eq!(asking.await.unwrap().unwrap().get(), "{}");
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
