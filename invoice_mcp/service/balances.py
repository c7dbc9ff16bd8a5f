"""The balance rule: the one place that says what an invoice still owes. get_invoice, list rows
and summaries all call `balance_of`, so they cannot disagree on the same invoice.

* A settled invoice (paid, void, cancelled, written off…) owes nothing; drafts and archived ones
  are not owed either (summaries report them apart).
* An owed invoice whose status says money may already be applied (``partially_paid``, or a status
  nobody documented) owes its total less its **counted** payments, never below zero; its
  payments are read (one ``/payments?invoice_id=`` walk, cached briefly).
* An ``open`` or ``overdue`` invoice owes its total: by the API's own statuses an invoice with
  money applied is ``partially_paid``. Its payments are not read for lists and summaries (that
  would cost a request per unpaid invoice); where they are read anyway (get_invoice), succeeded
  money on such an invoice contradicts its status: it is reported, not applied, so every view
  gives the same figure and the contradiction is visible where it can be seen.

A payment is **counted** when its status is exactly ``succeeded``, its amount applied
(``sub_total``) is a usable, non-negative number, and it is in the invoice's currency (or says no
currency, as the documented schema has none). Everything else counts nothing and is either
ordinary (failed, pending, refunded, chargeback: money that did not arrive or went back) or a
**payment issue**, named in the answer: an unusable amount (NaN, text, boolean, object, ≥ 1e15,
negative), an unknown status (``completed``, ``paid``, ``settled``…), another currency, more
payments than the per-invoice read limit, or money beyond the total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from invoice_mcp.api.models import PaymentStatus
from invoice_mcp.service.statuses import is_apart, is_owed, may_have_payments, normalize
from invoice_mcp.text import clean, money_text, quoted

if TYPE_CHECKING:
    from invoice_mcp.api.models import Invoice, Payment

ZERO: Final = Decimal("0")
NAMED: Final = 5
"""Payment ids named per kind of issue (the count is always given)."""
MAX_PAYMENTS_PER_INVOICE: Final = 1000
"""Ten pages: more payments than that on one invoice is not a ledger, it is a loop."""


def currency_of(value: str | None) -> str:
    """An upper-case currency code, or "" when none was given."""
    return clean(value, 12).upper()


def reads_payments(inv: Invoice) -> bool:
    """Whether the rule needs this invoice's payments: owed and of a status under which money
    may already be applied (drafts and archived ones too, for get_invoice)."""
    return bool(inv.id) and ((is_owed(inv.status) and may_have_payments(inv.status)) or is_apart(inv.status))


@dataclass(frozen=True)
class InvoicePayments:
    """An invoice's payments as read (newest first) and whether the read limit cut them short."""

    payments: list[Payment]
    capped: bool = False


