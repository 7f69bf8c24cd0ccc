//! `kind = "openapi"`: a REST API described by an OpenAPI 3.0 or 3.1 document; each
//! operation is a tool.
//!
//! - [`document`]: version, local `$ref`s and servers of the raw document;
//! - [`operation`]: operation → tool definition (the numbered rules) and what a call needs;
//! - [`style`]: parameter serialization (`style`, `explode`, percent-encoding);
//! - [`request`]: arguments → the HTTP request.
//!
//! The document is loaded at every sync ([`crate::targets::api`]); the endpoint is
//! `base_url`, else the document's first server.

pub mod document;
pub mod operation;
pub mod request;
pub mod style;

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::{Map, Value, json};

use self::operation::{Operation, Scope};
use super::api::result;
use super::api::source::Source;
use super::api::{ApiKind, ApiTarget, Derived};
use super::http::HttpAnswer;
use crate::config::{CredentialProviderConfig, OpenapiSpec, OperationFilter, Secret, TargetConfig};

/// Builds an `openapi` target (nothing is read or contacted here).
pub fn target(config: &TargetConfig, spec: &OpenapiSpec) -> ApiTarget<OpenApi> {
    ApiTarget::new(
        config,
        OpenApi {
            source: Source::parse(&spec.spec),
            base_url: spec
                .base_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok()),
            filter: Filter::new(&spec.operations),
            headers: spec.headers.clone(),
        },
    )
}

pub struct OpenApi {
    source: Source,
    base_url: Option<url::Url>,
    filter: Filter,
    headers: BTreeMap<String, Secret>,
}

/// `operations.allow` / `operations.deny` (validated globs; see the config).
pub struct Filter {
    allow: Option<GlobSet>,
    deny: GlobSet,
}

impl Filter {
    pub fn new(config: &OperationFilter) -> Filter {
        let set = |patterns: &[String]| {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                if let Ok(g) = Glob::new(p) {
                    b.add(g);
                }
            }
            b.build().unwrap_or_else(|_| GlobSet::empty())
        };
        Filter {
            allow: (!config.allow.is_empty()).then(|| set(&config.allow)),
            deny: set(&config.deny),
        }
    }

    /// Whether an operation known by any of `names` is admitted.
    pub fn admits(&self, names: &[&str]) -> bool {
        let any = |set: &GlobSet| names.iter().any(|n| set.is_match(n));
        self.allow.as_ref().is_none_or(any) && !any(&self.deny)
    }
}

impl ApiKind for OpenApi {
    type Operation = Operation;
    const KIND: &'static str = "openapi";

    fn source(&self) -> &Source {
        &self.source
    }

    fn derive(&self, doc: Value, config: &TargetConfig) -> Result<Derived<Operation>, String> {
        let version = document::version(&doc)?;
        let endpoint = match &self.base_url {
            Some(url) => url.clone(),
            None => document::server_url(&[doc.get("servers")], self.source.url())?
                .or_else(|| self.source.url().and_then(|u| u.join("/").ok()))
                .ok_or("the document names no server and is a file: set base_url")?,
        };
        let admit = |name: &str, signature: &str| self.filter.admits(&[name, signature]);
        let mapped = operation::map_document(
            &doc,
            &Scope {
                admit: &admit,
                own_servers: self.base_url.is_none(),
                document_url: self.source.url(),
            },
        );
        let mut notes = mapped.notes;
        if doc
            .get("webhooks")
            .is_some_and(|w| w.as_object().is_some_and(|w| !w.is_empty()))
        {
            notes.push("webhooks are ignored (they are calls from the API, not to it)".into());
        }
        if matches!(config.credential_provider, CredentialProviderConfig::None)
            && let Some(schemes) = operation::security_hint(&doc)
        {
            notes.push(format!(
                "the document declares security schemes {schemes}; this target sends no credentials (set credential_provider)"
            ));
        }
        let info = doc.get("info");
        let text = |key: &str| info.and_then(|i| i.get(key)).and_then(Value::as_str);
        Ok(Derived {
            tools: mapped.tools,
            notes,
            endpoint,
            credentials: config.credential_provider.clone(),
            server_info: json!({
                "name": text("title").unwrap_or("OpenAPI"),
                "version": text("version").unwrap_or(""),
            }),
            protocol: format!("openapi {version}"),
        })
    }

    fn headers(&self) -> &BTreeMap<String, Secret> {
        &self.headers
    }

    fn endpoint_hint(&self) -> String {
        match &self.base_url {
            Some(url) => crate::targets::http::printable_url(url),
            None => format!("the first server of {}", self.source),
        }
    }

    fn request(
        &self,
        client: &reqwest::Client,
        endpoint: &url::Url,
        operation: &Operation,
        arguments: Map<String, Value>,
    ) -> Result<reqwest::Request, String> {
        request::build(client, endpoint, operation, arguments)
    }

    fn result(&self, operation: &Operation, answer: &HttpAnswer) -> Value {
        if (200..300).contains(&answer.status) {
            result::success(answer, operation.structured)
        } else {
            result::failure(answer, |_| None)
        }
    }

    fn what(&self, operation: &Operation) -> String {
        format!("{} {}", operation.method, operation.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_names_or_method_and_path() {
        let f = Filter::new(&OperationFilter {
            allow: vec!["get*".into(), "POST /pets".into()],
            deny: vec!["*Secret*".into(), "DELETE /**".into()],
        });
        assert!(f.admits(&["getPet", "GET /pets/{id}"]));
        assert!(f.admits(&["addPet", "POST /pets"]));
        assert!(!f.admits(&["getSecretThing", "GET /s"]));
        assert!(!f.admits(&["updatePet", "PUT /pets"]));
        let all = Filter::new(&OperationFilter::default());
        assert!(all.admits(&["anything", "GET /"]));
    }
}
