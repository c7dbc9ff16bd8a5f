"""The answers to the questions of bench/results-model.md, computed from the sandbox's own data
(`drive.py truth`: invoices, customers, payments and the sandbox's invoice → payment link), never
from the server. Run after the questions were answered, to check them.

Run: .venv/bin/python bench/drive_check.py [truth.json]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

SETTLED = {"paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off"}
APART = {"draft", "archived"}
ZERO = Decimal("0")


def d(v: Any) -> Decimal:
    return Decimal(str(v))


def main() -> None:
    default = Path(os.environ.get("DRIVE_DIR", "/tmp/invoice-mcp-drive")) / "truth.json"
    t = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else default).read_text())
    today = dt.date.fromisoformat(t["today"])
    names = {c["id"]: c["name"] for c in t["customers"]}
    pays = t["payments_by_invoice"]
    live = [i for i in t["invoices"] if i["status"] != "archived"]

    def owed(i: dict[str, Any]) -> bool:
        return i["status"] not in SETTLED | APART

    def bal(i: dict[str, Any]) -> Decimal:
        return d(i["total"]) - sum(
            (d(p["sub_total"]) for p in pays.get(i["id"], []) if p["status"] == "succeeded"), ZERO
        )

    def late(i: dict[str, Any]) -> int:
        return (today - dt.date.fromisoformat(i["due_date"][:10])).days

    def of(name: str) -> list[dict[str, Any]]:
        return [i for i in live if names.get(i["customer_id"]) == name]

    def show(q: str, answer: Any) -> None:
        print(f"{q}: {answer}")

    g = [i for i in of("Granite State Engineering") if owed(i)]
    show(
        "Q1",
        (sum(map(bal, g), ZERO), len(g), sum((bal(i) for i in g if late(i) > 0), ZERO), sum(late(i) > 0 for i in g)),
    )
    to_cents = [i for i in live if owed(i) and late(i) > 60]
    show("Q2", (len(to_cents), sum(map(bal, to_cents), ZERO), {i["invoice_number"]: str(bal(i)) for i in to_cents}))
    q3 = [i for i in live if owed(i) and any(p["status"] == "failed" for p in pays.get(i["id"], []))]
    show("Q3", (len(q3), [i["invoice_number"] for i in q3], sum(map(bal, q3), ZERO)))
    per: dict[str, Decimal] = {}
    for i in live:
        if owed(i) and late(i) > 0:
            per[names[i["customer_id"]]] = per.get(names[i["customer_id"]], ZERO) + bal(i)
    show("Q4", [(n, str(per[n])) for n in sorted(per, key=lambda n: per[n], reverse=True)[:5]])
    month_end = today.replace(day=1) - dt.timedelta(days=1)
    start, end = month_end.replace(day=1).isoformat(), month_end.isoformat()
    octo = [p for p in t["payments"] if start <= p["created_at"][:10] <= end]
    ok = [p for p in octo if p["status"] == "succeeded"]
    fees = [f for p in ok for f in p.get("fees") or []]
    show(
        "Q5",
        {
            "payments": len(octo),
            "collected": sum((d(p["sub_total"]) for p in ok), ZERO),
            "charged": sum((d(p["total"]) for p in ok), ZERO),
            "fees_by_customer": sum((d(f["amount"]) for f in fees if f.get("covered_by_customer")), ZERO),
            "fees_by_merchant": sum((d(f["amount"]) for f in fees if not f.get("covered_by_customer")), ZERO),
            "refunded": sum((d(p["sub_total"]) for p in octo if p["status"] == "refunded"), ZERO),
        },
    )
    i1250 = next(i for i in t["invoices"] if i["invoice_number"] == "INV-1250")
    show("Q6", (i1250["status"], bal(i1250)))
    hay = [
        i
        for i in t["invoices"]
        if "migration"
        in " ".join(
            [i.get("memo") or "", names.get(i["customer_id"], ""), *(li["description"] for li in i["line_items"])]
        ).lower()
    ]
    show("Q7", (len(hay), len(live), "archived included in the check"))
    acme = of("Acme Dental Group")[0]
    show(
        "Q8",
        (
            acme["invoice_number"],
            acme["status"],
            acme["total"],
            [(li["description"], li["quantity"], li["amount"]) for li in acme["line_items"]],
        ),
    )
    q9 = [i for i in live if owed(i) and late(i) > 0]
    show("Q9", (len(q9), sum(map(bal, q9), ZERO)))
    since = (today - dt.timedelta(days=7)).isoformat()
    numbers = {i["id"]: i["invoice_number"] for i in t["invoices"]}
    owner = {p["id"]: inv for inv, ps in pays.items() for p in ps}
    failed = [
        p for p in t["payments"] if p["status"] == "failed" and since <= p["created_at"][:10] <= today.isoformat()
    ]
    show(
        "Q10",
        [
            (p["created_at"][:10], names[p["customer_id"]], p["sub_total"], numbers.get(owner.get(p["id"], "")))
            for p in failed
        ],
    )
    made = [i for i in live if start <= i["created_at"][:10] <= end]
    show("Q11", (len(made), sum((d(i["total"]) for i in made), ZERO), sum(i["status"] == "draft" for i in made)))
    new = [i for i in t["invoices"] if i["invoice_number"] == "INV-1301"]
    show(
        "Q12/Q13",
        [
            (names[i["customer_id"]], i["total"], i["status"], [li["description"] for li in i["line_items"]])
            for i in new
        ],
    )
    bh = [i for i in of("Blue Harbor Logistics") if owed(i) and bal(i) != d(i["total"])]
    show("Q14", [(i["invoice_number"], i["status"], str(bal(i))) for i in bh])


if __name__ == "__main__":
    main()
