//! `${VAR}` interpolation inside string values of the parsed TOML tree.
//!
//! Interpolating after parsing (not on the raw text) means a secret containing quotes or
//! newlines can never change the structure of the config.

use super::ConfigError;

/// Replaces `${VAR}` in every string value below `value`; `$${` is a literal `${`.
/// `path` is the dotted field path of `value`, used in errors.
pub fn interpolate_env(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        toml::Value::String(s) => *s = interpolate_str(s, path, env)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_env(item, &format!("{path}[{i}]"), env)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                interpolate_env(v, &join(k), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn interpolate_str(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                ConfigError::new(path, "unterminated `${` (write `$${` for a literal `${`)")
            })?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::new(
                    path,
                    format!("`${{{name}}}` is not a valid variable name"),
                ));
            }
            let value = env(name).ok_or_else(|| {
                ConfigError::new(path, format!("environment variable {name} is not set"))
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "QUOTE" => Some("he said \"hi\"".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_escapes_and_reports() {
        assert_eq!(interpolate_str("x-${A}-y", "f", &env).unwrap(), "x-alpha-y");
        assert_eq!(
            interpolate_str("$${A} costs $5", "f", &env).unwrap(),
            "${A} costs $5"
        );
        assert_eq!(
            interpolate_str("${QUOTE}", "f", &env).unwrap(),
            "he said \"hi\""
        );
        let e = interpolate_str("${MISSING}", "a.b", &env).unwrap_err();
        assert_eq!(e.field, "a.b");
        assert!(e.problem.contains("MISSING"));
        assert!(interpolate_str("${A", "f", &env).is_err());
        assert!(interpolate_str("${A-B}", "f", &env).is_err());
    }
}
