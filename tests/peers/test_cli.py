"""The command line: `check` on the example configs and on broken ones, zero-file `serve`,
and that every server these tests start listens on loopback only."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, Proc, RawMcp, sidecar_bin, start_sidecar, wait_ready

CONFIG_DIR = ROOT / "config"
EXAMPLES = sorted(CONFIG_DIR.glob("*.toml")) if CONFIG_DIR.is_dir() else []


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(sidecar_bin()), "check", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.skipif(not EXAMPLES, reason="config/ has no example .toml files yet")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_check_accepts_example_config(path: Path) -> None:
    # Examples take secrets and URLs from ${VAR}: give every referenced variable a placeholder.
    text = path.read_text()
    names = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    env = {k: v for k, v in os.environ.items() if k not in names}
    for n in names:
        env[n] = "http://127.0.0.1:9/mcp" if n.endswith("URL") else f"placeholder-{n.lower()}"
    p = run_check("--config", str(path), env=env)
    assert p.returncode == 0, f"check {path.name} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert p.stdout.strip(), f"check printed no plan on stdout\nstderr: {p.stderr}"
    for n in names:  # secrets must not be echoed in the plan
        if "KEY" in n or "TOKEN" in n or "SECRET" in n:
            assert env[n] not in p.stdout + p.stderr, f"check printed the value of {n}"


def test_check_example_config_without_its_env_names_the_variable() -> None:
    with_vars = [p for p in EXAMPLES if re.search(r"(?<!\$)\$\{[A-Za-z_]", p.read_text())]
    if not with_vars:
        pytest.skip("no example uses ${VAR}")
    path = with_vars[0]
    names = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", path.read_text()))
    env = {k: v for k, v in os.environ.items() if k not in names}
    p = run_check("--config", str(path), env=env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert any(n in p.stdout + p.stderr for n in names), p.stdout + p.stderr


GOOD_TARGET = '[[targets]]\nname = "fast"\nkind = "mcp_server"\nurl = "http://127.0.0.1:9/mcp"\n'

BAD_CONFIGS = {
    "timeout-not-a-number": (GOOD_TARGET + 'connect_timeout_ms = "soon"\n', "connect_timeout_ms"),
    "name-with-triple-underscore": (GOOD_TARGET.replace('"fast"', '"fa___st"'), "name"),
    "bad-listen-address": ('[inbound]\nlisten = "not an address"\n\n' + GOOD_TARGET, "listen"),
    "unknown-kind": (GOOD_TARGET.replace('"mcp_server"', '"carrier_pigeon"'), "kind"),
    "bad-url": (GOOD_TARGET.replace("http://127.0.0.1:9/mcp", "not a url"), "url"),
    "unknown-field": (GOOD_TARGET + "urll = 3\n", "urll"),
    "max-body-negative": ("[inbound]\nmax_body_bytes = -5\n\n" + GOOD_TARGET, "max_body_bytes"),
}


def test_check_accepts_minimal_config(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text(GOOD_TARGET)
    p = run_check("--config", str(cfg))
    assert p.returncode == 0, f"stdout: {p.stdout}\nstderr: {p.stderr}"


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_rejects_bad_field_with_exit_2(tmp_path: Path, case: str) -> None:
    text, field = BAD_CONFIGS[case]
    cfg = tmp_path / f"{case}.toml"
    cfg.write_text(text)
    p = run_check("--config", str(cfg))
    out = p.stdout + p.stderr
    assert p.returncode == 2, f"exit {p.returncode}\n{out}"
    assert "error:" in out, out
    assert field in out, f"error does not name field {field!r}:\n{out}"


def test_check_missing_env_var_names_it(tmp_path: Path) -> None:
    cfg = tmp_path / "env.toml"
    cfg.write_text(GOOD_TARGET + 'headers = { "X-Tenant" = "${SIDECAR_TEST_SURELY_UNSET_VAR}" }\n')
    env = {k: v for k, v in os.environ.items() if k != "SIDECAR_TEST_SURELY_UNSET_VAR"}
    p = run_check("--config", str(cfg), env=env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "SIDECAR_TEST_SURELY_UNSET_VAR" in p.stdout + p.stderr


@pytest.mark.parametrize("style", ["flags", "env"])
def test_zero_file_serve(logdir, fast: Proc, procs, style: str) -> None:
    if style == "flags":
        sc = start_sidecar(logdir, args=["--upstream-url", fast.url, "--listen", "127.0.0.1:0"])
    else:
        sc = start_sidecar(
            logdir,
            env={"MCP_SIDECAR_UPSTREAM_URL": fast.url, "MCP_SIDECAR_LISTEN": "127.0.0.1:0", "MCP_SIDECAR_TARGET_NAME": "py"},
        )
    procs(sc)
    name = "upstream" if style == "flags" else "py"
    wait_ready(sc, [name])
    with RawMcp(sc.url) as c:
        c.initialize()
        names = [t["name"] for t in c.list_tools()]
        assert f"{name}___echo" in names, names
        m = c.call(f"{name}___echo", {"text": "zero-file"})
        assert m.get("result", {}).get("content") == [{"type": "text", "text": "zero-file"}], m


def listening_addrs(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on `port`, from /proc/net/tcp{,6}."""
    addrs = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for ln in lines:
            parts = ln.split()
            local, state = parts[1], parts[3]
            if state != "0A":  # LISTEN
                continue
            hexip, hexport = local.split(":")
            if int(hexport, 16) != port:
                continue
            if v6:
                addrs.add("::1" if hexip == "00000000000000000000000001000000" else f"v6:{hexip}")
            else:
                b = bytes.fromhex(hexip)[::-1]
                addrs.add(".".join(str(x) for x in b))
    return addrs


def test_everything_listens_on_loopback_only(everything: Proc, fast: Proc, sidecar: Proc) -> None:
    for proc in (everything, fast, sidecar):
        addrs = listening_addrs(proc.port)
        assert addrs, f"{proc.name}: no LISTEN socket found on port {proc.port}"
        assert addrs <= {"127.0.0.1", "::1"}, f"{proc.name} listens on {addrs}"
