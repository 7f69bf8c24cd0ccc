//! Per-tool authorization: which callers see and may call which tools.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::Caller;
use super::claims;
use crate::config::{ClaimCondition, ToolRuleConfig};

struct Rule {
    tools: GlobSet,
    required_scopes: Vec<String>,
    custom_claims: Vec<ClaimCondition>,
}

/// What a caller may do with one tool.
#[derive(Debug, PartialEq, Eq)]
pub enum ToolAccess {
    Allowed,
    /// Listed scopes are needed (a 403 with `insufficient_scope` lets the client step up).
    MissingScopes(Vec<String>),
    /// The caller may not know the tool exists: treated exactly like an unknown tool.
    Hidden,
}

#[derive(Default)]
pub struct ToolRules {
    rules: Vec<Rule>,
}

impl ToolRules {
    pub fn new(configs: &[ToolRuleConfig]) -> anyhow::Result<Self> {
        let rules = configs
            .iter()
            .map(|c| {
                let mut set = GlobSetBuilder::new();
                for pattern in &c.tools {
                    set.add(Glob::new(pattern)?);
                }
                Ok(Rule {
                    tools: set.build()?,
                    required_scopes: c.required_scopes.clone(),
                    custom_claims: c.custom_claims.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every scope a rule mentions (for RFC 9728 `scopes_supported`).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.required_scopes.iter().map(String::as_str))
    }

    /// `caller` is None when inbound auth is off: then every tool is allowed.
    pub fn access(&self, caller: Option<&Caller>, tool: &str) -> ToolAccess {
        let Some(caller) = caller else {
            return ToolAccess::Allowed;
        };
        let Some(rule) = self.rules.iter().find(|r| r.tools.is_match(tool)) else {
            return ToolAccess::Allowed;
        };
        if rule
            .custom_claims
            .iter()
            .any(|c| claims::check(c, &caller.claims).is_err())
        {
            return ToolAccess::Hidden;
        }
        let missing: Vec<String> = rule
            .required_scopes
            .iter()
            .filter(|s| !caller.scopes.iter().any(|have| have == *s))
            .cloned()
            .collect();
        if missing.is_empty() {
            ToolAccess::Allowed
        } else {
            ToolAccess::MissingScopes(missing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClaimOperator, ClaimValueType};
    use serde_json::json;

    fn caller(scope: &str, tenant: &str) -> Caller {
        let claims = json!({"scope": scope, "tenant": tenant})
            .as_object()
            .unwrap()
            .clone();
        Caller::from_claims(claims)
    }

    #[test]
    fn first_matching_rule_decides() {
        let rules = ToolRules::new(&[
            ToolRuleConfig {
                tools: vec!["*___get_*".into()],
                required_scopes: vec!["gateway:read".into()],
                custom_claims: vec![],
            },
            ToolRuleConfig {
                tools: vec!["admin___*".into()],
                required_scopes: vec![],
                custom_claims: vec![ClaimCondition {
                    name: "tenant".into(),
                    value_type: ClaimValueType::String,
                    operator: ClaimOperator::Equals,
                    value: Some("ops".into()),
                    values: vec![],
                }],
            },
            ToolRuleConfig {
                tools: vec!["*".into()],
                required_scopes: vec!["gateway:write".into()],
                custom_claims: vec![],
            },
        ])
        .unwrap();
        let reader = caller("gateway:read", "acme");
        assert_eq!(
            rules.access(Some(&reader), "t___get_item"),
            ToolAccess::Allowed
        );
        assert_eq!(
            rules.access(Some(&reader), "t___put_item"),
            ToolAccess::MissingScopes(vec!["gateway:write".into()])
        );
        assert_eq!(
            rules.access(Some(&reader), "admin___reset"),
            ToolAccess::Hidden
        );
        assert_eq!(
            rules.access(Some(&caller("", "ops")), "admin___reset"),
            ToolAccess::Allowed
        );
        assert_eq!(rules.access(None, "t___put_item"), ToolAccess::Allowed);
        assert_eq!(
            ToolRules::default().access(Some(&reader), "anything"),
            ToolAccess::Allowed
        );
    }
}
