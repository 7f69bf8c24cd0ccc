//! A catalog that never goes dark: persistence across restarts, last-known-good under
//! throttling and shrinking, list_changed, coalesced sync triggers, the admin endpoints,
//! curation, and prompts/resources relayed with target naming.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn state_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-sidecar-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn admin_sync(base: &str, target: Option<&str>) -> Value {
    let url = match target {
        Some(t) => format!("{base}/admin/sync?target={t}"),
        None => format!("{base}/admin/sync"),
    };
    let response = client().post(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_restart_with_every_upstream_down_still_answers_from_the_saved_catalog() {
    let dir = state_dir("restart");
    let up = upstream("saved", 3, true).await;
    let config = format!(
        "[catalog]\nstate_dir = \"{}\"\n{}",
        dir.display(),
        target_toml("saved", &up.url, "connect_timeout_ms = 200")
    );
    {
        let first = sidecar(&config).await;
        wait_for_state(&first.base, "saved", "ready").await;
    }
    drop(up);

    let started = Instant::now();
    let second = sidecar(&config).await;
    let tools = list_all(&second.url).await;
    assert_eq!(tools.len(), 3, "served before any upstream answered");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let (code, ready) = readyz(&second.base).await;
    assert_eq!(code, 200, "{ready}");
    // Then the live sync fails; the saved definitions stay.
    let status = wait_for_state(&second.base, "saved", "failing").await;
    assert_eq!(status["tools"], 3);
    assert_eq!(list_all(&second.url).await.len(), 3);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_corrupt_saved_catalog_is_reported_and_ignored() {
    let dir = state_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("t.catalog.json"),
        b"{\"format\": \"mcp-sidecar/catalog\", \"version\": 1, \"listing\": [",
    )
    .unwrap();
    let up = upstream("t", 2, false).await;
    let config = format!(
        "[catalog]\nstate_dir = \"{}\"\n{}",
        dir.display(),
        target_toml("t", &up.url, "")
    );
    let sidecar = sidecar(&config).await;
    let status = wait_for_state(&sidecar.base, "t", "ready").await;
    assert_eq!(
        status["tools"], 2,
        "the live sync replaces the unusable file"
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.join("t.catalog.json")).unwrap()).unwrap();
    assert_eq!(
        saved["listing"]["tools"].as_array().unwrap().len(),
        2,
        "and is saved anew"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn throttling_and_shrinking_keep_the_last_good_definitions() {
    let up = upstream("t", 3, false).await;
    let config = format!(
        "[admin]\nenabled = true\n{}",
        target_toml("t", &up.url, "max_retries = 0")
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "t", "ready").await;

    up.knobs.status_override.store(429, Ordering::SeqCst);
    let result = admin_sync(&sidecar.base, Some("t")).await;
    assert_eq!(result["results"][0]["ok"], false, "{result}");
    assert!(
        result["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("429"),
        "{result}"
    );
    let status = wait_for_state(&sidecar.base, "t", "failing").await;
    assert!(
        status["last_error"].as_str().unwrap().contains("throttled"),
        "{status}"
    );
    assert_eq!(list_all(&sidecar.url).await.len(), 3);

    up.knobs.status_override.store(0, Ordering::SeqCst);
    up.knobs.tools.store(1, Ordering::SeqCst);
    let config_fraction = format!(
        "[admin]\nenabled = true\n[catalog]\nmin_kept_fraction = 0.5\n{}",
        target_toml("t", &up.url, "")
    );
    drop(sidecar);
    up.knobs.tools.store(4, Ordering::SeqCst);
    let guarded = common::sidecar(&config_fraction).await;
    wait_for_state(&guarded.base, "t", "ready").await;
    up.knobs.tools.store(1, Ordering::SeqCst);
    let result = admin_sync(&guarded.base, Some("t")).await;
    assert!(
        result["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("min_kept_fraction"),
        "{result}"
    );
    assert_eq!(
        list_all(&guarded.url).await.len(),
        4,
        "a listing that shrank by 75 % is refused"
    );
}

#[tokio::test]
async fn garbage_after_good_syncs_keeps_the_last_good_definitions() {
    let up = upstream("t", 3, false).await;
    let config = format!("[admin]\nenabled = true\n{}", target_toml("t", &up.url, ""));
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "t", "ready").await;
    up.knobs.garbage.store(true, Ordering::SeqCst);
    let result = admin_sync(&sidecar.base, Some("t")).await;
    assert_eq!(result["results"][0]["ok"], false, "{result}");
    let status = wait_for_state(&sidecar.base, "t", "failing").await;
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("invalid response") && error.contains("oops"),
        "{status}"
    );
    assert!(
        status["last_success"].is_string(),
        "the last good sync stays on record"
    );
    assert_eq!(list_all(&sidecar.url).await.len(), 3);
}

#[tokio::test]
async fn fifty_concurrent_triggers_cause_one_upstream_listing() {
    let up = upstream("t", 2, false).await;
    let config = format!("[admin]\nenabled = true\n{}", target_toml("t", &up.url, ""));
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "t", "ready").await;
    up.knobs.list_delay_ms.store(400, Ordering::SeqCst);
    let before = up.knobs.lists.load(Ordering::SeqCst);
    let triggers = (0..50).map(|_| admin_sync(&sidecar.base, Some("t")));
    let results = futures_util::future::join_all(triggers).await;
    assert!(results.iter().all(|r| r["results"][0]["ok"] == true));
    assert_eq!(
        up.knobs.lists.load(Ordering::SeqCst) - before,
        1,
        "one listing for 50 triggers"
    );
}

#[tokio::test]
async fn list_changed_from_the_upstream_syncs_without_waiting_for_the_interval() {
    let up = upstream("t", 1, true).await;
    // The session's GET event stream is the legacy channel for announcements.
    let extra = "sync_interval_secs = 3600\nprotocol_version = \"2025-11-25\"";
    let sidecar = sidecar(&target_toml("t", &up.url, extra)).await;
    wait_for_state(&sidecar.base, "t", "ready").await;
    // Give the sidecar a moment to open the session's event stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    up.knobs.tools.store(2, Ordering::SeqCst);
    let peer = up.knobs.peer.lock().unwrap().clone().expect("a session");
    peer.notify_tool_list_changed().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while list_all(&sidecar.url).await.len() != 2 {
        assert!(Instant::now() < deadline, "the new tool never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admin_endpoints_are_off_by_default_and_token_protected_when_set() {
    let up = upstream("t", 1, false).await;
    let plain = sidecar(&target_toml("t", &up.url, "")).await;
    let response = client()
        .post(format!("{}/admin/sync", plain.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "off unless configured");

    let config = format!(
        "[admin]\nenabled = true\ntoken = \"s3cret\"\n{}",
        target_toml("t", &up.url, "")
    );
    let guarded = sidecar(&config).await;
    wait_for_state(&guarded.base, "t", "ready").await;
    let response = client()
        .post(format!("{}/admin/sync", guarded.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = client()
        .get(format!("{}/admin/catalog", guarded.base))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        body["upstream_definitions"]["t"]["tools"][0]["name"], "tool_000",
        "the upstream's own names"
    );
    let response = client()
        .post(format!("{}/admin/sync?target=nope", guarded.base))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn curation_shapes_what_is_listed_and_callable() {
    let up = upstream("t", 4, false).await;
    let extra = r#"
[targets.curation]
deny_tools = ["tool_003"]
rename_tools = { tool_000 = "first" }
tool_descriptions = { tool_001 = "Second tool, described by the operator" }
"#;
    let config = format!(
        "[catalog]\ngateway_target_name = \"my-gateway-target\"\n{}",
        target_toml("t", &up.url, extra)
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "t", "ready").await;
    let tools = list_all(&sidecar.url).await;
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["t___first", "t___tool_001", "t___tool_002"]);
    assert_eq!(
        tools[1]["description"],
        "Second tool, described by the operator"
    );
    let reply = call_tool(&sidecar.url, "t___first", json!({"text": "x"})).await;
    assert_eq!(
        reply["result"]["content"][0]["text"], "t:tool_000:x",
        "called by its upstream name"
    );
    let denied = call_tool(&sidecar.url, "t___tool_003", json!({})).await;
    assert_eq!(denied["error"]["code"], -32602);
    for name in names {
        assert!(format!("my-gateway-target___{name}").len() <= 64);
    }
}

#[tokio::test]
async fn prompts_and_resources_are_relayed_with_target_naming() {
    let a = upstream("alpha", 1, false).await;
    let b = upstream("beta", 1, true).await;
    a.knobs.extras.store(true, Ordering::SeqCst);
    b.knobs.extras.store(true, Ordering::SeqCst);
    let config = format!(
        "{}{}",
        target_toml("alpha", &a.url, ""),
        target_toml("beta", &b.url, "")
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "alpha", "ready").await;
    wait_for_state(&sidecar.base, "beta", "ready").await;
    let rpc = |method: &'static str, params: Value| {
        let url = sidecar.url.clone();
        async move {
            post(
                &url,
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .await
            .1
        }
    };

    let init = rpc("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})).await;
    let caps = &init["result"]["capabilities"];
    assert!(
        caps["prompts"].is_object() && caps["resources"].is_object(),
        "{caps}"
    );

    let prompts = rpc("prompts/list", json!({})).await;
    let names: Vec<&str> = prompts["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha___greet", "beta___greet"]);
    let got = rpc(
        "prompts/get",
        json!({"name": "beta___greet", "arguments": {"who": "Ada"}}),
    )
    .await;
    assert_eq!(
        got["result"]["messages"][0]["content"]["text"], "Hello Ada from beta:greet",
        "{got}"
    );

    let resources = rpc("resources/list", json!({})).await;
    let uris: Vec<&str> = resources["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    let moved = "mcp-sidecar://beta/file%3A%2F%2F%2Fshared.txt";
    assert_eq!(
        uris,
        [
            "file:///shared.txt",
            moved,
            "test://alpha/readme",
            "test://beta/readme"
        ]
    );
    let read = rpc("resources/read", json!({"uri": moved})).await;
    assert_eq!(
        read["result"]["contents"][0]["text"], "beta read file:///shared.txt",
        "{read}"
    );
    let read = rpc("resources/read", json!({"uri": "file:///shared.txt"})).await;
    assert_eq!(
        read["result"]["contents"][0]["text"],
        "alpha read file:///shared.txt"
    );

    let templates = rpc("resources/templates/list", json!({})).await;
    assert_eq!(
        templates["result"]["resourceTemplates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let read = rpc("resources/read", json!({"uri": "test://beta/items/7"})).await;
    assert_eq!(
        read["result"]["contents"][0]["text"], "beta read test://beta/items/7",
        "routed by template: {read}"
    );
    let missing = rpc("resources/read", json!({"uri": "nowhere://x"})).await;
    assert_eq!(missing["error"]["code"], -32002);
    let unknown = rpc("prompts/get", json!({"name": "nope"})).await;
    assert_eq!(unknown["error"]["code"], -32602);
}
