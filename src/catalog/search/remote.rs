//! An optional remote embedder (`[search] embedder`): an OpenAI-compatible `/embeddings`
//! endpoint, or Amazon Bedrock `InvokeModel` with a Titan text-embeddings model (SigV4).
//!
//! Invariants (the catalog never goes dark or slow because of it):
//! - The built-in encoder always indexes first: a snapshot is published with its built-in
//!   vectors, and the remote vectors are computed afterwards in the background and attached
//!   to that snapshot's index when all of them are in ([`SearchIndex::attach_remote`]).
//!   A failure or a timeout leaves the built-in vectors in use and is logged.
//! - Tools whose indexed text did not change keep their remote vectors from the previous
//!   snapshot (same embedder), as built-in vectors do: a sync re-embeds only what changed.
//! - A query is embedded remotely only when the index has remote vectors from this same
//!   embedder, within `query_timeout_ms`; a failure or a timeout answers that search with the
//!   built-in encoder, and the next queries skip the remote for [`QUERY_BACKOFF`].
//!
//! Requests go through the targets' [`HttpSender`] (throttling retries, credential refusals
//! explained), and Bedrock's are signed by the targets' SigV4 provider: nothing here signs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::SearchIndex;
use crate::config::{EmbedderConfig, Secret, Sigv4Config};
use crate::targets::BoxFuture;
use crate::targets::credentials::sigv4::SigV4Provider;
use crate::targets::credentials::{CredentialProvider, StaticHeaders};
use crate::targets::http::HttpSender;

/// After a failed query embedding, queries use the built-in encoder for this long instead of
/// waiting on a remote that just failed.
pub const QUERY_BACKOFF: Duration = Duration::from_secs(30);
/// The largest answer read from the embedding service (1,000 vectors of 1,536 floats as
/// JSON are about 20 MB).
const ANSWER_LIMIT: usize = 64 << 20;
/// Texts are cut to this many characters (Titan v2 takes 8,192 tokens, OpenAI's models
/// 8,191: tool texts are far shorter, except the odd very long description).
const MAX_TEXT_CHARS: usize = 6000;
const NAME: &str = "search.embedder";

enum Protocol {
    OpenAi {
        url: reqwest::Url,
        model: String,
        dimensions: Option<u32>,
        batch_size: usize,
    },
    Bedrock {
        url: reqwest::Url,
        dimensions: u32,
        concurrency: usize,
    },
}

pub struct RemoteEmbedder {
    protocol: Protocol,
    sender: HttpSender,
    /// Which model and endpoint, in words; also what vectors are matched by across
    /// snapshots (vectors of another embedder are never mixed in).
    identity: Arc<str>,
    timeout: Duration,
    query_timeout: Duration,
    started: Instant,
    /// Milliseconds after `started` before which queries skip the remote (0: none).
    skip_until_ms: AtomicU64,
}

impl std::fmt::Debug for RemoteEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteEmbedder({})", self.identity)
    }
}

/// Vectors from a remote embedder for every tool of one index, rows in the index's order.
pub struct RemoteVectors {
    pub identity: Arc<str>,
    pub dim: usize,
    /// `len × dim`, each row unit length.
    pub vectors: Vec<f32>,
}

