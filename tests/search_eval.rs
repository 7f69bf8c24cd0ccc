//! Tool-search quality on the committed evaluation set (tests/search_eval/): real MCP
//! servers' tool definitions (tools.json, built by build_tools.py) and labelled queries
//! (queries.json), in two sets: `keyword` (queries that use the tools' own words) and
//! `paraphrase` (queries written to share few words with the tool text).
//!
//! Prints Recall@1/@5/@10 and MRR for lexical alone, dense alone and hybrid, on the dev
//! split (every third query: what the ranking was tuned on) and the held-out split (the
//! rest), and asserts on both splits that hybrid beats lexical alone on every set (the
//! issue's first target). Its second target, Recall@5 ≥ 0.90 on paraphrased queries, is not
//! met: the test holds a regression floor instead (see `PARAPHRASE_R5_FLOOR`). Quality is
//! deterministic, so this is a plain test. `cargo test --test search_eval -- --nocapture` shows the table.
//!
//! A query's `relevant` list holds every tool that would do the job (e.g. the navigate
//! tools of three browser servers for "open example.com in the headless browser"): any one
//! of them answers it. Recall@k is the share of queries with a relevant tool among the first
//! k results; MRR is the mean of 1 / rank of the first relevant tool (0 beyond rank 50).
//! Word overlap is the share of a query's content words (stemmed, stopwords dropped) that
//! occur in its relevant tools' indexed text: the table shows it per set, and the test
//! keeps the paraphrase set below 0.35 on average.

use std::collections::{HashMap, HashSet};

use mcp_sidecar::catalog::Catalog;
use mcp_sidecar::catalog::search::encoder::StaticEncoder;
use mcp_sidecar::catalog::search::text::{Terms, words};
use mcp_sidecar::catalog::search::{Fusion, Mode, SearchIndex, Tuning};

#[path = "search_eval/data.rs"]
mod data;
use data::Query;

const DEPTH: usize = 50;
/// What hybrid search measured on held-out paraphrases when this was written (0.572), less
/// a margin; see the assertion for the issue's own target.
const PARAPHRASE_R5_FLOOR: f64 = 0.55;

/// The labelled queries, checked against the catalog.
fn queries(catalog: &Catalog) -> Vec<Query> {
    let queries = data::queries();
    for (i, q) in queries.iter().enumerate() {
        assert!(
            q.set == "keyword" || q.set == "paraphrase",
            "query {i}: unknown set {}",
            q.set
        );
        assert!(!q.relevant.is_empty(), "query {i} has no relevant tool");
        for name in &q.relevant {
            assert!(
                catalog.tools.lookup(name).is_some(),
                "query {i} ({}) names `{name}`, which is not in tools.json",
                q.query
            );
        }
    }
    queries
}

/// The lexical terms of a tool's indexed text: name, title, description, parameters.
fn tool_terms(catalog: &Catalog, name: &str) -> HashSet<String> {
    let terms = Terms::default();
    let entry = catalog.tools.lookup(name).expect("labelled tool exists");
    let def: serde_json::Value = serde_json::from_str(entry.json.get()).expect("JSON");
    let mut text = vec![name.to_string()];
    for key in ["title", "description"] {
        text.extend(def[key].as_str().map(str::to_string));
    }
    if let Some(properties) = def["inputSchema"]["properties"].as_object() {
        for (param, p) in properties {
            text.push(param.clone());
            text.extend(p["description"].as_str().map(str::to_string));
        }
    }
    text.iter()
        .flat_map(|t| words(t))
        .filter_map(|w| terms.term(&w))
        .collect()
}

/// Mean share of the queries' content terms found in their relevant tools' text.
fn overlap(catalog: &Catalog, queries: &[&Query]) -> f64 {
    let terms = Terms::default();
    let mut total = 0.0;
    for q in queries {
        let tool_text: HashSet<String> = q
            .relevant
            .iter()
            .flat_map(|r| tool_terms(catalog, r))
            .collect();
        let query_terms: HashSet<String> = words(&q.query)
            .iter()
            .filter_map(|w| terms.term(w))
            .collect();
        let shared = query_terms
            .iter()
            .filter(|t| tool_text.contains(*t))
            .count();
        total += shared as f64 / query_terms.len().max(1) as f64;
    }
    total / queries.len().max(1) as f64
}

/// The built-in encoder, or the file `SEARCH_EVAL_ENCODER` names (to compare variants made
/// by distill_encoder.py without rebuilding).
fn encoder() -> &'static StaticEncoder {
    static ENCODER: std::sync::OnceLock<&'static StaticEncoder> = std::sync::OnceLock::new();
    ENCODER.get_or_init(|| match std::env::var_os("SEARCH_EVAL_ENCODER") {
        None => StaticEncoder::builtin(),
        Some(path) => {
            let bytes = std::fs::read(&path).expect("SEARCH_EVAL_ENCODER file");
            let encoder = StaticEncoder::parse(Vec::leak(bytes)).expect("a valid encoder file");
            Box::leak(Box::new(encoder))
        }
    })
}

