//! `kind = "smithy"`: an AWS service described by a Smithy JSON AST model; each operation of
//! the service is a tool, called over the service's protocol and signed with SigV4.
//!
//! - [`model`]: reading the model (apply, mixins, resources, prelude);
//! - [`schema`]: shapes → the tools' JSON Schemas, documentation → plain text;
//! - [`protocol`]: awsJson1_0, awsJson1_1 and restJson1 requests, AWS errors.
//!
//! Rules:
//! 1. The tool is named after the operation shape (`PutItem`), described by its
//!    documentation, with the input structure as `inputSchema` (normalized for the Gateway).
//!    awsJson operations also get an `outputSchema` from their output structure.
//! 2. Operations are the service's own and its resources'; `operations.allow` / `deny` globs
//!    pick among them by name.
//! 3. The SigV4 signing name is the service's `aws.auth#sigv4` name (the credential
//!    provider's `service` overrides it); the region is `region`, then the credential
//!    provider's, then `AWS_REGION` / `AWS_DEFAULT_REGION`; the endpoint is `endpoint`, else
//!    `https://{aws.api#service endpointPrefix}.{region}.amazonaws.com`.
//! 4. Left out, and reported by `check`: operations with streaming members (event streams,
//!    streaming blobs), restJson1 operations without an `http` trait, operations with a
//!    host prefix (`smithy.api#endpoint`).

pub mod model;
pub mod protocol;
pub mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use self::model::{Model, local_name};
use self::protocol::{Call, HttpBinding, Protocol};
use self::schema::{OPERATION_DOC_MAX, Side, plain_text, structure_schema};
use super::api::result::{self, Structured};
use super::api::source::Source;
use super::api::{ApiKind, ApiTarget, Derived};
use super::http::HttpAnswer;
use super::openapi::Filter;
use crate::config::{CredentialProviderConfig, Secret, Sigv4Config, SmithySpec, TargetConfig};

/// Builds a `smithy` target (nothing is read or contacted here).
pub fn target(config: &TargetConfig, spec: &SmithySpec) -> ApiTarget<Smithy> {
    ApiTarget::new(
        config,
        Smithy {
            source: Source::File(spec.model.clone().into()),
            spec: spec.clone(),
            filter: Filter::new(&spec.operations),
            headers: BTreeMap::new(),
        },
    )
}

pub struct Smithy {
    source: Source,
    spec: SmithySpec,
    filter: Filter,
    headers: BTreeMap<String, Secret>,
}

pub struct Operation {
    model: Arc<Model>,
    protocol: Protocol,
    /// `{Service}.{Operation}` (awsJson's `X-Amz-Target`).
    target: String,
    http: Option<HttpBinding>,
    input: Option<String>,
    structured: Structured,
}

impl Smithy {
    /// Rule 3: the signing region.
    fn region(&self, config: &TargetConfig) -> Result<String, String> {
        let configured = match &config.credential_provider {
            CredentialProviderConfig::Sigv4(c) => c.region.clone(),
            _ => None,
        };
        self.spec
            .region
            .clone()
            .or(configured)
            .or_else(|| {
                ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
            })
            .ok_or_else(|| "no region: set `region` (or AWS_REGION)".to_string())
    }
}

impl ApiKind for Smithy {
    type Operation = Operation;
    const KIND: &'static str = "smithy";

    fn source(&self) -> &Source {
        &self.source
    }

