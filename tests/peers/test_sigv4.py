"""Outbound SigV4 and OAuth client credentials, checked by independent implementations.

The sidecar signs every request to a fake AWS endpoint (fixtures/fake_aws.py) where botocore
recomputes each signature from known test credentials over the request as received, and
answers 403 on any mismatch, as AWS does; accepted requests go on to a real MCP upstream
(the sidecar's own demo upstream, JSON; or server-everything, stateful with SSE answers).
Credentials come from the environment, a profile file, or a container-credentials endpoint
whose keys expire during the test. OAuth client credentials come from the real issuer in
fixtures/oauth_issuer.py, checked by a resource server that validates the JWTs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from conftest import (
    FIXTURES,
    Proc,
    RawMcp,
    free_port,
    sidecar_bin,
    sidecar_config,
    spawn,
    start_sidecar,
    target_toml,
    wait_ready,
)

AKID = "AKIDSIDECARTEST01"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSIDECARKEY"
TOKEN_AKID = "ASIASIDECARTEST02"
TOKEN_SECRET = "se/cret+with/slashes=="
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFakeSessionToken//+=="
RUNTIME_ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/mcp_server-AbCd1234"
ENCODED_ARN = RUNTIME_ARN.replace(":", "%3A").replace("/", "%2F")


def wait_line(proc: Proc, prefix: str = "listening http://", timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line.split(" ", 1)[1].strip()
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited\n{proc.logs()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} printed no listening line\n{proc.logs()}")


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS variables from the machine; no shared config files; never IMDS (no network)."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


@pytest.fixture(scope="module")
def demo(logdir: Path) -> Iterator[Proc]:
    """The sidecar's own demo upstream, stateless with JSON answers."""
    proc = spawn("demo-upstream", [str(sidecar_bin()), "demo-upstream", "--listen", "127.0.0.1:0", "--stateless"], logdir)
    proc.url = wait_line(proc)
    yield proc
    proc.stop()


class FakeAws:
    def __init__(self, proc: Proc):
        self.proc = proc
        self.base = wait_line(proc)

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.base + "/admin/stats", timeout=5).json()

    def config(self, **cfg: Any) -> None:
        httpx.post(self.base + "/admin/config", json=cfg, timeout=5).raise_for_status()

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        r = httpx.post(self.base + path, json=body or {}, timeout=5)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def fake_aws(logdir: Path, procs: Callable[[Proc], Proc]) -> Callable[..., FakeAws]:
    def start(upstream: str, *args: str) -> FakeAws:
        proc = procs(
            spawn("fake-aws", [os.sys.executable, str(FIXTURES / "fake_aws.py"), "--upstream", upstream, *args], logdir)
        )
        return FakeAws(proc)

    return start


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)  # strings, numbers, booleans and lists of them read the same in TOML


def sigv4_target(name: str, url: str, **provider: Any) -> str:
    fields = ", ".join(f"{k} = {toml_value(v)}" for k, v in {"type": "sigv4", **provider}.items())
    return target_toml(name, url, request_timeout_ms=15000) + f"credential_provider = {{ {fields} }}\n"


