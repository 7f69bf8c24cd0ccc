//! Splitting a child's output into lines with a hard cap on the size of one line.
//!
//! MCP's stdio transport puts one JSON-RPC message on each line. A line longer than the cap
//! is never buffered whole: once it passes the cap only its first and last few hundred bytes
//! are kept (enough to find a response's id, see [`oversized_response_id`]) and the rest is
//! counted and dropped, so a server that floods stdout without newlines costs the cap and
//! no more. Hand-written because the usual line codecs either grow without bound or give up
//! the stream at the first long line; this one resynchronizes at the next newline.

/// How much of the start and the end of an oversized line is kept.
pub const KEPT_EDGE: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line without its newline (a trailing `\r` removed).
    Complete(Vec<u8>),
    /// A line over the cap: its first and last bytes and its full length.
    Oversized {
        head: Vec<u8>,
        tail: Vec<u8>,
        len: usize,
    },
}

pub struct LineSplitter {
    line: Vec<u8>,
    limit: usize,
    /// Set while the current line is over the cap.
    oversized: Option<Oversized>,
}

struct Oversized {
    head: Vec<u8>,
    tail: Vec<u8>,
    len: usize,
}

impl LineSplitter {
    pub fn new(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            limit,
            oversized: None,
        }
    }

    /// Feeds a chunk of output; pushes every line it completes onto `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            let (part, rest, ends) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            self.take(part);
            if ends {
                out.push(self.finish());
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        if let Some(over) = &mut self.oversized {
            over.len += part.len();
            keep_tail(&mut over.tail, part);
            return;
        }
        if self.line.len() + part.len() <= self.limit {
            self.line.extend_from_slice(part);
            return;
        }
        let so_far = std::mem::take(&mut self.line);
        let len = so_far.len() + part.len();
        let mut head = so_far[..so_far.len().min(KEPT_EDGE)].to_vec();
        head.extend_from_slice(&part[..part.len().min(KEPT_EDGE - head.len())]);
        let mut tail = so_far[so_far.len().saturating_sub(KEPT_EDGE)..].to_vec();
        keep_tail(&mut tail, part);
        self.oversized = Some(Oversized { head, tail, len });
    }

    fn finish(&mut self) -> Line {
        match self.oversized.take() {
            Some(Oversized {
                head,
                mut tail,
                len,
            }) => {
                if tail.last() == Some(&b'\r') {
                    tail.pop();
                }
                Line::Oversized { head, tail, len }
            }
            None => {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Line::Complete(line)
            }
        }
    }
}

/// Appends `part` to `tail`, keeping only the last [`KEPT_EDGE`] bytes.
fn keep_tail(tail: &mut Vec<u8>, part: &[u8]) {
    if part.len() >= KEPT_EDGE {
        tail.clear();
        tail.extend_from_slice(&part[part.len() - KEPT_EDGE..]);
        return;
    }
    tail.extend_from_slice(part);
    if tail.len() > KEPT_EDGE {
        tail.drain(..tail.len() - KEPT_EDGE);
    }
}

/// The id of a JSON-RPC response too large to read, from the edges of its line, so the
/// request waiting for it fails at once instead of at its deadline.
///
/// Only an id that is certainly the top-level member counts: a leading `"id"` among the
/// first members (`{"jsonrpc":"2.0","id":7,…`, the order the Python SDK and rmcp write) or
/// the very last member (`…,"id":7}`, the TypeScript SDK's order). An `"id"` inside the
/// result always sits in a nested object, which neither pattern can match.
pub fn oversized_response_id(head: &[u8], tail: &[u8]) -> Option<u64> {
    leading_id(head).or_else(|| trailing_id(tail))
}

fn leading_id(head: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(&head[..head.len().min(KEPT_EDGE)])
        .or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
        .ok()?;
    let mut rest = text.trim_start().strip_prefix('{')?;
    // Members before the id may only be `"jsonrpc":"2.0"`.
    for _ in 0..2 {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("\"id\"") {
            return number_after_colon(after).map(|(n, _)| n);
        }
        let after = rest.strip_prefix("\"jsonrpc\"")?.trim_start();
        let after = after.strip_prefix(':')?.trim_start();
        let after = after.strip_prefix("\"2.0\"")?.trim_start();
        rest = after.strip_prefix(',')?;
    }
    None
}

fn trailing_id(tail: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(tail)
        .or_else(|_| {
            // A cut multi-byte character at the start of the kept tail: skip it.
            let skip = tail.iter().position(|b| b.is_ascii()).unwrap_or(tail.len());
            std::str::from_utf8(&tail[skip..])
        })
        .ok()?;
    let body = text.trim_end().strip_suffix('}')?.trim_end();
    let digits_start = body
        .rfind(|c: char| !c.is_ascii_digit())
        .map(|i| i + 1)
        .unwrap_or(0);
    let id: u64 = body[digits_start..].parse().ok()?;
    let before = body[..digits_start]
        .trim_end()
        .strip_suffix(':')?
        .trim_end();
    let before = before.strip_suffix("\"id\"")?.trim_end();
    (before.ends_with(',') || before.ends_with('{')).then_some(id)
}

fn number_after_colon(text: &str) -> Option<(u64, &str)> {
    let rest = text.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((rest[..end].parse().ok()?, &rest[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], limit: usize) -> Vec<Line> {
        let mut s = LineSplitter::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        let lines = split(&[b"{\"a\"", b":1}\r\n{}\n\npart"], 100);
        assert_eq!(
            lines,
            vec![
                Line::Complete(b"{\"a\":1}".to_vec()),
                Line::Complete(b"{}".to_vec()),
                Line::Complete(Vec::new()),
            ]
        );
    }

    #[test]
    fn an_oversized_line_keeps_its_edges_and_the_next_line_is_whole() {
        let mut big = b"{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        big.extend_from_slice(b"\"}\n{\"ok\":1}\n");
        // Fed in small pieces, as a pipe delivers it.
        let chunks: Vec<&[u8]> = big.chunks(333).collect();
        let lines = split(&chunks, 1024);
        assert_eq!(lines.len(), 2);
        match &lines[0] {
            Line::Oversized { head, tail, len } => {
                assert_eq!(*len, 35 + 5000 + 2);
                assert_eq!(head.len(), KEPT_EDGE);
                assert!(tail.ends_with(b"x\"}"));
                assert_eq!(oversized_response_id(head, tail), Some(42));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lines[1], Line::Complete(b"{\"ok\":1}".to_vec()));
    }

    #[test]
    fn only_a_top_level_id_is_taken() {
        let id = |head: &str, tail: &str| oversized_response_id(head.as_bytes(), tail.as_bytes());
        assert_eq!(
            id("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{", "x"),
            Some(7)
        );
        assert_eq!(id("{ \"id\" : 9, \"jsonrpc\":\"2.0\"", "x"), Some(9));
        // The TypeScript SDK writes the result first and the id last.
        assert_eq!(
            id(
                "{\"result\":{\"id\":3",
                "]}},\"jsonrpc\":\"2.0\",\"id\":12}"
            ),
            Some(12)
        );
        // An "id" inside the result is nested: never taken.
        assert_eq!(id("{\"result\":{\"id\":3", "\"rows\":[{\"id\":5}]}}"), None);
        assert_eq!(id("{\"result\":{\"id\":3", "{\"id\":5}}"), None);
        assert_eq!(id("not json", "neither"), None);
    }
}
