//! The binary as a user runs it: `demo` (README's first command) and zero-file `serve`
//! configured by environment variables only, as in a container.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::json;

/// A child process killed (by PID) when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns the binary and returns it with the URL from its `listening` line.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in [
        "MCP_SIDECAR_CONFIG",
        "MCP_SIDECAR_LISTEN",
        "MCP_SIDECAR_UPSTREAM_URL",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Proc(child), url)
}

#[tokio::test]
async fn demo_lists_and_calls_real_tools() {
    let (_demo, url) = spawn(&["demo", "--listen", "127.0.0.1:0"], &[]);
    let base = url.trim_end_matches("/mcp").to_string();
    wait_for_state(&base, "demo", "ready").await;
    let names: Vec<String> = list_all(&url)
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "demo___add",
            "demo___echo",
            "demo___fail",
            "demo___progress",
            "demo___sleep"
        ]
    );
    let reply = call_tool(&url, "demo___add", json!({"a": 2, "b": 3})).await;
    assert_eq!(reply["result"]["structuredContent"]["sum"], 5.0, "{reply}");
    let failed = call_tool(&url, "demo___fail", json!({"message": "nope"})).await;
    assert_eq!(
        failed["result"]["isError"], true,
        "tool errors are relayed as results: {failed}"
    );
}

#[tokio::test]
async fn zero_file_mode_from_environment() {
    let (_upstream, upstream_url) = spawn(
        &["demo-upstream", "--listen", "127.0.0.1:0", "--stateless"],
        &[],
    );
    let (_sidecar, url) = spawn(
        &["serve"],
        &[
            ("MCP_SIDECAR_UPSTREAM_URL", upstream_url.as_str()),
            ("MCP_SIDECAR_TARGET_NAME", "calc"),
            ("MCP_SIDECAR_LISTEN", "127.0.0.1:0"),
        ],
    );
    let base = url.trim_end_matches("/mcp").to_string();
    wait_for_state(&base, "calc", "ready").await;
    let reply = call_tool(&url, "calc___echo", json!({"text": "from env"})).await;
    assert_eq!(reply["result"]["content"][0]["text"], "from env", "{reply}");
}

#[tokio::test]
async fn sigterm_closes_the_upstream_session() {
    let up = upstream("stateful", 1, true).await;
    let (mut sidecar, url) = spawn(
        &[
            "serve",
            "--upstream-url",
            &up.url,
            "--target-name",
            "s",
            "--listen",
            "127.0.0.1:0",
            // Sessions (and their DELETE) exist only before 2026-07-28.
            "--protocol-version",
            "2025-11-25",
        ],
        &[],
    );
    let base = url.trim_end_matches("/mcp").to_string();
    wait_for_state(&base, "s", "ready").await;
    let sessions = up.sessions.as_ref().unwrap();
    assert_eq!(
        sessions.sessions.read().await.len(),
        1,
        "the sidecar holds one upstream session"
    );

    let pid = sidecar.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || sidecar.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !sessions.sessions.read().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session was not closed with DELETE"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
