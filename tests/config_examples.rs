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

/// `mcp-sidecar check` on an example (from the repository root, with stand-ins for its
/// `${VAR}`s); panics unless it succeeds. Returns what it printed.
fn check_example(example: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(example);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-sidecar"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .arg("--config")
        .arg(&file);
    for var in referenced_vars(&text) {
        command.env(&var, example_env(&var).unwrap());
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `check` on the AWS example shows how each target signs and where each part came from.
#[test]
fn check_shows_the_signing_scope_of_aws_targets() {
    let stdout = check_example("config/aws-upstreams.toml");
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

/// `check` describes the stdio and lambda kinds: what runs or is invoked, and with which
/// credentials (never a secret).
#[test]
fn check_describes_stdio_and_lambda_targets() {
    for (example, shown) in [
        (
            "config/stdio-servers.toml",
            &[
                "memory (stdio) npx -y @modelcontextprotocol/server-memory",
                "notes (stdio) python3 -m notes_server (in /opt/notes-server)",
                "credentials   none (environment: PATH, HOME and a few harmless variables, plus NOTES_DB_PASSWORD set by the config; values not shown)",
            ][..],
        ),
        (
            "config/lambda-functions.toml",
            &[
                "orders (lambda) https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorder-tools/invocations (function arn:aws:lambda:us-east-1:123456789012:function:order-tools, region us-east-1)",
                "sigv4 (service lambda from config, region us-east-1 from config",
                "weather (lambda) https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/weather-tools%3Alive/invocations",
                "sigv4 (service lambda from config, region eu-west-1 from config; credentials from assume role arn:aws:iam::210987654321:role/weather-invoker with the default chain",
            ][..],
        ),
    ] {
        let stdout = check_example(example);
        for line in shown {
            assert!(stdout.contains(line), "`{line}` not in:\n{stdout}");
        }
        assert!(
            !stdout.contains("example-notes_db_password"),
            "env values are never printed:\n{stdout}"
        );
    }
}
