//! AWS's published SigV4 test vectors against the sidecar's signing function
//! (`targets::credentials::sigv4::sign_request`).
//!
//! The vectors are the AWS signing test suite (from aws-c-auth, plus the `double-encode-path`
//! case) as shipped inside the `aws-sigv4` crate package, found through `cargo metadata`
//! filtered to the host platform (see [`suite_dir`]):
//! for each case, `request.txt` is signed with the credentials, region, service, time and
//! options of `context.json`, and the `Authorization` header must equal the one in
//! `header-signed-request.txt` (so the canonical request, string to sign and signature all
//! agree with AWS's).
//!
//! SigV4a signatures are ECDSA with a random-looking (RFC 6979) nonce, so the published
//! signature cannot be matched byte for byte: for each v4a case the signature must verify
//! (aws-lc-rs, ECDSA P-256) under the published public key for the test credentials over the
//! published string to sign, and the credential scope and signed headers must equal AWS's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::identity::Identity;
use mcp_sidecar::targets::credentials::sigv4::{SignOptions, SigningRegion, sign_request};
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

/// `version` is `v4` or `v4a`.
///
/// `cargo metadata` is filtered to the host platform: unfiltered, it needs the sources of
/// every package in the lock file, including ones only other platforms build (which
/// `cargo build` on this host never downloads), and fails offline on a fresh cargo home.
fn suite_dir(version: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host_triple()])
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
    let dir = Path::new(&manifest)
        .parent()
        .unwrap()
        .join("aws-signing-test-suite")
        .join(version);
    assert!(
        dir.is_dir(),
        "the aws-sigv4 package no longer ships {}",
        dir.display()
    );
    dir
}

/// The platform `cargo build` targets here (`host:` of `rustc -vV`).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

/// The suite's cases, sorted, without those in [`NOT_APPLICABLE`].
fn cases(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("context.json").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), p))
        .filter(|(name, _)| !NOT_APPLICABLE.contains(&name.as_str()))
        .collect();
    cases.sort();
    cases
}

fn read(case: &Path, file: &str) -> String {
    std::fs::read_to_string(case.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", case.display()))
}

/// Signs a case's `request.txt` as its `context.json` says (with SigV4a when `v4a`).
fn sign_case(case: &Path, v4a: bool) -> (Context, Vec<(&'static str, String, bool)>) {
    let context: Context = serde_json::from_str(&read(case, "context.json")).unwrap();
    let request = parse_request(&read(case, "request.txt"));
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
        if v4a {
            SigningRegion::Set(&context.region)
        } else {
            SigningRegion::Single(&context.region)
        },
        &context.service,
        time,
        SignOptions {
            normalize_path: context.normalize,
            content_sha256_header: context.sign_body,
            sign_session_token: !context.omit_session_token,
        },
    );
    (context, signed)
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
    region: SigningRegion<'_>,
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
    let dir = suite_dir("v4");
    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for (name, case) in cases(&dir) {
        let (context, signed) = sign_case(&case, false);
        let got = authorization(&signed).to_string();
        let want = expected_authorization(&case);
        if got != want {
            failed.push(format!("{name}:\n  want {want}\n  got  {got}"));
        }
        if let Some(token) = &context.credentials.token {
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
    let case = suite_dir("v4").join("double-encode-path");
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
        SigningRegion::Single("us-east-1"),
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

#[derive(Deserialize)]
struct PublicKey {
    #[serde(rename = "X")]
    x: String,
    #[serde(rename = "Y")]
    y: String,
}

/// Verifies an ECDSA P-256 signature (hex DER) under the suite's public key (`public-key.json`).
fn verify_v4a(case: &Path, message: &[u8], signature_hex: &str) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    let key: PublicKey = serde_json::from_str(&read(case, "public-key.json")).unwrap();
    let point = hex(&format!("04{}{}", key.x, key.y));
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, &hex(signature_hex))
        .is_ok()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn published_sigv4a_vectors() {
    let dir = suite_dir("v4a");
    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for (name, case) in cases(&dir) {
        let (context, signed) = sign_case(&case, true);
        let got = authorization(&signed);
        let want = expected_authorization(&case);
        // Algorithm, credential scope (no region in SigV4a's) and signed headers match AWS's.
        let (got_head, got_signature) = got.split_once("Signature=").unwrap();
        let want_head = want.split_once("Signature=").unwrap().0;
        if got_head != want_head {
            failed.push(format!("{name}:\n  want {want_head}\n  got  {got_head}"));
            continue;
        }
        assert!(
            signed
                .iter()
                .any(|h| h.0 == "x-amz-region-set" && h.1 == context.region),
            "{name}: the region set is sent"
        );
        let string_to_sign = read(&case, "header-string-to-sign.txt");
        if !verify_v4a(&case, string_to_sign.as_bytes(), got_signature) {
            failed.push(format!(
                "{name}: the signature does not verify over AWS's string to sign"
            ));
        }
        // The check can fail: not over a different string to sign.
        assert!(
            !verify_v4a(
                &case,
                format!("{string_to_sign}x").as_bytes(),
                got_signature
            ),
            "{name}"
        );
        ran.push(name.clone());
    }
    assert!(
        failed.is_empty(),
        "{} of {} SigV4a vectors fail:\n{}",
        failed.len(),
        ran.len(),
        failed.join("\n")
    );
    assert!(
        ran.len() >= 30,
        "only {} SigV4a vectors found in {}",
        ran.len(),
        dir.display()
    );
    eprintln!("{} published SigV4a vectors verified", ran.len());
}
