//! Tool search over a catalog snapshot: a lexical scorer (BM25) fused with a dense encoder
//! that runs in-process (a static embedding table, [`encoder`]), no network and no model
//! download.
//!
//! Invariants:
//! - An index belongs to one published [`super::Catalog`] and is built with it (see
//!   `store.rs`), so every name it returns is in that snapshot's tools.
//! - A rebuild re-embeds only tools whose indexed text changed: vectors are carried over
//!   from the previous snapshot's index by a fingerprint of that text. A restored catalog
//!   gets its index the same way as a synced one, when it is published.
//! - Search never decides visibility: the caller passes a filter, and a tool the filter
//!   rejects is never returned, whatever its score.
//!
//! What is indexed, per tool: its exposed name split into words (the target prefix
//! included: it names the server), title, description, and the names and descriptions of
//! its input parameters. Fields are weighted ([`Tuning`]); the weights, BM25's parameters
//! and the fusion were tuned on the dev split of the evaluation set and reported on its
//! held-out split (tests/search_eval.rs, README "Tool search").

pub mod bm25;
pub mod encoder;
pub mod text;
pub mod wordpiece;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde::Deserialize;
use serde_json::value::RawValue;

use self::bm25::{Bm25, WeightedTerms};
use self::encoder::{StaticEncoder, WordCache, normalize};
use self::text::Terms;

/// Which rankers answer a query (the evaluation compares all three; the sidecar uses
/// `Hybrid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Lexical,
    Dense,
    Hybrid,
}

/// Field weights and fusion parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// BM25 term weight of a word in the tool's name, title, description, parameter names
    /// and parameter descriptions.
    pub lexical_fields: [f32; 5],
    /// Weight of each field's normalized vector in the tool's dense vector (same order).
    pub dense_fields: [f32; 5],
    /// Hybrid score = cosine + `lexical_weight` × BM25 / (the query's best BM25).
    pub lexical_weight: f32,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            lexical_fields: [3.0, 2.0, 1.0, 1.0, 0.5],
            dense_fields: [1.0, 0.5, 1.0, 0.3, 0.3],
            lexical_weight: 0.3,
        }
    }
}

/// The fields of a tool definition the index reads (everything else is skipped unparsed).
#[derive(Deserialize, Default)]
struct ToolText<'a> {
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "inputSchema")]
    input_schema: Option<SchemaText<'a>>,
}

#[derive(Deserialize, Default)]
struct SchemaText<'a> {
    #[serde(borrow, default)]
    properties: Option<HashMap<Cow<'a, str>, PropertyText<'a>>>,
}

#[derive(Deserialize, Default)]
struct PropertyText<'a> {
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
}

/// A tool's indexed text as words, by field.
struct Fields {
    by_field: [Vec<String>; 5],
}

impl Fields {
    fn of(name: &str, definition: &RawValue) -> Self {
        // A definition that does not parse (never the case for catalog entries) is indexed
        // by its name alone.
        let tool: ToolText<'_> = serde_json::from_str(definition.get()).unwrap_or_default();
        let mut by_field: [Vec<String>; 5] = Default::default();
        text::words_into(name, &mut by_field[0]);
        if let Some(title) = &tool.title {
            text::words_into(title, &mut by_field[1]);
        }
        if let Some(description) = &tool.description {
            text::words_into(description, &mut by_field[2]);
        }
        if let Some(properties) = tool.input_schema.and_then(|s| s.properties) {
            // Sorted: the fingerprint must not depend on map order.
            let mut properties: Vec<_> = properties.into_iter().collect();
            properties.sort_by(|a, b| a.0.cmp(&b.0));
            for (param, property) in properties {
                text::words_into(&param, &mut by_field[3]);
                if let Some(d) = &property.description {
                    text::words_into(d, &mut by_field[4]);
                }
            }
        }
        Self { by_field }
    }

    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.by_field.hash(&mut h);
        h.finish()
    }
}

