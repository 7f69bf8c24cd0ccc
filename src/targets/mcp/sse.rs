//! A bounded, incremental parser for `text/event-stream` bodies.
//!
//! Hand-written rather than a crate because the relay needs one property the common SSE
//! crates do not give: a hard cap on the size of one event, so a misbehaving upstream cannot
//! make the sidecar buffer without limit. Only `data:` lines matter for MCP; `event:`, `id:`,
//! `retry:` and comments are skipped.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an SSE event exceeded {limit} bytes")]
pub struct EventTooLarge {
    pub limit: usize,
}

pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    limit: usize,
}

impl SseParser {
    pub fn new(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            limit,
        }
    }

    /// Feeds a chunk; pushes the data of every event it completes onto `events`.
    pub fn feed(&mut self, chunk: &[u8], events: &mut Vec<Vec<u8>>) -> Result<(), EventTooLarge> {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            self.take_line(&line, events);
            self.line = line;
            self.line.clear();
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > self.limit {
            return Err(EventTooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn take_line(&mut self, line: &[u8], events: &mut Vec<Vec<u8>>) {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // `event:`, `id:`, `retry:` and `:comment` lines carry nothing the relay needs.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]], limit: usize) -> Result<Vec<String>, EventTooLarge> {
        let mut p = SseParser::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        Ok(out
            .into_iter()
            .map(|e| String::from_utf8(e).unwrap())
            .collect())
    }

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let events = parse_all(
            &[
                b"event: message\r\nid: 1\r\nda",
                b"ta: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n\n",
            ],
            1024,
        )
        .unwrap();
        assert_eq!(events, vec!["{\"a\":1}".to_string(), "x\ny".to_string()]);
    }

    #[test]
    fn incomplete_event_is_not_emitted() {
        assert!(parse_all(&[b"data: {}\n"], 1024).unwrap().is_empty());
    }

    #[test]
    fn oversized_event_is_refused() {
        let big = vec![b'x'; 2048];
        let mut chunk = b"data: ".to_vec();
        chunk.extend_from_slice(&big);
        assert_eq!(
            parse_all(&[&chunk], 1024),
            Err(EventTooLarge { limit: 1024 })
        );
    }
}
