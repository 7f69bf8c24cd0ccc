//! One run of a stdio server: the process, its pipes, and the three tasks that serve them.
//!
//! - The **reader** owns the process and its stdout: it splits stdout into bounded lines and
//!   routes each (see [`super::routing`]); it notices the exit, kills whatever the server
//!   left running in its process group, delivers the answers still in the pipe, then fails
//!   every request in flight at once, naming the exit status.
//! - The **writer** owns stdin: whole messages come through a bounded queue, so a caller that
//!   gives up half-way can never leave half a message in the pipe; what is queued together
//!   is written together, then flushed.
//! - The **stderr logger** puts the server's stderr in the sidecar's log under the target's
//!   name, line by line, cut at a few KiB and rate-limited (a chatty server cannot flood it).
//!
//! Invariants: the server runs in its own process group (`process_group(0)`), so it and
//! everything it starts (`npx` → `node`, shell wrappers) are stopped together by group,
//! on restart, on shutdown, after the server itself exits, and when this value is dropped;
//! tokio's `kill_on_drop` covers the process itself if the runtime goes away first. The
//! process is reaped by the reader (`wait`), so no zombie is left either.

use std::path::PathBuf;
use std::process::Stdio as Pipe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::lines::{Line, LineSplitter, oversized_response_id};
use super::routing::{self, Delivery, Incoming, Table, Waiting};
use crate::config::Secret;
use crate::targets::error::quote;
use crate::targets::mcp::transport::Replies;
use crate::targets::{FailureKind, TargetError};

/// Whole messages waiting for the writer.
const WRITE_QUEUE: usize = 1024;
/// Messages the server sends outside any request, waiting for the listener.
const UNSOLICITED_QUEUE: usize = 64;
/// How long a server gets to exit after closing stdout, and after stdin is closed or
/// SIGTERM at shutdown, before the next step.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long the reader keeps reading answers already in the pipe after the exit.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);
/// Longest stderr line logged (the rest is cut), and lines logged per second.
const STDERR_LINE_LIMIT: usize = 4096;
const STDERR_LINES_PER_SEC: u32 = 50;
/// The variables a child gets from the sidecar's environment unless `inherit_env` is set:
/// the MCP SDKs' default set for stdio servers, plus locale and temp dir.
const HARMLESS_ENV: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR",
];

/// How to start the server, from the target's config.
pub struct Launch {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, Secret)>,
    pub inherit_env: bool,
    pub cwd: Option<PathBuf>,
    /// The command line as messages show it.
    pub shown: String,
}

/// Lines the sidecar could not use, across every run of one target (logged sparingly).
#[derive(Default)]
pub struct Counters {
    pub not_json: AtomicU64,
    pub oversized: AtomicU64,
    pub dropped: AtomicU64,
}

/// How a run ended.
#[derive(Debug)]
pub struct Exit {
    /// e.g. "exited with status 1", "was killed by signal 9 (SIGKILL)".
    pub status: String,
    pub at: Instant,
    pub lived: Duration,
}

pub struct Child {
    pub generation: u64,
    pub pid: u32,
    target: Arc<str>,
    shown: Arc<str>,
    writer: mpsc::Sender<Bytes>,
    close_stdin: Arc<Notify>,
    table: Arc<Table>,
    unsolicited: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    exit: watch::Receiver<Option<Arc<Exit>>>,
    /// Set when the sidecar stops the run itself (its end is then no surprise).
    stopping: Arc<AtomicBool>,
}

