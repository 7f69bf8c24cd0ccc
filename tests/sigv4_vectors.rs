//! AWS's published SigV4 test vectors against the sidecar's signing function
//! (`targets::auth::sigv4::sign_request`).
//!
//! The vectors are the AWS signing test suite (from aws-c-auth, plus the `double-encode-path`
//! case) as shipped inside the `aws-sigv4` crate package, found through `cargo metadata`:
//! for each case, `request.txt` is signed with the credentials, region, service, time and
//! options of `context.json`, and the `Authorization` header must equal the one in
//! `header-signed-request.txt` (so the canonical request, string to sign and signature all
//! agree with AWS's).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::identity::Identity;
use mcp_sidecar::targets::auth::sigv4::{SignOptions, sign_request};
use serde::Deserialize;

/// Cases whose request line holds raw characters no HTTP client sends unencoded (a space,
/// UTF-8). The sidecar signs URLs as sent, i.e. already percent-encoded, which AWS encodes
/// once more; these vectors encode the raw path once. aws-sigv4's own suite skips them too.
const NOT_APPLICABLE: &[&str] = &[
    "get-space-normalized",
    "get-space-unnormalized",
    "get-utf8",
    "get-vanilla-utf8-query",
];

#[derive(Deserialize)]
struct Context {
    credentials: Creds,
    normalize: bool,
    region: String,
    service: String,
    sign_body: bool,
    timestamp: String,
    #[serde(default)]
    omit_session_token: bool,
}

#[derive(Deserialize)]
struct Creds {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn suite_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "aws-sigv4")
        .expect("aws-sigv4 is a dependency")["manifest_path"]
        .as_str()
        .unwrap()
        .to_string();
    Path::new(&manifest)
        .parent()
        .unwrap()
        .join("aws-signing-test-suite/v4")
}

/// Parses `request.txt`: request line, headers (continuation lines folded into the value
/// with single spaces), blank line, body.
fn parse_request(text: &str) -> Request {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b.as_bytes().to_vec()),
        None => (text.trim_end_matches('\n'), Vec::new()),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let mut parts = request_line.splitn(2, ' ');
    let method = parts.next().unwrap().to_string();
    let rest = parts.next().unwrap();
    let path = rest.rsplit_once(' ').unwrap().0.to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Request {
        method,
        path,
        headers,
        body,
    }
}

fn expected_authorization(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Authorization:"))
        .unwrap()
        .to_string()
}

#[allow(clippy::too_many_arguments)]
fn sign(
    request: &Request,
    creds: Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
    options: SignOptions,
) -> Vec<(&'static str, String, bool)> {
    let host = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .unwrap();
    let url = format!("https://{host}{}", request.path);
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let identity: Identity = creds.into();
    sign_request(
        &identity,
        service,
        region,
        &request.method,
        &url,
        &headers,
        &request.body,
        time,
        options,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", request.path))
}

fn authorization<'a>(signed: &'a [(&'static str, String, bool)]) -> &'a str {
    &signed.iter().find(|h| h.0 == "authorization").unwrap().1
}

#[test]
fn published_sigv4_vectors() {
    let dir = suite_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("context.json").is_file())
        .collect();
    cases.sort();
    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        if NOT_APPLICABLE.contains(&name.as_str()) {
            continue;
        }
        let context: Context =
            serde_json::from_str(&std::fs::read_to_string(case.join("context.json")).unwrap())
                .unwrap();
        let request = parse_request(&std::fs::read_to_string(case.join("request.txt")).unwrap());
        let time: SystemTime = humantime::parse_rfc3339(&context.timestamp).unwrap();
        let c = &context.credentials;
        let creds = Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.token.clone(),
            None,
            "vectors",
        );
        let signed = sign(
            &request,
            creds,
            &context.region,
            &context.service,
            time,
            SignOptions {
                normalize_path: context.normalize,
                content_sha256_header: context.sign_body,
                sign_session_token: !context.omit_session_token,
            },
        );
        let got = authorization(&signed).to_string();
        let want = expected_authorization(case);
        if got != want {
            failed.push(format!("{name}:\n  want {want}\n  got  {got}"));
        }
        if let Some(token) = &c.token {
            assert!(
                signed
                    .iter()
                    .any(|h| h.0 == "x-amz-security-token" && &h.1 == token && h.2),
                "{name}: the session token header is added and marked sensitive"
            );
        }
        ran.push(name);
    }
    assert!(
        failed.is_empty(),
        "{} of {} vectors differ:\n{}",
        failed.len(),
        ran.len(),
        failed.join("\n")
    );
    assert!(
        ran.len() >= 30,
        "only {} vectors found in {}",
        ran.len(),
        dir.display()
    );
    eprintln!("{} published SigV4 vectors signed identically", ran.len());
}

/// The suite's `double-encode-path` case (an API Gateway WebSocket `@connections` path with
/// an encoded `=`), signed as aws-sigv4's own test does: its canonical URI must encode the
/// already-encoded path once more (`%3D` → `%253D`), as AgentCore Runtime ARNs need.
#[test]
fn double_encoded_path_vector() {
    let case = suite_dir().join("double-encode-path");
    let mut request = parse_request(&std::fs::read_to_string(case.join("request.txt")).unwrap());
    // The request already carries the X-Amz-Date the signature is for.
    request
        .headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("x-amz-date"));
    let time = humantime::parse_rfc3339("2015-08-30T12:36:00Z").unwrap();
    let signed = sign(
        &request,
        Credentials::new(
            "ANOTREAL",
            "notrealrnrELgWzOk3IfjzDKtFBhDby",
            None,
            None,
            "t",
        ),
        "us-east-1",
        "service",
        time,
        SignOptions {
            normalize_path: true,
            content_sha256_header: false,
            sign_session_token: true,
        },
    );
    assert_eq!(authorization(&signed), expected_authorization(&case));
    let canonical = std::fs::read_to_string(case.join("header-canonical-request.txt")).unwrap();
    assert!(canonical.contains("/test/%40connections/JBDvjfGEIAMCERw%253D"));
}
