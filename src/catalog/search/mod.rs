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
pub mod remote;
pub mod text;
pub mod wordpiece;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use serde::Deserialize;
use serde_json::value::RawValue;

use self::bm25::{Bm25, WeightedTerms};
use self::encoder::{StaticEncoder, WordCache, normalize};
use self::remote::RemoteVectors;
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
    /// Hybrid score = cosine + `lexical_weight` × BM25 / the [`Fusion`]'s norm.
    pub lexical_weight: f32,
    pub fusion: Fusion,
}

/// What hybrid search divides BM25 by before adding it to the cosine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// The best BM25 among the visible tools: the top lexical match always gets the full
    /// weight, however few of the query's words it shares (the ranking shipped first).
    BestScore,
    /// The most BM25 could give the query's terms (each at its saturated weight; terms no
    /// tool has at the highest idf): a tool gets the full weight only when it matches every
    /// word. A paraphrase that shares one common word with a wrong tool ("add" in "what do
    /// 17 and 25 add up to") no longer hands that tool the whole lexical bonus, while a
    /// query in the tools' own words still does. Chosen on the dev split (README).
    Ceiling,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            lexical_fields: [3.0, 2.0, 1.0, 1.0, 0.5],
            dense_fields: [1.0, 0.5, 1.0, 0.0, 0.0],
            lexical_weight: 0.5,
            fusion: Fusion::Ceiling,
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
    /// Each tool's text fingerprint, in `names` order.
    doc_fingerprints: Vec<u64>,
    /// Vectors from the remote embedder, once they are in (see [`remote`]).
    remote: ArcSwapOption<RemoteVectors>,
}

/// What a remote embedder still has to embed for an index: (row, text) pairs, and the rows
/// whose vectors carry over from the previous index.
pub struct RemoteWork {
    pub texts: Vec<(usize, String)>,
    pub carried: Vec<(usize, Vec<f32>)>,
}