    fn derive(&self, doc: Value, config: &TargetConfig) -> Result<Derived<Operation>, String> {
        let model = Arc::new(Model::parse(doc)?);
        let service = model.service(self.spec.service.as_deref())?;
        let protocol = Protocol::of(&service)?;
        let service_name = local_name(&service.id).to_string();
        let signing_name = service
            .traits
            .get("aws.auth#sigv4")
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let endpoint_prefix = service
            .traits
            .get("aws.api#service")
            .and_then(|t| t.get("endpointPrefix"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| signing_name.clone())
            .unwrap_or_else(|| service_name.to_ascii_lowercase());
        let region = self.region(config)?;
        let endpoint = match &self.spec.endpoint {
            Some(e) => url::Url::parse(e).map_err(|e| format!("endpoint: {e}"))?,
            None => url::Url::parse(&format!("https://{endpoint_prefix}.{region}.amazonaws.com"))
                .map_err(|e| format!("endpoint from the model: {e}"))?,
        };
        let mut sigv4 = match &config.credential_provider {
            CredentialProviderConfig::Sigv4(c) => c.clone(),
            _ => Sigv4Config::default(),
        };
        if sigv4.service.is_none() {
            sigv4.service = Some(signing_name.ok_or(
                "the service has no aws.auth#sigv4 trait: set credential_provider.service",
            )?);
        }
        sigv4.region = Some(region);

        let mut tools = Vec::new();
        let mut notes = Vec::new();
        for op_id in model.operations(&service) {
            let name = local_name(&op_id).to_string();
            if !self.filter.admits(&[&name]) {
                continue;
            }
            let Some(op) = model.shape(&op_id) else {
                notes.push(format!("{name}: left out: the operation shape is missing"));
                continue;
            };
            let io = |key: &str| {
                op.raw
                    .get(key)
                    .and_then(|t| t.get("target"))
                    .and_then(Value::as_str)
                    .filter(|t| *t != "smithy.api#Unit")
                    .map(str::to_string)
            };
            let (input, output) = (io("input"), io("output"));
            if let Some(why) = [&input, &output]
                .into_iter()
                .flatten()
                .find_map(|id| streaming(&model, id))
            {
                notes.push(format!("{name}: left out: {why} is not supported"));
                continue;
            }
            if op.has("smithy.api#endpoint") {
                notes.push(format!(
                    "{name}: left out: host prefixes (smithy.api#endpoint) are not supported"
                ));
                continue;
            }
            let http = op.traits.get("smithy.api#http").and_then(|h| {
                Some(HttpBinding {
                    method: http::Method::from_bytes(h.get("method")?.as_str()?.as_bytes()).ok()?,
                    uri: h.get("uri")?.as_str()?.to_string(),
                })
            });
            if protocol == Protocol::RestJson1 && http.is_none() {
                notes.push(format!(
                    "{name}: left out: no smithy.api#http trait (restJson1 needs one)"
                ));
                continue;
            }
            let input_schema = match &input {
                Some(id) => structure_schema(&model, id, Side::Input),
                None => json!({"type": "object", "properties": {}}),
            };
            let mut tool = Map::new();
            tool.insert("name".into(), json!(name));
            let doc = op
                .traits
                .get("smithy.api#documentation")
                .and_then(Value::as_str)
                .map(|d| plain_text(d, OPERATION_DOC_MAX))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("{service_name} {name}"));
            tool.insert("description".into(), json!(doc));
            tool.insert("inputSchema".into(), input_schema);
            let structured = match (&output, protocol) {
                (Some(id), Protocol::AwsJson1_0 | Protocol::AwsJson1_1) => {
                    tool.insert(
                        "outputSchema".into(),
                        structure_schema(&model, id, Side::Output),
                    );
                    Structured::Declared
                }
                _ => Structured::Free,
            };
            let read_only = op.has("smithy.api#readonly");
            let mut annotations = Map::new();
            annotations.insert("readOnlyHint".into(), json!(read_only));
            if !read_only {
                annotations.insert(
                    "idempotentHint".into(),
                    json!(op.has("smithy.api#idempotent")),
                );
            }
            annotations.insert("openWorldHint".into(), json!(true));
            tool.insert("annotations".into(), Value::Object(annotations));
            tools.push((
                tool,
                Operation {
                    model: model.clone(),
                    protocol,
                    target: format!("{service_name}.{name}"),
                    http,
                    input,
                    structured,
                },
            ));
        }
        let version = service
            .raw
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(Derived {
            tools,
            notes,
            endpoint,
            credentials: CredentialProviderConfig::Sigv4(sigv4),
            server_info: json!({ "name": service_name, "version": version }),
            protocol: format!("smithy {}", protocol.name()),
        })
    }

