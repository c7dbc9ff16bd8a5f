"""Reliability figures: the fault matrix, the fuzzer, the leak scan and the load test, counted.

Runs tests/test_faults.py, test_fuzz.py, test_secrets.py, test_untrusted.py and test_load.py
in-process under pytest with a small plugin that collects what each test records
(`record_property`: faults tried per kind, inputs fuzzed, leaks found, load figures), then prints
markdown tables. pytest's own output goes to stderr; the tables go to stdout.

Run: .venv/bin/python bench/reliability.py [--skip-load]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections import Counter
from typing import Any

import pytest
from _common import ROOT, machine_line, table, verdict

FILES = ("test_faults.py", "test_fuzz.py", "test_secrets.py", "test_untrusted.py", "test_load.py")


class Collector:
    """pytest plugin: outcome counts and every test's recorded properties."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.failed: list[str] = []
        self.props: list[tuple[str, str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.outcome] += 1
        if report.outcome == "failed":
            self.failed.append(f"{report.nodeid} ({report.when})")
        if report.when == "teardown":  # carries everything the test recorded, including in fixture teardown
            self.props += [(report.nodeid, k, v) for k, v in report.user_properties]


def kind_group(kind: str) -> str:
    if kind.startswith("create"):
        return "create_invoice (never duplicated)"
    if "token" in kind or "401" in kind or "403" in kind:
        return "tokens & credentials"
    if "persistent" in kind:
        return "persistent (actionable error)"
    return "transient (retried to success)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-load", action="store_true", help="skip the ~30 s load test")
    args = ap.parse_args()
    files = [f"tests/{f}" for f in FILES if not (args.skip_load and f == "test_load.py")]
    command = "  ".join(
        [
            ".venv/bin/python bench/reliability.py" + (" --skip-load" if args.skip_load else ""),
            "(= pytest -q -p no:cacheprovider " + " ".join(shlex.quote(f) for f in files) + ")",
        ]
    )
    os.chdir(ROOT)
    collector = Collector()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]  # anyio is imported before pytest starts
        code = pytest.main(["-q", "-p", "no:cacheprovider", *quiet, *files], plugins=[collector])
    took = time.perf_counter() - started

    faults: Counter[str] = Counter()
    fuzzed = leaks = 0
    give_up: dict[str, float] = {}
    load: dict[str, Any] = {}
    scan: dict[str, int] = {}
    for _, key, value in collector.props:
        if key == "faults":
            faults.update(value)
        elif key == "fuzzed":
            fuzzed += int(value)
        elif key == "leaks":
            leaks += int(value)
        elif key == "give_up_s":
            give_up.update(value)
        elif key == "load":
            load = value
        elif key == "leak_scan":
            scan = value

    ok = code == 0
    out = ["## Reliability", "", f"Machine: {machine_line()}", ""]
    out.append(
        table(
            ["figure", "value", "verdict"],
            [
                [
                    "tests",
                    f"{collector.outcomes['passed']} passed, {collector.outcomes['failed']} failed, "
                    f"{collector.outcomes['skipped']} skipped in {took:.0f} s",
                    verdict(ok),
                ],
                ["faults tried", f"{sum(faults.values())} injections of {len(faults)} kinds", verdict(ok)],
                ["inputs fuzzed", f"{fuzzed} tool calls (hypothesis + hand-written)", verdict(ok)],
                [
                    "leaks found",
                    f"{leaks} (secret, tokens, Basic header, links; "
                    f"{scan.get('log_records', 0)} DEBUG records + stdio stderr + "
                    f"{scan.get('results', 0)} results scanned)",
                    verdict(ok and leaks == 0),
                ],
                [
                    "load held",
                    (
                        f"{load['ok']}/{load['calls']} concurrent calls over stdio in {load['seconds']} s; "
                        f"peak upstream {load['max_upstream_per_s']} req/s (limit {load['rate_limit']:g}); "
                        f"{load['upstream_requests']} upstream requests; 429s reaching the model "
                        f"{load['429_to_model']}; token requests {load['token_requests']}"
                    )
                    if load
                    else "skipped",
                    verdict(ok) if load else "-",
                ],
                [
                    "give-up time, persistent failure (real clock)",
                    ", ".join(f"{k}: {v:.2f} s" for k, v in sorted(give_up.items())) or "-",
                    verdict(ok),
                ],
            ],
        )
    )
    out += ["", "### Faults tried, by kind", ""]
    rows = sorted(faults.items(), key=lambda kv: (kind_group(kv[0]), kv[0]))
    out.append(table(["group", "fault", "injections"], [[kind_group(k), k, v] for k, v in rows]))
    if collector.failed:
        out += ["", "**Failures:** " + "; ".join(collector.failed[:10])]
    out += ["", f"Command: `{command}`"]
    print("\n".join(out))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