/// A tool's text as sent to a remote embedder: its name in words, title, description and
/// parameters, as a sentence-embedding model reads best (whole sentences, not terms).
pub fn remote_text(name: &str, definition: &RawValue) -> String {
    let tool: ToolText<'_> = serde_json::from_str(definition.get()).unwrap_or_default();
    let mut out = text::words(name).join(" ");
    for part in [&tool.title, &tool.description].into_iter().flatten() {
        out.push_str(". ");
        out.push_str(part.trim());
    }
    if let Some(properties) = tool.input_schema.and_then(|s| s.properties) {
        let mut properties: Vec<_> = properties.into_iter().collect();
        properties.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str(". Parameters: ");
        for (i, (param, property)) in properties.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(param);
            if let Some(d) = &property.description {
                out.push_str(": ");
                out.push_str(d.trim());
            }
        }
    }
    out
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
        let mut doc_fingerprints = Vec::new();
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
            doc_fingerprints.push(fingerprint);
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
            doc_fingerprints,
            remote: ArcSwapOption::empty(),
        }
    }

    /// What embedder `identity` still has to embed for this index, whose tools are `tools`
    /// (the same, in the same order, as it was built from): vectors of tools whose text is
    /// unchanged carry over from `previous`'s remote vectors of the same embedder.
    pub fn remote_work<'a>(
        &self,
        tools: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
        previous: Option<&SearchIndex>,
        identity: &str,
    ) -> RemoteWork {
        let previous = previous.and_then(|p| {
            let remote = p.remote.load_full()?;
            (*remote.identity == *identity).then_some((p, remote))
        });
        let mut work = RemoteWork {
            texts: Vec::new(),
            carried: Vec::new(),
        };
        for (row, (name, definition)) in tools.into_iter().enumerate() {
            let carried = previous.as_ref().and_then(|(p, remote)| {
                let &i = p.fingerprints.get(self.doc_fingerprints.get(row)?)?;
                let i = i as usize;
                Some(remote.vectors[i * remote.dim..(i + 1) * remote.dim].to_vec())
            });
            match carried {
                Some(v) => work.carried.push((row, v)),
                None => work.texts.push((row, remote_text(name, definition))),
            }
        }
        work
    }

    /// Makes `vectors` (one row per tool, this index's order) the dense half of searches
    /// that come with a query vector from the same embedder.
    pub fn attach_remote(&self, vectors: RemoteVectors) {
        if vectors.vectors.len() == vectors.dim * self.names.len() {
            self.remote.store(Some(Arc::new(vectors)));
        }
    }

    /// The remote embedder whose vectors this index has, if any.
    pub fn remote_identity(&self) -> Option<Arc<str>> {
        self.remote.load().as_ref().map(|r| r.identity.clone())
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
        self.search_with(query, None, mode, limit, visible)
    }

    /// [`SearchIndex::search`], with the query's vector from the remote embedder when it
    /// has one: the dense half then compares it with the tools' remote vectors. Without one
    /// (or when its size does not match), the built-in encoder answers.
    pub fn search_with(
        &self,
        query: &str,
        remote_query: Option<&[f32]>,
        mode: Mode,
        limit: usize,
        visible: impl Fn(&str) -> bool,
    ) -> Vec<Hit<'_>> {
        let remote = self.remote.load_full();
        let remote = remote
            .as_deref()
            .zip(remote_query)
            .filter(|(r, q)| r.dim == q.len());
        let n = self.names.len();
        let words = text::words(query);
        let mut scores = vec![0.0f32; n];
        let mut ceiling = 0.0f32;
        if mode != Mode::Dense {
            let terms = Terms::default();
            let mut query_terms: Vec<String> = words.iter().filter_map(|w| terms.term(w)).collect();
            query_terms.sort();
            query_terms.dedup();
            self.bm25.score(&query_terms, &mut scores);
            ceiling = self.bm25.ceiling(&query_terms);
        }
        if mode != Mode::Lexical {
            let builtin_query;
            let (q, vectors, dim): (&[f32], &[f32], usize) = match remote {
                Some((r, q)) => (q, &r.vectors, r.dim),
                None => {
                    builtin_query = self.encoder.embed(words.iter().map(String::as_str));
                    (&builtin_query, &self.vectors, self.dim)
                }
            };
            let best_lexical = scores
                .iter()
                .zip(&self.names)
                .filter(|(_, name)| visible(name))
                .map(|(s, _)| *s)
                .fold(0.0f32, f32::max);
            let norm = match self.tuning.fusion {
                Fusion::Ceiling => ceiling,
                Fusion::BestScore => best_lexical,
            };
            let lexical_scale = if mode == Mode::Hybrid && norm > 0.0 {
                self.tuning.lexical_weight / norm
            } else {
                0.0
            };
            for (score, row) in scores.iter_mut().zip(vectors.chunks_exact(dim)) {
                *score = *score * lexical_scale + dot(q, row);
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
    fn remote_vectors_rank_when_the_query_has_one_and_carry_over() {
        let tools = tools();
        let ix = index(&tools, None);
        let defs = || tools.iter().map(|(n, d)| (n.as_str(), d.as_ref()));
        let work = ix.remote_work(defs(), None, "fake");
        assert_eq!((work.texts.len(), work.carried.len()), (4, 0));
        assert!(
            work.texts[2]
                .1
                .starts_with("files read file. Read the complete")
        );
        assert!(
            work.texts[2]
                .1
                .ends_with("Parameters: path: Path to the file")
        );
        // A remote that puts every tool on its own axis; the query points at slack's.
        let mut vectors = vec![0.0; 4 * 4];
        for row in 0..4 {
            vectors[row * 4 + row] = 1.0;
        }
        ix.attach_remote(RemoteVectors {
            identity: "fake".into(),
            dim: 4,
            vectors,
        });
        assert_eq!(ix.remote_identity().as_deref(), Some("fake"));
        let query = [0.0, 0.0, 0.0, 1.0];
        let hits = ix.search_with("read a file", Some(&query), Mode::Dense, 1, |_| true);
        assert_eq!(
            hits[0].name, "slack___post_message",
            "the remote vectors decide"
        );
        let wrong_size = [1.0, 0.0];
        let hits = ix.search_with("read a file", Some(&wrong_size), Mode::Dense, 1, |_| true);
        assert_eq!(
            hits[0].name, "files___read_file",
            "built-in when sizes differ"
        );
        assert_eq!(
            ix.search("read a file", Mode::Dense, 1, |_| true)[0].name,
            "files___read_file",
            "built-in without a query vector"
        );
        // A rebuild with one changed tool: three vectors carry over, one text to embed.
        let mut changed = tools.clone();
        changed[0].1 = raw(serde_json::json!({"description": "Weather alerts"}));
        let next = index(&changed, Some(&ix));
        let defs = changed.iter().map(|(n, d)| (n.as_str(), d.as_ref()));
        let work = next.remote_work(defs, Some(&ix), "fake");
        assert_eq!(work.texts.len(), 1);
        assert_eq!(work.texts[0].0, 0);
        assert_eq!(
            work.carried.iter().map(|c| c.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(work.carried[2].1, [0.0, 0.0, 0.0, 1.0]);
        let defs = changed.iter().map(|(n, d)| (n.as_str(), d.as_ref()));
        let other = next.remote_work(defs, Some(&ix), "another model");
        assert_eq!(
            other.texts.len(),
            4,
            "another embedder's vectors never carry over"
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
