//! `kind = "stdio"` targets against real child processes: the sidecar's own demo upstream
//! over stdio (rmcp) and a stdlib-only Python fixture that misbehaves on demand
//! (tests/fixtures/stdio_server.py). Processes are found in /proc by a unique tag in their
//! command line or by process group, so each test checks that nothing it caused survives.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_sidecar::config::Config;
use mcp_sidecar::targets::{self, FailureKind, Operation, RelayRequest, Reply, Target};
use serde_json::{Value, json};
use tokio::time::Instant;

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stdio_server.py")
        .display()
        .to_string()
}

fn unique_tag(test: &str) -> String {
    format!("stdio-test-{test}-{}", std::process::id())
}

/// A `[[targets]]` table running `command args…` with `extra` keys.
fn stdio_toml(name: &str, command: &str, args: &[&str], extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"stdio\"\ncommand = {}\nargs = {}\n{extra}\n",
        json!(command),
        json!(args)
    )
}

/// The fixture as a target, tagged so its processes can be found.
fn fixture_toml(name: &str, tag: &str, flags: &[&str], extra: &str) -> String {
    let path = fixture();
    let mut args = vec![path.as_str(), "--tag", tag];
    args.extend_from_slice(flags);
    stdio_toml(name, "python3", &args, extra)
}

fn build(toml: &str) -> Arc<dyn Target> {
    let config = Config::parse(toml, &|_| None).expect("test config is valid");
    targets::build(&config.targets[0]).expect("target builds")
}

fn call(name: &str, arguments: Value) -> RelayRequest {
    RelayRequest {
        operation: Operation::CallTool,
        name: Some(name.into()),
        params: json!({"name": name, "arguments": arguments}).to_string(),
        meta: Default::default(),
        client: Default::default(),
        headers: Vec::new(),
        bridge: None,
    }
}

fn result_of(reply: Reply) -> Value {
    match reply {
        Reply::Result(r) => serde_json::from_str(r.get()).unwrap(),
        Reply::Error(e) => panic!("JSON-RPC error: {e}"),
    }
}

fn text_of(reply: Reply) -> String {
    result_of(reply)["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One process as /proc shows it.
#[derive(Debug, Clone)]
struct ProcInfo {
    pid: u32,
    pgid: u32,
    state: char,
    cmdline: String,
}

fn processes() -> Vec<ProcInfo> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp …": comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push(ProcInfo {
            pid,
            state: fields[0].chars().next().unwrap_or('?'),
            pgid: fields[2].parse().unwrap_or(0),
            cmdline,
        });
    }
    out
}

/// Live (or zombie) processes whose command line holds `tag`.
fn tagged(tag: &str) -> Vec<ProcInfo> {
    processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(tag))
        .collect()
}

/// Every process (zombies included) in process group `pgid`.
fn group(pgid: u32) -> Vec<ProcInfo> {
    processes().into_iter().filter(|p| p.pgid == pgid).collect()
}

/// Polls `check` every 20 ms for up to `limit`.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one running (not zombie) process tagged `tag`.
async fn the_server(tag: &str) -> ProcInfo {
    let mut found = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            found = tagged(tag).into_iter().filter(|p| p.state != 'Z').collect();
            found.len() == 1
        })
        .await,
        "expected one server process tagged {tag}, found {found:?}"
    );
    found.remove(0)
}