impl Child {
    /// Starts the server and its tasks. The error says why it could not start.
    pub fn spawn(
        launch: &Launch,
        target: &Arc<str>,
        generation: u64,
        max_message_bytes: usize,
        counters: Arc<Counters>,
    ) -> Result<Arc<Child>, String> {
        let mut command = tokio::process::Command::new(&launch.command);
        command
            .args(&launch.args)
            .stdin(Pipe::piped())
            .stdout(Pipe::piped())
            .stderr(Pipe::piped())
            .kill_on_drop(true)
            .process_group(0);
        if !launch.inherit_env {
            command.env_clear();
            for name in HARMLESS_ENV {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
        }
        for (name, value) in &launch.env {
            command.env(name, value.expose());
        }
        if let Some(cwd) = &launch.cwd {
            command.current_dir(cwd);
        }
        let mut process = command.spawn().map_err(|e| {
            let place = launch
                .cwd
                .as_ref()
                .map(|c| format!(" in {}", c.display()))
                .unwrap_or_default();
            format!("cannot start `{}`{place}: {e}", launch.shown)
        })?;
        let pid = process.id().ok_or("the process exited at once")?;
        let stdin = process.stdin.take().expect("stdin is piped");
        let stdout = process.stdout.take().expect("stdout is piped");
        let stderr = process.stderr.take().expect("stderr is piped");

        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        let (unsolicited_tx, unsolicited) = mpsc::channel(UNSOLICITED_QUEUE);
        let (exit_tx, exit) = watch::channel(None);
        let close_stdin = Arc::new(Notify::new());
        let table = Arc::new(Table::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let shown: Arc<str> = launch.shown.as_str().into();
        tokio::spawn(write_lines(stdin, queue, close_stdin.clone()));
        tokio::spawn(log_stderr(stderr, target.clone(), pid));
        let reader = Reader {
            target: target.clone(),
            shown: shown.clone(),
            pid,
            started: Instant::now(),
            max_message_bytes,
            table: table.clone(),
            writer: writer.clone(),
            unsolicited: unsolicited_tx,
            counters,
            stopping: stopping.clone(),
        };
        tokio::spawn(reader.run(process, stdout, exit_tx));
        tracing::info!(target_name = %target, pid, generation, "started `{}`", launch.shown);
        Ok(Arc::new(Child {
            generation,
            pid,
            target: target.clone(),
            shown,
            writer,
            close_stdin,
            table,
            unsolicited: tokio::sync::Mutex::new(unsolicited),
            exit,
            stopping,
        }))
    }

    /// How the run ended, once it has.
    pub fn exited(&self) -> Option<Arc<Exit>> {
        self.exit.borrow().clone()
    }

    /// Waits up to `limit` for the run to end; true if it has.
    pub async fn wait_exit(&self, limit: Duration) -> bool {
        let mut exit = self.exit.clone();
        tokio::time::timeout(limit, exit.wait_for(Option::is_some))
            .await
            .is_ok()
    }

    /// Sends one request; its answer comes through the returned replies.
    pub async fn request(
        self: &Arc<Self>,
        out: routing::Outgoing,
        method: &str,
    ) -> Result<StdioReplies, TargetError> {
        let id = out.id.ok_or_else(|| {
            TargetError::new(
                &self.target,
                FailureKind::BadResponse,
                format!("{method}: the outgoing request has no id"),
            )
        })?;
        let waiting = self.table.register(id, method, out.caller_token)?;
        let replies = StdioReplies {
            child: self.clone(),
            id,
            waiting,
            answered: false,
        };
        self.write(out.line, method).await?;
        Ok(replies)
    }

    /// Queues one whole message for stdin.
    pub async fn write(&self, line: Bytes, what: &str) -> Result<(), TargetError> {
        self.writer.send(line).await.map_err(|_| {
            let why = match self.exited() {
                Some(exit) => exit.status.clone(),
                None => "stopped reading its input".into(),
            };
            TargetError::new(
                &self.target,
                FailureKind::Unreachable,
                format!("{}: cannot send {what}", self.describe_gone(&why)),
            )
        })
    }

    /// The next message the server sends outside any request; `None` once the run ended.
    pub async fn next_unsolicited(&self) -> Option<Vec<u8>> {
        self.unsolicited.lock().await.recv().await
    }

    /// Stops the run: politely at shutdown (close stdin, then SIGTERM, as the MCP spec
    /// asks), at once when replacing a server that does not answer. Always by group.
    pub async fn stop(&self, politely: bool) {
        if self.exited().is_some() {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        if politely {
            self.close_stdin.notify_one();
            if self.wait_exit(EXIT_GRACE).await {
                return;
            }
            signal_group(self.pid, libc::SIGTERM);
            if self.wait_exit(EXIT_GRACE).await {
                return;
            }
        }
        signal_group(self.pid, libc::SIGKILL);
        if !self.wait_exit(Duration::from_secs(5)).await {
            tracing::warn!(target_name = %self.target, pid = self.pid, "the server process did not exit after SIGKILL");
        }
    }

    pub fn in_flight(&self) -> usize {
        self.table.in_flight()
    }

    fn describe_gone(&self, why: &str) -> String {
        format!(
            "the server process (pid {}, `{}`) {why}",
            self.pid, self.shown
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.exited().is_none() {
            signal_group(self.pid, libc::SIGKILL);
        }
    }
}

/// The answer to one request: its progress notifications, then its response.
pub struct StdioReplies {
    child: Arc<Child>,
    id: u64,
    waiting: Waiting,
    answered: bool,
}

impl Replies for StdioReplies {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, TargetError> {
        if self.answered {
            return Ok(None);
        }
        let response = match &mut self.waiting.progress {
            // Biased: progress the server wrote before its response is delivered first.
            Some(progress) => tokio::select! {
                biased;
                Some(note) = progress.recv() => return Ok(Some(note)),
                response = &mut self.waiting.response => response,
            },
            None => (&mut self.waiting.response).await,
        };
        self.answered = true;
        match response {
            Ok(Ok(message)) => Ok(Some(message)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TargetError::new(
                &self.child.target,
                FailureKind::Unreachable,
                self.child.describe_gone("ended without answering"),
            )),
        }
    }
}

impl Drop for StdioReplies {
    fn drop(&mut self) {
        if !self.answered {
            // The caller gave up (timeout, client gone): a late answer is dropped.
            self.child.table.remove(self.id);
        }
    }
}

/// Signals every process in group `pgid` (the server's pid: it leads its own group).
/// Errors (the group is already gone) are ignored. libc directly because it is already in
/// the tree and this is the one call needed; tokio's `Child::kill` reaches only the leader.
fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return; // never signal "every process" or init
    }
    // SAFETY: killpg has no memory-safety preconditions; a stale group id only yields ESRCH.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// The reader task's state (see the module docs).
struct Reader {
    target: Arc<str>,
    shown: Arc<str>,
    pid: u32,
    started: Instant,
    max_message_bytes: usize,
    table: Arc<Table>,
    writer: mpsc::Sender<Bytes>,
    unsolicited: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
    stopping: Arc<AtomicBool>,
}

impl Reader {
    async fn run(
        self,
        mut process: tokio::process::Child,
        mut stdout: ChildStdout,
        exit_tx: watch::Sender<Option<Arc<Exit>>>,
    ) {
        let mut splitter = LineSplitter::new(self.max_message_bytes);
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = Vec::new();
        let status = loop {
            tokio::select! {
                read = stdout.read(&mut buf) => match read {
                    Ok(n) if n > 0 => {
                        splitter.feed(&buf[..n], &mut lines);
                        for line in lines.drain(..) {
                            self.route(line);
                        }
                    }
                    _ => {
                        // stdout closed: the server is ending (or cannot answer any more).
                        let status = match tokio::time::timeout(EXIT_GRACE, process.wait()).await {
                            Ok(status) => status,
                            Err(_) => {
                                signal_group(self.pid, libc::SIGKILL);
                                process.wait().await
                            }
                        };
                        break status;
                    }
                },
                status = process.wait() => {
                    // The server exited: stop what it left in its group (a grandchild may hold
                    // stdout open), then deliver the answers already in the pipe.
                    signal_group(self.pid, libc::SIGKILL);
                    let drain = async {
                        while let Ok(n) = stdout.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            splitter.feed(&buf[..n], &mut lines);
                            for line in lines.drain(..) {
                                self.route(line);
                            }
                        }
                    };
                    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await;
                    break status;
                }
            }
        };
        // Anything still in the group (the leader is reaped; its id stays reserved while
        // members remain, so this reaches only them).
        signal_group(self.pid, libc::SIGKILL);
        let status = match status {
            Ok(s) => describe_status(s),
            Err(e) => format!("could not be waited for ({e})"),
        };
        let lived = self.started.elapsed();
        let in_flight = self.table.in_flight();
        if self.stopping.load(Ordering::SeqCst) {
            tracing::info!(target_name = %self.target, pid = self.pid, in_flight, "stopped the server process: it {status}");
        } else {
            tracing::warn!(target_name = %self.target, pid = self.pid, lived_ms = lived.as_millis() as u64,
                in_flight, "the server process {status}");
        }
        let gone = |status: &str| {
            format!(
                "the server process (pid {}, `{}`) {status}",
                self.pid, self.shown
            )
        };
        self.table.close(
            TargetError::new(&self.target, FailureKind::Unreachable, gone(&status)),
            |method| {
                TargetError::new(
                    &self.target,
                    FailureKind::Unreachable,
                    format!("{} while {method} was in flight", gone(&status)),
                )
            },
        );
        let _ = exit_tx.send(Some(Arc::new(Exit {
            status,
            at: Instant::now(),
            lived,
        })));
    }

    /// Routes one line from stdout.
    fn route(&self, line: Line) {
        let bytes = match line {
            Line::Complete(bytes) => bytes,
            Line::Oversized { head, tail, len } => {
                let n = self.counters.oversized.fetch_add(1, Ordering::Relaxed) + 1;
                let id = oversized_response_id(&head, &tail);
                let method = id.and_then(|id| self.table.method_of(id));
                if sparse(n) {
                    tracing::warn!(target_name = %self.target, len, total = n,
                        "dropped a {len}-byte line from the server, over max_message_bytes ({}): {}",
                        self.max_message_bytes, quote(&head));
                }
                if let (Some(id), Some(method)) = (id, method) {
                    self.table.respond(
                        id,
                        Err(TargetError::new(
                            &self.target,
                            FailureKind::BadResponse,
                            format!(
                                "{method}: the response is {len} bytes, over max_message_bytes ({})",
                                self.max_message_bytes
                            ),
                        )),
                    );
                }
                return;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match routing::classify(&bytes) {
            Incoming::Response(id) => {
                if !self.table.respond(id, Ok(bytes)) {
                    tracing::debug!(target_name = %self.target, id, "an answer nobody waits for any more (dropped)");
                }
            }
            Incoming::ForeignResponse => {
                tracing::debug!(target_name = %self.target, "a response to no request of ours: {}", quote(&bytes));
            }
            Incoming::Request { id, method } => self.answer_server_request(id, &method),
            Incoming::Progress {
                token: Some(token),
                message,
            } => match self.table.progress(token, message) {
                Delivery::Delivered | Delivery::NoTaker => {}
                Delivery::Dropped => self.dropped("a progress notification (its caller is slow)"),
            },
            Incoming::Progress { token: None, .. } | Incoming::Notification => {
                if self.unsolicited.try_send(bytes).is_err() {
                    self.dropped("a notification (nobody is listening, or too many at once)");
                }
            }
            Incoming::Invalid(error) => {
                let n = self.counters.not_json.fetch_add(1, Ordering::Relaxed) + 1;
                if sparse(n) {
                    tracing::warn!(target_name = %self.target, total = n,
                        "the server wrote a line that is not JSON-RPC on stdout ({error}): {}", quote(&bytes));
                }
            }
        }
    }

    /// A server's own request: `ping` is answered, anything else refused at once (a
    /// stateless relay has no client session to ask, and an unanswered request would hold
    /// the server's call until it times out).
    fn answer_server_request(&self, id: serde_json::Value, method: &str) {
        let answer = if method == "ping" {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}})
        } else {
            tracing::debug!(target_name = %self.target, "refusing the server's {method} request");
            serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601,
                "message": format!("mcp-sidecar relays statelessly and cannot forward {method} to its client"),
            }})
        };
        if self
            .writer
            .try_send(Bytes::from(answer.to_string()))
            .is_err()
        {
            self.dropped("the answer to a server request (stdin queue full)");
        }
    }

    fn dropped(&self, what: &str) {
        let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if sparse(n) {
            tracing::warn!(target_name = %self.target, total = n, "dropped {what}");
        }
    }
}

