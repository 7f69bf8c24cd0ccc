"""Inbound JWT authorization (issue #3) against a real OAuth issuer.

The issuer is tests/peers/fixtures/oauth_issuer.py: real RSA/EC/Ed25519 keys, OIDC discovery, a
JWKS, the client-credentials grant, Cognito-shaped access tokens, plus test controls (rotate the
key, go down, mint arbitrary tokens). Tokens for the positive paths come from real
client-credentials requests; the Python MCP SDK (1.x) is the client, both with a fixed
`Authorization` header and with its own OAuth client-credentials provider, which discovers the
authorization server from the sidecar's 401 and RFC 9728 document.

Sidecars here:
  A ("authed"): authorizers for issuer 1 (allowed_clients, allowed_scopes, leeway 5 s, unknown-kid
     refetch at most every 2 s) and issuer 2 (a Cognito-like issuer with a pool path); tool rules:
     read tools need gateway:read, everything else gateway:write (the AgentCore tutorial's scopes).
     Targets: the FastMCP upstream ("fast") and an in-process FastMCP upstream that records the
     headers of every request it receives ("rec", and "recauth" with its own static credential).
  B ("strict"): issuer 1 with allowed_audiences and custom claims (STRING EQUALS, STRING_ARRAY
     CONTAINS, CONTAINS_ANY), a configured `resource`, and a tool hidden unless a claim matches.
  Fresh pairs (issuer + sidecar per test) for key rotation, the unknown-kid burst and IdP outages.
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
import httpx
import jwt
import pytest
import uvicorn
from mcp import ClientSession
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamablehttp_client
from mcp.server.fastmcp import Context, FastMCP
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from conftest import (
    ACCEPT_BOTH,
    FIXTURES,
    PROTOCOL,
    Proc,
    base_of,
    free_port,
    sidecar_bin,
    spawn,
    start_sidecar,
    toml_str,
    wait_for_port,
    wait_ready,
)

READ = "gateway:read"
WRITE = "gateway:write"
AUDIENCE = "https://sidecar.example.com/mcp"
UPSTREAM_SECRET = "upstream-static-secret-7f3a"
MIN_REFETCH_S = 2.0
LEEWAY_S = 5

# Issuer 1's clients: (id, secret, scopes). client-b is a real client of the issuer that the
# sidecar does not allow; noscope holds only a scope the sidecar does not accept.
CLIENTS_1 = {
    "client-a": ("secret-a", [READ, WRITE]),
    "reader": ("secret-r", [READ]),
    "client-b": ("secret-b", [READ, WRITE]),
    "noscope": ("secret-n", ["profile:read"]),
    "acme-svc": ("secret-acme", [READ, WRITE]),
}
ACME_CLAIMS = {"tenant": "acme", "roles": ["mcp-caller", "auditor"], "teams": ["blue"]}
POOL2_PATH = "/us-east-1_Pool2"
CLIENTS_2 = {"pool2-client": ("secret-p2", [READ, WRITE]), "client-a": ("secret-a2", [READ, WRITE])}

# Every token presented to a sidecar, to check none of them ever shows up in its logs.
PRESENTED: list[str] = []


# --------------------------------------------------------------------------- the issuer


@dataclass
class Issuer:
    proc: Proc
    base: str
    issuer: str
    clients: dict[str, tuple[str, list[str]]]
    discovery: dict[str, Any] = field(default_factory=dict)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        r = httpx.request(method, f"{self.base}/admin/{path}", json=body, timeout=timeout)
        assert r.status_code == 200, f"issuer admin {path}: HTTP {r.status_code} {r.text}"
        return r.json()

    def mint(self, **spec: Any) -> str:
        return self.admin("POST", "mint", spec)["token"]

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "stats")

    def rotate(self, keep_old: bool) -> dict[str, Any]:
        return self.admin("POST", "rotate", {"keep_old": keep_old})

    def kid_of(self, alg: str) -> str:
        keys = self.admin("GET", "keys")["keys"]
        return next(k["kid"] for k in keys if k["alg"] == alg and k["published"] and (alg != "RS256" or k["current"]))

    def token(self, client_id: str, scope: str | None = None, method: str = "basic") -> str:
        """A real client-credentials request to the discovered token endpoint."""
        secret = self.clients[client_id][0]
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        endpoint = self.discovery["token_endpoint"]
        if method == "basic":
            r = httpx.post(endpoint, data=data, auth=(client_id, secret), timeout=10)
        else:
            r = httpx.post(endpoint, data={**data, "client_id": client_id, "client_secret": secret}, timeout=10)
        assert r.status_code == 200, f"token request for {client_id}: HTTP {r.status_code} {r.text}"
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
        return body["access_token"]

    def wait_quiet(self, secs: float) -> None:
        """Sleep until `secs` have passed since the last JWKS request attempt reached the issuer."""
        s = self.stats()
        last = max(s["jwks_attempt_times"], default=0.0)
        pause = last + secs - s["now"]
        if pause > 0:
            time.sleep(pause)


def start_issuer(
    logdir: Path, clients: dict[str, tuple[str, list[str]]], issuer_path: str = "", claims: dict[str, dict] | None = None
) -> Issuer:
    port = free_port()
    argv = [sys.executable, str(FIXTURES / "oauth_issuer.py"), "--port", str(port)]
    if issuer_path:
        argv += ["--issuer-path", issuer_path]
    for cid, (secret, scopes) in clients.items():
        argv += ["--client", f"{cid}:{secret}:{','.join(scopes)}"]
    for cid, c in (claims or {}).items():
        argv += ["--client-claims", f"{cid}={json.dumps(c)}"]
    proc = spawn("oauth-issuer", argv, logdir)
    try:
        wait_for_port(proc, port)
    except Exception:
        proc.stop()
        raise
    base = f"http://127.0.0.1:{port}"
    iss = Issuer(proc=proc, base=base, issuer=base + issuer_path, clients=clients)
    r = httpx.get(iss.discovery_url, timeout=10)
    assert r.status_code == 200, r.text
    iss.discovery = r.json()
    iss.admin("POST", "reset-stats")
    return iss


# --------------------------------------------------------------------------- a header-recording upstream


class RecordingUpstream:
    """A FastMCP server (Python SDK 1.x, stateless, JSON) run in this process, wrapped in ASGI
    middleware that records the headers of every HTTP request it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        mcp = FastMCP(
            "auth-recorder",
            host="127.0.0.1",
            port=self.port,
            streamable_http_path="/mcp",
            stateless_http=True,
            json_response=True,
            log_level="WARNING",
        )

        @mcp.tool(description="Report the HTTP headers of this very request, as this upstream received them.")
        def get_request_headers(ctx: Context) -> str:
            req = ctx.request_context.request
            headers = {k.lower(): v for k, v in req.headers.items()} if req is not None else {}
            return json.dumps(
                {"saw_request": req is not None, "authorization": headers.get("authorization"), "names": sorted(headers)}
            )

        @mcp.tool(description="Store a note (a write).")
        def put_note(text: str) -> str:
            return f"stored {len(text)} chars"

        app = mcp.streamable_http_app()

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                with self.lock:
                    self.requests.append(
                        {
                            "method": scope["method"],
                            "path": scope["path"],
                            "headers": [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]],
                        }
                    )
            await app(scope, receive, send)

        self.server = uvicorn.Server(
            uvicorn.Config(recording, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="recording-upstream", daemon=True)

    def start(self) -> "RecordingUpstream":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("recording upstream did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)


# --------------------------------------------------------------------------- sidecar configs


def authorizer_toml(discovery_url: str, **opts: Any) -> str:
    lines = ["[[inbound.authorizers]]", f"discovery_url = {toml_str(discovery_url)}"]
    for k, v in opts.items():
        if k == "custom_claims":
            lines.append("custom_claims = [\n  " + ",\n  ".join(claim_toml(c) for c in v) + ",\n]")
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def claim_toml(c: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in c.items()) + " }"


def rule_toml(tools: list[str], required_scopes: list[str] | None = None, custom_claims: list[dict] | None = None) -> str:
    lines = ["[[inbound.tool_rules]]", f"tools = {json.dumps(tools)}"]
    if required_scopes is not None:
        lines.append(f"required_scopes = {json.dumps(required_scopes)}")
    if custom_claims is not None:
        lines.append("custom_claims = [ " + ", ".join(claim_toml(c) for c in custom_claims) + " ]")
    return "\n".join(lines) + "\n"


def auth_config(authorizers: list[str], rules: list[str], targets: list[str], resource: str | None = None) -> str:
    cfg = '[inbound]\nlisten = "127.0.0.1:0"\npath = "/mcp"\nauth = "jwt"\n'
    if resource:
        cfg += f"resource = {toml_str(resource)}\n"
    cfg += "\n" + "\n".join(authorizers) + "\n" + "\n".join(rules)
    cfg += "\n[catalog]\nsync_interval_secs = 300\n\n" + "\n".join(targets)
    return cfg


def target(name: str, url: str, extra: str = "") -> str:
    return f'[[targets]]\nname = {toml_str(name)}\nkind = "mcp_server"\nurl = {toml_str(url)}\n{extra}'


SIDECAR_ENV = {"MCP_SIDECAR_LOG": "debug"}  # the most talkative level: tokens must still stay out
READ_TOOLS_GLOBS = ["fast___echo", "fast___add", "*___get_*"]


def start_auth_sidecar(logdir: Path, cfg: str, ready_targets: list[str]) -> Proc:
    proc = start_sidecar(logdir, cfg, env=SIDECAR_ENV)
    try:
        wait_ready(proc, ready_targets)
    except Exception:
        proc.stop()
        raise
    proc.extra["config"] = cfg
    return proc


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def iss1(logdir: Path) -> Iterator[Issuer]:
    iss = start_issuer(logdir, CLIENTS_1, claims={"acme-svc": ACME_CLAIMS})
    yield iss
    iss.proc.stop()


@pytest.fixture(scope="module")
def iss2(logdir: Path) -> Iterator[Issuer]:
    iss = start_issuer(logdir, CLIENTS_2, issuer_path=POOL2_PATH)
    yield iss
    iss.proc.stop()


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingUpstream]:
    rec = RecordingUpstream().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def authed(logdir: Path, iss1: Issuer, iss2: Issuer, fast: Proc, recorder: RecordingUpstream) -> Iterator[Proc]:
    cfg = auth_config(
        [
            authorizer_toml(
                iss1.discovery_url,
                allowed_clients=["client-a", "reader", "noscope"],
                allowed_scopes=[READ, WRITE],
                leeway_secs=LEEWAY_S,
                jwks_min_refetch_secs=int(MIN_REFETCH_S),
            ),
            authorizer_toml(iss2.discovery_url, allowed_clients=["pool2-client"], allowed_scopes=[READ, WRITE]),
        ],
        [rule_toml(READ_TOOLS_GLOBS, [READ]), rule_toml(["*"], [WRITE])],
        [
            target("fast", fast.url),
            target("rec", recorder.url),
            target(
                "recauth",
                recorder.url,
                "credential_provider = { type = \"api_key\", header = \"Authorization\", prefix = \"Bearer \", "
                f"value = {toml_str(UPSTREAM_SECRET)} }}\n",
            ),
        ],
    )
    proc = start_auth_sidecar(logdir, cfg, ["fast", "rec", "recauth"])
    yield proc
    proc.stop()


STRICT_CLAIMS = [
    {"name": "tenant", "value_type": "STRING", "operator": "EQUALS", "value": "acme"},
    {"name": "roles", "value_type": "STRING_ARRAY", "operator": "CONTAINS", "value": "mcp-caller"},
    {"name": "teams", "value_type": "STRING_ARRAY", "operator": "CONTAINS_ANY", "values": ["blue", "green"]},
]
FINANCE_RULE = [{"name": "department", "value_type": "STRING", "operator": "EQUALS", "value": "finance"}]


@pytest.fixture(scope="module")
def strict(logdir: Path, iss1: Issuer, fast: Proc) -> Iterator[Proc]:
    cfg = auth_config(
        [authorizer_toml(iss1.discovery_url, allowed_audiences=[AUDIENCE], custom_claims=STRICT_CLAIMS)],
        [rule_toml(["fast___fail"], custom_claims=FINANCE_RULE)],
        [target("fast", fast.url)],
        resource=AUDIENCE,
    )
    proc = start_auth_sidecar(logdir, cfg, ["fast"])
    proc.extra["resource"] = AUDIENCE
    yield proc
    proc.stop()


@dataclass
class Pair:
    issuer: Issuer
    sidecar: Proc


@pytest.fixture
def fresh(request: pytest.FixtureRequest, logdir: Path, fast: Proc) -> Iterator[Pair]:
    """A fresh issuer and a sidecar trusting only it (for tests that rotate keys or take the IdP down).
    Indirect parametrization may override authorizer settings."""
    opts = {"jwks_min_refetch_secs": int(MIN_REFETCH_S), **getattr(request, "param", {})}
    iss = start_issuer(logdir, {"client-a": ("secret-a", [READ, WRITE])})
    try:
        cfg = auth_config(
            [authorizer_toml(iss.discovery_url, allowed_clients=["client-a"], allowed_scopes=[READ, WRITE], **opts)],
            [],
            [target("fast", fast.url)],
        )
        sc = start_auth_sidecar(logdir, cfg, ["fast"])
        try:
            yield Pair(iss, sc)
        finally:
            sc.stop()
            check_logs_clean(sc)
    finally:
        iss.proc.stop()


# --------------------------------------------------------------------------- HTTP helpers


def mcp_post(
    sidecar: Proc,
    token: str | None,
    method: str = "tools/list",
    params: dict[str, Any] | None = None,
    authorization: str | None = None,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": PROTOCOL}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
        PRESENTED.append(token)
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if method == "initialize":
        body["params"] = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "auth-test", "version": "0"}}
    elif params is not None:
        body["params"] = params
    poster = client.post if client is not None else httpx.post
    return poster(sidecar.url, content=json.dumps(body), headers=headers, timeout=timeout)


