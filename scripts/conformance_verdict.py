"""Judge one run of the MCP conformance suite's server scenarios (used by scripts/conformance).

Usage: conformance_verdict.py NOT_APPLICABLE_FILE RESULTS_DIR LABEL

RESULTS_DIR holds the suite's ``-o`` output: one ``server-<scenario>-<timestamp>/checks.json`` per
scenario. A scenario is applicable unless NOT_APPLICABLE_FILE lists it. Exit 1 when an applicable
scenario has a FAILURE check or produced no result; warnings are printed, not fatal.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def not_applicable(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}: {name!r} has no reason")
        out[name] = reason.strip()
    return out


def results(root: Path) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for d in sorted(root.iterdir()):
        m = _DIR.match(d.name)
        checks = d / "checks.json"
        if m and checks.is_file():
            out[m.group("name")] = json.loads(checks.read_text(encoding="utf-8"))
    return out


def main(argv: list[str]) -> int:
    na_file, root, label = Path(argv[1]), Path(argv[2]), argv[3]
    na = not_applicable(na_file)
    got = results(root)
    bad: list[str] = []
    failed: list[str] = []
    passed: list[str] = []
    for name, checks in sorted(got.items()):
        failures = [c for c in checks if c.get("status") == "FAILURE"]
        warnings = [c for c in checks if c.get("status") == "WARNING"]
        if name in na:
            continue
        for w in warnings:
            print(f"[{label}] warning {name}: {w.get('id')}: {w.get('errorMessage') or ''}")
        if failures:
            failed.append(name)
            for f in failures:
                bad.append(f"{name}: {f.get('id')}: {f.get('errorMessage') or f.get('details')}")
        else:
            passed.append(name)
    stale = sorted(set(na) - set(got))
    if stale:
        print(f"[{label}] note: listed as not applicable but not run by this suite version: {', '.join(stale)}")
    if not got:
        bad.append("no scenario results at all (did the suite run?)")
    skipped = len(set(got) & set(na))
    print(f"[{label}] applicable scenarios: {len(passed)} passed, {len(failed)} failed; not applicable: {skipped}")
    print(f"[{label}] passed: {', '.join(passed)}")
    for b in bad:
        print(f"[{label}] FAILED {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
