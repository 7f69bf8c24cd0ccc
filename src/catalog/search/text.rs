//! Text → words, the same way for tool definitions and queries.
//!
//! Tool names are identifiers (`get_file_contents`, `listIssues`, `k8s-pod-logs`), so words
//! are split at every non-alphanumeric character and at case changes (`listIssues` → list,
//! issues; `HTTPServer` → http, server); letters and digits stay together (`s3`, `ec2`,
//! `v2`). Accents are stripped (NFD, combining marks dropped) and everything is lowercased,
//! as the encoder's uncased WordPiece vocabulary expects. CJK characters are words of one
//! character each, also as BERT's tokenizer treats them.
//!
//! The lexical scorer then stems each word (Snowball English, `rust-stemmers`: a small
//! crate with no dependencies beyond serde, used by tantivy) and drops a short list of
//! function words; the dense encoder takes the words unstemmed.

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Appends the words of `text` to `out`, lowercased.
pub fn words_into(text: &str, out: &mut Vec<String>) {
    let mut current = String::new();
    // The previous character's class, to split at lower→upper and at the last capital of
    // an acronym followed by lowercase (`HTTPServer` → HTTP | Server).
    let mut prev: Option<char> = None;
    let chars: Vec<char> = text.nfd().filter(|c| !is_combining_mark(*c)).collect();
    for (i, &c) in chars.iter().enumerate() {
        if is_cjk(c) {
            flush(&mut current, out);
            out.push(c.to_string());
            prev = None;
            continue;
        }
        if !c.is_alphanumeric() {
            flush(&mut current, out);
            prev = None;
            continue;
        }
        if let Some(p) = prev {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = (p.is_lowercase() && c.is_uppercase())
                || (p.is_uppercase() && c.is_uppercase() && next_lower);
            if boundary {
                flush(&mut current, out);
            }
        }
        current.extend(c.to_lowercase());
        prev = Some(c);
    }
    flush(&mut current, out);
}

fn flush(current: &mut String, out: &mut Vec<String>) {
    if !current.is_empty() {
        out.push(std::mem::take(current));
    }
}

pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    words_into(text, &mut out);
    out
}

/// CJK ideographs, as BERT's BasicTokenizer defines them.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Words that carry no meaning for finding a tool (articles, pronouns, auxiliaries,
/// prepositions). Kept short on purpose: "not", "all", "new", "list" and the like matter.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
    "have", "i", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please",
    "should", "so", "some", "that", "the", "their", "them", "then", "there", "these", "this",
    "those", "to", "was", "we", "were", "what", "which", "will", "with", "would", "you", "your",
];

/// Stems words for the lexical scorer and drops stopwords.
pub struct Terms {
    stemmer: Stemmer,
}

impl Default for Terms {
    fn default() -> Self {
        Self {
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

impl Terms {
    /// The lexical term of one (lowercase) word, or None for a stopword.
    pub fn term(&self, word: &str) -> Option<String> {
        if STOPWORDS.binary_search(&word).is_ok() {
            return None;
        }
        Some(self.stemmer.stem(word).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(
            words("github___get_fileContents HTTPServer k8s-pod.logs v2"),
            [
                "github", "get", "file", "contents", "http", "server", "k8s", "pod", "logs", "v2"
            ]
        );
        assert_eq!(words("Café  résumé"), ["cafe", "resume"]);
        assert_eq!(words("检索文件"), ["检", "索", "文", "件"]);
        assert!(words("--- !!").is_empty());
    }

    #[test]
    fn stopwords_are_sorted_and_dropped() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
        let t = Terms::default();
        assert_eq!(t.term("the"), None);
        assert_eq!(t.term("running").as_deref(), Some("run"));
        assert_eq!(t.term("issues").as_deref(), Some("issu"));
        assert_eq!(t.term("not").as_deref(), Some("not"));
    }
}
