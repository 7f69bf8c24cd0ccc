//! `kind = "lambda"`: tools served by an AWS Lambda function, the way AgentCore Gateway's
//! Lambda targets serve them, so functions written for the Gateway work unchanged.
//!
//! ```toml
//! [[targets]]
//! name = "orders"
//! kind = "lambda"
//! function = "arn:aws:lambda:us-east-1:123456789012:function:orders"  # or a bare name
//! region = "us-east-1"            # optional when `function` is an ARN
//! tool_schema_file = "tools.json" # or tool_schema = [ { name = …, description = …, inputSchema = … } ]
//! ```
//!
//! The tools are declared, as the Gateway's `toolSchema.inlinePayload` declares them (the
//! function has no way to list them): a JSON array of `{name, description, inputSchema,
//! outputSchema?}`, written inline as a TOML array, as a string of JSON copied from a Gateway
//! target definition, or in a file (the array, or `{"inlinePayload": [...]}`; a relative
//! path is taken from the sidecar's working directory). MCP's `title` and `annotations` are
//! accepted too (`annotations.readOnlyHint` is what `curation.read_only` reads).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaSpec {
    /// A function name, a partial or full ARN, optionally with a version or alias qualifier.
    pub function: String,
    /// The function's region; optional when `function` is an ARN (which names it).
    #[serde(default)]
    pub region: Option<String>,
    /// Where Invoke requests go instead of `https://lambda.{region}.amazonaws.com` (tests,
    /// emulators, VPC endpoints).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The tools, inline: an array, or a string holding the JSON array.
    #[serde(default)]
    pub tool_schema: Option<Value>,
    /// The tools, from a JSON file.
    #[serde(default)]
    pub tool_schema_file: Option<PathBuf>,
    /// `bedrockAgentCoreGatewayId` in the client context (default `mcp-sidecar`).
    #[serde(default)]
    pub gateway_id: Option<String>,
}

/// The keys a declared tool may have (the Gateway's four, and MCP's `title`, `annotations`).
const TOOL_KEYS: &[&str] = &[
    "name",
    "description",
    "inputSchema",
    "outputSchema",
    "title",
    "annotations",
];

impl LambdaSpec {
    /// The signing and endpoint region: configured, else the function ARN's.
    pub fn region(&self) -> Option<String> {
        self.region.clone().or_else(|| arn_region(&self.function))
    }

    /// Where Invoke requests go (no trailing slash).
    pub fn endpoint(&self) -> Option<String> {
        match &self.endpoint_url {
            Some(url) => Some(url.trim_end_matches('/').to_string()),
            None => self.region().map(|region| {
                let suffix = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://lambda.{region}.{suffix}")
            }),
        }
    }

