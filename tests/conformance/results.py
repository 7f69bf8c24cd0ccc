"""Reads `conformance server` runs and holds them to the project's rule.

    python results.py RUN_STDOUT RUN_DIR
        A run against the fixture alone: every scenario must pass, except those the suite itself
        reports as not scored (its `Not scored for <revision>` block: extensions, pending), which
        are shown but may fail.

    python results.py RUN_STDOUT RUN_DIR --direct DIRECT_STDOUT DIRECT_DIR --expected EXPECTED_FAILURES
        A run through mcp-sidecar, compared with the same suite's run against the fixture alone:
        it fails when a scenario passes directly but not through the sidecar, unless
        EXPECTED_FAILURES lists it; and when a listed scenario passes through the sidecar, fails
        directly too, or does not exist (so the list is always exactly what does not work).
        Scenarios that fail directly as well are shown and not compared. A scenario that passes
        both ways but whose checks succeeded directly and were skipped (or not run) through the
        sidecar gets a note naming them: not a failure, but coverage the sidecar lost.

RUN_STDOUT is what the suite printed (its `=== SUMMARY ===` block is the authority on which
scenario passed: a scenario fails when one of its checks is a FAILURE, as in the suite's own
`Total: N passed, M failed`); RUN_DIR is its `-o` directory, read only for the failure messages
and warnings shown here.

Exit status: 0 when the run holds to the rule, 1 when it does not, 2 when a run produced no
summary (crashed or timed out).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SUMMARY_LINE = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed$")
TOTAL_LINE = re.compile(r"^Total: \d+ passed, \d+ failed$")
NOT_SCORED_HEADER = re.compile(r"^Not scored for \S+:")
NOT_SCORED_LINE = re.compile(r"^\s+[✓✗] (\S+) \(([^)]*)\)$")
RUN_DIR = re.compile(r"^server-(.+)-\d{4}-\d{2}-\d{2}T[0-9-]+Z$")


@dataclass
class Run:
    scenarios: dict[str, tuple[bool, int, int]]  # name -> (passed, checks passed, checks failed)
    not_scored: dict[str, str]  # name -> why the suite does not score it
    total: str | None


def parse_run(text: str) -> Run:
    run = Run({}, {}, None)
    section = None
    for line in text.splitlines():
        line = line.rstrip()
        if line == "=== SUMMARY ===":
            section = "summary"
        elif NOT_SCORED_HEADER.match(line):
            section = "not-scored"
        elif section == "summary" and (m := SUMMARY_LINE.match(line)):
            run.scenarios[m.group(2)] = (m.group(1) == "✓", int(m.group(3)), int(m.group(4)))
        elif section == "summary" and TOTAL_LINE.match(line):
            run.total = line
        elif section == "not-scored" and (m := NOT_SCORED_LINE.match(line)):
            run.not_scored[m.group(1)] = m.group(2)
    return run


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


def read_expected(path: Path) -> dict[str, str]:
    expected: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: '{name}' has no reason (write: SCENARIO WHY IT FAILS)")
        expected[name] = reason.strip()
    return expected


def read_run(stdout: Path) -> Run | None:
    run = parse_run(stdout.read_text(errors="replace"))
    if not run.scenarios or run.total is None:
        print(f"conformance: {stdout.name}: the suite printed no summary (crashed or timed out)")
        return None
    return run


def lost_checks(direct: list[dict], here: list[dict]) -> list[str]:
    """Checks that succeeded directly but were skipped, only informative or not run here (failures
    are shown with their messages already), with their status here."""
    succeeded = collections.Counter(c.get("id") for c in here if c.get("status") == "SUCCESS")
    statuses: dict[str, set[str]] = collections.defaultdict(set)
    for c in here:
        statuses[c.get("id")].add(c.get("status"))
    lost = collections.Counter(c.get("id") for c in direct if c.get("status") == "SUCCESS") - succeeded
    return [
        f"{check} ({'/'.join(sorted(statuses[check])) or 'not run'})"
        for check in sorted(lost)
        if "FAILURE" not in statuses[check]
    ]


def show_checks(name: str, ok: bool, checks: dict[str, list[dict]], indent: str) -> None:
    for c in checks.get(name, []):
        status = c.get("status")
        if status == "FAILURE" and not ok:
            print(f"{indent}{c.get('id')}: {(c.get('errorMessage') or c.get('description') or '')[:300]}")
        elif status == "WARNING":
            detail = c.get("errorMessage") or (c.get("details") or {}).get("message") or c.get("description")
            print(f"{indent}warning {c.get('id')}: {str(detail)[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stdout", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--direct", type=Path, nargs=2, metavar=("STDOUT", "DIR"), help="the same suite against the fixture alone"
    )
    parser.add_argument("--expected", type=Path, help="the scenarios known to fail through the sidecar")
    args = parser.parse_args()
    if (args.direct is None) != (args.expected is None):
        parser.error("--direct and --expected go together")

    run = read_run(args.stdout)
    direct = read_run(args.direct[0]) if args.direct else None
    if run is None or (args.direct and direct is None):
        return 2
    checks = read_checks(args.out_dir)
    direct_checks = read_checks(args.direct[1]) if args.direct else {}
    expected = read_expected(args.expected) if args.expected else {}

    problems: list[str] = []
    names = list(run.scenarios) + [n for n in (direct.scenarios if direct else {}) if n not in run.scenarios]
    width = max(len(n) for n in names)
    for name in names:
        ok, passed, failed = run.scenarios.get(name, (False, 0, 0))
        ran = name in run.scenarios
        details = True  # failing checks are shown unless the failure is not this run's concern
        counts = f"{passed} passed, {failed} failed" if ran else "did not run"
        if direct is None:
            if ok:
                verdict = "pass" if passed else "pass (no check ran)"
            elif name in run.not_scored:
                verdict = f"fails (not scored by the suite: {run.not_scored[name]})"
                details = False
            else:
                verdict = "FAIL"
                problems.append(f"{name} fails against the fixture alone")
        else:
            direct_ok = direct.scenarios.get(name, (False, 0, 0))[0]
            listed = name in expected
            if not direct_ok:
                verdict = "fails directly too (not compared)"
                details = listed
                if listed:
                    verdict += ": REMOVE it from the list"
                    problems.append(f"{name} is listed but fails directly too")
            elif ok and listed:
                verdict = "PASS, but listed as failing: REMOVE it from the list"
                problems.append(f"{name} passes through the sidecar but is listed")
            elif ok:
                verdict = "pass" if passed else "pass (no check ran)"
            elif listed:
                verdict = "expected failure"
            else:
                verdict = "FAIL (passes directly)"
                problems.append(f"{name} passes directly but not through the sidecar")
        print(f"  {name:<{width}}  {counts}  {verdict}")
        if details:
            show_checks(name, ok, checks, f"  {'':<{width}}    ")
        if direct is not None and direct.scenarios.get(name, (False,))[0]:
            lost = lost_checks(direct_checks.get(name, []), checks.get(name, []))
            if not ok:  # the checks after a failed one do not run: only the skipped ones say more
                lost = [check for check in lost if not check.endswith("(not run)")]
            if lost:
                print(f"  {'':<{width}}    note: succeed directly, not here: {', '.join(lost)}")

    for name in sorted(set(expected) - set(names)):
        print(f"  {name}: listed in {args.expected.name} but the suite has no such scenario")
        problems.append(f"{name} is listed but is no scenario of this suite")
    for problem in problems:
        print(f"conformance: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