/// Log the first few of a recurring problem, then only at powers of two.
fn sparse(n: u64) -> bool {
    n <= 5 || n.is_power_of_two()
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                libc::SIGHUP => " (SIGHUP)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGPIPE => " (SIGPIPE)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        }
        None => format!("ended ({status})"),
    }
}

/// The writer task: whole messages from the queue, a newline after each, one flush per
/// batch. Ends (closing stdin) when asked, when the queue closes, or when the pipe breaks.
async fn write_lines(stdin: ChildStdin, mut queue: mpsc::Receiver<Bytes>, close: Arc<Notify>) {
    let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, stdin);
    loop {
        let first = tokio::select! {
            biased;
            _ = close.notified() => break,
            message = queue.recv() => match message {
                Some(m) => m,
                None => break,
            },
        };
        let mut batch = Some(first);
        let mut failed = false;
        while let Some(message) = batch.take().or_else(|| queue.try_recv().ok()) {
            if out.write_all(&message).await.is_err() || out.write_all(b"\n").await.is_err() {
                failed = true;
                break;
            }
        }
        if failed || out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.shutdown().await;
}

/// The stderr logger task (see the module docs).
async fn log_stderr(mut stderr: ChildStderr, target: Arc<str>, pid: u32) {
    let mut splitter = LineSplitter::new(STDERR_LINE_LIMIT);
    let mut buf = vec![0u8; 16 * 1024];
    let mut lines = Vec::new();
    let mut window = Instant::now();
    let (mut logged, mut suppressed) = (0u32, 0u64);
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        splitter.feed(&buf[..n], &mut lines);
        for line in lines.drain(..) {
            if window.elapsed() >= Duration::from_secs(1) {
                if suppressed > 0 {
                    tracing::warn!(target_name = %target, pid, "{suppressed} stderr lines not logged (over {STDERR_LINES_PER_SEC} a second)");
                }
                (window, logged, suppressed) = (Instant::now(), 0, 0);
            }
            if logged >= STDERR_LINES_PER_SEC {
                suppressed += 1;
                continue;
            }
            logged += 1;
            let text = match &line {
                Line::Complete(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Line::Oversized { head, len, .. } => {
                    format!("{}… ({len} bytes)", String::from_utf8_lossy(head))
                }
            };
            tracing::info!(target_name = %target, pid, "stderr: {}", text.trim_end());
        }
    }
    if suppressed > 0 {
        tracing::warn!(target_name = %target, pid, "{suppressed} stderr lines not logged (over {STDERR_LINES_PER_SEC} a second)");
    }
}