    /// The declared tools, checked. The error is (the key, relative to the target, problem).
    pub fn tools(&self) -> Result<Vec<Map<String, Value>>, (String, String)> {
        let (key, declared) = match (&self.tool_schema, &self.tool_schema_file) {
            (Some(inline), None) => {
                let declared = match inline {
                    Value::String(text) => serde_json::from_str(text).map_err(|e| {
                        (
                            "tool_schema".to_string(),
                            format!("is not a JSON array of tools: {e}"),
                        )
                    })?,
                    other => other.clone(),
                };
                ("tool_schema", declared)
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    (
                        "tool_schema_file".to_string(),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let declared: Value = serde_json::from_str(&text).map_err(|e| {
                    (
                        "tool_schema_file".to_string(),
                        format!("{} is not JSON: {e}", path.display()),
                    )
                })?;
                let declared = match declared {
                    Value::Object(mut o) if o.contains_key("inlinePayload") => {
                        o.remove("inlinePayload").unwrap_or_default()
                    }
                    other => other,
                };
                ("tool_schema_file", declared)
            }
            (None, None) => {
                return Err((
                    "tool_schema".into(),
                    "declare the function's tools: `tool_schema` (inline) or `tool_schema_file`"
                        .into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    "tool_schema_file".into(),
                    "give either `tool_schema` or `tool_schema_file`, not both".into(),
                ));
            }
        };
        check_tools(declared).map_err(|(at, problem)| (format!("{key}{at}"), problem))
    }

    /// Checks what types cannot; `at` turns a key into its field path.
    pub(super) fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let f = &self.function;
        if f.is_empty()
            || f.len() > 170
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:$".contains(c))
        {
            return Err(ConfigError::new(
                at("function"),
                format!("`{f}` is not a Lambda function name or ARN"),
            ));
        }
        if f.starts_with("arn:") && arn_region(f).is_none() {
            return Err(ConfigError::new(
                at("function"),
                format!(
                    "`{f}` is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
                ),
            ));
        }
        match (&self.region, arn_region(f)) {
            (None, None) => {
                return Err(ConfigError::new(
                    at("region"),
                    "missing: give the function's region (or its full ARN as `function`)",
                ));
            }
            (Some(r), Some(in_arn)) if *r != in_arn => {
                return Err(ConfigError::new(
                    at("region"),
                    format!("`{r}` differs from the region in the function ARN ({in_arn})"),
                ));
            }
            (Some(r), _)
                if r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                return Err(ConfigError::new(
                    at("region"),
                    format!("`{r}` is not an AWS region"),
                ));
            }
            _ => {}
        }
        if let Some(url) = &self.endpoint_url {
            let parsed = url::Url::parse(url).map_err(|e| {
                ConfigError::new(at("endpoint_url"), format!("`{url}` is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
                return Err(ConfigError::new(
                    at("endpoint_url"),
                    "must be an http:// or https:// URL without a query",
                ));
            }
        }
        if let Some(id) = &self.gateway_id
            && id.is_empty()
        {
            return Err(ConfigError::new(
                at("gateway_id"),
                "must not be empty (or leave it out)",
            ));
        }
        self.tools()
            .map(|_| ())
            .map_err(|(key, problem)| ConfigError::new(at(&key), problem))
    }
}

/// The region of a Lambda function ARN (`arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME`).
fn arn_region(function: &str) -> Option<String> {
    let parts: Vec<&str> = function.split(':').collect();
    (parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && !parts[3].is_empty())
        .then(|| parts[3].to_string())
}

/// Checks a declared tool list; the error is (`[i].key`, problem).
fn check_tools(declared: Value) -> Result<Vec<Map<String, Value>>, (String, String)> {
    let Value::Array(items) = declared else {
        return Err((
            String::new(),
            "must be an array of tools ({name, description, inputSchema})".into(),
        ));
    };
    if items.is_empty() {
        return Err((String::new(), "declares no tools".into()));
    }
    let mut seen = std::collections::HashSet::new();
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = |key: &str| format!("[{i}]{key}");
        let Value::Object(tool) = item else {
            return Err((at(""), "must be a table (object)".into()));
        };
        if let Some(key) = tool.keys().find(|k| !TOOL_KEYS.contains(&k.as_str())) {
            return Err((
                at(&format!(".{key}")),
                format!("unknown key; a tool has {}", TOOL_KEYS.join(", ")),
            ));
        }
        let name = match tool.get("name") {
            Some(Value::String(n))
                if !n.is_empty()
                    && n.len() <= 128
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                n.clone()
            }
            Some(Value::String(n)) => {
                return Err((
                    at(".name"),
                    format!("`{n}` must be 1 to 128 characters of A-Z, a-z, 0-9, '_' and '-'"),
                ));
            }
            _ => return Err((at(".name"), "missing (a string)".into())),
        };
        if !seen.insert(name.clone()) {
            return Err((at(".name"), format!("`{name}` is declared twice")));
        }
        if !matches!(tool.get("description"), Some(Value::String(d)) if !d.is_empty()) {
            return Err((
                at(".description"),
                "missing (a non-empty string: models choose tools by it)".into(),
            ));
        }
        for key in ["inputSchema", "outputSchema"] {
            match tool.get(key) {
                None if key == "outputSchema" => {}
                Some(Value::Object(schema))
                    if schema.get("type").and_then(Value::as_str) == Some("object") => {}
                _ => {
                    return Err((
                        at(&format!(".{key}")),
                        "must be a JSON schema object with type \"object\"".into(),
                    ));
                }
            }
        }
        if let Some(a) = tool.get("annotations")
            && !a.is_object()
        {
            return Err((at(".annotations"), "must be a table (object)".into()));
        }
        tools.push(tool);
    }
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(function: &str, region: Option<&str>, tools: Value) -> LambdaSpec {
        LambdaSpec {
            function: function.into(),
            region: region.map(str::to_string),
            endpoint_url: None,
            tool_schema: Some(tools),
            tool_schema_file: None,
            gateway_id: None,
        }
    }

