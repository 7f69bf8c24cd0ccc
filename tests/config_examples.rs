//! Every example in `config/` loads and passes `check`, so the examples cannot rot; and a
//! broken config makes `check` exit 2 naming the field.

use std::path::Path;
use std::process::Command;

use mcp_sidecar::config::Config;

/// Stand-in values for the `${VAR}`s the examples use.
fn example_env(name: &str) -> Option<String> {
    Some(match name {
        "UPSTREAM_MCP_URL" => "http://127.0.0.1:3001/mcp".into(),
        other => format!("example-{}", other.to_ascii_lowercase()),
    })
}

/// The names of the `${VAR}`s a config text refers to.
fn referenced_vars(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

fn examples() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the example configs, found {files:?}"
    );
    files
}

#[test]
fn every_example_config_parses_and_validates() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let config = Config::parse(&text, &example_env)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!config.targets.is_empty(), "{}", file.display());
    }
}

#[test]
fn check_accepts_every_example_and_prints_the_plan() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let config = Config::parse(&text, &example_env).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"));
        command
            .arg("check")
            .arg("--config")
            .arg(&file)
            .env_remove("MCP_SIDECAR_LISTEN");
        for var in referenced_vars(&text) {
            command.env(&var, example_env(&var).unwrap());
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for target in &config.targets {
            assert!(stdout.contains(&target.name), "{stdout}");
        }
        assert!(
            !stdout.contains("example-billing_api_key")
                && !stdout.contains("example-tickets_token"),
            "secrets are never printed:\n{stdout}"
        );
    }
}

/// `check` on the AWS example shows how each target signs and where each part came from.
#[test]
fn check_shows_the_signing_scope_of_aws_targets() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/aws-upstreams.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"));
    command.arg("check").arg("--config").arg(&file);
    for var in referenced_vars(&text) {
        command.env(&var, example_env(&var).unwrap());
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shown in [
        "sigv4 (service aws-mcp from the URL, region us-east-1 from the URL",
        "sigv4 (service bedrock-agentcore from the URL, region us-west-2 from the URL",
        "sigv4a (service execute-api from config, region set us-east-1,us-west-2 from config",
    ] {
        assert!(stdout.contains(shown), "`{shown}` not in:\n{stdout}");
    }
    assert!(
        !stdout.contains("example-runtime_client_secret")
            && !stdout.contains("example-runtime_external_id"),
        "secrets are never printed:\n{stdout}"
    );
}

#[test]
fn check_rejects_a_bad_config_with_exit_2_and_the_field() {
    let dir = std::env::temp_dir().join(format!("mcp-sidecar-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[targets]]\nname = \"x\"\nkind = \"mcp_server\"\nurl = \"not a url\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"))
        .arg("check")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("targets[0].url"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"))
        .args([
            "check",
            "--upstream-url",
            "http://127.0.0.1:9/mcp",
            "--listen",
            "0.0.0.0:8000", // `check` only validates: nothing listens here
        ])
        .env_remove("MCP_SIDECAR_INBOUND_AUTH")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "beyond loopback without an explicit auth choice"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("inbound.auth"));
    std::fs::remove_dir_all(&dir).ok();
}
