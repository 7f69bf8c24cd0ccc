//! Tool search: index build, query latency, memory and size, in one run:
//!
//!   cargo bench --bench search
//!
//! In-process (release build, one thread):
//! - a 10,000-tool catalog made of the evaluation set's real tool definitions
//!   (tests/search_eval/tools.json) repeated under distinct target prefixes; index build
//!   time (median of 3, targets: ≤ 2 s), and a rebuild after 1 % of the tools changed
//!   (only those are re-embedded);
//! - query latency (hybrid, limit 10) for every evaluation query, 20 rounds: p50, p95
//!   (target ≤ 5 ms), p99.
//!
//! Through a release sidecar in front of the demo upstream with 10,000 tools
//! (`--extra-tools 9995`), search off and on: resident memory after the sync (the
//! difference is what search costs, target ≤ 80 MB) and search-call latency over HTTP.
//!
//! Size: the binary and the encoder file compiled into it (target ≤ 25 MB added).
//!
//! The tables are printed and written to `bench/results/search.md`.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use mcp_sidecar::catalog::Catalog;
use mcp_sidecar::catalog::search::{Mode, SearchIndex};
use mcp_sidecar::targets::Listing;
use serde_json::{Value, json};

#[path = "../tests/search_eval/data.rs"]
mod data;

const TOOLS: usize = 10_000;
const DEMO_TOOLS: usize = 5;
const ROUNDS: usize = 20;
const HTTP_CALLS: usize = 500;
const SYNC_DEADLINE: Duration = Duration::from_secs(120);
const ENCODER_FILE: &str = "src/catalog/search/model/minilm-l6-static.bin";

fn eval_queries() -> Vec<String> {
    data::queries().into_iter().map(|q| q.query).collect()
}

/// `TOOLS` tools: the real definitions, copy after copy, each copy's servers under new
/// target names (`c{copy}-{server}`). `changed` copies get a new description, to time a
/// rebuild after a sync that changed them.
fn big_catalog(changed: usize) -> Catalog {
    let servers = data::listings();
    let mut listings: Vec<(String, Listing)> = Vec::new();
    let mut count = 0;
    'outer: for copy in 0.. {
        for (server, listing) in &servers {
            let mut copied = Listing::default();
            for tool in &listing.tools {
                if count == TOOLS {
                    listings.push((format!("c{copy}-{server}"), copied));
                    break 'outer;
                }
                let mut tool = tool.clone();
                if count < changed {
                    tool.insert("description".into(), json!(format!("Changed tool {count}")));
                }
                copied.tools.push(tool);
                count += 1;
            }
            listings.push((format!("c{copy}-{server}"), copied));
        }
    }
    data::catalog(&listings)
}

fn build(catalog: &Catalog, previous: Option<&SearchIndex>) -> (SearchIndex, Duration) {
    let started = Instant::now();
    let tools = catalog.tools.iter().map(|e| (e.exposed.as_str(), &*e.json));
    let index = SearchIndex::build(tools, previous);
    (index, started.elapsed())
}

struct InProcess {
    tools: usize,
    build: Duration,
    rebuild: Duration,
    re_embedded: usize,
    query: [Duration; 3],
    queries: usize,
}

fn in_process() -> InProcess {
    let catalog = big_catalog(0);
    assert_eq!(catalog.tools.len(), TOOLS);
    let mut builds = Vec::new();
    let mut index = None;
    for _ in 0..3 {
        let (ix, took) = build(&catalog, None);
        builds.push(took);
        index = Some(ix);
    }
    let index = index.expect("built");
    let changed = big_catalog(TOOLS / 100);
    let (rebuilt, rebuild) = build(&changed, Some(&index));
    let queries = eval_queries();
    let mut samples = Vec::with_capacity(queries.len() * ROUNDS);
    let mut found = 0usize;
    for _ in 0..ROUNDS {
        for q in &queries {
            let started = Instant::now();
            let hits = index.search(q, Mode::Hybrid, 10, |_| true);
            samples.push(started.elapsed());
            found += hits.len();
        }
    }
    assert_eq!(
        found,
        queries.len() * ROUNDS * 10,
        "every query returns 10 tools"
    );
    InProcess {
        tools: index.len(),
        build: common::quantile(&mut builds, 0.5),
        rebuild,
        re_embedded: rebuilt.embedded(),
        query: [0.5, 0.95, 0.99].map(|q| common::quantile(&mut samples, q)),
        queries: samples.len(),
    }
}

struct Served {
    rss_kib: u64,
    peak_kib: u64,
    /// p50, p95 of a search call over HTTP (search on only).
    call: Option<[Duration; 2]>,
}