impl RemoteEmbedder {
    pub fn new(config: &EmbedderConfig) -> anyhow::Result<Self> {
        let timing = config.timing();
        let (protocol, credentials, identity): (_, Box<dyn CredentialProvider>, _) = match config {
            EmbedderConfig::Openai(c) => {
                let base = c.url.trim_end_matches('/');
                let url = if base.ends_with("/embeddings") {
                    base.to_string()
                } else {
                    format!("{base}/embeddings")
                };
                let url = reqwest::Url::parse(&url)
                    .map_err(|e| anyhow::anyhow!("{NAME}.url `{url}`: {e}"))?;
                let credentials: Box<dyn CredentialProvider> =
                    if c.api_key.is_some() || c.api_key_file.is_some() {
                        let key = c.api_key.clone().unwrap_or_else(|| Secret::new(""));
                        Box::new(StaticHeaders::api_key(
                            "Authorization",
                            "Bearer ",
                            &key,
                            c.api_key_file.as_deref(),
                        )?)
                    } else {
                        Box::new(StaticHeaders::none())
                    };
                let identity = format!(
                    "openai model {} at {}{}",
                    c.model,
                    url,
                    c.dimensions
                        .map(|d| format!(" ({d} dimensions)"))
                        .unwrap_or_default()
                );
                let protocol = Protocol::OpenAi {
                    url,
                    model: c.model.clone(),
                    dimensions: c.dimensions,
                    batch_size: c.batch_size,
                };
                (protocol, credentials, identity)
            }
            EmbedderConfig::Bedrock(c) => {
                let region = c
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!("{NAME}.region: not set, and AWS_REGION is not set either")
                    })?;
                let endpoint = c
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
                let url = format!(
                    "{}/model/{}/invoke",
                    endpoint.trim_end_matches('/'),
                    percent_encoding::utf8_percent_encode(&c.model, PATH_LABEL)
                );
                let url = reqwest::Url::parse(&url)
                    .map_err(|e| anyhow::anyhow!("{NAME}.endpoint `{url}`: {e}"))?;
                let signing = Sigv4Config {
                    service: Some("bedrock".into()),
                    region: Some(region.clone()),
                    profile: c.profile.clone(),
                    assume_role: c.assume_role.clone(),
                    ..Default::default()
                };
                let credentials = Box::new(
                    SigV4Provider::new(&signing, &url)
                        .map_err(|e| anyhow::anyhow!("{NAME}: {e}"))?,
                );
                let identity = format!(
                    "bedrock model {} in {region} at {} ({} dimensions)",
                    c.model,
                    url.host_str().unwrap_or_default(),
                    c.dimensions
                );
                let protocol = Protocol::Bedrock {
                    url,
                    dimensions: c.dimensions,
                    concurrency: c.concurrency,
                };
                (protocol, credentials, identity)
            }
        };
        Ok(Self {
            protocol,
            sender: HttpSender::standalone(NAME, Duration::from_secs(5), credentials, 3)?,
            identity: identity.into(),
            timeout: Duration::from_millis(timing.timeout_ms),
            query_timeout: Duration::from_millis(timing.query_timeout_ms),
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        })
    }

    pub fn identity(&self) -> &Arc<str> {
        &self.identity
    }

    /// Embeds a whole index's tools: `texts` are (row, text) for the rows `carried` lacks.
    /// Within `timeout_ms`, else an error saying what failed.
    pub async fn embed_index(
        &self,
        rows: usize,
        texts: Vec<(usize, String)>,
        carried: Vec<(usize, Vec<f32>)>,
    ) -> Result<RemoteVectors, String> {
        let deadline = Instant::now() + self.timeout;
        let only_texts: Vec<String> = texts.iter().map(|(_, t)| t.clone()).collect();
        let embedded = tokio::time::timeout_at(deadline, self.embed_many(&only_texts, deadline))
            .await
            .map_err(|_| format!("timed out after {} ms", self.timeout.as_millis()))??;
        let dim = embedded
            .first()
            .or(carried.first().map(|(_, v)| v))
            .map_or(0, Vec::len);
        if dim == 0 {
            return Err("the service returned empty vectors".into());
        }
        let mut vectors = vec![0.0f32; rows * dim];
        for (row, v) in carried
            .into_iter()
            .chain(texts.into_iter().map(|(row, _)| row).zip(embedded))
        {
            if v.len() != dim {
                return Err(format!(
                    "the service returned vectors of {} and {dim} dimensions",
                    v.len()
                ));
            }
            vectors[row * dim..(row + 1) * dim].copy_from_slice(&v);
        }
        Ok(RemoteVectors {
            identity: self.identity.clone(),
            dim,
            vectors,
        })
    }

    /// One query's vector, or None (the search then uses the built-in encoder): after a
    /// recent failure, on a timeout or on an error (logged).
    pub async fn embed_query(&self, query: &str) -> Option<Vec<f32>> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        if now_ms < self.skip_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        let deadline = Instant::now() + self.query_timeout;
        let texts = [query.to_string()];
        let outcome = tokio::time::timeout_at(deadline, self.embed_many(&texts, deadline)).await;
        let error = match outcome {
            Ok(Ok(mut vectors)) if vectors.len() == 1 => return vectors.pop(),
            Ok(Ok(vectors)) => format!("{} vectors for one query", vectors.len()),
            Ok(Err(e)) => e,
            Err(_) => format!("timed out after {} ms", self.query_timeout.as_millis()),
        };
        let until = self.started.elapsed() + QUERY_BACKOFF;
        self.skip_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        tracing::warn!(embedder = %self.identity, error = %error,
            "query embedding failed; searching with the built-in encoder for {} s", QUERY_BACKOFF.as_secs());
        None
    }

    /// Vectors for `texts`, in order, each normalized to unit length.
    async fn embed_many(
        &self,
        texts: &[String],
        deadline: Instant,
    ) -> Result<Vec<Vec<f32>>, String> {
        let mut out = match &self.protocol {
            Protocol::OpenAi {
                url,
                model,
                dimensions,
                batch_size,
            } => {
                let mut out = Vec::with_capacity(texts.len());
                for batch in texts.chunks(*batch_size) {
                    let inputs: Vec<&str> = batch.iter().map(|t| cut(t)).collect();
                    let mut body =
                        json!({ "model": model, "input": inputs, "encoding_format": "float" });
                    if let Some(d) = dimensions {
                        body["dimensions"] = json!(d);
                    }
                    let answer: OpenAiAnswer = self.post(url, &body, deadline).await?;
                    let mut data = answer.data;
                    if data.len() != batch.len() {
                        return Err(format!(
                            "asked for {} embeddings, got {}",
                            batch.len(),
                            data.len()
                        ));
                    }
                    data.sort_by_key(|d| d.index);
                    out.extend(data.into_iter().map(|d| d.embedding));
                }
                out
            }
            Protocol::Bedrock {
                url,
                dimensions,
                concurrency,
            } => {
                // Boxed: a stream of borrowing async blocks trips the compiler's Send
                // inference (rust-lang/rust#102211).
                let requests: Vec<BoxFuture<'_, Result<Vec<f32>, String>>> = texts
                    .iter()
                    .map(|text| {
                        let body = json!({ "inputText": cut(text), "dimensions": dimensions, "normalize": true });
                        Box::pin(async move {
                            let answer: TitanAnswer = self.post(url, &body, deadline).await?;
                            Ok(answer.embedding)
                        }) as BoxFuture<'_, _>
                    })
                    .collect();
                let answers: Vec<Result<Vec<f32>, String>> = futures_util::stream::iter(requests)
                    .buffered(*concurrency)
                    .collect()
                    .await;
                answers.into_iter().collect::<Result<_, _>>()?
            }
        };
        for v in &mut out {
            super::encoder::normalize(v);
        }
        Ok(out)
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        url: &reqwest::Url,
        body: &serde_json::Value,
        deadline: Instant,
    ) -> Result<T, String> {
        let request = self
            .sender
            .client()
            .post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body.to_string())
            .build()
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let answer = self
            .sender
            .send_for_answer(request, deadline, "embeddings", ANSWER_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        if !(200..300).contains(&answer.status) {
            let start =
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned();
            return Err(format!(
                "{} answered HTTP {}{}: {start}",
                printable(url),
                answer.status,
                answer.note.map(|n| format!(" ({n})")).unwrap_or_default()
            ));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| format!("{} sent an unexpected answer: {e}", printable(url)))
    }
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    data: Vec<OpenAiEmbedding>,
}