/// The shipped tuning, or a candidate's: `SEARCH_EVAL_FUSION` (`best` or `ceiling`) and
/// `SEARCH_EVAL_LEXICAL_WEIGHT` override the fusion (to report a candidate's figures
/// without rebuilding).
fn tuning() -> Tuning {
    let mut tuning = Tuning::default();
    if let Some(fusion) = std::env::var_os("SEARCH_EVAL_FUSION") {
        tuning.fusion = match fusion.to_str() {
            Some("best") => Fusion::BestScore,
            Some("ceiling") => Fusion::Ceiling,
            other => panic!("SEARCH_EVAL_FUSION: {other:?} is neither best nor ceiling"),
        };
    }
    if let Some(weight) = std::env::var_os("SEARCH_EVAL_LEXICAL_WEIGHT") {
        tuning.lexical_weight = weight
            .to_str()
            .and_then(|w| w.parse().ok())
            .expect("SEARCH_EVAL_LEXICAL_WEIGHT is a number");
    }
    tuning
}

fn index(catalog: &Catalog, tuning: Tuning) -> SearchIndex {
    let tools = catalog.tools.iter().map(|e| (e.exposed.as_str(), &*e.json));
    SearchIndex::build_with(tools, None, encoder(), tuning)
}

#[derive(Debug, Default, Clone, Copy)]
struct Scores {
    r1: f64,
    r5: f64,
    r10: f64,
    mrr: f64,
    n: usize,
}

fn evaluate(index: &SearchIndex, queries: &[&Query], mode: Mode) -> Scores {
    let mut s = Scores::default();
    // SEARCH_EVAL_MISSES=1 prints the hybrid ranker's misses (first relevant rank > 5).
    let show_misses = mode == Mode::Hybrid && std::env::var_os("SEARCH_EVAL_MISSES").is_some();
    for q in queries {
        let hits = index.search(&q.query, mode, DEPTH, |_| true);
        let names: Vec<&str> = hits.iter().map(|h| h.name).collect();
        let rank = names.iter().position(|n| q.relevant.iter().any(|r| r == n));
        if show_misses && rank.is_none_or(|r| r >= 5) {
            println!(
                "miss [{}] {:?} → rank {:?}; wanted {:?}; got {:?}",
                q.set,
                q.query,
                rank.map(|r| r + 1),
                q.relevant,
                &names[..3]
            );
        }
        let recall = |k: usize| {
            let found = names
                .iter()
                .take(k)
                .any(|n| q.relevant.iter().any(|r| r == n));
            f64::from(u8::from(found))
        };
        s.r1 += recall(1);
        s.r5 += recall(5);
        s.r10 += recall(10);
        if let Some(rank) = names.iter().position(|n| q.relevant.iter().any(|r| r == n)) {
            s.mrr += 1.0 / (rank + 1) as f64;
        }
    }
    let n = queries.len().max(1) as f64;
    Scores {
        r1: s.r1 / n,
        r5: s.r5 / n,
        r10: s.r10 / n,
        mrr: s.mrr / n,
        n: queries.len(),
    }
}

/// Every third query (by position in its set) is dev; the rest are held out.
fn split<'q>(queries: &'q [Query], set: &str) -> (Vec<&'q Query>, Vec<&'q Query>) {
    let in_set: Vec<&Query> = queries.iter().filter(|q| q.set == set).collect();
    let (mut dev, mut held_out) = (Vec::new(), Vec::new());
    for (i, q) in in_set.into_iter().enumerate() {
        if i % 3 == 0 {
            dev.push(q)
        } else {
            held_out.push(q)
        }
    }
    (dev, held_out)
}

const MODES: [(Mode, &str); 3] = [
    (Mode::Lexical, "lexical (BM25)"),
    (Mode::Dense, "dense (static MiniLM)"),
    (Mode::Hybrid, "hybrid"),
];