    fn tool() -> Value {
        serde_json::json!([{"name": "get_order", "description": "Gets an order",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}])
    }

    #[test]
    fn region_and_endpoint_come_from_the_arn_or_the_config() {
        let s = spec(
            "arn:aws:lambda:eu-west-1:123456789012:function:orders:live",
            None,
            tool(),
        );
        assert_eq!(s.region().as_deref(), Some("eu-west-1"));
        assert_eq!(
            s.endpoint().as_deref(),
            Some("https://lambda.eu-west-1.amazonaws.com")
        );
        let s = spec("orders", Some("cn-north-1"), tool());
        assert_eq!(
            s.endpoint().as_deref(),
            Some("https://lambda.cn-north-1.amazonaws.com.cn")
        );
        let at = |k: &str| format!("targets[0].{k}");
        assert!(s.validate(&at).is_ok());
        let e = spec("orders", None, tool()).validate(&at).unwrap_err();
        assert_eq!(e.field, "targets[0].region");
        let e = spec(
            "arn:aws:lambda:eu-west-1:123456789012:function:orders",
            Some("us-east-1"),
            tool(),
        )
        .validate(&at)
        .unwrap_err();
        assert!(e.problem.contains("eu-west-1"), "{e}");
        let e = spec("orders/../x", Some("us-east-1"), tool())
            .validate(&at)
            .unwrap_err();
        assert_eq!(e.field, "targets[0].function");
    }

    #[test]
    fn tools_are_checked_and_errors_name_the_tool() {
        let s = spec("f", Some("us-east-1"), tool());
        assert_eq!(s.tools().unwrap()[0]["name"], "get_order");
        // A JSON string, as copied from a Gateway target definition.
        let s = spec("f", Some("us-east-1"), Value::String(tool().to_string()));
        assert_eq!(s.tools().unwrap().len(), 1);
        for (bad, key) in [
            (serde_json::json!([]), "tool_schema"),
            (serde_json::json!({"name": "x"}), "tool_schema"),
            (
                serde_json::json!([{"name": "a b", "description": "d", "inputSchema": {"type": "object"}}]),
                "tool_schema[0].name",
            ),
            (
                serde_json::json!([{"name": "a", "inputSchema": {"type": "object"}}]),
                "tool_schema[0].description",
            ),
            (
                serde_json::json!([{"name": "a", "description": "d", "inputSchema": {"type": "string"}}]),
                "tool_schema[0].inputSchema",
            ),
            (
                serde_json::json!([{"name": "a", "description": "d", "input_schema": {}}]),
                "tool_schema[0].input_schema",
            ),
            (
                serde_json::json!([
                    {"name": "a", "description": "d", "inputSchema": {"type": "object"}},
                    {"name": "a", "description": "d", "inputSchema": {"type": "object"}}
                ]),
                "tool_schema[1].name",
            ),
        ] {
            let (field, problem) = spec("f", Some("us-east-1"), bad).tools().unwrap_err();
            assert_eq!(field, key, "{problem}");
        }
    }