fn write_config(dir: &Path, upstream_url: &str, search: bool) -> String {
    let text = format!(
        "[inbound]\nlisten = \"127.0.0.1:0\"\n\n[search]\nenabled = {search}\n\n\
         [[targets]]\nname = \"big\"\nkind = \"mcp_server\"\nurl = {}\n",
        toml::Value::String(upstream_url.to_string())
    );
    let path = dir.join(format!("search-{search}.toml"));
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

async fn served(bin: &Path, upstream_url: &str, search: bool) -> Served {
    let dir = std::env::temp_dir();
    let config = write_config(&dir, upstream_url, search);
    let (sidecar, url) = common::spawn_listening(bin, &["serve", "--config", &config]);
    let client = reqwest::Client::new();
    let base = url
        .strip_suffix("/mcp")
        .expect("url ends in /mcp")
        .to_string();
    let deadline = Instant::now() + SYNC_DEADLINE;
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await.ok();
        let body = match ready {
            Some(r) => r.text().await.unwrap_or_default(),
            None => String::new(),
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if v["tools"].as_u64() == Some((TOOLS) as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sidecar never synced {TOOLS} tools"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the index build that follows the publish finish, and allocations settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_kib, _) = sidecar.memory_kib().expect("memory");
    let call = if search {
        let queries = eval_queries();
        let mut samples = Vec::new();
        for q in queries.iter().cycle().take(HTTP_CALLS) {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "x_amz_bedrock_agentcore_search", "arguments": {"query": q}}});
            let started = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.to_string())
                .send()
                .await
                .expect("search call");
            let text = r.text().await.expect("search answer");
            samples.push(started.elapsed());
            let v: Value = serde_json::from_str(&text).expect("JSON answer");
            assert_eq!(
                v["result"]["structuredContent"]["tools"]
                    .as_array()
                    .map(Vec::len),
                Some(10),
                "{text}"
            );
        }
        Some([0.5, 0.95].map(|q| common::quantile(&mut samples, q)))
    } else {
        None
    };
    let (_, peak_kib) = sidecar.memory_kib().expect("memory");
    drop(sidecar);
    let _ = std::fs::remove_file(&config);
    Served {
        rss_kib,
        peak_kib,
        call,
    }
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs benches once as tests: nothing to measure then.
        return;
    }
    let bin = common::sidecar_bin().expect("sidecar binary");
    let mut out = String::new();

    let p = in_process();
    writeln!(
        out,
        "**In-process** ({} tools, real definitions repeated; release build, one thread)\n",
        p.tools
    )
    .unwrap();
    writeln!(out, "| measure | value | target |\n| --- | --- | --- |").unwrap();
    writeln!(
        out,
        "| index build, 10,000 tools (median of 3) | {} | ≤ 2 s |",
        common::ms(p.build)
    )
    .unwrap();
    writeln!(
        out,
        "| rebuild after 1 % changed ({} re-embedded) | {} | |",
        p.re_embedded,
        common::ms(p.rebuild)
    )
    .unwrap();
    writeln!(
        out,
        "| query p50 / p95 / p99 ({} queries, hybrid, limit 10) | {} / {} / {} | p95 ≤ 5 ms |",
        p.queries,
        common::ms(p.query[0]),
        common::ms(p.query[1]),
        common::ms(p.query[2])
    )
    .unwrap();

    let extra = (TOOLS - DEMO_TOOLS).to_string();
    let (upstream, upstream_url) = common::spawn_demo_upstream(&bin, &extra);
    let off = served(&bin, &upstream_url, false).await;
    let on = served(&bin, &upstream_url, true).await;
    drop(upstream);
    let call = on.call.expect("measured with search on");
    writeln!(
        out,
        "\n**Sidecar** (release, demo upstream with {TOOLS} tools)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| measure | search off | search on | target |\n| --- | --- | --- | --- |"
    )
    .unwrap();
    writeln!(
        out,
        "| RSS after sync | {} | {} | |",
        common::mib(off.rss_kib),
        common::mib(on.rss_kib)
    )
    .unwrap();
    writeln!(
        out,
        "| RSS added by search | | {} | ≤ 80 MB |",
        common::mib(on.rss_kib.saturating_sub(off.rss_kib))
    )
    .unwrap();
    writeln!(
        out,
        "| peak RSS (VmHWM) | {} | {} | |",
        common::mib(off.peak_kib),
        common::mib(on.peak_kib)
    )
    .unwrap();
    writeln!(
        out,
        "| search call over HTTP, p50 / p95 ({HTTP_CALLS} calls) | | {} / {} | |",
        common::ms(call[0]),
        common::ms(call[1])
    )
    .unwrap();

    let binary = std::fs::metadata(&bin).expect("binary").len();
    let encoder = std::fs::metadata(common::root().join(ENCODER_FILE))
        .expect("encoder file")
        .len();
    writeln!(out, "\n**Size**\n").unwrap();
    writeln!(out, "| measure | value | target |\n| --- | --- | --- |").unwrap();
    writeln!(
        out,
        "| sidecar binary ({}) | {} | |",
        bin.display(),
        common::mib(binary / 1024)
    )
    .unwrap();
    writeln!(
        out,
        "| encoder compiled in (`{ENCODER_FILE}`) | {} | ≤ 25 MB added |",
        common::mib(encoder / 1024)
    )
    .unwrap();

    println!("{out}");
    let results = common::root().join("bench/results");
    std::fs::create_dir_all(&results).expect("bench/results");
    std::fs::write(results.join("search.md"), &out).expect("write search.md");
}