@dataclass
class PaymentIssues:
    """What in an invoice's payments was not counted for a reason worth saying."""

    unusable: list[str] = field(default_factory=list)
    """Payments whose amount or status is unusable (ids)."""
    unknown_status: dict[str, list[str]] = field(default_factory=dict)
    """Undocumented status → payment ids (counted nothing)."""
    other_currency: list[str] = field(default_factory=list)
    """Payments in another currency than their invoice (`id (EUR)`), not applied."""
    capped: list[str] = field(default_factory=list)
    """Invoices with more payments than the read limit (numbers)."""
    against_status: list[tuple[str, str, Decimal]] = field(default_factory=list)
    """(invoice, status, succeeded money) where the status says nothing was applied."""
    beyond_total: list[tuple[str, Decimal]] = field(default_factory=list)
    """(invoice, counted money beyond its total)."""

    def __bool__(self) -> bool:
        return bool(
            self.unusable
            or self.unknown_status
            or self.other_currency
            or self.capped
            or self.against_status
            or self.beyond_total
        )

    def merge(self, other: PaymentIssues) -> None:
        """Summaries gather the issues of many invoices; ids kept are bounded, counts are not."""
        self.unusable.extend(other.unusable)
        for status, ids in other.unknown_status.items():
            self.unknown_status.setdefault(status, []).extend(ids)
        self.other_currency.extend(other.other_currency)
        self.capped.extend(other.capped)
        self.against_status.extend(other.against_status)
        self.beyond_total.extend(other.beyond_total)

    def phrases(self, currency: str | None = "USD") -> list[str]:
        """One short sentence per kind of issue (payment ids and statuses are API text: quoted)."""
        out = []
        if self.unusable:
            n = _count(self.unusable, "payment")
            out.append(f"{n} with an unusable amount (not counted): {_ids(self.unusable)}")
        for status, ids in sorted(self.unknown_status.items()):
            out.append(f"{_count(ids, 'payment')} with unknown status {quoted(status, 32)} (not counted): {_ids(ids)}")
        if self.other_currency:
            out.append(
                f"{_count(self.other_currency, 'payment')} in another currency than its invoice (not applied): "
                + _ids(self.other_currency)
            )
        if self.capped:
            out.append(
                f"{_count(self.capped, 'invoice')} with more payments than the {MAX_PAYMENTS_PER_INVOICE:,} read "
                f"(the per-invoice limit; paid may be understated, balance overstated): {_ids(self.capped)}"
            )
        for ref, status, amount in self.against_status[:NAMED]:
            out.append(
                f"{ref}: status {quoted(status, 32)} says nothing was applied, yet succeeded payments total "
                f"{money_text(amount, currency)}: not applied (lists and summaries follow the status); check the "
                "invoice in the dashboard"
            )
        for ref, amount in self.beyond_total[:NAMED]:
            out.append(f"{ref}: payments exceed the total by {money_text(amount, currency)} (balance counted as 0)")
        return out


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _ids(items: list[str]) -> str:
    shown = ", ".join(clean(i, 64) for i in items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


@dataclass
class Balance:
    """What the rule says of one invoice."""

    paid: Decimal
    """Counted payments (succeeded, usable, same currency), before any cap at the total."""
    balance: Decimal | None
    """What is still owed (None when the total itself is unusable)."""
    issues: PaymentIssues
    failed: int = 0
    returned: Decimal = ZERO
    """Refunded and charged-back amounts (not in `paid`)."""
    unknown_statuses: list[str] = field(default_factory=list)


def _pid(p: Payment) -> str:
    return clean(p.id, 64) or "?"


def is_counted(p: Payment, currency: str = "") -> bool:
    """Money that certainly arrived, stayed, and is in `currency` (when both sides name one)."""
    if normalize(p.status) != PaymentStatus.SUCCEEDED or "status" in p.invalid_amounts:
        return False
    amount = p.applied
    if amount is None or amount < 0:
        return False
    pc = currency_of(p.currency)
    return not (pc and currency and pc != currency)


def counted(payments: list[Payment], currency: str = "") -> Decimal:
    return sum((p.applied or ZERO for p in payments if is_counted(p, currency)), ZERO)


@dataclass
class Tallied:
    """Payments sorted by what they mean (one pass, the rule's classification)."""

    paid: Decimal = ZERO
    failed: int = 0
    returned: Decimal = ZERO
    unknown: set[str] = field(default_factory=set)
    issues: PaymentIssues = field(default_factory=PaymentIssues)
    by_currency: dict[str, Decimal] = field(default_factory=dict)
    """Counted money per payment currency ("" when the payment names none)."""
    charged: Decimal = ZERO
    """What the payers of counted payments were charged (`total`: applied plus the fees they covered)."""
    fees_customer: Decimal = ZERO
    fees_merchant: Decimal = ZERO
    """Fees on counted payments, covered by the customer (inside `charged`) or absorbed by the merchant."""
    refunded: Decimal = ZERO
    refunded_count: int = 0
    charged_back: Decimal = ZERO
    charged_back_count: int = 0


def tally(payments: list[Payment], currency: str = "") -> Tallied:
    """Classify `payments`: counted (succeeded, usable, in `currency` when both name one), ordinary
    non-money (failed, pending, refunded, chargeback) or a payment issue."""
    t = Tallied()
    for p in payments:
        status = normalize(p.status)
        amount = p.applied
        if "status" in p.invalid_amounts or p.status is None:
            t.issues.unknown_status.setdefault("?", []).append(_pid(p))
            t.unknown.add("?")
            continue
        if amount is None or amount < 0 or any(k in p.invalid_amounts for k in ("sub_total", "total")):
            t.issues.unusable.append(_pid(p))
            continue
        if status not in PaymentStatus.KNOWN:
            t.issues.unknown_status.setdefault(clean(p.status, 32), []).append(_pid(p))
            t.unknown.add(status)
            continue
        pc = currency_of(p.currency)
        if pc and currency and pc != currency:
            t.issues.other_currency.append(f"{_pid(p)} ({pc})")
            continue
        if status == PaymentStatus.SUCCEEDED:
            t.paid += amount
            t.by_currency[pc] = t.by_currency.get(pc, ZERO) + amount
            t.charged += p.total if p.total is not None and p.total >= amount else amount
            for fee in p.fees or ():
                if fee.amount is not None and fee.amount >= 0:
                    if fee.covered_by_customer:
                        t.fees_customer += fee.amount
                    else:
                        t.fees_merchant += fee.amount
        elif status == PaymentStatus.FAILED:
            t.failed += 1
        elif status == PaymentStatus.REFUNDED:
            t.returned += amount
            t.refunded += amount
            t.refunded_count += 1
        elif status == PaymentStatus.CHARGEBACK:
            t.returned += amount
            t.charged_back += amount
            t.charged_back_count += 1
    return t


def balance_of(inv: Invoice, got: InvoicePayments | None) -> Balance:
    """The rule (see the module docstring). `got` is None when the payments were not read."""
    currency = currency_of(inv.currency)
    ref = clean(inv.invoice_number or inv.id, 64) or "?"
    t = tally(got.payments if got is not None else [], currency)
    issues, paid = t.issues, t.paid
    if got is not None and got.capped:
        issues.capped.append(ref)
    total = inv.total
    balance: Decimal | None
    if not is_owed(inv.status) and not is_apart(inv.status):
        balance = ZERO
    elif total is None:
        balance = None
    elif reads_payments(inv):
        applied = min(paid, max(ZERO, total))
        if paid > total > 0:
            issues.beyond_total.append((ref, paid - total))
        balance = total - applied
    else:
        balance = total
        if paid > 0:
            issues.against_status.append((ref, clean(inv.status, 32) or "?", paid))
    return Balance(
        paid=paid,
        balance=balance,
        issues=issues,
        failed=t.failed,
        returned=t.returned,
        unknown_statuses=sorted(t.unknown),
    )