def call(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    with RawMcp(url) as c:
        return c.call(name, arguments)


def readyz_target(sidecar: Proc, name: str) -> dict[str, Any]:
    base = sidecar.url.rsplit("/", 1)[0]
    body = httpx.get(base + "/readyz", timeout=5).json()
    return next(t for t in body["targets"] if t["name"] == name)


def wait_error(sidecar: Proc, name: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = readyz_target(sidecar, name)
        if t.get("last_error"):
            return t["last_error"]
        time.sleep(0.1)
    raise AssertionError(f"target {name} recorded no error\n{sidecar.logs()}")


# --------------------------------------------------------------------------- signing


def test_env_keys_sign_sync_and_calls_with_minimal_headers(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}", "--service", "aws-mcp", "--region", "us-east-1")
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    sc = procs(start_sidecar(logdir, cfg, env={"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}))
    wait_ready(sc, ["aws"])
    res = call(sc.url, "aws___add", {"a": 2, "b": 40})
    assert res["result"]["structuredContent"] == {"sum": 42.0}, res
    # A larger body with characters that need care in JSON.
    text = "héllo \"wörld\" ✓ " * 500
    res = call(sc.url, "aws___echo", {"text": text})
    assert res["result"]["content"][0]["text"] == text, str(res)[:300]
    stats = aws.stats()
    assert stats["rejected"] == {}, stats
    assert stats["accepted"] >= 3
    assert set(stats["signed_headers"]) == {"host;x-amz-content-sha256;x-amz-date"}, stats["signed_headers"]
    assert set(stats["keys_used"]) == {AKID}


def test_session_token_is_sent_and_signed(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{TOKEN_AKID}:{TOKEN_SECRET}:{SESSION_TOKEN}")
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    env = {"AWS_ACCESS_KEY_ID": TOKEN_AKID, "AWS_SECRET_ACCESS_KEY": TOKEN_SECRET, "AWS_SESSION_TOKEN": SESSION_TOKEN}
    sc = procs(start_sidecar(logdir, cfg, env=env))
    wait_ready(sc, ["aws"])
    assert call(sc.url, "aws___add", {"a": 1, "b": 1})["result"]["structuredContent"] == {"sum": 2.0}
    stats = aws.stats()
    assert stats["rejected"] == {}, stats
    assert set(stats["signed_headers"]) == {"host;x-amz-content-sha256;x-amz-date;x-amz-security-token"}


def test_named_profile_from_shared_files(demo: Proc, fake_aws, logdir: Path, procs, tmp_path: Path) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{TOKEN_AKID}:{TOKEN_SECRET}:{SESSION_TOKEN}")
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[default]\naws_access_key_id = AKIDWRONGDEFAULT\naws_secret_access_key = nope\n\n"
        f"[mcp]\naws_access_key_id = {TOKEN_AKID}\naws_secret_access_key = {TOKEN_SECRET}\naws_session_token = {SESSION_TOKEN}\n"
    )
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1", profile="mcp")])
    sc = procs(start_sidecar(logdir, cfg, env={"AWS_SHARED_CREDENTIALS_FILE": str(creds)}))
    wait_ready(sc, ["aws"])
    assert call(sc.url, "aws___add", {"a": 3, "b": 4})["result"]["structuredContent"] == {"sum": 7.0}
    assert set(aws.stats()["keys_used"]) == {TOKEN_AKID}


def test_sse_upstream_with_sessions_posts_and_delete_are_signed(everything: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(everything.url, "--credentials", f"{TOKEN_AKID}:{TOKEN_SECRET}:{SESSION_TOKEN}")
    cfg = sidecar_config([sigv4_target("ev", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    env = {"AWS_ACCESS_KEY_ID": TOKEN_AKID, "AWS_SECRET_ACCESS_KEY": TOKEN_SECRET, "AWS_SESSION_TOKEN": SESSION_TOKEN}
    sc = procs(start_sidecar(logdir, cfg, env=env))
    wait_ready(sc, ["ev"])
    res = call(sc.url, "ev___echo", {"message": "through SigV4 and SSE"})
    assert "through SigV4 and SSE" in json.dumps(res["result"]), res
    sc.stop()  # closes the upstream session with a signed DELETE
    stats = aws.stats()
    assert stats["rejected"] == {}, stats
    assert stats["methods"].get("POST", 0) >= 4  # initialize, initialized, tools/list, tools/call
    assert stats["methods"].get("DELETE", 0) == 1, stats["methods"]


def test_agentcore_runtime_url_with_encoded_arn(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(
        demo.url, "--credentials", f"{AKID}:{SECRET}", "--service", "bedrock-agentcore", "--region", "us-west-2"
    )
    path = f"/runtimes/{ENCODED_ARN}/invocations?qualifier=DEFAULT"
    cfg = sidecar_config([sigv4_target("rt", aws.base + path, service="bedrock-agentcore", region="us-west-2")])
    sc = procs(start_sidecar(logdir, cfg, env={"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}))
    wait_ready(sc, ["rt"])
    assert call(sc.url, "rt___add", {"a": 5, "b": 5})["result"]["structuredContent"] == {"sum": 10.0}
    stats = aws.stats()
    assert stats["rejected"] == {}, stats
    assert path in stats["paths"], stats["paths"]  # sent encoded, exactly as configured


# --------------------------------------------------------------------------- refusals


def test_tampered_body_stale_date_and_wrong_secret_are_clear_403s(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}")
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    sc = procs(start_sidecar(logdir, cfg, env={"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}))
    wait_ready(sc, ["aws"])

    aws.config(tamper_body=True)
    err = call(sc.url, "aws___add", {"a": 1, "b": 2})["error"]
    msg = err["message"]
    assert "403" in msg and "InvalidSignatureException" in msg and "signature mismatch" in msg, msg
    assert "credentials: sigv4" in msg and "aws-mcp" in msg and "us-east-1" in msg, msg
    assert err["data"]["target"] == "aws" and err["data"]["kind"] == "http_status", err
    aws.config(tamper_body=False)

    aws.config(clock_skew_secs=900)
    msg = call(sc.url, "aws___add", {"a": 1, "b": 2})["error"]["message"]
    assert "403" in msg and "Signature expired" in msg and "clock" in msg, msg
    aws.config(clock_skew_secs=0)
    assert call(sc.url, "aws___add", {"a": 1, "b": 2})["result"]["structuredContent"] == {"sum": 3.0}

    rejected = aws.stats()["rejected"]
    assert rejected == {"InvalidSignatureException": 2}, rejected
    assert SECRET not in sc.logs(100000)

    # Wrong secret: the sync itself fails, and /readyz says why.
    aws2 = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}")
    cfg = sidecar_config([sigv4_target("aws", aws2.base + "/mcp", service="aws-mcp", region="us-east-1")])
    sc2 = procs(start_sidecar(logdir, cfg, env={"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}))
    error = wait_error(sc2, "aws")
    assert "403" in error and "signature mismatch" in error and "the default chain" in error, error
    assert "not-the-secret" not in sc2.logs(100000)


def test_unknown_and_expired_keys_are_named(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}")
    aws.post("/admin/credentials", {"access_key_id": "ASIAEXPIRED", "secret_access_key": "x", "session_token": "t", "expires_in_secs": -1})
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    sc = procs(start_sidecar(logdir, cfg, env={"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN", "AWS_SECRET_ACCESS_KEY": SECRET}))
    error = wait_error(sc, "aws")
    assert "UnrecognizedClientException" in error and "does not recognize" in error, error
    env = {"AWS_ACCESS_KEY_ID": "ASIAEXPIRED", "AWS_SECRET_ACCESS_KEY": "x", "AWS_SESSION_TOKEN": "t"}
    sc2 = procs(start_sidecar(logdir, cfg, env=env))
    error = wait_error(sc2, "aws")
    assert "ExpiredTokenException" in error and "expired" in error, error


# --------------------------------------------------------------------------- SigV4a

V4A = "AWS4-ECDSA-P256-SHA256"


def fake_aws_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_aws", FIXTURES / "fake_aws.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fake_aws_sigv4a_check_agrees_with_aws(demo: Proc, fake_aws) -> None:
    """The fake's SigV4a verifier against AWS's own parts: its key derivation gives the public
    key AWS publishes for the suite's test credentials, and it accepts a request signed by
    the AWS Common Runtime (awscrt) and refuses the same request with its body changed."""
    import datetime as dt
    import io

    from awscrt import auth as crt_auth
    from awscrt import http as crt_http

    key = fake_aws_module().sigv4a_public_key("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").public_numbers()
    # aws-signing-test-suite/v4a/*/public-key.json
    assert (f"{key.x:064x}", f"{key.y:064x}") == (
        "b6618f6a65740a99e650b33b6b4b5bd0d43b176d721a3edfea7e7d2d56d936b1",
        "865ed22a7eadc9c5cb9d2cbaca1b3699139fedc5043dc6661864218330c8e518",
    )

    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}", "--region", "eu-west-1")
    host = aws.base.removeprefix("http://")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()

    def crt_signed(region_set: str) -> dict[str, str]:
        config = crt_auth.AwsSigningConfig(
            algorithm=crt_auth.AwsSigningAlgorithm.V4_ASYMMETRIC,
            signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=crt_auth.AwsCredentialsProvider.new_static(AKID, SECRET),
            region=region_set,
            service="aws-mcp",
            date=dt.datetime.now(dt.timezone.utc),
            signed_body_header_type=crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        )
        headers = crt_http.HttpHeaders([("host", host), ("content-type", "application/json"), ("accept", "application/json, text/event-stream")])
        request = crt_http.HttpRequest("POST", "/mcp", headers, io.BytesIO(body))
        return dict(crt_auth.aws_sign_request(request, config).result().headers)

    headers = crt_signed("us-east-1,eu-west-1")
    assert headers["Authorization"].startswith(V4A), headers
    r = httpx.post(aws.base + "/mcp", content=body, headers=headers, timeout=10)
    assert r.status_code == 200 and r.json().get("result") == {}, r.text
    r = httpx.post(aws.base + "/mcp", content=body.replace(b"ping", b"pong"), headers=headers, timeout=10)
    assert r.status_code == 403 and "does not match" in r.text, r.text
    r = httpx.post(aws.base + "/mcp", content=body, headers=crt_signed("us-east-1"), timeout=10)
    assert r.status_code == 403 and "does not include 'eu-west-1'" in r.text, r.text
    assert aws.stats()["accepted"] == 1


def test_sigv4a_signs_sync_and_calls_over_a_region_set(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{TOKEN_AKID}:{TOKEN_SECRET}:{SESSION_TOKEN}", "--region", "us-west-2")
    target = sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", algorithm="sigv4a", region_set=["us-east-1", "us-west-*"])
    env = {"AWS_ACCESS_KEY_ID": TOKEN_AKID, "AWS_SECRET_ACCESS_KEY": TOKEN_SECRET, "AWS_SESSION_TOKEN": SESSION_TOKEN}
    sc = procs(start_sidecar(logdir, sidecar_config([target]), env=env))
    wait_ready(sc, ["aws"])
    assert call(sc.url, "aws___add", {"a": 20, "b": 22})["result"]["structuredContent"] == {"sum": 42.0}
    text = "SigV4a ✓ " * 300
    assert call(sc.url, "aws___echo", {"text": text})["result"]["content"][0]["text"] == text
    stats = aws.stats()
    assert stats["rejected"] == {}, stats
    assert set(stats["algorithms"]) == {V4A}, stats["algorithms"]
    assert set(stats["signed_headers"]) == {"host;x-amz-content-sha256;x-amz-date;x-amz-region-set;x-amz-security-token"}


def test_sigv4a_refusals_are_clear(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}", "--region", "eu-central-1")
    env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}
    # A region set without the endpoint's region: the sync fails and says so.
    wrong = sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", algorithm="sigv4a", region_set=["us-east-1"])
    sc = procs(start_sidecar(logdir, sidecar_config([wrong]), env=env))
    error = wait_error(sc, "aws")
    assert "403" in error and "does not include 'eu-central-1'" in error, error
    assert "sigv4a" in error and "region set us-east-1 from config" in error, error
    sc.stop()

    # The default region set is the signing region; a body changed on the way is refused.
    right = sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", algorithm="sigv4a", region="eu-central-1")
    sc = procs(start_sidecar(logdir, sidecar_config([right]), env=env))
    wait_ready(sc, ["aws"])
    assert call(sc.url, "aws___add", {"a": 1, "b": 2})["result"]["structuredContent"] == {"sum": 3.0}
    aws.config(tamper_body=True)
    msg = call(sc.url, "aws___add", {"a": 1, "b": 2})["error"]["message"]
    assert "403" in msg and "signature mismatch" in msg and "region set eu-central-1 from config" in msg, msg
    assert SECRET not in sc.logs(100000)


# --------------------------------------------------------------------------- credential sources


def test_container_credentials_expire_and_refresh_without_a_failed_call(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    ttl = 6.0
    aws = fake_aws(demo.url, "--rotating-ttl", str(ttl), "--container-token", "Bearer container-secret")
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": aws.base + "/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer container-secret",
    }
    sc = procs(start_sidecar(logdir, cfg, env=env))
    wait_ready(sc, ["aws"])
    failures, calls = [], 0
    end = time.monotonic() + 3.2 * ttl
    with RawMcp(sc.url) as c:
        while time.monotonic() < end and calls < 400:
            calls += 1
            res = c.call("aws___add", {"a": calls, "b": 1})
            if "error" in res:
                failures.append(res["error"]["message"])
            time.sleep(0.1)
    stats = aws.stats()
    assert not failures, failures[:3]
    assert stats["rejected"] == {}, stats
    assert stats["issued"] >= 3, stats["issued"]
    assert len(set(stats["keys_used"])) >= 3, "calls kept using one key"
    assert "container-secret" not in sc.logs(100000)


def test_assume_role_through_sts_with_the_chain_credentials(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}", "--rotating-ttl", "3600")
    role = "arn:aws:iam::123456789012:role/cross-account-mcp"
    cfg = sidecar_config([
        sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1",
                     assume_role={"role_arn": role, "external_id": "ext-id-42", "session_name": "mcp-sidecar-test", "duration_secs": 900})
    ])
    env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL_STS": aws.base + "/"}
    sc = procs(start_sidecar(logdir, cfg, env=env))
    wait_ready(sc, ["aws"])
    assert call(sc.url, "aws___add", {"a": 6, "b": 7})["result"]["structuredContent"] == {"sum": 13.0}
    stats = aws.stats()
    assert stats["rejected"] == {}, stats
    assert stats["assume_role"] == [
        {"caller": AKID, "RoleArn": role, "RoleSessionName": "mcp-sidecar-test", "ExternalId": "ext-id-42", "DurationSeconds": "900"}
    ], stats["assume_role"]
    # The base keys signed the STS call only; MCP requests carry the assumed role's keys.
    keys = stats["keys_used"]
    assert keys[0] == AKID and keys.count(AKID) == 1, keys
    assert len(keys) >= 4 and all(k.startswith("ASIAFAKE") for k in keys[1:]), keys


def test_throttled_answers_are_retried_after_retry_after(demo: Proc, fake_aws, logdir: Path, procs) -> None:
    aws = fake_aws(demo.url, "--credentials", f"{AKID}:{SECRET}")
    cfg = sidecar_config([sigv4_target("aws", aws.base + "/mcp", service="aws-mcp", region="us-east-1")])
    sc = procs(start_sidecar(logdir, cfg, env={"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}))
    wait_ready(sc, ["aws"])
    aws.config(throttle=2, retry_after="1")
    t0 = time.monotonic()
    res = call(sc.url, "aws___add", {"a": 20, "b": 22})
    elapsed = time.monotonic() - t0
    assert res["result"]["structuredContent"] == {"sum": 42.0}, res
    assert elapsed >= 2.0, elapsed
    assert aws.stats()["throttled"] == 2


def test_check_shows_inferred_service_region_and_source(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        sidecar_config(
            [
                sigv4_target("awsmcp", "https://aws-mcp.us-west-2.api.aws/mcp"),
                sigv4_target("rt", f"https://bedrock-agentcore.eu-west-1.amazonaws.com/runtimes/{ENCODED_ARN}/invocations?qualifier=DEFAULT",
                             assume_role={"role_arn": "arn:aws:iam::123456789012:role/mcp", "external_id": "ext-secret-id"}),
            ]
        )
    )
    out = subprocess.run([str(sidecar_bin()), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "sigv4 (service aws-mcp from the URL, region us-west-2 from the URL; credentials from the default chain)" in out.stdout, out.stdout
    assert "service bedrock-agentcore from the URL, region eu-west-1 from the URL" in out.stdout
    assert "assume role arn:aws:iam::123456789012:role/mcp (external id set)" in out.stdout
    assert "ext-secret-id" not in out.stdout


# --------------------------------------------------------------------------- OAuth client credentials


def test_oauth_client_credentials_refresh_on_expiry_and_on_401(demo: Proc, fake_aws, logdir: Path, procs, tmp_path: Path) -> None:
    port = free_port()
    issuer = procs(
        spawn(
            "oauth-issuer",
            [os.sys.executable, str(FIXTURES / "oauth_issuer.py"), "--port", str(port), "--token-ttl", "4",
             "--client", "sidecar-client:s3cr3t-value:mcp/invoke"],
            logdir,
        )
    )
    iss = wait_line(issuer).split()[-1]  # "http://… issuer ISS"
    rs = fake_aws(demo.url, "--auth", "jwt", "--issuer", iss)
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("s3cr3t-value\n")
    target = target_toml("api", rs.base + "/mcp") + (
        "credential_provider = { type = \"oauth_client_credentials\", "
        f"discovery_url = {json.dumps(iss + '/.well-known/openid-configuration')}, "
        f"client_id = \"sidecar-client\", client_secret_file = {json.dumps(str(secret_file))}, scopes = [\"mcp/invoke\"] }}\n"
    )
    sc = procs(start_sidecar(logdir, sidecar_config([target])))
    wait_ready(sc, ["api"])

    def token_requests() -> int:
        return int(httpx.get(iss.split("/", 3)[0] + "//" + iss.split("/", 3)[2] + "/admin/stats", timeout=5).json()["token_requests"])

    assert call(sc.url, "api___add", {"a": 1, "b": 2})["result"]["structuredContent"] == {"sum": 3.0}
    first = token_requests()
    assert first == 1, "one token for the sync and the call"
    # Expiry: a 4 s token is replaced before it runs out; no call fails meanwhile.
    end = time.monotonic() + 7
    with RawMcp(sc.url) as c:
        while time.monotonic() < end:
            res = c.call("api___add", {"a": 1, "b": 1})
            assert "result" in res, res
            time.sleep(0.2)
    assert token_requests() >= 2
    # Revocation: the resource server refuses the current token; the sidecar fetches a new
    # one once and the call succeeds.
    rs.post("/admin/revoke-seen")
    before = token_requests()
    assert call(sc.url, "api___add", {"a": 2, "b": 2})["result"]["structuredContent"] == {"sum": 4.0}
    # One new token for the 401 (plus, at most, the scheduled one if its refresh point fell
    # inside this call).
    assert before + 1 <= token_requests() <= before + 2
    assert "s3cr3t-value" not in sc.logs(100000)