#[test]
fn quality_targets_hold_on_held_out_queries() {
    let catalog = data::catalog(&data::listings());
    let queries = queries(&catalog);
    let index = index(&catalog, tuning());
    println!(
        "evaluation: {} tools from {} targets, {} queries",
        catalog.tools.len(),
        catalog
            .tools
            .iter()
            .map(|e| e.target)
            .max()
            .map_or(0, |m| m + 1),
        queries.len()
    );
    for set in ["keyword", "paraphrase"] {
        let all: Vec<&Query> = queries.iter().filter(|q| q.set == set).collect();
        println!(
            "set {set}: {} queries, word overlap with the relevant tools' text {:.2}",
            all.len(),
            overlap(&catalog, &all)
        );
    }
    let paraphrases: Vec<&Query> = queries.iter().filter(|q| q.set == "paraphrase").collect();
    assert!(
        overlap(&catalog, &paraphrases) < 0.35,
        "paraphrased queries must share few words with their tools"
    );
    println!("| set | split | ranker | queries | R@1 | R@5 | R@10 | MRR |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut results: HashMap<(String, &str, Mode), Scores> = HashMap::new();
    for set in ["keyword", "paraphrase"] {
        let (dev, held_out) = split(&queries, set);
        assert!(
            held_out.len() >= 20,
            "set {set} needs more held-out queries"
        );
        for (split_name, qs) in [("dev", &dev), ("held-out", &held_out)] {
            for (mode, label) in MODES {
                let s = evaluate(&index, qs, mode);
                println!(
                    "| {set} | {split_name} | {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                    s.n, s.r1, s.r5, s.r10, s.mrr
                );
                results.insert((set.to_string(), split_name, mode), s);
            }
        }
    }
    for set in ["keyword", "paraphrase"] {
        for split_name in ["dev", "held-out"] {
            let lexical = results[&(set.to_string(), split_name, Mode::Lexical)];
            let hybrid = results[&(set.to_string(), split_name, Mode::Hybrid)];
            assert!(
                hybrid.mrr > lexical.mrr && hybrid.r5 >= lexical.r5,
                "{set}/{split_name}: hybrid {hybrid:?} does not beat lexical {lexical:?}"
            );
        }
    }
    // The target for this set is Recall@5 ≥ 0.90, and it is NOT met: hybrid reaches
    // about 0.57 here. The full all-MiniLM-L6-v2 transformer, which the built-in encoder is
    // distilled from, reaches 0.72 alone on the same queries (README "Tool search"), so the
    // gap is the queries' difficulty as much as the distillation. This floor only keeps the
    // measured quality from regressing.
    let paraphrase = results[&("paraphrase".to_string(), "held-out", Mode::Hybrid)];
    assert!(
        paraphrase.r5 >= PARAPHRASE_R5_FLOOR,
        "paraphrased held-out Recall@5 {:.3} fell below {PARAPHRASE_R5_FLOOR}",
        paraphrase.r5
    );
}

/// Re-tunes on the dev split: `cargo test --test search_eval -- --ignored --nocapture`.
/// Sweeps the dense field weights, the BM25 share and its normalization ([`Fusion`]), and
/// asserts that the shipped tuning is within 0.02 of the best one found (objective: hybrid
/// MRR + Recall@5 over the dev queries of both sets).
#[test]
#[ignore = "a parameter sweep (minutes); run when changing the ranking"]
fn tuning_is_near_the_best_on_the_dev_split() {
    let catalog = data::catalog(&data::listings());
    let queries = queries(&catalog);
    let dev: Vec<&Query> = ["keyword", "paraphrase"]
        .iter()
        .flat_map(|set| split(&queries, set).0)
        .collect();
    let objective = |index: &SearchIndex| {
        let s = evaluate(index, &dev, Mode::Hybrid);
        s.mrr + s.r5
    };
    let shipped = objective(&index(&catalog, Tuning::default()));
    let mut best = (shipped, Tuning::default());
    let grid = [
        (Fusion::BestScore, [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]),
        (Fusion::Ceiling, [0.1, 0.2, 0.3, 0.5, 0.7, 1.0]),
    ];
    for (fusion, lexical_weights) in grid {
        for name_weight in [1.0, 2.0, 3.0] {
            for description_weight in [0.5, 1.0] {
                for param_weight in [0.0, 0.15, 0.3, 0.6] {
                    for lexical_weight in lexical_weights {
                        let tuning = Tuning {
                            dense_fields: [
                                name_weight,
                                0.5,
                                description_weight,
                                param_weight,
                                param_weight,
                            ],
                            lexical_weight,
                            fusion,
                            ..Tuning::default()
                        };
                        let index = index(&catalog, tuning);
                        let score = objective(&index);
                        if score > best.0 {
                            best = (score, tuning);
                            let mut line = format!("{score:.4} {tuning:?}");
                            for set in ["keyword", "paraphrase"] {
                                let d = split(&queries, set).0;
                                let h = evaluate(&index, &d, Mode::Hybrid);
                                line += &format!(" | {set} R5 {:.3} MRR {:.3}", h.r5, h.mrr);
                            }
                            println!("{line}");
                        }
                    }
                }
            }
        }
    }
    println!(
        "shipped: {shipped:.4}; best on dev: {:.4} with {:?}",
        best.0, best.1
    );
    assert!(
        best.0 - shipped <= 0.02,
        "the shipped tuning is {:.4} below the best on dev ({:?})",
        best.0 - shipped,
        best.1
    );
}
