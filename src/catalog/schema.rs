//! Placeholder until the Gateway schema normalization lands: changes nothing.

use serde_json::Value;

pub fn normalize_for_gateway(schema: &Value) -> (Value, Vec<String>) {
    (schema.clone(), Vec::new())
}