    #[test]
    fn a_schema_file_may_hold_the_array_or_an_inline_payload() {
        let dir = std::env::temp_dir().join(format!("mcp-sidecar-lambda-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tools.json");
        let mut s = spec("f", Some("us-east-1"), Value::Null);
        s.tool_schema = None;
        s.tool_schema_file = Some(file.clone());
        std::fs::write(
            &file,
            serde_json::json!({"inlinePayload": tool()}).to_string(),
        )
        .unwrap();
        assert_eq!(s.tools().unwrap().len(), 1);
        std::fs::write(&file, tool().to_string()).unwrap();
        assert_eq!(s.tools().unwrap().len(), 1);
        std::fs::write(&file, "[oops").unwrap();
        assert_eq!(s.tools().unwrap_err().0, "tool_schema_file");
        std::fs::remove_dir_all(&dir).ok();
        assert!(s.tools().unwrap_err().1.contains("cannot read"));
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::{Config, CredentialProviderConfig, TargetSpec};

    const TOOLS: &str = r#"tool_schema = [{ name = "get_order", description = "Gets an order", inputSchema = { type = "object", properties = { id = { type = "string" } }, required = ["id"] } }]"#;

    fn parse(target_keys: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!("[[targets]]\nname = \"orders\"\nkind = \"lambda\"\n{target_keys}\n"),
            &|_| None,
        )
    }

    #[test]
    fn lambda_targets_sign_with_sigv4_for_lambda_in_their_region() {
        let c = parse(&format!(
            "function = \"orders\"\nregion = \"eu-west-1\"\n{TOOLS}"
        ))
        .unwrap();
        let t = &c.targets[0];
        let TargetSpec::Lambda(spec) = &t.spec else {
            panic!("{:?}", t.spec)
        };
        assert_eq!(spec.tools().unwrap()[0]["name"], "get_order");
        let effective = t.spec.credentials(&t.credential_provider).unwrap();
        let CredentialProviderConfig::Sigv4(s) = effective.as_ref() else {
            panic!("{effective:?}")
        };
        assert_eq!(
            (s.service.as_deref(), s.region.as_deref()),
            (Some("lambda"), Some("eu-west-1"))
        );
        // A configured sigv4 provider keeps its own choices and gets the defaults.
        let c = parse(&format!(
            "function = \"orders\"\nregion = \"eu-west-1\"\nendpoint_url = \"http://127.0.0.1:9001\"\n{TOOLS}\n\
             [targets.credential_provider]\ntype = \"sigv4\"\nprofile = \"ops\""
        ))
        .unwrap();
        let t = &c.targets[0];
        let effective = t.spec.credentials(&t.credential_provider).unwrap();
        let CredentialProviderConfig::Sigv4(s) = effective.as_ref() else {
            panic!("{effective:?}")
        };
        assert_eq!(s.profile.as_deref(), Some("ops"));
        assert_eq!(s.service.as_deref(), Some("lambda"));
    }

    #[test]
    fn lambda_errors_name_the_field() {
        for (keys, field) in [
            (TOOLS.to_string(), "targets[0]"), // serde: "missing field `function`"
            (format!("function = \"orders\"\n{TOOLS}"), "targets[0].region"),
            ("function = \"orders\"\nregion = \"us-east-1\"".into(), "targets[0].tool_schema"),
            (
                format!("function = \"orders\"\nregion = \"us-east-1\"\nendpoint_url = \"ftp://x\"\n{TOOLS}"),
                "targets[0].endpoint_url",
            ),
            (
                format!(
                    "function = \"orders\"\nregion = \"us-east-1\"\n{TOOLS}\n[targets.credential_provider]\ntype = \"api_key\"\nvalue = \"k\""
                ),
                "targets[0].credential_provider",
            ),
            (
                "function = \"orders\"\nregion = \"us-east-1\"\ntool_schema = [{ name = \"x\", description = \"d\", inputSchema = { type = \"array\" } }]".into(),
                "targets[0].tool_schema[0].inputSchema",
            ),
        ] {
            let e = parse(&keys).unwrap_err();
            assert_eq!(e.field, field, "{keys}: {e}");
        }
    }
}
