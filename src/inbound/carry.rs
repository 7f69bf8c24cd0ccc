//! How one relayed call (`tools/call`, `prompts/get`, `resources/read`) is carried out for
//! its caller, once it is routed and prepared ([`super::relay`]):
//!
//! - [`Carrier::Direct`], the common case: the upstream's answer is the answer. A caller that
//!   takes event streams gets one only when the upstream sends notifications before its
//!   result (progress, logs); otherwise one JSON body. The upstream's own questions are
//!   refused.
//! - [`Carrier::Parking`]: a 2026-07-28 caller of a legacy upstream. A question from the
//!   upstream parks the call and answers `input_required`; the retry resumes it
//!   ([`resume`]).
//! - [`Carrier::Asking`]: a legacy caller whose session declared what it can answer. The
//!   upstream's questions (mid-call requests, or a 2026-07-28 upstream's `input_required`)
//!   go to the caller on the call's event stream, its answers back upstream.
//!
//! The mechanisms (the driver, the parked calls, the answers POSTed back) are in
//! [`super::bridge`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::Poll;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::bridge::{Asked, Driver, Parked, Step, refusal};
use super::framing::{sse_frame, sse_response};
use super::handler::{Answer, Failure};
use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::mrtr::{self, Binding};
use super::relay::Render;
use crate::Relay;
use crate::targets::notify::HeldNotifications;
use crate::targets::{NotificationSink, Operation, RelayRequest, Reply, Target, TargetError};

/// Rounds of `input_required` a legacy caller is taken through before the call fails.
const MAX_ROUNDS: usize = 16;

pub enum Carrier {
    Direct,
    Parking(Binding),
    /// The capabilities the caller's session declared.
    Asking(Map<String, Value>),
}

/// Carries `request` to `target` and answers the caller.
pub async fn run(
    relay: &Relay,
    target: Arc<dyn Target>,
    request: RelayRequest,
    render: Render,
    sse: bool,
    carrier: Carrier,
) -> Result<Answer, Failure> {
    match carrier {
        Carrier::Direct => Ok(direct(target, request, render, sse).await),
        Carrier::Parking(binding) => {
            let driver = Driver::start(target, request, sse);
            Ok(drive_parking(relay, driver, render, binding).await)
        }
        Carrier::Asking(capabilities) => {
            let out = spawn_asking(relay, target, request, render, capabilities);
            Ok(answer_when_known(out).await)
        }
    }
}

/// The retry of a parked call: the caller's answer goes to the waiting upstream request.
pub async fn resume(
    relay: &Relay,
    key: &str,
    input_responses: Option<&RawValue>,
    render: Render,
    binding: Binding,
) -> Result<Answer, Failure> {
    let parked = relay.parked.take(key).ok_or_else(|| {
        RpcError::new(
            INVALID_PARAMS,
            "`requestState` names a call that is no longer waiting (answered, expired, or held by another replica)",
        )
    })?;
    let answer: Option<Box<RawValue>> = input_responses
        .and_then(|raw| serde_json::from_str::<Map<String, Value>>(raw.get()).ok())
        .and_then(|mut responses| responses.remove(key))
        .map(|v| serde_json::value::to_raw_value(&v).expect("a JSON value serializes"));
    let Parked {
        driver,
        asked,
        expires,
    } = parked;
    let Some(answer) = answer else {
        // The spec's rule for missing answers: ask again rather than fail.
        let parked = Parked {
            driver,
            asked,
            expires,
        };
        return Ok(park(relay, parked, &render, binding));
    };
    let _ = asked.reply.send(Ok(answer));
    Ok(drive_parking(relay, driver, render, binding).await)
}

