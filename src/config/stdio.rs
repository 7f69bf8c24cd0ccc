//! `kind = "stdio"`: a local MCP server the sidecar starts itself and speaks to over the
//! child's stdin and stdout (one JSON-RPC message per line).
//!
//! ```toml
//! [[targets]]
//! name = "memory"
//! kind = "stdio"
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-memory"]
//! env = { MEMORY_FILE_PATH = "${STATE}/memory.jsonl" }
//! cwd = "/srv/memory"
//! ```
//!
//! The child's environment is, by default, only a few harmless variables of the sidecar's
//! own (the set the MCP SDKs pass to stdio servers: `PATH`, `HOME`, …) plus `env`, so the
//! sidecar's AWS credentials and tokens do not leak into every server it runs;
//! `inherit_env = true` passes the whole environment. Env values are never printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Secret};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioSpec {
    /// The program: a path, or a name looked up in `PATH`.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables set for the child (values may use `${VAR}`; never printed).
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Pass the sidecar's whole environment, not only the harmless few.
    #[serde(default)]
    pub inherit_env: bool,
    /// The child's working directory (default: the sidecar's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

impl StdioSpec {
    /// Checks what types cannot; `at` turns a key into its field path.
    pub(super) fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.command.trim().is_empty() {
            return Err(ConfigError::new(
                at("command"),
                "must name a program, e.g. \"npx\"",
            ));
        }
        if self.command.contains('\0') {
            return Err(ConfigError::new(at("command"), "contains a NUL character"));
        }
        if let Some(i) = self.args.iter().position(|a| a.contains('\0')) {
            return Err(ConfigError::new(
                at(&format!("args[{i}]")),
                "contains a NUL character",
            ));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(ConfigError::new(
                    at(&format!("env.{name}")),
                    "is not a valid environment variable name (empty, or contains '=' or NUL)",
                ));
            }
            if value.expose().contains('\0') {
                return Err(ConfigError::new(
                    at(&format!("env.{name}")),
                    "the value contains a NUL character",
                ));
            }
        }
        if let Some(cwd) = &self.cwd
            && cwd.as_os_str().is_empty()
        {
            return Err(ConfigError::new(
                at("cwd"),
                "must be a directory (or left out)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, TargetSpec};

    fn parse(target_keys: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!("[[targets]]\nname = \"local\"\nkind = \"stdio\"\n{target_keys}\n"),
            &|name| (name == "TOKEN").then(|| "s3cr3t".to_string()),
        )
    }

    #[test]
    fn stdio_keys_parse_and_env_values_interpolate() {
        let c = parse(
            "command = \"npx\"\nargs = [\"-y\", \"@modelcontextprotocol/server-memory\"]\n\
             env = { API_TOKEN = \"${TOKEN}\" }\ncwd = \"/srv\"\nrequest_timeout_ms = 5000",
        )
        .unwrap();
        let TargetSpec::Stdio(s) = &c.targets[0].spec else {
            panic!("{:?}", c.targets[0].spec);
        };
        assert_eq!(s.args, ["-y", "@modelcontextprotocol/server-memory"]);
        assert_eq!(s.env["API_TOKEN"].expose(), "s3cr3t");
        assert!(!s.inherit_env);
        assert_eq!(c.targets[0].request_timeout_ms, 5000);
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "env values are redacted"
        );
    }

    #[test]
    fn stdio_errors_name_the_field() {
        for (keys, field) in [
            ("args = []", "targets[0]"), // serde: "missing field `command`"
            ("command = \"  \"", "targets[0].command"),
            ("command = \"x\"\nargz = []", "targets[0]"),
            (
                "command = \"x\"\nenv = { \"A=B\" = \"1\" }",
                "targets[0].env.A=B",
            ),
            ("command = \"x\"\nurl = \"http://h/mcp\"", "targets[0]"),
            (
                "command = \"x\"\n[targets.credential_provider]\ntype = \"api_key\"\nvalue = \"k\"",
                "targets[0].credential_provider",
            ),
        ] {
            let e = parse(keys).unwrap_err();
            assert!(e.field.starts_with(field), "{keys}: {e}");
        }
        let e = parse("command = \"x\"\nargz = []").unwrap_err();
        assert!(e.problem.contains("argz"), "{e}");
        let e = parse("args = []").unwrap_err();
        assert!(e.problem.contains("command"), "{e}");
    }
}
