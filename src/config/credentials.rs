//! Outbound credential providers: how the sidecar authenticates to a target.
//! (Never the inbound caller's token: that is not forwarded.)

use serde::Deserialize;

use super::{Secret, validate_header};

/// How outbound requests to a target are authenticated.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialProviderConfig {
    #[default]
    None,
    /// A static secret in one header, e.g. `x-api-key: …` or `Authorization: Bearer …`.
    ApiKey {
        #[serde(default = "default_api_key_header")]
        header: String,
        #[serde(default)]
        prefix: String,
        value: Secret,
    },
}

impl CredentialProviderConfig {
    /// Checks what types cannot; the error is (".sub.field" or "", problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            CredentialProviderConfig::None => Ok(()),
            CredentialProviderConfig::ApiKey {
                header,
                prefix,
                value,
            } => validate_header(header, &format!("{prefix}{}", value.expose()))
                .map_err(|p| (String::new(), p)),
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}