async fn direct(
    target: Arc<dyn Target>,
    request: RelayRequest,
    render: Render,
    sse: bool,
) -> Answer {
    if !sse {
        let (status, body) = render.render(target.relay(request, None).await);
        return Answer::Body(status, body);
    }
    // Whether the caller gets an event stream is decided by what the upstream sends
    // first: the result (the common case) is answered as plain JSON; a notification tied
    // to the call switches to an event stream that carries it, the ones after it, and then
    // the result. Until then notifications are held, and looked at after each poll of the
    // call (no channel for the calls that have none).
    let held = Arc::new(HeldNotifications::default());
    let sink = NotificationSink::Held(held.clone());
    let mut call = Box::pin(async move { target.relay(request, Some(sink)).await });
    let outcome = std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
        Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
        Poll::Pending if held.any(cx.waker()) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    if let Some(outcome) = outcome {
        let (status, body) = render.render(outcome);
        let notes = held.close();
        if notes.is_empty() {
            return Answer::Body(status, body);
        }
        // Notifications and the result arrived together: stream them in order.
        let frames: Vec<_> = notes
            .iter()
            .map(|m| &m[..])
            .chain([&body[..]])
            .map(|m| Ok::<_, Infallible>(sse_frame(m)))
            .collect();
        return Answer::Stream(sse_response(Body::from_stream(futures_util::stream::iter(
            frames,
        ))));
    }
    let (tx, notifications) = mpsc::channel::<Bytes>(64);
    let first = held.stream_to(tx);
    let (result_tx, result_rx) = oneshot::channel::<Bytes>();
    tokio::spawn(async move {
        let outcome = call.await;
        // Ends the notification stream; the result comes last.
        held.close();
        let _ = result_tx.send(Bytes::from(render.render(outcome).1));
    });
    let head = futures_util::stream::iter(
        first
            .into_iter()
            .map(|m| Ok::<_, Infallible>(sse_frame(&m))),
    );
    let rest = futures_util::stream::unfold(notifications, |mut rx| async move {
        rx.recv()
            .await
            .map(|m| (Ok::<_, Infallible>(sse_frame(&m)), rx))
    });
    let tail = futures_util::stream::once(async move {
        Ok::<_, Infallible>(sse_frame(&result_rx.await.unwrap_or_default()))
    });
    Answer::Stream(sse_response(Body::from_stream(
        head.chain(rest).chain(tail),
    )))
}

/// Parks the call behind `parked.asked` and answers `input_required`.
fn park(relay: &Relay, parked: Parked, render: &Render, binding: Binding) -> Answer {
    let (method, params) = (parked.asked.method.clone(), parked.asked.params.clone());
    match relay.parked.park(parked) {
        Ok(key) => {
            let result = mrtr::parked_result(
                &key,
                &method,
                params.as_deref(),
                &relay.sealer,
                relay.request_state_ttl,
                binding,
            );
            Answer::ok(super::jsonrpc::result_body(render.id(), &result))
        }
        Err(refused) => {
            // Full: the upstream's question is refused and the call goes on without it.
            tracing::warn!("too many calls wait for their callers' answers; refusing {method}");
            let _ = refused.asked.reply.send(Err(refusal(format!(
                "mcp-sidecar holds too many calls waiting for answers to carry {method} now"
            ))));
            let error = RpcError::new(
                super::jsonrpc::INTERNAL_ERROR,
                "too many calls are waiting for their callers' answers; try again later",
            );
            Answer::Body(
                StatusCode::SERVICE_UNAVAILABLE,
                error.body(Some(render.id())),
            )
        }
    }
}

/// A 2026-07-28 caller's call on a legacy upstream, from here to its answer.
async fn drive_parking(
    relay: &Relay,
    mut driver: Driver,
    render: Render,
    binding: Binding,
) -> Answer {
    let expires = || Instant::now() + relay.request_state_ttl;
    match driver.next().await {
        Step::Done(outcome) => {
            let (status, body) = render.render(outcome);
            Answer::Body(status, body)
        }
        Step::Ask(asked) => park(
            relay,
            Parked {
                driver,
                asked,
                expires: expires(),
            },
            &render,
            binding,
        ),
        Step::Note(first) => {
            // Notifications first: the answer is a stream whose last event is the result,
            // or an `input_required` that parks the call.
            let parked = relay.parked.clone();
            let sealer = relay.sealer.clone();
            let ttl = relay.request_state_ttl;
            let (tx, rx) = mpsc::channel::<Bytes>(64);
            let _ = tx.send(first).await;
            tokio::spawn(async move {
                loop {
                    match driver.next().await {
                        Step::Note(note) => {
                            let _ = tx.send(note).await;
                        }
                        Step::Done(outcome) => {
                            let _ = tx.send(Bytes::from(render.render(outcome).1)).await;
                            return;
                        }
                        Step::Ask(asked) => {
                            let (method, params) = (asked.method.clone(), asked.params.clone());
                            let parked_call = Parked {
                                driver,
                                asked,
                                expires: Instant::now() + ttl,
                            };
                            let body = match parked.park(parked_call) {
                                Ok(key) => super::jsonrpc::result_body(
                                    render.id(),
                                    &mrtr::parked_result(
                                        &key,
                                        &method,
                                        params.as_deref(),
                                        &sealer,
                                        ttl,
                                        binding,
                                    ),
                                ),
                                Err(refused) => {
                                    let _ = refused.asked.reply.send(Err(refusal(
                                        "mcp-sidecar holds too many waiting calls",
                                    )));
                                    RpcError::new(
                                        super::jsonrpc::INTERNAL_ERROR,
                                        "too many calls are waiting for their callers' answers",
                                    )
                                    .body(Some(render.id()))
                                }
                            };
                            let _ = tx.send(Bytes::from(body)).await;
                            return;
                        }
                    }
                }
            });
            Answer::Stream(stream_of(rx))
        }
    }
}