/// A search index over one catalog snapshot's tools.
pub struct SearchIndex {
    names: Vec<Box<str>>,
    fingerprints: HashMap<u64, u32>,
    bm25: Bm25,
    /// `names.len() × dim`, row-major, each row unit length (or zero).
    vectors: Vec<f32>,
    dim: usize,
    tuning: Tuning,
    encoder: &'static StaticEncoder,
    /// How many tools this build embedded (the rest were carried over).
    embedded: usize,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SearchIndex({} tools)", self.names.len())
    }
}

/// One result: the tool's exposed name and its fused score (not shown to clients).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a> {
    pub name: &'a str,
    pub score: f32,
}

impl SearchIndex {
    /// Indexes `tools` (exposed name, definition) with the built-in encoder, reusing the
    /// vectors of `previous` for tools whose indexed text did not change.
    pub fn build<'a>(
        tools: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
        previous: Option<&SearchIndex>,
    ) -> Self {
        Self::build_with(tools, previous, StaticEncoder::builtin(), Tuning::default())
    }

    pub fn build_with<'a>(
        tools: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
        previous: Option<&SearchIndex>,
        encoder: &'static StaticEncoder,
        tuning: Tuning,
    ) -> Self {
        let previous = previous.filter(|p| {
            p.tuning == tuning && std::ptr::eq(p.encoder, encoder) && p.dim == encoder.dim()
        });
        let terms = Terms::default();
        let mut cache = WordCache::new(encoder);
        let dim = encoder.dim();
        let mut names = Vec::new();
        let mut fingerprints = HashMap::new();
        let mut lexical_docs: Vec<WeightedTerms> = Vec::new();
        let mut vectors = Vec::new();
        let mut embedded = 0;
        let mut field_vector = vec![0.0f32; dim];
        for (name, definition) in tools {
            let fields = Fields::of(name, definition);
            let fingerprint = fields.fingerprint();
            let doc = names.len() as u32;
            let mut lexical = WeightedTerms::new();
            for (words, &weight) in fields.by_field.iter().zip(&tuning.lexical_fields) {
                lexical.extend(
                    words
                        .iter()
                        .filter_map(|w| terms.term(w))
                        .map(|t| (t, weight)),
                );
            }
            lexical_docs.push(lexical);
            let reused = previous.and_then(|p| {
                let &i = p.fingerprints.get(&fingerprint)?;
                Some(&p.vectors[i as usize * dim..(i as usize + 1) * dim])
            });
            match reused {
                Some(row) => vectors.extend_from_slice(row),
                None => {
                    embedded += 1;
                    let start = vectors.len();
                    vectors.resize(start + dim, 0.0);
                    for (words, &weight) in fields.by_field.iter().zip(&tuning.dense_fields) {
                        if weight == 0.0 || words.is_empty() {
                            continue;
                        }
                        field_vector.iter_mut().for_each(|x| *x = 0.0);
                        for w in words {
                            cache.add(w, &mut field_vector);
                        }
                        normalize(&mut field_vector);
                        for (v, f) in vectors[start..].iter_mut().zip(&field_vector) {
                            *v += weight * f;
                        }
                    }
                    normalize(&mut vectors[start..]);
                }
            }
            fingerprints.insert(fingerprint, doc);
            names.push(Box::from(name));
        }
        Self {
            names,
            fingerprints,
            bm25: Bm25::build(&lexical_docs),
            vectors,
            dim,
            tuning,
            encoder,
            embedded,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// How many tools the build that made this index had to embed (not carried over).
    pub fn embedded(&self) -> usize {
        self.embedded
    }

    /// The `limit` best tools for `query` among those `visible` admits, best first.
    pub fn search(
        &self,
        query: &str,
        mode: Mode,
        limit: usize,
        visible: impl Fn(&str) -> bool,
    ) -> Vec<Hit<'_>> {
        let n = self.names.len();
        let words = text::words(query);
        let mut scores = vec![0.0f32; n];
        if mode != Mode::Dense {
            let terms = Terms::default();
            let mut query_terms: Vec<String> = words.iter().filter_map(|w| terms.term(w)).collect();
            query_terms.sort();
            query_terms.dedup();
            self.bm25.score(&query_terms, &mut scores);
        }
        if mode != Mode::Lexical {
            let q = self.encoder.embed(words.iter().map(String::as_str));
            let best_lexical = scores
                .iter()
                .zip(&self.names)
                .filter(|(_, name)| visible(name))
                .map(|(s, _)| *s)
                .fold(0.0f32, f32::max);
            let lexical_scale = if mode == Mode::Hybrid && best_lexical > 0.0 {
                self.tuning.lexical_weight / best_lexical
            } else {
                0.0
            };
            for (score, row) in scores.iter_mut().zip(self.vectors.chunks_exact(self.dim)) {
                *score = *score * lexical_scale + dot(&q, row);
            }
        }
        let mut hits: Vec<(usize, f32)> = scores
            .into_iter()
            .enumerate()
            .filter(|(i, _)| visible(&self.names[*i]))
            .collect();
        let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if hits.len() > limit && limit > 0 {
            hits.select_nth_unstable_by(limit - 1, by_score);
            hits.truncate(limit);
        }
        hits.truncate(limit);
        hits.sort_by(by_score);
        hits.into_iter()
            .map(|(i, score)| Hit {
                name: &self.names[i],
                score,
            })
            .collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorize without fast-math.
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: serde_json::Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    fn tools() -> Vec<(String, Box<RawValue>)> {
        [
            ("weather___get_forecast", "Get the weather forecast for a location", "city", "City name"),
            ("github___create_issue", "Open a new issue in a GitHub repository", "title", "Issue title"),
            ("files___read_file", "Read the complete contents of a file from disk", "path", "Path to the file"),
            ("slack___post_message", "Send a message to a Slack channel", "channel_id", "The channel"),
        ]
        .into_iter()
        .map(|(name, description, param, param_description)| {
            let def = serde_json::json!({"name": name, "description": description,
                "inputSchema": {"type": "object", "properties": {param: {"type": "string", "description": param_description}}}});
            (name.to_string(), raw(def))
        })
        .collect()
    }

    fn index(tools: &[(String, Box<RawValue>)], previous: Option<&SearchIndex>) -> SearchIndex {
        SearchIndex::build(
            tools.iter().map(|(n, d)| (n.as_str(), d.as_ref())),
            previous,
        )
    }

    #[test]
    fn every_mode_finds_the_obvious_tool() {
        let tools = tools();
        let ix = index(&tools, None);
        for mode in [Mode::Lexical, Mode::Dense, Mode::Hybrid] {
            let hits = ix.search("read a file's contents", mode, 2, |_| true);
            assert_eq!(hits[0].name, "files___read_file", "{mode:?}: {hits:?}");
            assert_eq!(hits.len(), 2);
        }
        let hits = ix.search("will it rain in Paris tomorrow", Mode::Hybrid, 1, |_| true);
        assert_eq!(
            hits[0].name, "weather___get_forecast",
            "a paraphrase with no shared word"
        );
    }

    #[test]
    fn hidden_tools_are_never_returned() {
        let tools = tools();
        let ix = index(&tools, None);
        let hits = ix.search("create a github issue", Mode::Hybrid, 10, |n| {
            !n.starts_with("github")
        });
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|h| !h.name.starts_with("github")));
        assert!(
            ix.search("anything", Mode::Hybrid, 10, |_| false)
                .is_empty()
        );
    }

    #[test]
    fn rebuilds_embed_only_changed_tools() {
        let mut tools = tools();
        let first = index(&tools, None);
        assert_eq!(first.embedded(), 4);
        tools[2].1 = raw(
            serde_json::json!({"name": "files___read_file", "description": "Read a text file"}),
        );
        tools.push((
            "time___now".into(),
            raw(serde_json::json!({"description": "Current time"})),
        ));
        let second = index(&tools, Some(&first));
        assert_eq!(second.embedded(), 2, "one changed tool and one new tool");
        let fresh = index(&tools, None);
        assert_eq!(
            second.vectors, fresh.vectors,
            "carried-over vectors equal recomputed ones"
        );
        assert_eq!(
            second.search("current time", Mode::Hybrid, 1, |_| true)[0].name,
            "time___now"
        );
    }

    #[test]
    fn dot_matches_the_naive_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }
}
