//! Where a relayed call's upstream notifications (e.g. `notifications/progress`) go while
//! the call is in flight, as raw JSON-RPC messages.
//!
//! Most calls end without one, so the caller that polls the call itself (a direct call,
//! `inbound::carry`) gives it a [`HeldNotifications`]: messages wait there until the caller
//! looks after each poll, and a channel is opened only once there is something to stream
//! (issue 15's profile: a channel per call cost about 3 % of a relayed call's instructions).
//! Callers that drive the call from a task of their own give it a channel.

use std::sync::{Arc, Mutex};
use std::task::Waker;

use bytes::Bytes;
use tokio::sync::mpsc;

#[derive(Clone)]
pub enum NotificationSink {
    /// A channel the caller reads.
    Channel(mpsc::Sender<Bytes>),
    /// Held for a caller that polls the call itself.
    Held(Arc<HeldNotifications>),
}

impl From<mpsc::Sender<Bytes>> for NotificationSink {
    fn from(channel: mpsc::Sender<Bytes>) -> Self {
        Self::Channel(channel)
    }
}

impl NotificationSink {
    /// Passes `message` on, waiting while the caller's channel is full. False when the
    /// caller went away (the call still completes).
    pub async fn send(&self, message: Bytes) -> bool {
        match self {
            Self::Channel(channel) => channel.send(message).await.is_ok(),
            Self::Held(held) => match held.hold(message) {
                Ok(()) => true,
                Err((message, Some(channel))) => channel.send(message).await.is_ok(),
                Err((_, None)) => false,
            },
        }
    }
}

/// Notifications held until the caller looks, then, if it chose to stream them, passed to
/// its channel.
#[derive(Default)]
pub struct HeldNotifications {
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    messages: Vec<Bytes>,
    /// The caller's task, woken when a message arrives from another task.
    waker: Option<Waker>,
    /// Set once the caller streams: later messages go here.
    forward: Option<mpsc::Sender<Bytes>>,
    /// The caller answered without streaming; later messages have no taker.
    closed: bool,
}

impl HeldNotifications {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `message`, or gives it back with the caller's channel once it streams (none
    /// once it closed).
    fn hold(&self, message: Bytes) -> Result<(), (Bytes, Option<mpsc::Sender<Bytes>>)> {
        let mut held = self.lock();
        if held.closed {
            return Err((message, None));
        }
        if let Some(channel) = &held.forward {
            return Err((message, Some(channel.clone())));
        }
        held.messages.push(message);
        let waker = held.waker.take();
        drop(held);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether a message is waiting; if not, `waker` is woken when one arrives.
    pub fn any(&self, waker: &Waker) -> bool {
        let mut held = self.lock();
        if !held.messages.is_empty() {
            return true;
        }
        match &held.waker {
            Some(known) if known.will_wake(waker) => {}
            _ => held.waker = Some(waker.clone()),
        }
        false
    }

    /// The call is over: the messages still held (to send before the result), none taken
    /// after, and the caller's stream, if it chose one, ends.
    pub fn close(&self) -> Vec<Bytes> {
        let mut held = self.lock();
        held.closed = true;
        held.waker = None;
        held.forward = None;
        std::mem::take(&mut held.messages)
    }

    /// The caller streams: the messages held so far, and every later one to `channel`,
    /// until [`HeldNotifications::close`] (or until every holder is gone).
    pub fn stream_to(&self, channel: mpsc::Sender<Bytes>) -> Vec<Bytes> {
        let mut held = self.lock();
        held.forward = Some(channel);
        held.waker = None;
        std::mem::take(&mut held.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Context;

    #[tokio::test]
    async fn held_messages_are_kept_then_streamed_in_order_until_the_call_is_over() {
        let held = Arc::new(HeldNotifications::default());
        let sink = NotificationSink::Held(held.clone());
        let waker = futures_util::task::noop_waker();
        assert!(!held.any(&waker));
        assert!(sink.send(Bytes::from_static(b"1")).await);
        assert!(held.any(&waker));
        let (tx, mut rx) = mpsc::channel(4);
        assert_eq!(held.stream_to(tx), vec![Bytes::from_static(b"1")]);
        assert!(sink.send(Bytes::from_static(b"2")).await);
        assert_eq!(rx.recv().await.as_deref(), Some(&b"2"[..]));
        assert!(held.close().is_empty());
        assert_eq!(
            rx.recv().await,
            None,
            "the stream ends when the call is over"
        );
        assert!(!sink.send(Bytes::from_static(b"3")).await);
    }

    #[tokio::test]
    async fn a_closed_sink_takes_nothing_more() {
        let held = Arc::new(HeldNotifications::default());
        let sink = NotificationSink::Held(held.clone());
        assert!(sink.send(Bytes::from_static(b"1")).await);
        assert_eq!(held.close(), vec![Bytes::from_static(b"1")]);
        assert!(!sink.send(Bytes::from_static(b"2")).await);
        assert!(held.close().is_empty());
    }

    #[tokio::test]
    async fn a_message_from_another_task_wakes_the_caller() {
        let held = Arc::new(HeldNotifications::default());
        let sink = NotificationSink::Held(held.clone());
        let waited = std::future::poll_fn(|cx: &mut Context<'_>| {
            if held.any(cx.waker()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        let sent = tokio::spawn(async move { sink.send(Bytes::from_static(b"x")).await });
        tokio::time::timeout(std::time::Duration::from_secs(5), waited)
            .await
            .expect("woken by the message");
        assert!(sent.await.unwrap());
    }

    #[tokio::test]
    async fn a_channel_sink_passes_messages_on_and_reports_a_gone_caller() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = NotificationSink::from(tx);
        assert!(sink.send(Bytes::from_static(b"a")).await);
        assert_eq!(rx.recv().await.as_deref(), Some(&b"a"[..]));
        drop(rx);
        assert!(!sink.send(Bytes::from_static(b"b")).await);
    }
}
