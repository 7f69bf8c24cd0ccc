//! The listener: an accept loop over hyper's HTTP/1 connections, with the bounds a server on
//! the open network needs and a drain for shutdown.
//!
//! `axum::serve` has no timeouts and no connection bound, so a client that opens a
//! connection and sends half a request holds it (and a file descriptor) for ever. Here:
//!
//! 1. At most `max_connections` connections are open; one more is answered with a canned
//!    `503` + `Retry-After` (one non-blocking write, no task, no parsing) and closed.
//! 2. Each connection has a watchdog driven by what its bytes do (see [`ConnState`]):
//!    - once the first byte of a request head has arrived, the whole head must arrive
//!      within `header_read_timeout`, else the connection is dropped;
//!    - a connection with no request in progress is closed after `idle_timeout`;
//!    - while a request is being handled (until its response body has been sent) neither
//!      applies; the body read timeout is the handler's (`read_body`).
//!
//!    hyper's own `header_read_timeout` is not used: it starts when hyper begins waiting for
//!    a head, so it would also cut idle keep-alive connections at the header timeout, and a
//!    keep-alive timeout shorter than the load balancer's idle timeout causes 502s there.
//! 3. [`Server::drain`] stops accepting, drops every connection with no request in
//!    progress at once (idle, or half-open: a partial head), and lets connections with a
//!    request in progress finish it (hyper's graceful shutdown: no further requests on them),
//!    then reports what is still open when the grace runs out. This is hyper-util's
//!    `GracefulShutdown`, plus the half-open case that it cannot see (hyper treats a
//!    connection that has received part of a head as busy and would wait for it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::Endpoint;
use crate::config::InboundConfig;
use crate::telemetry::metrics;

/// The endpoint to hand the next request to (read per request, so a reload applies at once
/// and a request keeps the endpoint it started with).
pub type EndpointSource = Arc<dyn Fn() -> Endpoint + Send + Sync>;

/// Connection-level bounds (fixed for the life of the listener).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub retry_after_secs: u64,
}

impl ConnectionLimits {
    pub fn from_config(config: &InboundConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            retry_after_secs: config.retry_after_secs,
        }
    }
}

/// A running listener.
pub struct Server {
    phase: Arc<ServerPhase>,
    /// Closed once the accept loop and every connection task have ended.
    finished: mpsc::Receiver<()>,
    open: Arc<AtomicUsize>,
}

/// Starts accepting on `listener`.
pub fn spawn(listener: TcpListener, endpoints: EndpointSource, limits: ConnectionLimits) -> Server {
    let phase = Arc::new(ServerPhase::default());
    let (alive, finished) = mpsc::channel::<()>(1);
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(accept_loop(
        listener,
        endpoints,
        limits,
        phase.clone(),
        alive,
        open.clone(),
    ));
    Server {
        phase,
        finished,
        open,
    }
}

impl Server {
    /// Stops accepting and closes connections that have no request in progress; waits up to
    /// `grace` for the others to finish theirs. Returns how many connections are still open.
    pub async fn drain(&mut self, grace: Duration) -> usize {
        self.phase.advance(DRAINING);
        let _ = tokio::time::timeout(grace, self.finished.recv()).await;
        self.open.load(Ordering::SeqCst)
    }

    /// The shutdown grace is over: requests still being handled are answered with an error
    /// now ([`super::limits::Limits::bounded`]).
    pub fn abort_in_flight(&self) {
        self.phase.advance(ABORTING);
    }
}

impl Drop for Server {
    /// Connections close at once, requests in progress or not (as when the process ends).
    fn drop(&mut self) {
        self.phase.advance(GONE);
    }
}

/// Where the server is in its life, as its accept loop, connections and requests see it:
/// read with one atomic load each time they are polled. A watch channel's `changed()` takes
/// a mutex on every poll, and connections are polled several times per request (issue 15's
/// profile). A task registers its waker once, for its life ([`PhaseWatch`]): a tokio task's
/// waker stays the same from poll to poll.
#[derive(Default)]
pub struct ServerPhase {
    phase: AtomicU8,
    wakers: std::sync::Mutex<Vec<(u64, std::task::Waker)>>,
    next_key: AtomicU64,
}

