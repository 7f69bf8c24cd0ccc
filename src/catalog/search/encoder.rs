//! The built-in dense encoder: a static embedding table distilled from all-MiniLM-L6-v2
//! and fitted to its sentence embeddings over a corpus (see `model/README.md`,
//! `tests/search_eval/distill_encoder.py` and `tokenlearn_encoder.py`), compiled into the
//! binary. A text's vector is the sum of its WordPiece tokens' rows, L2-normalized; rows
//! already carry the tokens' smooth-inverse-frequency weights. No model runs and nothing is
//! fetched at run time: embedding a tool costs a hash lookup and a 256-wide add per token.
//!
//! File format (little-endian): `b"MCPSE001"`, u32 vocab_len, u32 dim, f32 scale[vocab_len],
//! i8 rows[vocab_len × dim], u32 vocab_bytes, vocab (tokens joined by `\n`, in id order).
//! Rows stay in the binary's read-only data (paged in on use); only the vocabulary map and
//! the scales are built on the heap, once.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::wordpiece::WordPiece;

const MAGIC: &[u8; 8] = b"MCPSE001";

static BUILTIN_BYTES: &[u8] = include_bytes!("model/minilm-l6-static.bin");

pub struct StaticEncoder {
    wordpiece: WordPiece,
    dim: usize,
    scale: Vec<f32>,
    rows: &'static [i8],
}

impl std::fmt::Debug for StaticEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StaticEncoder({} tokens × {})",
            self.scale.len(),
            self.dim
        )
    }
}

impl StaticEncoder {
    /// The encoder compiled into the binary (parsed on first use).
    pub fn builtin() -> &'static StaticEncoder {
        static ENCODER: OnceLock<StaticEncoder> = OnceLock::new();
        ENCODER.get_or_init(|| {
            StaticEncoder::parse(BUILTIN_BYTES).expect("the built-in encoder file is valid")
        })
    }

    pub fn parse(bytes: &'static [u8]) -> Result<Self, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&'static [u8], String> {
            let end = at.checked_add(n).filter(|&e| e <= bytes.len());
            let end = end.ok_or_else(|| format!("encoder file truncated at byte {at}"))?;
            let slice = &bytes[at..end];
            at = end;
            Ok(slice)
        };
        if take(8)? != MAGIC {
            return Err("not an encoder file (bad magic)".into());
        }
        let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let vocab_len = u32_at(take(4)?);
        let dim = u32_at(take(4)?);
        if dim == 0 || dim > 4096 || vocab_len == 0 {
            return Err(format!("implausible encoder shape {vocab_len} × {dim}"));
        }
        let scale: Vec<f32> = take(vocab_len * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let raw = take(vocab_len * dim)?;
        // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid.
        let rows = unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<i8>(), raw.len()) };
        let vocab_bytes = u32_at(take(4)?);
        let vocab = std::str::from_utf8(take(vocab_bytes)?)
            .map_err(|e| format!("encoder vocabulary is not UTF-8: {e}"))?;
        let wordpiece = WordPiece::new(vocab)?;
        if wordpiece.len() != vocab_len {
            return Err(format!(
                "encoder vocabulary has {} tokens, the table {vocab_len} rows",
                wordpiece.len()
            ));
        }
        Ok(Self {
            wordpiece,
            dim,
            scale,
            rows,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Adds the rows of `word`'s tokens to `acc` (length `dim`). Unknown words add nothing.
    pub fn add_word(&self, word: &str, acc: &mut [f32], ids: &mut Vec<u32>) {
        ids.clear();
        self.wordpiece.pieces(word, ids);
        for &id in ids.iter() {
            if id == self.wordpiece.unk() {
                continue;
            }
            let id = id as usize;
            let scale = self.scale[id];
            let row = &self.rows[id * self.dim..(id + 1) * self.dim];
            for (a, &r) in acc.iter_mut().zip(row) {
                *a += scale * f32::from(r);
            }
        }
    }

    /// The normalized embedding of a sequence of words (zero for no known word).
    pub fn embed<'w>(&self, words: impl IntoIterator<Item = &'w str>) -> Vec<f32> {
        let mut acc = vec![0.0f32; self.dim];
        let mut ids = Vec::new();
        for word in words {
            self.add_word(word, &mut acc, &mut ids);
        }
        normalize(&mut acc);
        acc
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A cache of word vectors for one index build: tool texts repeat words a lot, so each
/// distinct word is split and summed once.
pub struct WordCache<'e> {
    encoder: &'e StaticEncoder,
    vectors: HashMap<String, Box<[f32]>>,
    ids: Vec<u32>,
}

impl<'e> WordCache<'e> {
    pub fn new(encoder: &'e StaticEncoder) -> Self {
        Self {
            encoder,
            vectors: HashMap::new(),
            ids: Vec::new(),
        }
    }

    pub fn add(&mut self, word: &str, acc: &mut [f32]) {
        if !self.vectors.contains_key(word) {
            let mut v = vec![0.0f32; self.encoder.dim].into_boxed_slice();
            self.encoder.add_word(word, &mut v, &mut self.ids);
            self.vectors.insert(word.to_string(), v);
        }
        for (a, w) in acc.iter_mut().zip(self.vectors[word].iter()) {
            *a += w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn builtin_encoder_loads_and_relates_meanings() {
        let e = StaticEncoder::builtin();
        assert!(e.dim() >= 64);
        let v = |s: &str| {
            e.embed(
                crate::catalog::search::text::words(s)
                    .iter()
                    .map(String::as_str),
            )
        };
        let weather = v("weather forecast for a city");
        let rain = v("will it rain tomorrow");
        let git = v("commit staged changes to the repository");
        assert!((cosine(&weather, &weather) - 1.0).abs() < 1e-4);
        assert!(
            cosine(&weather, &rain) > cosine(&weather, &git),
            "rain is closer to weather than git is"
        );
        assert!(v("").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(
            StaticEncoder::parse(b"NOTMAGIC")
                .unwrap_err()
                .contains("magic")
        );
        let truncated: &'static [u8] = b"MCPSE001\x02\x00\x00\x00\x04\x00\x00\x00";
        assert!(
            StaticEncoder::parse(truncated)
                .unwrap_err()
                .contains("truncated")
        );
    }
}