#[derive(Deserialize)]
struct OpenAiEmbedding {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct TitanAnswer {
    embedding: Vec<f32>,
}

/// Characters a Bedrock model id keeps in the URL path (`amazon.titan-embed-text-v2:0` →
/// `amazon.titan-embed-text-v2%3A0`, as AWS's SDKs send it).
const PATH_LABEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The URL without its query (which might carry a key).
fn printable(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Embeds `index`'s tools in the background and attaches the vectors when done; logs and
/// keeps the built-in vectors on failure. `texts` come from [`SearchIndex::remote_work`].
pub async fn embed_in_background(
    embedder: Arc<RemoteEmbedder>,
    index: Arc<SearchIndex>,
    work: super::RemoteWork,
) {
    let started = std::time::Instant::now();
    let embedded = work.texts.len();
    match embedder
        .embed_index(index.len(), work.texts, work.carried)
        .await
    {
        Ok(vectors) => {
            index.attach_remote(vectors);
            tracing::info!(embedder = %embedder.identity(), tools = index.len(), embedded,
                ms = started.elapsed().as_millis() as u64, "search index: remote vectors attached");
        }
        Err(error) => tracing::warn!(embedder = %embedder.identity(), error = %error,
            "search index: remote embedding failed; the built-in encoder keeps answering"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_as_aws_sdks_do() {
        let config: EmbedderConfig = toml::from_str(
            "kind = \"bedrock\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:9\"",
        )
        .unwrap();
        let e = RemoteEmbedder::new(&config).unwrap();
        let Protocol::Bedrock { url, .. } = &e.protocol else {
            panic!("bedrock")
        };
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
        assert!(e.identity().contains("eu-west-1"));
    }

    #[test]
    fn openai_urls_get_the_embeddings_path_once() {
        for (given, expected) in [
            ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/embeddings"),
            ("http://127.0.0.1:9/v1/", "http://127.0.0.1:9/v1/embeddings"),
            (
                "http://127.0.0.1:9/v1/embeddings",
                "http://127.0.0.1:9/v1/embeddings",
            ),
        ] {
            let config: EmbedderConfig = toml::from_str(&format!(
                "kind = \"openai\"\nurl = \"{given}\"\nmodel = \"m\""
            ))
            .unwrap();
            let e = RemoteEmbedder::new(&config).unwrap();
            let Protocol::OpenAi { url, .. } = &e.protocol else {
                panic!("openai")
            };
            assert_eq!(url.as_str(), expected);
        }
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(cut(&text).chars().count(), MAX_TEXT_CHARS);
        assert_eq!(cut("short"), "short");
    }
}