pub const RUNNING: u8 = 0;
/// Not accepting; connections finish the request they have in progress.
pub const DRAINING: u8 = 1;
/// The grace ran out: requests still in progress are answered with an error.
pub const ABORTING: u8 = 2;
/// The server was dropped: connections close at once.
const GONE: u8 = 3;

impl ServerPhase {
    pub fn get(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    /// Moves to `phase` (never back) and wakes every task that watches.
    fn advance(&self, phase: u8) {
        self.phase.fetch_max(phase, Ordering::SeqCst);
        for (_, waker) in self.wakers.lock().expect("phase lock").iter() {
            waker.wake_by_ref();
        }
    }

    fn watch(self: &Arc<Self>) -> PhaseWatch {
        PhaseWatch {
            server: self.clone(),
            key: None,
        }
    }
}

/// One task's view of the [`ServerPhase`]; its waker is forgotten when this is dropped.
struct PhaseWatch {
    server: Arc<ServerPhase>,
    key: Option<u64>,
}

impl PhaseWatch {
    /// The phase now; the task is woken whenever it moves on.
    fn poll(&mut self, cx: &Context<'_>) -> u8 {
        if self.key.is_none() {
            let key = self.server.next_key.fetch_add(1, Ordering::Relaxed);
            let mut wakers = self.server.wakers.lock().expect("phase lock");
            wakers.push((key, cx.waker().clone()));
            self.key = Some(key);
        }
        // Read after registering: a move made before is seen here, one made after wakes.
        self.server.get()
    }

