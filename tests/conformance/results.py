"""Reads one `conformance server` run and compares it with expected-failures.txt.

    python results.py SUITE_STDOUT OUTPUT_DIR [EXPECTED_FAILURES]

SUITE_STDOUT is what the suite printed (its `=== SUMMARY ===` block is the authority on which
scenario passed: a scenario fails when one of its checks is a FAILURE, as in the suite's own
`Total: N passed, M failed`); OUTPUT_DIR is its `-o` directory, read only for the failure
messages and warnings shown here. Without EXPECTED_FAILURES every failure is unexpected.

Exit status: 0 when the failing scenarios are exactly the expected ones, 1 when a scenario
failed unexpectedly or an expected failure passed (remove it from the list), 2 when the run
produced no summary (crashed or timed out).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SUMMARY_LINE = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed$")
TOTAL_LINE = re.compile(r"^Total: \d+ passed, \d+ failed$")
RUN_DIR = re.compile(r"^server-(.+)-\d{4}-\d{2}-\d{2}T[0-9-]+Z$")


def parse_summary(text: str) -> tuple[dict[str, tuple[bool, int, int]], str | None]:
    scenarios: dict[str, tuple[bool, int, int]] = {}
    total = None
    in_summary = False
    for line in text.splitlines():
        line = line.rstrip()
        if line == "=== SUMMARY ===":
            in_summary = True
            continue
        if not in_summary:
            continue
        if m := SUMMARY_LINE.match(line):
            scenarios[m.group(2)] = (m.group(1) == "✓", int(m.group(3)), int(m.group(4)))
        elif TOTAL_LINE.match(line):
            total = line
    return scenarios, total


def read_checks(out_dir: Path) -> dict[str, list[dict]]:
    checks: dict[str, list[dict]] = {}
    if not out_dir.is_dir():
        return checks
    for run in out_dir.iterdir():
        m = RUN_DIR.match(run.name)
        file = run / "checks.json"
        if m and file.is_file():
            try:
                checks[m.group(1)] = json.loads(file.read_text())
            except (OSError, ValueError):
                pass
    return checks


def read_expected(path: Path | None) -> dict[str, str]:
    expected: dict[str, str] = {}
    if path is None:
        return expected
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        expected[name] = reason.strip()
    return expected


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    stdout = Path(sys.argv[1]).read_text(errors="replace")
    checks = read_checks(Path(sys.argv[2]))
    expected = read_expected(Path(sys.argv[3]) if len(sys.argv) == 4 else None)
    scenarios, total = parse_summary(stdout)
    if not scenarios or total is None:
        print("conformance: the suite printed no summary (crashed or timed out)")
        return 2

    unexpected, stale = [], []
    width = max(len(name) for name in scenarios)
    for name, (ok, passed, failed) in scenarios.items():
        warnings = [c for c in checks.get(name, []) if c.get("status") == "WARNING"]
        if ok and name in expected:
            verdict = "PASS (expected to fail: remove it from expected-failures.txt)"
            stale.append(name)
        elif ok:
            verdict = "pass" if passed else "pass (no check ran)"
        elif name in expected:
            verdict = "expected failure"
        else:
            verdict = "FAIL (unexpected)"
            unexpected.append(name)
        note = f", {len(warnings)} warning(s)" if warnings else ""
        print(f"  {name:<{width}}  {passed} passed, {failed} failed{note}  {verdict}")
        if not ok:
            for c in checks.get(name, []):
                if c.get("status") == "FAILURE":
                    print(f"  {'':<{width}}    {c.get('id')}: {(c.get('errorMessage') or c.get('description') or '')[:300]}")
        for c in warnings:
            detail = c.get("errorMessage") or (c.get("details") or {}).get("message") or c.get("description")
            print(f"  {'':<{width}}    warning {c.get('id')}: {str(detail)[:300]}")

    missing = sorted(set(expected) - set(scenarios))
    for name in missing:
        print(f"  {name}: listed in expected-failures.txt but the suite has no such scenario")
    if unexpected:
        print(f"conformance: unexpected failures: {' '.join(unexpected)}")
    if stale:
        print(f"conformance: expected failures that now pass: {' '.join(stale)}")
    return 1 if unexpected or stale or missing else 0


if __name__ == "__main__":
    sys.exit(main())
