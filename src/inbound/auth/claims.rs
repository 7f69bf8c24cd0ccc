//! Claim checks shared by authorizers and tool rules (AgentCore `customClaims` semantics).

use serde_json::Value;

use crate::config::{ClaimCondition, ClaimOperator};

/// Why a condition failed, for the error message (never the claim's value).
pub fn check(
    condition: &ClaimCondition,
    claims: &serde_json::Map<String, Value>,
) -> Result<(), String> {
    let name = &condition.name;
    let claim = claims.get(name);
    let ok = match (condition.operator, claim) {
        (_, None) => return Err(format!("claim `{name}` is missing")),
        (ClaimOperator::Equals, Some(Value::String(s))) => {
            condition.value.as_deref() == Some(s.as_str())
        }
        (ClaimOperator::Contains, Some(Value::Array(items))) => items
            .iter()
            .any(|i| i.as_str() == condition.value.as_deref()),
        (ClaimOperator::ContainsAny, Some(Value::String(s))) => {
            condition.values.iter().any(|v| v == s)
        }
        (ClaimOperator::ContainsAny, Some(Value::Array(items))) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|i| condition.values.iter().any(|v| v == i)),
        (_, Some(_)) => return Err(format!("claim `{name}` has the wrong type")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "claim `{name}` does not satisfy {:?}",
            condition.operator
        ))
    }
}

/// The token's scopes: the space-separated `scope` (OAuth, Cognito) and the `scp` array
/// (Entra ID, Okta).
pub fn scopes(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = match claims.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(items)) = claims.get("scp") {
        scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string));
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClaimValueType;
    use serde_json::json;

    fn cond(operator: ClaimOperator, value: Option<&str>, values: &[&str]) -> ClaimCondition {
        ClaimCondition {
            name: "c".into(),
            value_type: ClaimValueType::String,
            operator,
            value: value.map(str::to_string),
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn operators() {
        let claims = |v: Value| json!({ "c": v }).as_object().unwrap().clone();
        assert!(
            check(
                &cond(ClaimOperator::Equals, Some("a"), &[]),
                &claims(json!("a"))
            )
            .is_ok()
        );
        assert!(
            check(
                &cond(ClaimOperator::Equals, Some("a"), &[]),
                &claims(json!("b"))
            )
            .is_err()
        );
        assert!(
            check(
                &cond(ClaimOperator::Contains, Some("a"), &[]),
                &claims(json!(["x", "a"]))
            )
            .is_ok()
        );
        assert!(
            check(
                &cond(ClaimOperator::Contains, Some("a"), &[]),
                &claims(json!(["x"]))
            )
            .is_err()
        );
        assert!(
            check(
                &cond(ClaimOperator::ContainsAny, None, &["a", "b"]),
                &claims(json!(["b"]))
            )
            .is_ok()
        );
        assert!(
            check(
                &cond(ClaimOperator::ContainsAny, None, &["a", "b"]),
                &claims(json!("a"))
            )
            .is_ok()
        );
        assert!(
            check(
                &cond(ClaimOperator::ContainsAny, None, &["a"]),
                &claims(json!(["z"]))
            )
            .is_err()
        );
        assert!(
            check(
                &cond(ClaimOperator::Equals, Some("a"), &[]),
                &claims(json!(["a"]))
            )
            .is_err()
        );
        let missing = check(
            &cond(ClaimOperator::Equals, Some("a"), &[]),
            &serde_json::Map::new(),
        )
        .unwrap_err();
        assert!(missing.contains("missing"));
    }

    #[test]
    fn scopes_from_scope_and_scp() {
        let claims = json!({"scope": "a b  c", "scp": ["d"]})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(scopes(&claims), ["a", "b", "c", "d"]);
    }
}