def rpc_result(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, describe(r)
    msg = r.json()
    assert "result" in msg, describe(r)
    return msg["result"]


def list_names(sidecar: Proc, token: str) -> set[str]:
    return {t["name"] for t in rpc_result(mcp_post(sidecar, token, "tools/list"))["tools"]}


def call(sidecar: Proc, token: str, name: str, arguments: dict[str, Any]) -> httpx.Response:
    return mcp_post(sidecar, token, "tools/call", {"name": name, "arguments": arguments})


def describe(r: httpx.Response) -> str:
    return f"HTTP {r.status_code} WWW-Authenticate={r.headers.get_list('www-authenticate')} body={r.text[:800]}"


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def bearer_challenge(r: httpx.Response) -> dict[str, str]:
    """The parameters of the single Bearer challenge in WWW-Authenticate (RFC 6750 / RFC 9728)."""
    values = r.headers.get_list("www-authenticate")
    bearer = [v for v in values if v.strip().lower().startswith("bearer")]
    assert len(bearer) == 1, f"expected one Bearer challenge: {describe(r)}"
    rest = bearer[0].strip()[len("bearer") :]
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        val = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", val)
    return params


def metadata_url(sidecar: Proc) -> str:
    return f"{base_of(sidecar.url)}/.well-known/oauth-protected-resource/mcp"


def metadata_urls(sidecar: Proc) -> set[str]:
    """Where a 401/403 may point: the contract's `http://{Host}/.well-known/oauth-protected-resource/mcp`,
    or, when `inbound.resource` is configured, the RFC 9728 section 3.1 URL built from that resource
    (the contract leaves this case open)."""
    urls = {metadata_url(sidecar)}
    resource = sidecar.extra.get("resource")
    if resource:
        scheme, rest = resource.split("://", 1)
        host, _, path = rest.partition("/")
        urls.add(f"{scheme}://{host}/.well-known/oauth-protected-resource/{path}".rstrip("/"))
    return urls


def expect_401(r: httpx.Response, sidecar: Proc, token: str | None, words: tuple[str, ...] = (), given: bool | None = True) -> None:
    """401 with `WWW-Authenticate: Bearer resource_metadata=...` (plus error="invalid_token" and a
    description when a token was given) and a JSON-RPC error body: id null, code -32001, a message
    saying what failed, never the token itself."""
    assert r.status_code == 401, describe(r)
    ch = bearer_challenge(r)
    assert ch.get("resource_metadata") in metadata_urls(sidecar), describe(r)
    if given is True:
        assert ch.get("error") == "invalid_token", describe(r)
        assert ch.get("error_description"), describe(r)
    elif given is False:
        assert "error" not in ch, f"no token was sent, so no error code (RFC 6750 3.1): {describe(r)}"
    body = r.json()
    assert body.get("jsonrpc") == "2.0" and "id" in body and body["id"] is None, describe(r)
    assert body["error"]["code"] == -32001, describe(r)
    msg = body["error"]["message"]
    assert isinstance(msg, str) and msg.strip(), describe(r)
    if token:
        for secret_part in {token, token.rsplit(".", 1)[-1]} - {""}:
            if len(secret_part) >= 8:
                assert secret_part not in r.text and all(secret_part not in v for v in r.headers.values()), (
                    "the token is echoed back"
                )
    if words:
        said = (msg + " " + ch.get("error_description", "")).lower()
        assert any(w in said for w in words), f"the error should say what failed (one of {words}): {describe(r)}"


def expect_403_scope(r: httpx.Response, sidecar: Proc, scopes: set[str]) -> None:
    assert r.status_code == 403, describe(r)
    ch = bearer_challenge(r)
    assert ch.get("error") == "insufficient_scope", describe(r)
    assert set(ch.get("scope", "").split()) == scopes, describe(r)
    assert ch.get("resource_metadata") in metadata_urls(sidecar), describe(r)


def text_of(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def tamper(token: str) -> str:
    """Same header and signature, payload changed (scope widened): the signature no longer fits."""
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["scope"] = f"{READ} {WRITE} admin"
    claims["client_id"] = claims.get("client_id", "client-a")
    p2 = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{h}.{p2}.{s}"


def check_logs_clean(proc: Proc) -> None:
    text = proc.stdout_path.read_text(errors="replace") + proc.stderr_path.read_text(errors="replace")
    for tok in set(PRESENTED):
        parts = tok.split(".")
        sig = parts[-1] if len(parts) == 3 else ""
        assert tok not in text, f"a bearer token appears in the sidecar's logs ({proc.stderr_path})"
        if len(sig) >= 16:
            assert sig not in text, f"a token signature appears in the sidecar's logs ({proc.stderr_path})"


# --------------------------------------------------------------------------- MCP SDK client helpers


async def sdk_run(url: str, fn: Callable[[ClientSession], Any], headers: dict[str, str] | None = None, auth: Any = None) -> Any:
    with anyio.fail_after(60):
        async with streamablehttp_client(url, headers=headers, auth=auth, timeout=30, sse_read_timeout=60) as (r, w, _):
            async with ClientSession(r, w) as session:
                await session.initialize()
                return await fn(session)


class MemoryTokenStorage:
    def __init__(self, tokens: OAuthToken | None = None):
        self.tokens = tokens
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# =========================================================================== the issuer itself


def test_issuer_is_a_real_client_credentials_issuer_with_cognito_shaped_tokens(iss1: Issuer) -> None:
    d = iss1.discovery
    assert d["issuer"] == iss1.issuer
    assert d["jwks_uri"] == f"{iss1.issuer}/.well-known/jwks.json"
    assert d["token_endpoint"] == f"{iss1.issuer}/oauth2/token"
    assert "client_credentials" in d["grant_types_supported"]

    # Both client authentication methods; scope narrowing; Cognito's "all of the client's scopes".
    t_basic = iss1.token("client-a", scope=READ)
    t_post = iss1.token("client-a", method="post")
    jwks = httpx.get(d["jwks_uri"], timeout=10).json()
    by_kid = {k["kid"]: k for k in jwks["keys"]}
    for tok, scope in ((t_basic, READ), (t_post, f"{READ} {WRITE}")):
        header, _ = unverified(tok)
        assert header == {"kid": header["kid"], "alg": "RS256"}
        key = jwt.PyJWK(by_kid[header["kid"]])
        claims = jwt.decode(tok, key.key, algorithms=["RS256"], issuer=iss1.issuer, options={"require": ["exp"]})
        assert set(claims) == {"sub", "token_use", "scope", "auth_time", "iss", "exp", "iat", "version", "jti", "client_id"}
        assert claims["sub"] == claims["client_id"] == "client-a"
        assert claims["token_use"] == "access" and claims["version"] == 2 and claims["scope"] == scope
        assert "aud" not in claims

    # Errors, as RFC 6749 5.2 spells them.
    ep = d["token_endpoint"]
    r = httpx.post(ep, data={"grant_type": "client_credentials"}, auth=("client-a", "wrong"), timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = httpx.post(ep, data={"grant_type": "password"}, auth=("client-a", "secret-a"), timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = httpx.post(ep, data={"grant_type": "client_credentials", "scope": WRITE}, auth=("reader", "secret-r"), timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"

    # The extra claims of a client (Cognito's pre-token-generation trigger) land in its tokens.
    _, acme = unverified(iss1.token("acme-svc"))
    assert {k: acme[k] for k in ACME_CLAIMS} == ACME_CLAIMS


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"])
def test_issuer_mints_verifiable_tokens_for_every_key_type(iss1: Issuer, alg: str) -> None:
    tok = iss1.mint(key=alg)
    header, _ = unverified(tok)
    jwk = next(k for k in httpx.get(iss1.discovery["jwks_uri"], timeout=10).json()["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == jwk["alg"] == alg
    claims = jwt.decode(tok, jwt.PyJWK(jwk).key, algorithms=[alg], issuer=iss1.issuer)
    assert claims["client_id"] == "client-a"
    # And the hostile variants do not verify as that key's algorithm.
    for bad in (iss1.mint(key=alg, signature="none"), iss1.mint(key=alg, signature="garbage")):
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(bad, jwt.PyJWK(jwk).key, algorithms=[alg])


# =========================================================================== a real client through the sidecar


def test_sdk_client_with_a_client_credentials_token_lists_and_calls(authed: Proc, iss1: Issuer) -> None:
    token = iss1.token("client-a")
    PRESENTED.append(token)

    async def run(s: ClientSession) -> Any:
        tools = await s.list_tools()
        added = await s.call_tool("fast___add", {"a": 2, "b": 3})
        echoed = await s.call_tool("fast___echo", {"text": "through auth"})
        note = await s.call_tool("rec___put_note", {"text": "hello"})
        return tools, added, echoed, note

    tools, added, echoed, note = anyio.run(sdk_run, authed.url, run, {"Authorization": f"Bearer {token}"})
    names = {t.name for t in tools.tools}
    assert {"fast___add", "fast___echo", "fast___fail", "fast___slow", "rec___put_note", "rec___get_request_headers"} <= names
    assert not added.isError and added.content[0].text in ("5", "5.0")
    assert not echoed.isError and echoed.content[0].text == "through auth"
    assert not note.isError and note.content[0].text == "stored 5 chars"


def test_sdk_oauth_provider_discovers_the_issuer_from_the_401(authed: Proc, iss1: Issuer) -> None:
    """No token up front: the SDK follows the 401's resource_metadata to the RFC 9728 document,
    picks issuer 1 among the listed authorization servers, reads its metadata, runs the
    client-credentials grant, and retries."""
    before = len(iss1.stats()["token_requests_log"])
    provider = ClientCredentialsOAuthProvider(
        server_url=authed.url,
        storage=MemoryTokenStorage(),
        client_id="client-a",
        client_secret=CLIENTS_1["client-a"][0],
        issuer=iss1.issuer,
    )

    async def run(s: ClientSession) -> Any:
        return await s.list_tools(), await s.call_tool("fast___add", {"a": 20, "b": 22})

    tools, added = anyio.run(sdk_run, authed.url, run, None, provider)
    assert "fast___add" in {t.name for t in tools.tools}
    assert not added.isError and added.content[0].text in ("42", "42.0")
    log = iss1.stats()["token_requests_log"][before:]
    assert log and log[0]["client_id"] == "client-a" and log[0]["grant_type"] == "client_credentials"
    # Scope selection from the RFC 9728 document's scopes_supported.
    assert set((log[0]["scope"] or "").split()) == {READ, WRITE}, log
    PRESENTED.append(provider.context.current_tokens.access_token)


def test_sdk_oauth_provider_steps_up_on_insufficient_scope(authed: Proc, iss1: Issuer) -> None:
    """A read-only token calling a write tool gets 403 insufficient_scope naming gateway:write; the
    SDK asks the issuer for exactly that scope and the retried call succeeds."""
    read_token = iss1.token("client-a", scope=READ)
    PRESENTED.append(read_token)
    storage = MemoryTokenStorage(OAuthToken(access_token=read_token, token_type="Bearer", expires_in=3600))
    provider = ClientCredentialsOAuthProvider(
        server_url=authed.url,
        storage=storage,
        client_id="client-a",
        client_secret=CLIENTS_1["client-a"][0],
        issuer=iss1.issuer,
    )
    before = len(iss1.stats()["token_requests_log"])

    async def run(s: ClientSession) -> Any:
        first = {t.name for t in (await s.list_tools()).tools}
        note = await s.call_tool("rec___put_note", {"text": "step up"})
        after = {t.name for t in (await s.list_tools()).tools}
        return first, note, after

    first, note, after = anyio.run(sdk_run, authed.url, run, None, provider)
    assert "rec___put_note" not in first and "fast___echo" in first
    assert not note.isError and note.content[0].text == "stored 7 chars"
    log = iss1.stats()["token_requests_log"][before:]
    assert [e["scope"] for e in log] == [WRITE], log
    assert "rec___put_note" in after and "fast___echo" not in after  # the new token holds only gateway:write
    PRESENTED.append(provider.context.current_tokens.access_token)


# =========================================================================== per-tool scopes


def test_tool_rules_filter_the_listing_and_refuse_calls_with_403(authed: Proc, iss1: Issuer) -> None:
    full = iss1.token("client-a")
    reader = iss1.token("reader")
    writer = iss1.token("client-a", scope=WRITE)

    all_tools = list_names(authed, full)
    read_tools = list_names(authed, reader)
    write_tools = list_names(authed, writer)
    assert read_tools == {"fast___echo", "fast___add", "rec___get_request_headers", "recauth___get_request_headers"}
    assert len(all_tools) == 9, all_tools
    # First matching rule wins: read tools are not reachable with gateway:write alone.
    assert write_tools == all_tools - read_tools

    ok = call(authed, reader, "fast___echo", {"text": "hi"})
    assert text_of(rpc_result(ok)) == "hi"
    for tool in ("fast___fail", "rec___put_note", "fast___slow"):
        expect_403_scope(call(authed, reader, tool, {"text": "x", "message": "x", "ms": 1}), authed, {WRITE})
    expect_403_scope(call(authed, writer, "fast___add", {"a": 1, "b": 2}), authed, {READ})
    # With both scopes the same write tool is callable.
    assert text_of(rpc_result(call(authed, full, "rec___put_note", {"text": "abc"}))) == "stored 3 chars"


def test_missing_scope_is_403_naming_the_allowed_scopes(authed: Proc, iss1: Issuer) -> None:
    for token in (
        iss1.token("noscope"),  # a real token with only profile:read
        iss1.mint(client_id="client-a", scope=None),  # no scope claim at all
        iss1.mint(client_id="client-a", scope="gateway:readwrite gateway"),  # look-alikes are not scopes
    ):
        PRESENTED.append(token)
        for method in ("tools/list", "initialize"):
            expect_403_scope(mcp_post(authed, token, method), authed, {READ, WRITE})


# =========================================================================== rejections


@dataclass
class Ctx:
    iss1: Issuer
    iss2: Issuer


def _hs256(c: Ctx) -> str:
    return c.iss1.mint(signature="hs256-public-pem")


REJECTIONS: list[tuple[str, Callable[[Ctx], str], tuple[str, ...]]] = [
    ("malformed-not-a-jwt", lambda c: "not-a-jwt", ()),
    ("malformed-garbage-segments", lambda c: "abc.def.ghi", ()),
    ("malformed-json-header", lambda c: "eyJub3QganNvbg.eyJhIjoxfQ.c2ln", ()),
    ("bad-signature-tampered-payload", lambda c: tamper(c.iss1.token("client-a")), ("signature",)),
    ("bad-signature-garbage", lambda c: c.iss1.mint(signature="garbage"), ("signature",)),
    ("expired", lambda c: c.iss1.mint(ttl=-120), ("expir",)),
    ("missing-exp", lambda c: c.iss1.mint(claims={"exp": None}), ("exp",)),
    ("nbf-in-the-future", lambda c: c.iss1.mint(claims={"nbf": int(time.time()) + 300}), ("nbf", "not yet", "before", "future")),
    ("iat-in-the-future", lambda c: c.iss1.mint(claims={"iat": int(time.time()) + 300}), ("iat", "issued", "future")),
    ("wrong-issuer", lambda c: c.iss1.mint(claims={"iss": c.iss1.issuer + "/other"}), ("iss",)),
    ("issuer-2-claimed-but-signed-by-issuer-1", lambda c: c.iss1.mint(claims={"iss": c.iss2.issuer}), ()),
    ("issuer-1-claimed-but-signed-by-issuer-2", lambda c: c.iss2.mint(claims={"iss": c.iss1.issuer}), ()),
    ("wrong-client-real-token", lambda c: c.iss1.token("client-b"), ("client",)),
    ("missing-client-id", lambda c: c.iss1.mint(claims={"client_id": None}), ("client",)),
    ("client-of-issuer-2-not-allowed-there", lambda c: c.iss2.token("client-a"), ("client",)),
    ("alg-none", lambda c: c.iss1.mint(signature="none"), ()),
    ("alg-none-uppercase", lambda c: c.iss1.mint(signature="none", header={"alg": "NONE"}), ()),
    ("hs256-with-public-key-pem", _hs256, ()),
    ("hs256-with-public-key-pem-pkcs1", lambda c: c.iss1.mint(signature="hs256-public-pem-pkcs1"), ()),
    ("unknown-kid-unpublished-key", lambda c: c.iss1.mint(key="rogue"), ("kid", "key")),
    ("unknown-kid-header-real-key", lambda c: c.iss1.mint(header={"kid": "kid-" + secrets.token_hex(6)}), ("kid", "key")),
    ("alg-mismatch-rs384-on-rs256-key", lambda c: c.iss1.mint(key="RS256", sign_alg="RS384"), ()),
    ("alg-mismatch-ps256-on-rs256-key", lambda c: c.iss1.mint(key="RS256", sign_alg="PS256"), ()),
    ("alg-mismatch-rs256-on-ps256-key", lambda c: c.iss1.mint(key="PS256", sign_alg="RS256"), ()),
    ("alg-mismatch-es384-on-p256-key", lambda c: c.iss1.mint(key="ES256", sign_alg="ES384"), ()),
]


@pytest.mark.parametrize("case", [c[0] for c in REJECTIONS])
def test_rejected_tokens_get_401_with_bearer_challenge(authed: Proc, iss1: Issuer, iss2: Issuer, case: str) -> None:
    _, build, words = next(c for c in REJECTIONS if c[0] == case)
    token = build(Ctx(iss1, iss2))
    r = mcp_post(authed, token, "tools/list")
    expect_401(r, authed, token, words)
    # Same answer on a tool call: nothing reaches the relay.
    expect_401(call(authed, token, "fast___echo", {"text": "x"}), authed, token)


@pytest.mark.parametrize("method", ["initialize", "tools/list", "tools/call", "ping"])
def test_no_token_is_401_without_error_code(authed: Proc, method: str) -> None:
    params = {"name": "fast___echo", "arguments": {"text": "x"}} if method == "tools/call" else None
    expect_401(mcp_post(authed, None, method, params), authed, None, given=False)


@pytest.mark.parametrize(
    "authorization",
    ["Basic " + base64.b64encode(b"client-a:secret-a").decode(), "Bearer", "Bearer two words", "Token abc"],
)
def test_other_authorization_forms_are_401(authed: Proc, authorization: str) -> None:
    expect_401(mcp_post(authed, None, "tools/list", authorization=authorization), authed, None, given=None)


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"])
def test_every_key_type_is_accepted_when_valid(authed: Proc, iss1: Issuer, alg: str) -> None:
    token = iss1.mint(key=alg)
    assert unverified(token)[0]["alg"] == alg
    assert "fast___add" in list_names(authed, token)
    assert text_of(rpc_result(call(authed, token, "fast___add", {"a": 1, "b": 2}))) in ("3", "3.0")


def test_second_issuer_with_a_pool_path_is_accepted(authed: Proc, iss2: Issuer) -> None:
    token = iss2.token("pool2-client")
    assert unverified(token)[1]["iss"] == iss2.issuer and POOL2_PATH in iss2.issuer
    assert "fast___echo" in list_names(authed, token)


def test_aud_is_ignored_without_allowed_audiences(authed: Proc, iss1: Issuer) -> None:
    token = iss1.mint(claims={"aud": "https://somewhere.else/"})
    assert "fast___echo" in list_names(authed, token)


def test_leeway_and_the_verified_token_cache_respect_expiry(authed: Proc, iss1: Issuer) -> None:
    # Within leeway (5 s) either way: accepted.
    assert list_names(authed, iss1.mint(ttl=-2))
    assert list_names(authed, iss1.mint(claims={"nbf": int(time.time()) + 2}))
    # A token accepted (and possibly cached) now must be refused once exp + leeway has passed.
    short = iss1.mint(ttl=2)
    exp = unverified(short)[1]["exp"]
    assert list_names(authed, short)
    time.sleep(max(0.0, exp + LEEWAY_S + 1.5 - time.time()))
    expect_401(mcp_post(authed, short, "tools/list"), authed, short, ("expir",))


def _raw_request(port: int, token: str | None, body: bytes) -> tuple[bytes, bytes]:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {ACCEPT_BOTH}\r\n"
        f"Content-Type: application/json\r\nMCP-Protocol-Version: {PROTOCOL}\r\n{auth}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def _read_response(sock: Any) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body; ("", {}, b"") on EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return "", {}, buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return lines[0], headers, rest


@pytest.mark.parametrize("case", ["no-token", "expired-token", "no-allowed-scope"])
def test_a_rejection_does_not_break_the_kept_alive_connection(authed: Proc, iss1: Issuer, case: str) -> None:
    """HTTP clients (the Gateway, proxies, SDKs) send the headers, then the body, on pooled
    keep-alive connections. After a 401/403 the same connection must serve the next request, or
    the rejection must say `Connection: close` (RFC 9112 9.6) so the client does not reuse it;
    otherwise the client's next request on it fails at the transport level."""
    token = {"no-token": None, "expired-token": iss1.mint(ttl=-120), "no-allowed-scope": iss1.token("noscope")}[case]
    good = iss1.token("client-a")
    PRESENTED.extend(t for t in (token, good) if t)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    with socket.create_connection(("127.0.0.1", authed.port), timeout=10) as sock:
        head, payload = _raw_request(authed.port, token, body)
        sock.sendall(head)
        time.sleep(0.2)  # the body follows in a second write, as h11/httpx and many clients send it
        try:
            sock.sendall(payload)
        except OSError:
            pass
        status, headers, _ = _read_response(sock)
        assert status.split(" ")[1:2] == ["401" if case != "no-allowed-scope" else "403"], status
        if "close" in headers.get("connection", "").lower():
            return  # the server said it closes: a client will not reuse the connection
        head2, payload2 = _raw_request(authed.port, good, body)
        try:
            sock.sendall(head2 + payload2)
            status2, _, body2 = _read_response(sock)
        except OSError as e:
            status2, body2 = f"transport error {e!r}", b""
        assert status2.startswith("HTTP/1.1 200"), (
            f"after `{status}` (without Connection: close) the kept-alive connection did not serve the "
            f"next, valid request: got {status2 or 'EOF (server closed the connection)'!r}"
        )
        assert b"fast___echo" in body2


# =========================================================================== RFC 9728


def test_protected_resource_metadata_document(authed: Proc, iss1: Issuer, iss2: Issuer) -> None:
    base = base_of(authed.url)
    docs = []
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        r = httpx.get(base + path, timeout=10)
        assert r.status_code == 200, f"{path}: {describe(r)}"
        assert r.headers["content-type"].startswith("application/json")
        docs.append(r.json())
    for doc in docs:
        assert doc["resource"] == f"{base}/mcp"
        assert sorted(doc["authorization_servers"]) == sorted([iss1.issuer, iss2.issuer])
        assert set(doc["scopes_supported"]) == {READ, WRITE}
        assert doc["bearer_methods_supported"] == ["header"]
        assert doc["resource_name"] == "mcp-sidecar"
    # The URL the 401 points at serves that document.
    r = mcp_post(authed, None, "tools/list")
    url = bearer_challenge(r)["resource_metadata"]
    assert httpx.get(url, timeout=10).json() == docs[0]
    # Health endpoints stay open.
    for path in ("/ping", "/healthz", "/readyz"):
        assert httpx.get(base + path, timeout=10).status_code == 200, path


def test_configured_resource_is_published(strict: Proc, iss1: Issuer) -> None:
    r = httpx.get(base_of(strict.url) + "/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["resource"] == AUDIENCE
    assert doc["authorization_servers"] == [iss1.issuer]


# =========================================================================== audiences and custom claims


GOOD_STRICT = {"aud": AUDIENCE, **ACME_CLAIMS}


@pytest.mark.parametrize(
    "case,claims,words",
    [
        ("no-aud", {"aud": None}, ("aud",)),
        ("wrong-aud", {"aud": "https://other.example.com/mcp"}, ("aud",)),
        ("wrong-aud-list", {"aud": ["https://a.example.com", "https://b.example.com"]}, ("aud",)),
        ("tenant-differs", {"tenant": "globex"}, ("tenant",)),
        ("tenant-missing", {"tenant": None}, ("tenant",)),
        ("tenant-prefix-only", {"tenant": "acme-evil"}, ("tenant",)),
        ("roles-lacks-value", {"roles": ["auditor"]}, ("roles",)),
        ("roles-missing", {"roles": None}, ("roles",)),
        ("teams-none-matching", {"teams": ["red", "yellow"]}, ("teams",)),
        ("teams-empty", {"teams": []}, ("teams",)),
    ],
)
def test_audience_and_custom_claims_rejections(strict: Proc, iss1: Issuer, case: str, claims: dict, words: tuple) -> None:
    token = iss1.mint(claims={**GOOD_STRICT, **claims})
    expect_401(mcp_post(strict, token, "tools/list"), strict, token, words)


@pytest.mark.parametrize(
    "case,claims",
    [
        ("aud-string", {}),
        ("aud-list-containing", {"aud": ["https://x.example.com", AUDIENCE]}),
        ("roles-and-teams-variants", {"roles": ["mcp-caller"], "teams": ["green", "red"]}),
    ],
)
def test_audience_and_custom_claims_accepted(strict: Proc, iss1: Issuer, case: str, claims: dict) -> None:
    token = iss1.mint(claims={**GOOD_STRICT, **claims})
    assert "fast___echo" in list_names(strict, token)


def test_real_cognito_shaped_token_without_aud_fails_allowed_audiences(strict: Proc, iss1: Issuer) -> None:
    token = iss1.token("acme-svc")  # carries the custom claims but, like Cognito, no aud
    expect_401(mcp_post(strict, token, "tools/list"), strict, token, ("aud",))


def test_tool_hidden_by_claims_rule_looks_unknown(strict: Proc, iss1: Issuer) -> None:
    plain = iss1.mint(claims=GOOD_STRICT)
    finance = iss1.mint(claims={**GOOD_STRICT, "department": "finance"})
    assert "fast___fail" not in list_names(strict, plain)
    assert "fast___fail" in list_names(strict, finance)

    hidden = call(strict, plain, "fast___fail", {"message": "boom"})
    missing = call(strict, plain, "fast___nonexistent", {"message": "boom"})
    for r, name in ((hidden, "fast___fail"), (missing, "fast___nonexistent")):
        assert r.status_code == 200, describe(r)
        err = r.json().get("error")
        assert err and err["code"] == -32602 and name in err["message"], describe(r)
    assert hidden.json()["error"]["message"].replace("fast___fail", "X") == missing.json()["error"]["message"].replace(
        "fast___nonexistent", "X"
    )
    allowed = rpc_result(call(strict, finance, "fast___fail", {"message": "boom"}))
    assert allowed.get("isError") is True and "boom" in text_of(allowed)


# =========================================================================== the token stays here


def test_inbound_authorization_never_reaches_the_upstream(authed: Proc, iss1: Issuer, recorder: RecordingUpstream) -> None:
    token = iss1.token("client-a")
    PRESENTED.append(token)
    seen_before = len(recorder.snapshot())

    async def run(s: ClientSession) -> Any:
        a = await s.call_tool("rec___get_request_headers", {})
        b = await s.call_tool("recauth___get_request_headers", {})
        c = await s.call_tool("rec___put_note", {"text": "n"})
        return a, b, c

    a, b, c = anyio.run(sdk_run, authed.url, run, {"Authorization": f"Bearer {token}"})
    assert not a.isError and not b.isError and not c.isError
    seen_a, seen_b = json.loads(a.content[0].text), json.loads(b.content[0].text)
    assert seen_a["saw_request"] and seen_a["authorization"] is None and "authorization" not in seen_a["names"]
    assert seen_b["authorization"] == f"Bearer {UPSTREAM_SECRET}"  # only the target's own credential

    requests = recorder.snapshot()
    assert len(requests) - seen_before >= 3, "the calls did not reach the recording upstream"
    sig = token.rsplit(".", 1)[-1]
    for req in requests:
        for name, value in req["headers"]:
            assert token not in value and sig not in value, f"caller token forwarded in {name}: {req['method']} {req['path']}"
            if name == "authorization":
                assert value == f"Bearer {UPSTREAM_SECRET}", f"unexpected Authorization upstream: {req['path']}"


# =========================================================================== keys: rotation, burst, outage


def test_key_rotation_is_picked_up_without_restart(fresh: Pair) -> None:
    iss, sc = fresh.issuer, fresh.sidecar
    old_used = iss.token("client-a")
    assert list_names(sc, old_used)
    old_unused = iss.mint()  # same (soon dropped) key, never shown to the sidecar before the drop
    old_kid = unverified(old_used)[0]["kid"]

    iss.wait_quiet(MIN_REFETCH_S + 0.5)
    s0 = iss.stats()["jwks_attempts"]
    rot = iss.rotate(keep_old=False)
    assert rot["previous_kid"] == old_kid and old_kid not in rot["jwks_kids"]
    new = iss.token("client-a")
    assert unverified(new)[0]["kid"] == rot["kid"]
    r = mcp_post(sc, new, "tools/list")
    assert r.status_code == 200, f"a token signed with the rotated-in key must work at once: {describe(r)}"
    fetched = iss.stats()["jwks_attempts"] - s0
    assert 1 <= fetched <= 2, f"JWKS fetches for one new kid: {fetched}"

    # The dropped key no longer verifies anything the sidecar has not already verified.
    expect_401(mcp_post(sc, old_unused, "tools/list"), sc, old_unused, ("kid", "key"))

    # Rotation that keeps the previous key published: both keys verify.
    iss.wait_quiet(MIN_REFETCH_S + 0.5)
    rot2 = iss.rotate(keep_old=True)
    newer = iss.token("client-a")
    assert unverified(newer)[0]["kid"] == rot2["kid"]
    assert list_names(sc, newer)
    still = iss.mint(key=rot["kid"])
    assert list_names(sc, still)


def test_unknown_kid_burst_is_rate_limited(fresh: Pair) -> None:
    iss, sc = fresh.issuer, fresh.sidecar
    valid = iss.token("client-a")
    assert list_names(sc, valid)
    tokens = [iss.mint(key="rogue", header={"kid": "rogue-" + secrets.token_hex(8)}) for _ in range(100)]
    tokens += [iss.mint(header={"kid": "random-" + secrets.token_hex(8)}) for _ in range(100)]
    PRESENTED.extend(tokens)

    iss.wait_quiet(MIN_REFETCH_S + 0.5)
    s0 = iss.stats()
    t0 = time.time()
    # One connection per request: connection reuse after a rejection has its own test
    # (test_a_rejection_does_not_break_the_kept_alive_connection).
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda t: mcp_post(sc, t, "tools/list"), tokens))
    elapsed = time.time() - t0
    for r in responses:
        assert r.status_code == 401 and bearer_challenge(r).get("error") == "invalid_token", describe(r)
    s1 = iss.stats()
    fetches = s1["jwks_attempts"] - s0["jwks_attempts"]
    times = s1["jwks_attempt_times"][len(s0["jwks_attempt_times"]) :]
    allowed = math.floor(elapsed / MIN_REFETCH_S) + 1
    assert 1 <= fetches <= allowed + 1, (
        f"{len(tokens)} unknown-kid tokens in {elapsed:.2f}s caused {fetches} JWKS fetches "
        f"(min refetch interval {MIN_REFETCH_S}s allows {allowed})"
    )
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= MIN_REFETCH_S - 0.25 for g in gaps), f"JWKS refetches closer than the interval: {gaps}"

    # The flood did not lock anyone out, and refetching resumes once the interval has passed.
    assert list_names(sc, iss.mint())
    iss.wait_quiet(MIN_REFETCH_S + 0.5)
    s2 = iss.stats()["jwks_attempts"]
    rot = iss.rotate(keep_old=False)
    fresh_token = iss.token("client-a")
    assert unverified(fresh_token)[0]["kid"] == rot["kid"]
    r = mcp_post(sc, fresh_token, "tools/list")
    assert r.status_code == 200, describe(r)
    assert iss.stats()["jwks_attempts"] - s2 == 1


@pytest.mark.parametrize("fresh", [{"jwks_refresh_secs": 2, "jwks_min_refetch_secs": 60}], indirect=True)
def test_periodic_jwks_refresh_picks_up_a_rotation_without_any_unknown_kid(fresh: Pair) -> None:
    """With on-demand refetching held off (60 s), only the periodic refresh (every 2 s) can
    teach the sidecar a rotated-in key, and forget the dropped one."""
    iss, sc = fresh.issuer, fresh.sidecar
    assert list_names(sc, iss.token("client-a"))
    old_unused = iss.mint()
    rot = iss.rotate(keep_old=False)
    s0 = iss.stats()
    deadline = time.time() + 8
    while iss.stats()["jwks_attempts"] == s0["jwks_attempts"]:
        assert time.time() < deadline, "no periodic JWKS refresh within 8 s (jwks_refresh_secs = 2)"
        time.sleep(0.2)
    time.sleep(0.3)  # let the sidecar install what it fetched
    new = iss.token("client-a")
    assert unverified(new)[0]["kid"] == rot["kid"]
    r = mcp_post(sc, new, "tools/list")
    assert r.status_code == 200, f"the periodic refresh did not install the rotated-in key: {describe(r)}"
    expect_401(mcp_post(sc, old_unused, "tools/list"), sc, old_unused, ("kid", "key"))
    # Periodic, not a flood: about one fetch per interval over a few seconds of silence.
    s1 = iss.stats()
    time.sleep(5)
    n = iss.stats()["jwks_attempts"] - s1["jwks_attempts"]
    assert 1 <= n <= 4, f"{n} JWKS fetches in 5 s with jwks_refresh_secs = 2"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["closed", "503", "hang"])
def test_idp_down_after_startup_cached_keys_keep_working(fresh: Pair, mode: str) -> None:
    iss, sc = fresh.issuer, fresh.sidecar
    assert list_names(sc, iss.token("client-a"))
    # Minted before the outage, never shown to the sidecar before it: each must be verified
    # during the outage with keys the sidecar cached at start-up.
    t_rs, t_es, t_ed, t_ps = iss.mint(), iss.mint(key="ES256"), iss.mint(key="EdDSA"), iss.mint(key="PS256")
    unknown = iss.mint(key="rogue")
    iss.wait_quiet(MIN_REFETCH_S + 0.5)

    iss.admin("POST", "down", {"mode": mode, "for_secs": 60 if mode == "closed" else None})
    time.sleep(0.2)
    try:
        r = httpx.get(iss.discovery["jwks_uri"], timeout=1.0)
        assert r.status_code == 503, f"issuer should be down ({mode}) but answered {r.status_code}"
    except httpx.TransportError:
        pass

    # An unknown kid makes the sidecar try the (down) IdP; meanwhile cached keys keep working.
    outcome: dict[str, Any] = {}

    def unknown_kid_request() -> None:
        t = time.monotonic()
        try:
            outcome["response"] = mcp_post(sc, unknown, "tools/list", timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            outcome["error"] = repr(e)
        outcome["secs"] = time.monotonic() - t

    th = threading.Thread(target=unknown_kid_request, daemon=True)
    th.start()
    time.sleep(0.3)
    t = time.monotonic()
    r = mcp_post(sc, t_rs, "tools/list", timeout=30)
    took = time.monotonic() - t
    assert r.status_code == 200, f"IdP {mode}: a valid token with a cached key was refused: {describe(r)}"
    assert took < 5.0, f"IdP {mode}: a valid token with a cached key took {took:.1f}s (blocked behind the IdP?)"

    th.join(timeout=60)
    assert not th.is_alive(), "the unknown-kid request did not finish within 60 s while the IdP was down"
    assert "response" in outcome, f"unknown-kid request failed at transport level: {outcome}"
    expect_401(outcome["response"], sc, unknown)

    # The failed refetch did not wipe the cache.
    assert text_of(rpc_result(call(sc, t_es, "fast___add", {"a": 4, "b": 5}))) in ("9", "9.0")
    assert list_names(sc, t_ed)
    assert list_names(sc, t_ps)
    if mode != "closed":
        iss.admin("POST", "up")


# =========================================================================== config and logs


def test_check_accepts_the_auth_configs(authed: Proc, strict: Proc, logdir: Path) -> None:
    for proc in (authed, strict):
        cfg = logdir / f"check-{time.monotonic_ns()}.toml"
        cfg.write_text(proc.extra["config"])
        out = subprocess.run(
            [str(sidecar_bin()), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert UPSTREAM_SECRET not in out.stdout + out.stderr


def test_tokens_never_appear_in_sidecar_logs(authed: Proc, strict: Proc) -> None:
    assert PRESENTED, "no tokens were presented"
    for proc in (authed, strict):
        check_logs_clean(proc)
