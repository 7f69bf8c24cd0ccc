//! Per-target curation: which upstream tools are exposed, under which names and words.
//! Applied to the upstream's definitions at every catalog build, so a config change takes
//! effect on the next build without refetching anything.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::{Map, Value};

use crate::config::CurationConfig;

#[derive(Default)]
pub struct Curation {
    allow: Option<GlobSet>,
    deny: Option<GlobSet>,
    rename: BTreeMap<String, String>,
    descriptions: BTreeMap<String, String>,
    read_only: bool,
}

fn glob_set(patterns: &[String]) -> anyhow::Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        set.add(Glob::new(p)?);
    }
    Ok(Some(set.build()?))
}

impl Curation {
    pub fn new(config: &CurationConfig) -> anyhow::Result<Self> {
        Ok(Self {
            allow: glob_set(&config.allow_tools)?,
            deny: glob_set(&config.deny_tools)?,
            rename: config.rename_tools.clone(),
            descriptions: config.tool_descriptions.clone(),
            read_only: config.read_only,
        })
    }

    /// Whether upstream tool `name` (with `definition`) is exposed at all. A read-only
    /// target exposes only tools annotated `readOnlyHint: true`; the others are neither
    /// listed nor callable.
    pub fn admits(&self, name: &str, definition: &Map<String, Value>) -> bool {
        if self.allow.as_ref().is_some_and(|a| !a.is_match(name)) {
            return false;
        }
        if self.deny.as_ref().is_some_and(|d| d.is_match(name)) {
            return false;
        }
        if self.read_only {
            let read_only = definition
                .get("annotations")
                .and_then(|a| a.get("readOnlyHint"))
                .and_then(Value::as_bool);
            return read_only == Some(true);
        }
        true
    }

    /// The tool's name before the target prefix: renamed, or the upstream's own.
    pub fn local_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.rename.get(name).map_or(name, String::as_str)
    }

    /// Whether [`Self::rewrite`] would change tool `name`'s definition.
    pub fn rewrites(&self, name: &str) -> bool {
        self.descriptions.contains_key(name)
    }

    /// Applies description overrides to a definition about to be exposed.
    pub fn rewrite(&self, name: &str, definition: &mut Map<String, Value>) {
        if let Some(description) = self.descriptions.get(name) {
            definition.insert("description".into(), Value::String(description.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(read_only: Option<bool>) -> Map<String, Value> {
        let mut d = json!({"name": "x", "description": "orig"});
        if let Some(r) = read_only {
            d["annotations"] = json!({"readOnlyHint": r});
        }
        d.as_object().unwrap().clone()
    }

    #[test]
    fn allow_deny_rename_describe_read_only() {
        let config = CurationConfig {
            allow_tools: vec!["get_*".into(), "echo".into()],
            deny_tools: vec!["get_secret*".into()],
            rename_tools: [("echo".to_string(), "say".to_string())].into(),
            tool_descriptions: [("echo".to_string(), "Repeats".to_string())].into(),
            read_only: false,
        };
        let c = Curation::new(&config).unwrap();
        assert!(c.admits("get_item", &def(None)));
        assert!(!c.admits("get_secret_key", &def(None)));
        assert!(!c.admits("delete_item", &def(None)));
        assert_eq!(c.local_name("echo"), "say");
        assert_eq!(c.local_name("get_item"), "get_item");
        let mut d = def(None);
        c.rewrite("echo", &mut d);
        assert_eq!(d["description"], "Repeats");

        let ro = Curation::new(&CurationConfig {
            read_only: true,
            ..Default::default()
        })
        .unwrap();
        assert!(ro.admits("a", &def(Some(true))));
        assert!(!ro.admits("a", &def(Some(false))));
        assert!(
            !ro.admits("a", &def(None)),
            "unannotated tools are not assumed read-only"
        );
    }
}
