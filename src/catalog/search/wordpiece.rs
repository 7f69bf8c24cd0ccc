//! WordPiece: one (lowercase, accent-free) word → vocabulary ids, greedy longest match
//! first, continuation pieces prefixed `##`, a word with no split → `[UNK]`; exactly what
//! BERT's tokenizer does after its basic splitting (which [`super::text`] does here).
//!
//! Hand-written rather than the `tokenizers` crate: that crate brings regex engines,
//! `onig`, rayon and serde models for every tokenizer family (megabytes of code and a long
//! build), while this needs one hash lookup per candidate piece over a fixed vocabulary.

use std::collections::HashMap;

/// BERT does not split words longer than this; they become `[UNK]`.
const MAX_WORD_CHARS: usize = 100;

pub struct WordPiece {
    ids: HashMap<Box<str>, u32>,
    unk: u32,
}

impl WordPiece {
    /// `vocab`: tokens in id order, one per line (BERT's vocab.txt).
    pub fn new(vocab: &str) -> Result<Self, String> {
        let ids: HashMap<Box<str>, u32> = vocab
            .split('\n')
            .enumerate()
            .map(|(i, t)| (Box::from(t), i as u32))
            .collect();
        let unk = *ids
            .get("[UNK]")
            .ok_or("the vocabulary has no [UNK] token")?;
        Ok(Self { ids, unk })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn unk(&self) -> u32 {
        self.unk
    }

    /// Appends the ids of `word`'s pieces to `out`.
    pub fn pieces(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.is_empty() {
            return;
        }
        if chars.len() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut candidate = String::with_capacity(word.len() + 2);
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let from = chars[start].0;
                let to = chars.get(end).map_or(word.len(), |c| c.0);
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[from..to]);
                if let Some(&id) = self.ids.get(candidate.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => out.push(id),
                None => {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_longest_match_with_continuations() {
        let wp =
            WordPiece::new("[PAD]\n[UNK]\nget\n##fi\n##le\nfile\n##s\nun\n##aff\n##able").unwrap();
        let ids = |w: &str| {
            let mut out = Vec::new();
            wp.pieces(w, &mut out);
            out
        };
        assert_eq!(ids("file"), [5]);
        assert_eq!(ids("files"), [5, 6]);
        assert_eq!(ids("unaffable"), [7, 8, 9]);
        assert_eq!(ids("getfile"), [2, 3, 4], "## pieces only after the first");
        assert_eq!(ids("xyz"), [1]);
        assert_eq!(
            ids("filex"),
            [1],
            "an unsplittable tail makes the whole word [UNK]"
        );
        assert_eq!(ids(&"a".repeat(101)), [1]);
    }
}
