//! The lexical scorer: Okapi BM25 over an inverted index, with per-field weights folded
//! into term frequencies (a BM25F simplification: a word in the tool's name counts more
//! than one in a parameter description).
//!
//! Hand-written (about a hundred lines) rather than a crate: the search crates (tantivy)
//! bring a storage engine, and the small `bm25` crate brings its own tokenizer and
//! embedder; the sidecar needs only postings and the formula, over terms it already has.

use std::collections::HashMap;

/// The usual defaults; the evaluation (tests/search_eval.rs) found no better pair on its
/// dev split.
pub const K1: f32 = 1.2;
pub const B: f32 = 0.75;

#[derive(Default)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, f32)>>,
    doc_len: Vec<f32>,
    avg_len: f32,
}

/// One document as weighted terms (a term may repeat; weights add up).
pub type WeightedTerms = Vec<(String, f32)>;

impl Bm25 {
    pub fn build(docs: &[WeightedTerms]) -> Self {
        let mut postings: HashMap<String, Vec<(u32, f32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        let mut tf: HashMap<&str, f32> = HashMap::new();
        for (d, terms) in docs.iter().enumerate() {
            tf.clear();
            let mut len = 0.0;
            for (term, weight) in terms {
                *tf.entry(term.as_str()).or_default() += weight;
                len += weight;
            }
            doc_len.push(len);
            for (term, f) in tf.drain() {
                postings
                    .entry(term.to_string())
                    .or_default()
                    .push((d as u32, f));
            }
        }
        let avg_len = if docs.is_empty() {
            1.0
        } else {
            (doc_len.iter().sum::<f32>() / docs.len() as f32).max(1.0)
        };
        Self {
            postings,
            doc_len,
            avg_len,
        }
    }

    /// The highest score any document could get for `terms`: every term at its saturated
    /// weight, terms absent from the index at the idf of a term no document has.
    pub fn ceiling(&self, terms: &[String]) -> f32 {
        let n = self.doc_len.len() as f32;
        terms
            .iter()
            .map(|term| {
                let df = self.postings.get(term).map_or(0.0, |l| l.len() as f32);
                ((n - df + 0.5) / (df + 0.5) + 1.0).ln() * (K1 + 1.0)
            })
            .sum()
    }

    /// Adds each document's score for `terms` (deduplicated by the caller) to `scores`.
    pub fn score(&self, terms: &[String], scores: &mut [f32]) {
        let n = self.doc_len.len() as f32;
        for term in terms {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let df = list.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in list {
                let norm = K1 * (1.0 - B + B * self.doc_len[doc as usize] / self.avg_len);
                scores[doc as usize] += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(words: &[&str]) -> WeightedTerms {
        words.iter().map(|w| (w.to_string(), 1.0)).collect()
    }

    #[test]
    fn rarer_and_more_frequent_terms_score_higher() {
        let index = Bm25::build(&[
            doc(&["list", "issue"]),
            doc(&["list", "pull", "request"]),
            doc(&["create", "issue", "issue"]),
        ]);
        let mut s = vec![0.0; 3];
        index.score(&["issue".into()], &mut s);
        assert_eq!(s[1], 0.0);
        assert!(s[2] > s[0], "two occurrences beat one: {s:?}");
        let mut s = vec![0.0; 3];
        index.score(&["pull".into(), "list".into()], &mut s);
        assert!(s[1] > s[0] && s[0] > 0.0, "{s:?}");
        let mut s = vec![0.0; 3];
        index.score(&["absent".into()], &mut s);
        assert_eq!(s, [0.0; 3]);
    }

    #[test]
    fn the_ceiling_bounds_every_score_and_counts_unmatched_terms() {
        let index = Bm25::build(&[doc(&["pull"]), doc(&["list", "pull", "request"])]);
        let terms: Vec<String> = vec!["pull".into(), "request".into()];
        let mut s = vec![0.0; 2];
        index.score(&terms, &mut s);
        let ceiling = index.ceiling(&terms);
        assert!(
            s.iter().all(|&x| x > 0.0 && x < ceiling),
            "{s:?} vs {ceiling}"
        );
        let with_absent: Vec<String> = vec!["pull".into(), "request".into(), "absent".into()];
        assert!(
            index.ceiling(&with_absent) > ceiling,
            "an unmatched word raises the ceiling"
        );
        assert_eq!(index.ceiling(&[]), 0.0);
    }
}