    fn headers(&self) -> &BTreeMap<String, Secret> {
        &self.headers
    }

    fn endpoint_hint(&self) -> String {
        match &self.spec.endpoint {
            Some(e) => e.clone(),
            None => format!("the endpoint prefix of {} in its region", self.source),
        }
    }

    fn credentials_hint(&self, _config: &CredentialProviderConfig) -> String {
        "sigv4 (signing name from the model's aws.auth#sigv4 trait)".into()
    }

    fn request(
        &self,
        client: &reqwest::Client,
        endpoint: &url::Url,
        operation: &Operation,
        arguments: Map<String, Value>,
    ) -> Result<reqwest::Request, String> {
        let call = Call {
            model: &operation.model,
            protocol: operation.protocol,
            target: &operation.target,
            http: operation.http.as_ref(),
            input: operation.input.as_deref(),
        };
        protocol::build(&call, client, endpoint, arguments)
    }

    fn result(&self, operation: &Operation, answer: &HttpAnswer) -> Value {
        if (200..300).contains(&answer.status) {
            result::success(answer, operation.structured)
        } else {
            result::failure(answer, protocol::error_message)
        }
    }

    fn what(&self, operation: &Operation) -> String {
        match &operation.http {
            Some(h) => format!("{} {}", h.method, h.uri),
            None => operation.target.clone(),
        }
    }
}

/// Why a structure cannot be sent or read in one JSON document: a member targets a
/// streaming shape (a streaming blob, an event stream union).
fn streaming(model: &Model, structure: &str) -> Option<String> {
    let shape = model.shape(structure)?;
    shape.members.iter().find_map(|(name, target, _)| {
        let t = model.shape(target)?;
        t.has("smithy.api#streaming")
            .then(|| format!("streaming member `{name}` ({})", local_name(target)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_model_from_botocore_maps_to_tools() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/smithy/dynamodb.json"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let spec = SmithySpec {
            model: path.into(),
            service: None,
            operations: Default::default(),
            region: Some("eu-west-1".into()),
            endpoint: None,
        };
        let config = TargetConfig::new("ddb", crate::config::TargetSpec::Smithy(spec.clone()));
        let smithy = Smithy {
            source: Source::File(path.into()),
            filter: Filter::new(&spec.operations),
            spec,
            headers: BTreeMap::new(),
        };
        let derived = smithy.derive(doc, &config).unwrap();
        assert!(derived.notes.is_empty(), "{:?}", derived.notes);
        assert_eq!(
            derived.endpoint.as_str(),
            "https://dynamodb.eu-west-1.amazonaws.com/"
        );
        match &derived.credentials {
            CredentialProviderConfig::Sigv4(c) => {
                assert_eq!(
                    (c.service.as_deref(), c.region.as_deref()),
                    (Some("dynamodb"), Some("eu-west-1"))
                )
            }
            other => panic!("{other:?}"),
        }
        let names: Vec<&str> = derived
            .tools
            .iter()
            .map(|(t, _)| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "CreateTable",
                "DescribeTable",
                "ListTables",
                "PutItem",
                "GetItem",
                "Query",
                "DeleteTable"
            ]
        );
        let (put, op) = derived
            .tools
            .iter()
            .find(|(t, _)| t["name"] == "PutItem")
            .unwrap();
        assert_eq!(op.target, "DynamoDB_20120810.PutItem");
        assert_eq!(put["inputSchema"]["required"], json!(["Item", "TableName"]));
        assert!(
            !put["description"].as_str().unwrap().contains('<'),
            "documentation is plain text"
        );
        assert!(
            put["outputSchema"]["properties"]
                .get("Attributes")
                .is_some()
        );
    }
}
