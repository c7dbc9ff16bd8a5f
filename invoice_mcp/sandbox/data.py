"""Seeded, deterministic generation of realistic MSP customers and invoices.

Everything derives from one ``random.Random(seed)`` plus the sandbox's "today", so the same
config yields byte-identical data. Amounts are generated as integer cents so totals are exact.
The generator is a single pass with bulk draws where possible: 100k invoices take about a second.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import random
from collections.abc import Iterator
from typing import Any

from .records import CustomerRec, Fee, InvoiceRec, LineItem, PaymentRec, cents_to_json, date_to_day, day_to_date

HISTORY_DAYS = 548  # ~18 months of invoices before "today"
FIRST_INVOICE_NUMBER = 1001

# Company names of typical MSP clients. Several share a word ("Acme", "Harbor", "North") so that
# resolving a customer by name can be ambiguous.
COMPANY_NAMES: tuple[str, ...] = (
    "Acme Dental Group",
    "Blue Harbor Logistics",
    "Northwind Traders",
    "Acme Industrial Supply",
    "Cedar Ridge Family Practice",
    "Summit Legal Partners",
    "Pinecrest Veterinary Clinic",
    "Riverbend Credit Union",
    "Harborview Accounting",
    "Granite State Engineering",
    "Lakeside Property Management",
    "North Shore Orthodontics",
    "Silverline Architects",
    "Evergreen Senior Living",
    "Redwood Insurance Agency",
    "Brightpath Charter School",
    "Ironclad Manufacturing",
    "Meridian Wealth Advisors",
    "Keystone Construction",
    "Maple Street Bakery",
)
# The second catalogue, for extra tenants: no name shares a word with the first one, so whose data
# a test is looking at is obvious.
TENANT_COMPANY_NAMES: tuple[str, ...] = (
    "Contoso Pediatrics",
    "Fabrikam Freight",
    "Tailspin Aviation Services",
    "Wingtip Toys",
    "Woodgrove Savings Bank",
    "Litware Publishing",
    "Proseware Labs",
    "Adventure Works Cycles",
    "Coho Vineyard",
    "Lucerne Publishing",
    "Alpine Ski House",
    "Fourth Coffee",
    "Trey Research",
    "Wide World Importers",
    "Humongous Insurance",
    "Margie's Travel",
    "Relecloud Media",
    "Datum Corporation",
    "Bellows College",
    "Graphic Design Institute",
)
_BRANCHES = ("East", "West", "Central", "North", "South")
_CITIES: tuple[tuple[str, str, str], ...] = (
    ("Portland", "OR", "97205"),
    ("Boise", "ID", "83702"),
    ("Austin", "TX", "78701"),
    ("Columbus", "OH", "43215"),
    ("Raleigh", "NC", "27601"),
    ("Denver", "CO", "80202"),
    ("Madison", "WI", "53703"),
    ("Manchester", "NH", "03101"),
    ("Tampa", "FL", "33602"),
    ("Sacramento", "CA", "95814"),
)
_STREETS = ("Main St", "Commerce Dr", "Harbor Way", "Oak Ave", "Industrial Pkwy", "Market St", "Cedar Ln")

# (description, kind, low cents, high cents). kind: "seat" quantities follow the customer's seat
# count, "hours" are 1-16, "unit" are small counts, "once" is always 1.
CATALOGUE: tuple[tuple[str, str, int, int], ...] = (
    ("Managed endpoint – per seat", "seat", 3500, 6500),
    ("Microsoft 365 Business Premium", "seat", 2200, 2200),
    ("Microsoft 365 Business Basic", "seat", 600, 600),
    ("EDR / MDR – per endpoint", "seat", 800, 1500),
    ("Email security – per mailbox", "seat", 250, 450),
    ("Security awareness training – per user", "seat", 300, 600),
    ("Managed server – per server", "unit", 12000, 25000),
    ("Backup storage 1TB", "unit", 4999, 8900),
    ("Firewall management", "unit", 15000, 30000),
    ("Domain & DNS hosting", "unit", 2000, 4000),
    ("On-site support (hours)", "hours", 12500, 17500),
    ("Remote support (hours)", "hours", 9500, 14000),
    ("Network switch (24-port)", "unit", 35000, 90000),
    ("Project labour – network refresh", "once", 150000, 600000),
    ("Dark web monitoring", "once", 9900, 9900),
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


_ID_ALPHABET = str.maketrans("+/", "Xq")  # base64 -> alphanumeric (slightly non-uniform; fine here)


def random_id(rng: random.Random, prefix: str, n: int) -> str:
    """``prefix`` + ``n`` alphanumerics from the seeded RNG (base64 of random bytes: fast in bulk)."""
    raw = base64.b64encode(rng.randbytes((n * 3 + 3) // 4)).decode("ascii")
    return prefix + raw[:n].translate(_ID_ALPHABET)


def _company_names(count: int, names: tuple[str, ...]) -> Iterator[str]:
    yield from names[:count]
    for branch in itertools.count(0):
        for base in names:
            suffix = _BRANCHES[branch] if branch < len(_BRANCHES) else f"Site {branch + 1}"
            yield f"{base} ({suffix})"


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())[:24]


def generate_customers(
    rng: random.Random, count: int, today: dt.date, names: tuple[str, ...] = COMPANY_NAMES
) -> list[CustomerRec]:
    """Customers created before the invoice history starts; some optional fields are null."""
    out: list[CustomerRec] = []
    history_start = date_to_day(today) - HISTORY_DAYS
    for name in itertools.islice(_company_names(count, names or COMPANY_NAMES), count):
        day = history_start - rng.randint(20, 900)
        city, state, postal = rng.choice(_CITIES)
        has_address = rng.random() < 0.85
        out.append(
            CustomerRec(
                id=random_id(rng, "cus_", 20),
                name=name,
                created_ts=day * 86400 + rng.randrange(13 * 3600, 23 * 3600),
                legal_name=(name + rng.choice((" LLC", ", Inc.", " PLLC"))) if rng.random() < 0.7 else None,
                email=f"{rng.choice(('billing', 'ap', 'accounts'))}@{_slug(name)}.example",
                external_id=f"PSA-{rng.randint(1000, 9999)}" if rng.random() < 0.6 else None,
                customer_integration_id=f"cw-{rng.randint(100, 999)}" if rng.random() < 0.4 else None,
                default_payment_method_id=random_id(rng, "pm_", 20) if rng.random() < 0.5 else None,
                ein=f"{rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}" if rng.random() < 0.5 else None,
                street_address=f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}" if has_address else None,
                sub_premise=f"Suite {rng.randint(1, 9)}00" if has_address and rng.random() < 0.4 else None,
                city=city if has_address else None,
                state=state if has_address else None,
                postal_code=postal if has_address else None,
                country="US" if has_address else None,
            )
        )
    return out


def _status(rng: random.Random, days_past_due: int) -> str:
    r = rng.random()
    if days_past_due <= 0:  # not yet overdue
        return "draft" if r < 0.08 else "open" if r < 0.76 else "paid" if r < 0.94 else "partially_paid"
    if days_past_due <= 30:
        return "paid" if r < 0.55 else "overdue" if r < 0.88 else "partially_paid"
    if days_past_due <= 90:
        return "paid" if r < 0.82 else "overdue" if r < 0.95 else "partially_paid"
    return "paid" if r < 0.94 else "overdue" if r < 0.985 else "partially_paid"


def _memo(rng: random.Random, created: dt.date) -> str | None:
    r = rng.random()
    if r < 0.35:
        return None
    if r < 0.7:
        return f"Managed services – {_MONTHS[created.month - 1]} {created.year}"
    if r < 0.82:
        return "Thank you for your business!"
    if r < 0.92:
        return f"Per SOW #{rng.randint(100, 999)}"
    return "Net 30 – please remit by the due date."


def generate_invoices(
    rng: random.Random,
    customers: list[CustomerRec],
    count: int,
    today: dt.date,
    first_number: int = FIRST_INVOICE_NUMBER,
) -> list[InvoiceRec]:
    """Invoices in ascending ``(created_at, id)`` order, numbered INV-1001... in creation order."""
    if count <= 0 or not customers:
        return []
    rand = rng.random  # hot loop: int(rand() * n) is several times cheaper than randint
    today_day = date_to_day(today)
    first_day = today_day - HISTORY_DAYS
    # Skewed spread: a few big customers get most invoices (Zipf-like weights over a shuffled order).
    order = list(range(len(customers)))
    rng.shuffle(order)
    cum: list[float] = []
    acc = 0.0
    for rank in range(len(order)):
        acc += 1.0 / (rank + 1) ** 1.1
        cum.append(acc)
    owners = rng.choices(order, cum_weights=cum, k=count)
    seats = [rng.randint(5, 120) for _ in customers]
    cust_ids = [c.id for c in customers]
    # Business-hours creation times (13:00-23:00 UTC), strictly before today.
    stamps = sorted(
        (first_day + int(rand() * HISTORY_DAYS)) * 86400 + 13 * 3600 + int(rand() * 36000) for _ in range(count)
    )
    seen: set[str] = set()
    out: list[InvoiceRec] = []
    cat = CATALOGUE
    amounts: dict[int, float] = {}  # share float objects between equal amounts (memory)
    memos: dict[str, str] = {}  # likewise for the few distinct memo texts
    last_second = today_day * 86400 - 1
    for owner, ts in zip(owners, stamps, strict=True):
        inv_id = random_id(rng, "inv_", 24)
        while inv_id in seen:  # pragma: no cover - 62^24 space
            inv_id = random_id(rng, "inv_", 24)
        seen.add(inv_id)
        r = rand() * 100
        n_lines = 1 if r < 30 else 2 if r < 60 else 3 if r < 80 else 4 if r < 92 else 5
        lines: list[LineItem] = []
        total = 0
        for desc, kind, lo, hi in rng.sample(cat, n_lines):
            cents = lo if lo == hi else lo + 5 * int(rand() * ((hi - lo) // 5 + 1))
            if kind == "seat":
                qty = max(1, seats[owner] - 3 + int(rand() * 7))
            elif kind == "hours":
                qty = 1 + int(rand() * 16)
            elif kind == "unit":
                qty = 1 + int(rand() * 6)
            else:
                qty = 1
            total += cents * qty
            amount = amounts.get(cents)
            if amount is None:
                amount = amounts[cents] = cents_to_json(cents)
            lines.append((desc, amount, qty))
        created_day = ts // 86400
        due_day = created_day + 15 + int(rand() * 31)
        status = _status(rng, today_day - due_day)
        notified: int | None = None
        if status != "draft" and rand() < 0.6:
            latest = min(last_second, ts + 40 * 86400)
            notified = ts + int(rand() * (latest - ts + 1)) if latest > ts else ts
        extra: dict[str, Any] | None = None
        r = rand()
        if r < 0.02:
            extra = {"tax_total": 0}
        elif r < 0.04:
            extra = {"external_reference": f"PO-{10000 + int(rand() * 90000)}"}
        prev: str | None = None
        if rand() < 0.03:
            prev, status = status, "archived"
        memo = _memo(rng, day_to_date(created_day))
        if memo is not None:
            memo = memos.setdefault(memo, memo)
        out.append(
            InvoiceRec(
                id=inv_id,
                number=0,  # assigned below, once the final order is known
                customer_id=cust_ids[owner],
                created_ts=ts,
                due_day=due_day,
                status=status,
                lines=tuple(lines),
                total_cents=total,
                memo=memo,
                last_notified_ts=notified,
                extra=extra,
                prev_status=prev,
            )
        )
    # Same-second stamps are ordered by id so numbering follows the API's keyset order.
    out.sort(key=lambda inv: (inv.created_ts, inv.id))
    for i, inv in enumerate(out):
        inv.number = first_number + i
    return out


def generate(
    seed: int,
    customers: int,
    invoices: int,
    today: dt.date,
    *,
    names: tuple[str, ...] = COMPANY_NAMES,
    first_number: int = FIRST_INVOICE_NUMBER,
) -> tuple[list[CustomerRec], list[InvoiceRec]]:
    """Customers then invoices from one seeded RNG (never the global ``random``)."""
    rng = random.Random(seed)
    custs = generate_customers(rng, customers, today, names)
    return custs, generate_invoices(rng, custs, invoices, today, first_number)


def seeded_statuses(invoices: list[InvoiceRec]) -> list[str]:
    """Each invoice's status as far as money goes (an archived invoice's status before archiving)."""
    return [inv.prev_status if inv.status == "archived" and inv.prev_status else inv.status for inv in invoices]


# -- payments ------------------------------------------------------------------------------------------

CARD_FEE_BPS = 290  # 2.9% + 30c, surcharged to the customer for some card payments
CARD_FEE_FIXED = 30
ACH_FEE_CENTS = 100  # flat, always absorbed by the partner
LATE_FEE_CENTS = 2500


class _Payer:
    """Builds one tenant's payments; times are epoch seconds, money integer cents."""

    def __init__(self, rng: random.Random, customers: list[CustomerRec], today: dt.date) -> None:
        self.rng = rng
        self.last_second = date_to_day(today) * 86400 - 1  # nothing seeded happens "today"
        self.out: list[PaymentRec] = []
        self.seen: set[str] = set()
        # Customers with a default payment method are charged automatically on it (card or ACH).
        self.autopay: dict[str, str | None] = {
            c.id: (("card", "ach")[rng.random() < 0.45] if c.default_payment_method_id else None) for c in customers
        }

    def start(self, inv: InvoiceRec) -> int:
        """Earliest moment a payment can exist: an hour after the invoice (all seeded invoices
        are created at 23:00 yesterday at the latest, so this is never after ``last_second``)."""
        return min(inv.created_ts + 3600, self.last_second)

    def times(self, lo: int, hi: int, n: int) -> list[int]:
        hi = min(hi, self.last_second)
        if hi <= lo:  # e.g. paid "before the due date" but the invoice is younger than that
            hi = min(self.last_second, lo + 30 * 86400)
        return sorted(lo + int(self.rng.random() * (hi - lo + 1)) for _ in range(n))

    def payment_kind(self, inv: InvoiceRec) -> tuple[str, str]:
        """(type, payment_method) of a payment of ``inv``."""
        method = self.autopay.get(inv.customer_id)
        if method is not None and not inv.exclude_from_autopay:
            return "autopay", method
        return "one_time", ("card" if self.rng.random() < 0.6 else "ach")

    def add(self, inv: InvoiceRec, ts: int, cents: int, status: str, how: tuple[str, str] | None = None) -> PaymentRec:
        kind, method = how if how is not None else self.payment_kind(inv)
        fees: list[Fee] = []
        if status != "failed":
            if method == "card":
                fee = (cents * CARD_FEE_BPS + 5000) // 10000 + CARD_FEE_FIXED
                fees.append(("Card processing fee", "FT_METHOD", fee, self.rng.random() < 0.3))
            else:
                fees.append(("ACH processing fee", "FT_METHOD", ACH_FEE_CENTS, False))
            if ts >= (inv.due_day + 1) * 86400 and self.rng.random() < 0.25:
                fees.append(("Late payment fee", "FT_LATE_PAYMENT", LATE_FEE_CENTS, True))
        pay_id = random_id(self.rng, "pay_", 24)
        while pay_id in self.seen:  # pragma: no cover - 62^24 space
            pay_id = random_id(self.rng, "pay_", 24)
        self.seen.add(pay_id)
        rec = PaymentRec(
            id=pay_id,
            customer_id=inv.customer_id,
            invoice_id=inv.id,
            created_ts=ts,
            due_day=inv.due_day,
            status=status,
            type=kind,
            payment_method=method,
            sub_total_cents=cents,
            fees=tuple(fees),
        )
        self.out.append(rec)
        return rec

    def instalments(self, cents: int, n: int) -> list[int]:
        """``n`` positive parts summing to ``cents``; all but the last are whole dollars when possible."""
        if n <= 1 or cents < 100 * n:
            return [cents]
        parts: list[int] = []
        left = cents
        for i in range(n - 1, 0, -1):
            share = left * (0.3 + 0.4 * self.rng.random()) if i == 1 else left / (i + 1)
            part = max(100, int(share) // 100 * 100)
            parts.append(part)
            left -= part
        parts.append(left)
        return parts

    def paid(self, inv: InvoiceRec) -> None:
        """Succeeded payments summing to the total: 1, or 2-3 instalments; sometimes a failed try first."""
        r = self.rng.random()
        parts = self.instalments(inv.total_cents, 1 if r < 0.75 else 2 if r < 0.92 else 3)
        failed_first = self.rng.random() < 0.08
        lo = self.start(inv)
        hi = (inv.due_day + self.rng.randint(-10, 25)) * 86400
        stamps = self.times(lo, hi, len(parts) + failed_first)
        how = self.payment_kind(inv)
        if failed_first:
            self.add(inv, stamps.pop(0), inv.total_cents, "failed", how)
        for ts, cents in zip(stamps, parts, strict=True):
            self.add(inv, ts, cents, "succeeded", how)

    def partial(self, inv: InvoiceRec) -> None:
        """One or two succeeded payments for 20-80% of the total (at least 1 cent, less than the total)."""
        target = int(inv.total_cents * (0.2 + 0.6 * self.rng.random()))
        if target >= 100:
            target = target // 100 * 100
        target = min(max(1, target), inv.total_cents - 1)
        parts = self.instalments(target, 2 if self.rng.random() < 0.2 else 1)
        how = self.payment_kind(inv)
        for ts, cents in zip(self.times(self.start(inv), self.last_second, len(parts)), parts, strict=True):
            self.add(inv, ts, cents, "succeeded", how)

    def near_due(self, inv: InvoiceRec) -> int:
        """An attempt around the due date (or now, if that is still ahead)."""
        lo = self.start(inv)
        return max(lo, min(self.last_second, inv.due_day * 86400 + 9 * 3600 + self.rng.randrange(8 * 3600)))


def generate_payments(
    seed: int, customers: list[CustomerRec], invoices: list[InvoiceRec], statuses: list[str], today: dt.date
) -> list[PaymentRec]:
    """Payments consistent with each invoice's status (``seeded_statuses``, taken at generation),
    from their own RNG so that adding payments left the invoice data exactly as it was:

    * ``paid``: succeeded payments summing to the total (a quarter in 2-3 instalments; a few with a
      failed attempt first; one with a duplicate charge that was refunded);
    * ``partially_paid``: succeeded payments for less than the total;
    * ``open``/``overdue``: a failed attempt on about a fifth of them, a refunded payment on one
      in 200 (at least one), a chargeback on one overdue invoice, a pending ACH payment on one
      open invoice; nothing on drafts.

    Returned in ascending ``(created_at, id)`` order; every payment is after its invoice's creation
    and before the sandbox's "today".
    """
    rng = random.Random(f"{seed}/payments")
    payer = _Payer(rng, customers, today)
    unpaid: list[tuple[InvoiceRec, str]] = []
    paid_once: list[InvoiceRec] = []
    for inv, status in zip(invoices, statuses, strict=True):
        if status == "paid":
            before = len(payer.out)
            payer.paid(inv)
            if len(payer.out) - before == 1:
                paid_once.append(inv)
        elif status == "partially_paid":
            payer.partial(inv)
        elif status in ("open", "overdue"):
            unpaid.append((inv, status))
    if unpaid:
        failed = rng.sample(unpaid, max(1, round(len(unpaid) * 0.2)))
        for inv, _ in failed:
            payer.add(inv, payer.near_due(inv), inv.total_cents, "failed")
        taken = {inv.id for inv, _ in failed}
        overdue = [inv for inv, status in unpaid if status == "overdue" and inv.id not in taken]
        for inv in rng.sample(overdue, min(1, len(overdue))):
            payer.add(inv, payer.near_due(inv), inv.total_cents, "chargeback")
            taken.add(inv.id)
        open_ = [inv for inv, status in unpaid if status == "open" and inv.id not in taken]
        for inv in rng.sample(open_, min(1, len(open_))):
            ts = max(payer.start(inv), payer.last_second - rng.randrange(3 * 86400))
            payer.add(inv, ts, inv.total_cents, "pending", (payer.payment_kind(inv)[0], "ach"))
            taken.add(inv.id)
        rest = [inv for inv, _ in unpaid if inv.id not in taken]
        for inv in rng.sample(rest, min(len(rest), max(1, len(invoices) // 200))):
            payer.add(inv, payer.near_due(inv), inv.total_cents, "refunded")
    if paid_once:
        inv = rng.choice(paid_once)
        (first,) = (p for p in payer.out if p.invoice_id == inv.id)
        dup = min(payer.last_second, first.created_ts + rng.randint(60, 3600))
        payer.add(inv, dup, inv.total_cents, "refunded", (first.type, first.payment_method))
    payer.out.sort(key=lambda p: (p.created_ts, p.id))
    return payer.out