#[tokio::test]
async fn check_builds_stdio_targets_without_starting_anything() {
    let dir = std::env::temp_dir().join(unique_tag("check"));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("started");
    let toml = stdio_toml(
        "lazy",
        "sh",
        &["-c", &format!("touch {}", marker.display())],
        "",
    );
    let file = dir.join("config.toml");
    std::fs::write(&file, &toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lazy (stdio) sh -c 'touch"), "{stdout}");
    // Building in-process does not start it either.
    let target = build(&toml);
    assert_eq!(target.describe().kind, "stdio");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists(), "check or build started the command");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn the_demo_server_over_stdio_relays_many_concurrent_calls() {
    let bin = env!("CARGO_BIN_EXE_mcp-sidecar");
    let target = build(&stdio_toml(
        "demo",
        bin,
        &["demo-upstream", "--stdio"],
        "env = { MCP_SIDECAR_LOG = \"warn\" }",
    ));
    let listing = target.sync().await.unwrap();
    let names: HashSet<&str> = listing
        .tools
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains("add") && names.contains("sleep"),
        "{names:?}"
    );
    assert_eq!(listing.server_info.unwrap()["name"], "mcp-sidecar-demo");

    // 200 calls at once: every answer reaches its own caller (multiplexed by id), and a
    // slow call does not hold back the fast ones.
    let slow = {
        let target = target.clone();
        tokio::spawn(async move { target.relay(call("sleep", json!({"ms": 5000})), None).await })
    };
    let calls = (0..200).map(|i| {
        let target = target.clone();
        async move {
            let reply = target
                .relay(call("add", json!({"a": i, "b": 1000})), None)
                .await
                .unwrap();
            (i, result_of(reply)["structuredContent"]["sum"].as_f64())
        }
    });
    for (i, sum) in futures_util::future::join_all(calls).await {
        assert_eq!(sum, Some(f64::from(i + 1000)));
    }
    assert!(
        !slow.is_finished(),
        "the fast calls waited for the slow one"
    );
    assert!(text_of(slow.await.unwrap().unwrap()).contains("slept 5000"));
    target.close().await;
}

#[tokio::test]
async fn progress_goes_to_its_own_caller_with_its_own_token() {
    let bin = env!("CARGO_BIN_EXE_mcp-sidecar");
    let target = build(&stdio_toml(
        "demo",
        bin,
        &["demo-upstream", "--stdio"],
        "env = { MCP_SIDECAR_LOG = \"warn\" }",
    ));
    target.sync().await.unwrap();
    // Two callers choose the same token: each must see only its own progress.
    let run = |steps: u32| {
        let target = target.clone();
        async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let mut request = call("progress", json!({"steps": steps}));
            request.meta.insert("progressToken".into(), json!("same"));
            let reply = target.relay(request, Some(tx.into())).await.unwrap();
            let mut notes = Vec::new();
            while let Ok(n) = rx.try_recv() {
                notes.push(serde_json::from_slice::<Value>(&n).unwrap());
            }
            (text_of(reply), notes)
        }
    };
    let ((text_a, notes_a), (text_b, notes_b)) = tokio::join!(run(2), run(5));
    assert_eq!(text_a, "completed 2 steps");
    assert_eq!(text_b, "completed 5 steps");
    for (notes, steps) in [(&notes_a, 2.0), (&notes_b, 5.0)] {
        assert_eq!(notes.len(), steps as usize, "{notes:?}");
        for n in notes {
            assert_eq!(n["params"]["progressToken"], "same");
            assert_eq!(n["params"]["total"], steps);
        }
    }
    target.close().await;
}

