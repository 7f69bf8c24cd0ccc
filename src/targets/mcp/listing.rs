//! A sync: every listing the upstream offers, each followed through all its pages.

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::transport::Transport;
use super::{Ask, McpClient};
use crate::targets::{FailureKind, Listing, Reply, TargetError};

/// A paginated listing longer than this is treated as a broken cursor loop.
const MAX_LIST_PAGES: usize = 1000;

impl<T: Transport> McpClient<T> {
    /// Everything a sync learns: tools always; prompts, resources and resource templates
    /// when the upstream's capabilities announce them.
    pub(super) async fn list_everything(&self) -> Result<Listing, TargetError> {
        let tools = self.list_all("tools/list", "tools").await?;
        let session = self.session().await?;
        let prompts = if session.offers("prompts") {
            self.list_all("prompts/list", "prompts").await?
        } else {
            Vec::new()
        };
        let (resources, resource_templates) = if session.offers("resources") {
            (
                self.list_all("resources/list", "resources").await?,
                self.list_all("resources/templates/list", "resourceTemplates")
                    .await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Listing {
            tools,
            prompts,
            resources,
            resource_templates,
            instructions: session.instructions.clone(),
            server_info: session.server_info.clone(),
            capabilities: session.capabilities.clone(),
            protocol_version: session
                .wire
                .protocol_version
                .to_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// One paginated listing (`tools/list`, `prompts/list`, …) followed to its end.
    async fn list_all(
        &self,
        method: &str,
        key: &str,
    ) -> Result<Vec<Map<String, Value>>, TargetError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let no_meta = Map::new();
        for _ in 0..MAX_LIST_PAGES {
            let params = match &cursor {
                Some(c) => serde_json::json!({ "cursor": c }).to_string(),
                None => "{}".to_string(),
            };
            let deadline = Instant::now() + self.request_timeout;
            let ask = Ask {
                method,
                name: None,
                params: &params,
                meta: &no_meta,
                client: None,
                notify: None,
                headers: &[],
                bridge: None,
            };
            let reply = self.request(ask, deadline).await?;
            let result = match reply {
                Reply::Result(r) => r,
                Reply::Error(e) => {
                    return Err(self.error(FailureKind::Rejected, format!("{method} failed: {e}")));
                }
            };
            let mut page: Map<String, Value> = serde_json::from_str(result.get()).map_err(|e| {
                self.error(
                    FailureKind::BadResponse,
                    format!("{method} result is not valid: {e}"),
                )
            })?;
            match page.remove(key) {
                Some(Value::Array(list)) => {
                    for item in list {
                        match item {
                            Value::Object(item) => items.push(item),
                            _ => {
                                return Err(self.error(
                                    FailureKind::BadResponse,
                                    format!("{method}: `{key}` holds a non-object"),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(self.error(
                        FailureKind::BadResponse,
                        format!("{method} result has no `{key}` list"),
                    ));
                }
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    if cursor.as_deref() == Some(next) {
                        return Err(self.error(
                            FailureKind::BadResponse,
                            format!("{method} returned the same cursor twice"),
                        ));
                    }
                    cursor = Some(next.to_string());
                }
                _ => return Ok(items),
            }
        }
        Err(self.error(
            FailureKind::BadResponse,
            format!("{method} did not end after {MAX_LIST_PAGES} pages"),
        ))
    }
}