fn stream_of(rx: mpsc::Receiver<Bytes>) -> axum::response::Response {
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|m| (Ok::<_, Infallible>(sse_frame(&m)), rx))
    });
    sse_response(Body::from_stream(frames))
}

/// What the asking task sends: messages for the caller's stream, then the final answer.
enum Out {
    Message(Bytes),
    Final(StatusCode, Vec<u8>),
}

/// Starts a legacy caller's call in a task that takes the upstream's questions to the
/// caller; returns what the task sends out.
fn spawn_asking(
    relay: &Relay,
    target: Arc<dyn Target>,
    request: RelayRequest,
    render: Render,
    capabilities: Map<String, Value>,
) -> mpsc::Receiver<Out> {
    let (out, rx) = mpsc::channel::<Out>(64);
    let answers = relay.answers.clone();
    let patience = relay.request_state_ttl;
    tokio::spawn(async move {
        let (to_caller, mut messages) = mpsc::channel::<Bytes>(64);
        let forward = {
            let out = out.clone();
            tokio::spawn(async move {
                while let Some(m) = messages.recv().await {
                    if out.send(Out::Message(m)).await.is_err() {
                        return;
                    }
                }
            })
        };
        let asker = Asker {
            to_caller,
            answers,
            capabilities,
            patience,
        };
        let outcome = asker.carry(target, request).await;
        drop(asker);
        let _ = forward.await;
        let (status, body) = render.render(outcome);
        let _ = out.send(Out::Final(status, body)).await;
    });
    rx
}