#[tokio::test]
async fn a_crash_fails_calls_in_flight_at_once_and_the_next_call_restarts() {
    let tag = unique_tag("crash");
    let target = build(&fixture_toml(
        "fx",
        &tag,
        &["--grandchild"],
        "request_timeout_ms = 20000",
    ));
    target.sync().await.unwrap();
    let first = the_server(&tag).await;
    assert_eq!(
        group(first.pid).len(),
        2,
        "the server and its grandchild share its group: {:?}",
        group(first.pid)
    );

    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = target
                    .relay(call("sleep", json!({"ms": 15000})), None)
                    .await;
                (outcome, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Kill only the server itself, as the OOM killer would: the grandchild must go too.
    assert_eq!(kill(first.pid, libc::SIGKILL), 0);
    for handle in in_flight {
        let (outcome, took) = handle.await.unwrap();
        let error = outcome.expect_err("the server died mid-call");
        assert_eq!(error.kind, FailureKind::Unreachable, "{error}");
        let message = error.to_string();
        assert!(
            message.contains("upstream target 'fx'")
                && message.contains("signal 9 (SIGKILL)")
                && message.contains("while tools/call was in flight"),
            "{message}"
        );
        assert!(took < Duration::from_secs(3), "failed only after {took:?}");
    }
    assert!(
        eventually(Duration::from_secs(5), || group(first.pid).is_empty()).await,
        "left behind: {:?}",
        group(first.pid)
    );

    // The next call starts a new server and succeeds.
    let reply = target
        .relay(call("echo", json!({"text": "back"})), None)
        .await
        .unwrap();
    assert_eq!(text_of(reply), "back");
    let second = the_server(&tag).await;
    assert_ne!(second.pid, first.pid);

    target.close().await;
    assert!(
        eventually(Duration::from_secs(5), || tagged(&tag).is_empty()
            && group(second.pid).is_empty())
        .await,
        "after close: {:?} {:?}",
        tagged(&tag),
        group(second.pid)
    );
}

#[tokio::test]
async fn a_server_that_exits_by_itself_leaves_nothing_behind() {
    let tag = unique_tag("exit");
    let target = build(&fixture_toml("fx", &tag, &["--grandchild"], ""));
    target.sync().await.unwrap();
    let server = the_server(&tag).await;
    let error = target
        .relay(call("crash", json!({"code": 7})), None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("exited with status 7"),
        "{error}"
    );
    assert!(
        eventually(Duration::from_secs(5), || group(server.pid).is_empty()).await,
        "the grandchild outlived its server: {:?}",
        group(server.pid)
    );
    target.close().await;
}

#[tokio::test]
async fn a_server_that_never_answers_initialize_is_replaced() {
    let tag = unique_tag("noinit");
    let target = build(&fixture_toml(
        "fx",
        &tag,
        &["--no-init"],
        "request_timeout_ms = 400",
    ));
    let error = target.sync().await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Timeout, "{error}");
    assert!(error.to_string().contains("initialize"), "{error}");
    let first = the_server(&tag).await;
    // The next attempt kills the silent server and starts another.
    let error = target.sync().await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Timeout, "{error}");
    let second = the_server(&tag).await;
    assert_ne!(first.pid, second.pid);
    assert!(group(first.pid).is_empty(), "{:?}", group(first.pid));
    target.close().await;
    assert!(eventually(Duration::from_secs(5), || tagged(&tag).is_empty()).await);
}

#[tokio::test]
async fn a_crash_loop_backs_off_and_says_so() {
    let target = build(&stdio_toml(
        "loop",
        "sh",
        &["-c", "echo starting >&2; exit 3"],
        "request_timeout_ms = 400",
    ));
    let mut errors = Vec::new();
    let started = Instant::now();
    for _ in 0..4 {
        errors.push(target.sync().await.unwrap_err().to_string());
    }
    // Restarts wait 250 ms, then 500 ms: the third start would pass the 400 ms deadline.
    assert!(errors[0].contains("exited with status 3"), "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains("restart backoff")),
        "{errors:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    target.close().await;
}

#[tokio::test]
async fn a_command_that_cannot_start_is_named() {
    let target = build(&stdio_toml("gone", "/nonexistent/mcp-server", &["--x"], ""));
    let error = target.sync().await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Unreachable);
    let message = error.to_string();
    assert!(
        message.contains("cannot start `/nonexistent/mcp-server --x`")
            && message.contains("No such file"),
        "{message}"
    );
}

