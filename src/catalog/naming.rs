//! Exposed tool names: `{target}___{tool}`, always within `^[a-zA-Z0-9_-]{1,64}$`.
//!
//! Model APIs reject names outside that pattern, so a name that is too long or has other
//! characters is rewritten deterministically: invalid characters become `_`, the name is cut,
//! and an 8-hex-digit hash of the full original name is appended so distinct originals stay
//! distinct. The same input always yields the same name, across restarts and machines.

use sha2::{Digest, Sha256};

/// The Gateway's separator between target and tool.
pub const SEPARATOR: &str = "___";
/// The longest tool name model APIs accept.
pub const MAX_NAME_LEN: usize = 64;
const HASH_LEN: usize = 8;

pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The longest exposed name that still fits 64 characters once an AgentCore Gateway adds
/// its own `{gateway_target}___` prefix.
pub fn max_len_behind_gateway(gateway_target: Option<&str>) -> usize {
    gateway_target.map_or(MAX_NAME_LEN, |g| MAX_NAME_LEN - g.len() - SEPARATOR.len())
}

/// The name a client sees for `tool` of `target` (`prefix = false` drops the target part),
/// at most `max_len` characters.
pub fn exposed_name(target: &str, tool: &str, prefix: bool, max_len: usize) -> String {
    let full = if prefix {
        format!("{target}{SEPARATOR}{tool}")
    } else {
        tool.to_string()
    };
    if is_valid_name(&full) && full.len() <= max_len {
        return full;
    }
    shorten(&full, &full, max_len)
}

/// A second name for a tool whose exposed name is already taken by another tool: the hash
/// covers target and original name, so it cannot collide with the first holder.
pub fn disambiguated_name(taken: &str, target: &str, tool: &str, max_len: usize) -> String {
    shorten(taken, &format!("{target}/{tool}"), max_len)
}

/// Sanitizes `name`, cuts it to leave room for `_` + hash, and appends the hash of `hash_input`.
fn shorten(name: &str, hash_input: &str, max_len: usize) -> String {
    let sanitized: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let keep = max_len.clamp(HASH_LEN + 2, MAX_NAME_LEN) - 1 - HASH_LEN;
    // Trailing underscores would run into the separator `_` and read badly.
    let stem = sanitized[..sanitized.len().min(keep)].trim_end_matches('_');
    let digest = Sha256::digest(hash_input.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    if stem.is_empty() {
        format!("t_{hash}")
    } else {
        format!("{stem}_{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_prefixed_unchanged() {
        assert_eq!(
            exposed_name("weather", "get_forecast", true, 64),
            "weather___get_forecast"
        );
        assert_eq!(
            exposed_name("weather", "get_forecast", false, 64),
            "get_forecast"
        );
    }

    #[test]
    fn long_and_invalid_names_are_shortened_deterministically() {
        let long = "a".repeat(80);
        let a = exposed_name("target", &long, true, 64);
        assert!(is_valid_name(&a), "{a}");
        assert_eq!(a.len(), MAX_NAME_LEN);
        assert_eq!(a, exposed_name("target", &long, true, 64));

        let dotted = exposed_name("t", "files.read/v2", true, 64);
        assert!(is_valid_name(&dotted), "{dotted}");
        assert!(dotted.starts_with("t___files_read_v2_"));
        // Two originals that sanitize alike still differ.
        assert_ne!(dotted, exposed_name("t", "files_read_v2", true, 64));
        assert_ne!(
            exposed_name("t", "a.b", true, 64),
            exposed_name("t", "a/b", true, 64)
        );

        let empty = exposed_name("t", "", false, 64);
        assert!(is_valid_name(&empty), "{empty}");
        assert!(is_valid_name(&exposed_name("t", "ünïcødé", false, 64)));
    }

    #[test]
    fn names_differing_only_past_the_cut_stay_distinct() {
        let base = "x".repeat(70);
        let a = exposed_name("t", &format!("{base}_one"), true, 64);
        let b = exposed_name("t", &format!("{base}_two"), true, 64);
        assert_ne!(a, b);
        assert!(is_valid_name(&a) && is_valid_name(&b));
    }

    #[test]
    fn names_leave_room_for_the_gateway_prefix() {
        let max = max_len_behind_gateway(Some("my-sidecar"));
        assert_eq!(max, 64 - 10 - 3);
        let name = exposed_name("tickets", &"x".repeat(50), true, max);
        assert!(name.len() <= max && is_valid_name(&name), "{name}");
        assert!(format!("my-sidecar___{name}").len() <= 64);
        assert_eq!(exposed_name("t", "short", true, max), "t___short");
    }

    #[test]
    fn disambiguation_is_valid_and_depends_on_the_owner() {
        let a = disambiguated_name("search", "alpha", "search", 64);
        let b = disambiguated_name("search", "beta", "search", 64);
        assert!(is_valid_name(&a) && is_valid_name(&b));
        assert_ne!(a, b);
        assert_ne!(a, "search");
    }
}