/// Answers with one JSON body when the final answer comes before any message for the
/// caller's stream, else with the stream.
async fn answer_when_known(mut out: mpsc::Receiver<Out>) -> Answer {
    match out.recv().await {
        Some(Out::Final(status, body)) => Answer::Body(status, body),
        None => Answer::Body(StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
        Some(Out::Message(first)) => {
            let frames = futures_util::stream::once(async move { first })
                .chain(futures_util::stream::unfold(out, |mut out| async move {
                    match out.recv().await? {
                        Out::Message(m) => Some((m, out)),
                        Out::Final(_, body) => Some((Bytes::from(body), out)),
                    }
                }))
                .map(|m| Ok::<_, Infallible>(sse_frame(&m)));
            Answer::Stream(sse_response(Body::from_stream(frames)))
        }
    }
}

/// Takes an upstream's questions to a legacy caller over its stream.
struct Asker {
    to_caller: mpsc::Sender<Bytes>,
    answers: Arc<super::bridge::ClientAnswers>,
    capabilities: Map<String, Value>,
    patience: std::time::Duration,
}

impl Asker {
    async fn ask(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, Box<RawValue>> {
        if !super::bridge::may_ask(&self.capabilities, method) {
            return Err(refusal(format!(
                "the client did not declare the capability {method} needs"
            )));
        }
        self.answers
            .ask_over(&self.to_caller, method, params, self.patience)
            .await
    }

    /// The call to its outcome: mid-call questions answered as they come, and a
    /// 2026-07-28 upstream's `input_required` answered and retried.
    async fn carry(
        &self,
        target: Arc<dyn Target>,
        mut request: RelayRequest,
    ) -> Result<Reply, TargetError> {
        for _ in 0..MAX_ROUNDS {
            let mut driver = Driver::start(target.clone(), request.clone(), true);
            let outcome = loop {
                match driver.next().await {
                    Step::Note(note) => {
                        let _ = self.to_caller.send(note).await;
                    }
                    Step::Ask(Asked {
                        method,
                        params,
                        reply,
                    }) => {
                        let _ = reply.send(self.ask(&method, params.as_deref()).await);
                    }
                    Step::Done(outcome) => break outcome,
                }
            };
            let Ok(Reply::Result(result)) = &outcome else {
                return outcome;
            };
            let Some(input) = InputRequired::of(result) else {
                return outcome;
            };
            let mut responses = Map::new();
            for (key, question) in input.requests {
                match self.ask(&question.method, question.params.as_deref()).await {
                    Ok(answer) => {
                        responses.insert(
                            key,
                            serde_json::from_str(answer.get()).unwrap_or(Value::Null),
                        );
                    }
                    Err(error) => return Ok(Reply::Error(error)),
                }
            }
            request.params = retry_params(&request.params, responses, input.state);
        }
        Err(TargetError::new(
            target.name(),
            crate::targets::FailureKind::BadResponse,
            format!(
                "{}: still asking for input after {MAX_ROUNDS} rounds",
                request.operation.method()
            ),
        ))
    }
}

/// An `input_required` result's questions and state.
struct InputRequired {
    requests: Vec<(String, Question)>,
    state: Option<String>,
}

#[derive(serde::Deserialize)]
struct Question {
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

impl InputRequired {
    fn of(result: &RawValue) -> Option<Self> {
        if !result.get().contains("\"input_required\"") {
            return None;
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Parsed {
            result_type: Option<String>,
            #[serde(default)]
            input_requests: std::collections::BTreeMap<String, Question>,
            request_state: Option<String>,
        }
        let parsed: Parsed = serde_json::from_str(result.get()).ok()?;
        (parsed.result_type.as_deref() == Some("input_required")).then(|| InputRequired {
            requests: parsed.input_requests.into_iter().collect(),
            state: parsed.request_state,
        })
    }
}

/// The original params with this round's answers and the upstream's state.
fn retry_params(params: &str, responses: Map<String, Value>, state: Option<String>) -> String {
    let mut members: std::collections::BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(params).unwrap_or_default();
    members.insert(
        "inputResponses".into(),
        serde_json::value::to_raw_value(&responses).expect("a JSON object serializes"),
    );
    match state {
        Some(state) => {
            members.insert(
                "requestState".into(),
                serde_json::value::to_raw_value(&state).expect("a string serializes"),
            );
        }
        None => {
            members.remove("requestState");
        }
    }
    serde_json::to_string(&members).expect("raw members serialize")
}

/// Which carrier a call needs: parking for a 2026-07-28 caller of a legacy upstream,
/// asking for a legacy caller whose session declared what it can answer (on an event
/// stream), else direct. `binding` is the 2026-07-28 caller's (none for legacy callers).
pub fn carrier_for(
    relay: &Relay,
    target: usize,
    operation: Operation,
    client: &crate::targets::ClientContext,
    sse: bool,
    binding: Option<Binding>,
) -> Carrier {
    if !matches!(
        operation,
        Operation::CallTool | Operation::GetPrompt | Operation::ReadResource
    ) {
        return Carrier::Direct;
    }
    if client.modern {
        let legacy_upstream = relay.store.raw_listing(target).is_some_and(|l| {
            !l.protocol_version.is_empty() && !crate::protocol::is_modern(&l.protocol_version)
        });
        return match binding {
            Some(binding) if legacy_upstream => Carrier::Parking(binding),
            _ => Carrier::Direct,
        };
    }
    match &client.capabilities {
        Some(capabilities) if sse && !capabilities.is_empty() => {
            Carrier::Asking(capabilities.clone())
        }
        _ => Carrier::Direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retries_carry_this_rounds_answers_and_the_upstreams_state() {
        let mut answers = Map::new();
        answers.insert("a".into(), json!({"action": "accept"}));
        let out: Value = serde_json::from_str(&retry_params(
            r#"{"name":"t","arguments":{"x":1},"inputResponses":{"old":{}},"requestState":"OLD"}"#,
            answers,
            Some("NEW".into()),
        ))
        .unwrap();
        assert_eq!(
            out,
            json!({"name":"t","arguments":{"x":1},"inputResponses":{"a":{"action":"accept"}},"requestState":"NEW"})
        );
        let out: Value =
            serde_json::from_str(&retry_params(r#"{"requestState":"OLD"}"#, Map::new(), None))
                .unwrap();
        assert!(out.get("requestState").is_none());
    }

    #[test]
    fn input_required_results_are_read() {
        let raw = RawValue::from_string(
            r#"{"resultType":"input_required","inputRequests":{"q":{"method":"roots/list"}},"requestState":"s"}"#.into(),
        )
        .unwrap();
        let input = InputRequired::of(&raw).unwrap();
        assert_eq!(input.requests[0].0, "q");
        assert_eq!(input.requests[0].1.method, "roots/list");
        assert_eq!(input.state.as_deref(), Some("s"));
        let complete = RawValue::from_string(r#"{"content":[]}"#.into()).unwrap();
        assert!(InputRequired::of(&complete).is_none());
    }
}