#[tokio::test]
async fn noise_floods_and_oversized_answers_are_survived() {
    let tag = unique_tag("noise");
    let target = build(&fixture_toml(
        "fx",
        &tag,
        &["--noise"],
        "max_message_bytes = 65536\nrequest_timeout_ms = 10000",
    ));
    // Non-JSON lines around every answer do not get in the way.
    target.sync().await.unwrap();
    let reply = target
        .relay(call("echo", json!({"text": "through the noise"})), None)
        .await
        .unwrap();
    assert_eq!(text_of(reply), "through the noise");

    // An answer over max_message_bytes fails its call at once, naming the limit …
    let started = Instant::now();
    let error = target
        .relay(call("big", json!({"bytes": 2_000_000})), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind, FailureKind::BadResponse, "{error}");
    assert!(
        error.to_string().contains("max_message_bytes (65536)"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // … and the stream resynchronizes at the next line.
    let reply = target
        .relay(call("echo", json!({"text": "still here"})), None)
        .await
        .unwrap();
    assert_eq!(text_of(reply), "still here");

    // 20,000 notifications nobody asked for are dropped, not queued; calls go on.
    let reply = target
        .relay(call("flood", json!({"count": 20000})), None)
        .await
        .unwrap();
    assert_eq!(text_of(reply), "flooded");
    let reply = target
        .relay(call("echo", json!({"text": "after the flood"})), None)
        .await
        .unwrap();
    assert_eq!(text_of(reply), "after the flood");
    let server = the_server(&tag).await;
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap();
    assert!(rss_kib < 512 * 1024, "peak RSS {rss_kib} KiB");
    target.close().await;
    assert!(eventually(Duration::from_secs(5), || group(server.pid).is_empty()).await);
}

#[tokio::test]
async fn server_requests_are_answered_without_a_client() {
    let tag = unique_tag("ask");
    let target = build(&fixture_toml("fx", &tag, &[], ""));
    target.sync().await.unwrap();
    let reply = target.relay(call("ask", json!({})), None).await.unwrap();
    let answers: Value = serde_json::from_str(&text_of(reply)).unwrap();
    assert_eq!(answers["ping"], json!({}), "{answers}");
    assert_eq!(answers["sampling"]["code"], -32601, "{answers}");
    target.close().await;
}

#[tokio::test]
async fn list_changed_from_the_child_triggers_a_sync() {
    let tag = unique_tag("changed");
    let sidecar = common::sidecar(&format!(
        "[catalog]\nsync_interval_secs = 3600\n{}",
        fixture_toml("fx", &tag, &[], "")
    ))
    .await;
    common::wait_for_state(&sidecar.base, "fx", "ready").await;
    let names = |tools: Vec<Value>| -> HashSet<String> {
        tools
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!names(common::list_all(&sidecar.url).await).contains("fx___added"));
    let body = common::call_tool(&sidecar.url, "fx___change", json!({})).await;
    assert_eq!(body["result"]["content"][0]["text"], "changed", "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names(common::list_all(&sidecar.url).await).contains("fx___added") {
        assert!(Instant::now() < deadline, "the new tool never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Killed with no call in flight or coming: the change listener restarts the server and
    // the restarted one (which never added the tool) is synced at once.
    let server = the_server(&tag).await;
    assert_eq!(kill(server.pid, libc::SIGKILL), 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while names(common::list_all(&sidecar.url).await).contains("fx___added") {
        assert!(
            Instant::now() < deadline,
            "the restarted server was not synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restarted = the_server(&tag).await;
    assert_ne!(restarted.pid, server.pid);
}

#[tokio::test]
async fn sidecar_shutdown_stops_the_server_and_its_children() {
    let tag = unique_tag("shutdown");
    // Not named after the tag: the sidecar's own command line names this directory.
    let dir = std::env::temp_dir().join(format!("mcp-sidecar-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[inbound]\nlisten = \"127.0.0.1:0\"\n{}",
            fixture_toml("fx", &tag, &["--grandchild"], "")
        ),
    )
    .unwrap();
    let mut sidecar = KillOnDrop(Some(
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"))
            .args(["serve", "--config"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    // No waiting for the listening line: once the server process exists the sidecar's
    // SIGTERM handler does too (it is installed before any target starts).
    let server = the_server(&tag).await;
    assert!(
        eventually(Duration::from_secs(10), || group(server.pid).len() == 2).await,
        "{:?}",
        group(server.pid)
    );
    let mut sidecar = sidecar.0.take().unwrap();
    assert_eq!(kill(sidecar.id(), libc::SIGTERM), 0);
    let status = tokio::task::spawn_blocking(move || sidecar.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    // Killed before the sidecar exited (not left to notice EOF on their own): nothing in
    // the group still runs. The grandchild, orphaned, is then reaped by init.
    let running: Vec<_> = group(server.pid)
        .into_iter()
        .filter(|p| p.state != 'Z')
        .collect();
    assert!(running.is_empty(), "survived the sidecar: {running:?}");
    assert!(
        eventually(Duration::from_secs(5), || group(server.pid).is_empty()).await,
        "{:?}",
        group(server.pid)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Sends `signal` to one process the test caused, by its pid.
fn kill(pid: u32, signal: i32) -> i32 {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, signal) }
}

/// A sidecar process the test started, killed by its pid if the test ends early.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