    /// Waits until the phase is at least `phase`.
    async fn reached(&mut self, phase: u8) {
        std::future::poll_fn(|cx| {
            if self.poll(cx) >= phase {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for PhaseWatch {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut wakers = self.server.wakers.lock().expect("phase lock");
            if let Some(at) = wakers.iter().position(|(k, _)| *k == key) {
                wakers.swap_remove(at);
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    endpoints: EndpointSource,
    limits: ConnectionLimits,
    phase: Arc<ServerPhase>,
    alive: mpsc::Sender<()>,
    open: Arc<AtomicUsize>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusal = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {}\r\ncontent-type: text/plain\r\ncontent-length: 40\r\nconnection: close\r\n\r\nmcp-sidecar: too many open connections\n\n",
        limits.retry_after_secs
    );
    let mut watch = phase.watch();
    loop {
        let accepted = tokio::select! {
            _ = watch.reached(DRAINING) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (EMFILE) and the like: back off briefly instead of
                // spinning; connections that end free descriptors again.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let _ = stream.try_write(refusal.as_bytes());
            metrics().connection_closed("limit");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            endpoints: endpoints.clone(),
            limits,
            peer,
            state: Arc::new(ConnState::new()),
        };
        let phase = phase.clone();
        let alive = alive.clone();
        let open = open.clone();
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::SeqCst);
            metrics().open_connections().inc();
            connection.run(stream, phase).await;
            metrics().open_connections().dec();
            open.fetch_sub(1, Ordering::SeqCst);
            drop((slot, alive));
        });
    }
    drop(listener);
}

struct Connection {
    endpoints: EndpointSource,
    limits: ConnectionLimits,
    peer: SocketAddr,
    state: Arc<ConnState>,
}

impl Connection {
    async fn run(self, stream: TcpStream, phase: Arc<ServerPhase>) {
        let state = self.state.clone();
        let io = TokioIo::new(Tracked {
            inner: stream,
            state: state.clone(),
        });
        let endpoints = self.endpoints.clone();
        let peer = self.peer;
        let requests_phase = phase.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_progress = RequestInProgress::begin(state.clone());
            let endpoint = endpoints();
            let phase = requests_phase.clone();
            async move {
                let response = endpoint.handle(request, peer, phase).await;
                // The request counts as in progress until its body has been sent.
                Ok::<_, Infallible>(response.map(|body| super::framing::guarded(body, in_progress)))
            }
        });
        let connection = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        tokio::pin!(connection);
        let mut watch = phase.watch();
        if phase.get() != RUNNING {
            return;
        }
        let mut draining = false;
        // One timer for the connection's life. Its deadline only moves while the connection
        // is being polled (bytes read, a request begun or its answer sent all happen inside
        // hyper's poll), so it is re-armed right after each poll and nothing has to wake this
        // task for it: a task that wakes itself is requeued behind a wake-up of another
        // worker, two futex calls per request.
        let watchdog = tokio::time::sleep_until(Instant::now());
        tokio::pin!(watchdog);
        let mut armed = None;
        let poll_again = PollAgain::new();
        loop {
            let event = std::future::poll_fn(|cx| {
                if poll_again
                    .poll(cx, |cx| connection.as_mut().poll(cx))
                    .is_ready()
                {
                    return Poll::Ready(Event::Closed);
                }
                loop {
                    let deadline = self.state.deadline(&self.limits);
                    if deadline != armed
                        && let Some(at) = deadline
                    {
                        watchdog.as_mut().reset(at);
                    }
                    armed = deadline;
                    if armed.is_none() || watchdog.as_mut().poll(cx).is_pending() {
                        break;
                    }
                    if let Some(expired) = self.state.expired(&self.limits) {
                        return Poll::Ready(Event::Expired(expired));
                    }
                    // Fired for a deadline that has moved since: arm the new one.
                    armed = None;
                }
                // Also registers this task to be woken when the phase moves on (an abort
                // included: the requests in progress read it when polled).
                let phase = watch.poll(cx);
                if !draining && phase >= DRAINING {
                    return Poll::Ready(Event::Stop {
                        server_gone: phase == GONE,
                    });
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Closed => return,
                Event::Expired(Expired::Head) => {
                    tracing::debug!(peer = %self.peer, "request head not received in time; closing");
                    metrics().connection_closed("header_timeout");
                    return;
                }
                Event::Expired(Expired::Idle) => {
                    metrics().connection_closed("idle_timeout");
                    return;
                }
                Event::Stop { server_gone } => {
                    draining = true;
                    if server_gone || self.state.in_flight.load(Ordering::SeqCst) == 0 {
                        // Idle or half-open: nothing started on it that could be lost.
                        metrics().connection_closed("shutdown");
                        return;
                    }
                    // Let the request in progress finish; no further ones on this connection.
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Polls the connection again at once when it is woken while being polled, instead of
/// leaving that to tokio.
///
/// hyper hands a request's body to the handler through a channel whose sender, the
/// connection, is woken each time the handler takes a chunk. The handler runs inside the
/// connection's task, so every request woke its own task; tokio requeues a task that wakes
/// itself behind a wake-up of an idle worker (two `futex` calls per request with one client,
/// issue 15). Here the connection is polled with a waker of its own: a wake that arrives
/// while it is being polled only marks it for another poll; any other wake goes to the task.
/// (Hand-written: neither tokio nor futures offers this.)
struct PollAgain {
    state: Arc<PollAgainState>,
    waker: std::task::Waker,
}

#[derive(Default)]
struct PollAgainState {
    task: futures_util::task::AtomicWaker,
    /// [`IDLE`], [`POLLING`] or [`WOKEN`] (woken while polling).
    phase: std::sync::atomic::AtomicU8,
}

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;
/// Polls in a row before the task yields to the others (as hyper's own loop does), unless
/// tokio's budget for this task runs out first.
const MAX_POLLS_IN_A_ROW: usize = 16;

impl PollAgain {
    fn new() -> Self {
        let state = Arc::new(PollAgainState::default());
        Self {
            waker: std::task::Waker::from(state.clone()),
            state,
        }
    }

    fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.state.task.register(cx.waker());
        let mut own = Context::from_waker(&self.waker);
        for _ in 0..MAX_POLLS_IN_A_ROW {
            self.state.phase.store(POLLING, Ordering::SeqCst);
            let polled = poll(&mut own);
            // A wake after this swap finds the phase idle and goes to the task.
            if self.state.phase.swap(IDLE, Ordering::SeqCst) != WOKEN || polled.is_ready() {
                return polled;
            }
            // Out of tokio's budget, the connection's resources would only refuse again.
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl std::task::Wake for PollAgainState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let woken_while_polling =
            self.phase
                .compare_exchange(POLLING, WOKEN, Ordering::SeqCst, Ordering::SeqCst);
        if let Err(phase) = woken_while_polling
            && phase == IDLE
        {
            self.task.wake();
        }
    }
}

/// What ended a wait of the connection's loop.
enum Event {
    Closed,
    Expired(Expired),
    Stop { server_gone: bool },
}

enum Expired {
    Head,
    Idle,
}

///
/// Phases: *idle* (no request in progress, no byte of the next head yet; since
/// `idle_since`), *head* (the first byte of a head arrived at `head_since`, the service has
/// not been called yet), *busy* (`in_flight > 0`: a request is being handled or its response
/// body sent). Times are milliseconds since `epoch`.
struct ConnState {
    epoch: Instant,
    in_flight: AtomicUsize,
    head_started: AtomicBool,
    head_since: AtomicU64,
    idle_since: AtomicU64,
}

impl ConnState {
    /// A new connection is in the head phase from the start: a client that connects and
    /// sends nothing gets the header timeout, not the (longer) idle timeout.
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_started: AtomicBool::new(true),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, millis: u64) -> Instant {
        self.epoch + Duration::from_millis(millis)
    }

    /// Bytes arrived.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && !self.head_started.load(Ordering::Acquire)
        {
            self.head_since.store(self.now(), Ordering::Release);
            self.head_started.store(true, Ordering::Release);
        }
    }

    /// When the watchdog must look again (`None`: only when the phase changes).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(if self.head_started.load(Ordering::Acquire) {
            self.at(self.head_since.load(Ordering::Acquire)) + limits.header_read_timeout
        } else {
            self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout
        })
    }

    fn expired(&self, limits: &ConnectionLimits) -> Option<Expired> {
        let deadline = self.deadline(limits)?;
        if Instant::now() < deadline {
            return None;
        }
        Some(if self.head_started.load(Ordering::Acquire) {
            Expired::Head
        } else {
            Expired::Idle
        })
    }
}

/// Marks a request in progress on its connection, from the service call until its response
/// body is dropped (fully sent, or abandoned).
struct RequestInProgress(Arc<ConnState>);

impl RequestInProgress {
    fn begin(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.head_started.store(false, Ordering::Release);
        Self(state)
    }
}

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let state = &self.0;
        state.idle_since.store(state.now(), Ordering::Release);
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's socket, reporting reads to its [`ConnState`].
struct Tracked {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_phase_wakes_its_watchers_moves_only_forward_and_forgets_them() {
        let phase = Arc::new(ServerPhase::default());
        let waiting = tokio::spawn({
            let phase = phase.clone();
            async move { phase.watch().reached(ABORTING).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(phase.wakers.lock().unwrap().len(), 1);
        phase.advance(DRAINING);
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "woken, but not yet at the phase it waits for"
        );
        phase.advance(ABORTING);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken when the phase is reached")
            .unwrap();
        assert!(
            phase.wakers.lock().unwrap().is_empty(),
            "a watch ended forgets its waker"
        );
        phase.advance(DRAINING);
        assert_eq!(phase.get(), ABORTING);
    }

    /// Counts the wakes that reach the task.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_during_a_poll_are_answered_by_polling_again() {
        let task = Arc::new(Counting::default());
        let task_waker = std::task::Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        let poll_again = PollAgain::new();

        // Woken twice from inside its own poll, then done: three polls, no wake to the task.
        let mut polls = 0;
        let polled = poll_again.poll(&mut cx, |inner| {
            polls += 1;
            if polls < 3 {
                inner.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        assert!(polled.is_ready());
        assert_eq!(polls, 3);
        assert_eq!(task.0.load(Ordering::SeqCst), 0);

        // A waker kept from the poll and used afterwards (I/O, another task) wakes the task.
        let mut kept = None;
        let polled = poll_again.poll(&mut cx, |inner| {
            kept = Some(inner.waker().clone());
            Poll::<()>::Pending
        });
        assert!(polled.is_pending());
        kept.unwrap().wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);

        // A future that never stops waking itself gets its turn bounded, then yields.
        let mut polls = 0;
        let polled = poll_again.poll(&mut cx, |inner| {
            polls += 1;
            inner.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        assert!(polled.is_pending());
        assert_eq!(polls, MAX_POLLS_IN_A_ROW);
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            2,
            "yielded through the task's waker"
        );
    }
}
