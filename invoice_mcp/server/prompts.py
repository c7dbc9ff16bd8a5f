"""MCP prompts: plain SDK prompt functions over the texts in the top-level ``prompts/`` folder.

Each prompt is a Python function (its name, title, description and typed arguments are what
``prompts/list`` shows) that cleans its arguments with :func:`invoice_mcp.text.clean`, checks them,
and fills the text file of the same name (``prompts/<name>.md``, installed as the package
``invoice_mcp.prompt_texts``). The texts are :class:`string.Template` bodies: ``$name`` inserts an
argument, ``$$`` is a literal dollar sign; substitution is a single pass, so ``$``, ``{`` and ``}``
inside user values stay literal.

Bad input is a JSON-RPC invalid-params error (-32602) with a message saying what to send; the SDK
alone would answer an unknown prompt name, a missing or an unknown argument with "Internal server
error", so :func:`register_prompts` also installs a small middleware that checks those first.
"""

from __future__ import annotations

import calendar
import inspect
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Final

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from invoice_mcp.text import clean

__all__ = [
    "PROMPT_NAMES",
    "TEXTS_PACKAGE",
    "YEAR_MONTH",
    "PromptArgumentSpec",
    "PromptSpec",
    "prompt_specs",
    "prompt_text",
    "register_prompts",
]

TEXTS_PACKAGE: Final = "invoice_mcp.prompt_texts"
MAX_ARG_LENGTH: Final = 500
MAX_DESCRIPTION_LENGTH: Final = 2000
TONES: Final = ("polite", "firm", "final")
YEAR_MONTH: Final = "year-month"
_YEAR_MONTH: Final = re.compile(r"([0-9]{4})-([0-9]{2})")


@cache
def prompt_text(name: str) -> str:
    """The text of ``prompts/<name>.md``."""
    return files(TEXTS_PACKAGE).joinpath(f"{name}.md").read_text(encoding="utf-8")


def _invalid(message: str) -> MCPError:
    return MCPError(INVALID_PARAMS, message)


def _fill(name: str, **values: str) -> str:
    return string.Template(prompt_text(name)).substitute(values)


def _arg(prompt: str, name: str, value: str, *, required: bool, max_len: int = MAX_ARG_LENGTH) -> str:
    """``value`` cleaned (control and invisible characters dropped, whitespace collapsed) and bounded."""
    cleaned = clean(value, max_len + 1)
    if len(cleaned) > max_len:
        raise _invalid(f"argument {name!r} of prompt {prompt!r} is too long (more than {max_len} characters)")
    if required and not cleaned:
        raise _invalid(f"missing required argument(s) for prompt {prompt!r}: {name}")
    return cleaned


def _month(prompt: str, value: str) -> tuple[str, date, date]:
    month = _arg(prompt, "month", value, required=True)
    m = _YEAR_MONTH.fullmatch(month)
    year, number = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if not 1 <= number <= 12 or year < 1:
        raise _invalid(f"argument 'month' must be a month as YYYY-MM (e.g. 2025-03), got {month!r}")
    return month, date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


# --------------------------------------------------------------------------- the prompts


def overdue_followup(
    customer: Annotated[str, Field(description="Customer company name, e.g. Acme Corp")],
    tone: Annotated[str, Field(description="Email tone - polite, firm or final (default polite)")] = "polite",
) -> str:
    name = "overdue_followup"
    customer = _arg(name, "customer", customer, required=True)
    chosen = _arg(name, "tone", tone, required=False) or "polite"
    match = next((t for t in TONES if t == chosen.casefold()), None)
    if match is None:
        raise _invalid(f"argument 'tone' must be one of {'|'.join(TONES)}, got {chosen!r}")
    return _fill(name, customer=customer, tone=match)


def month_end_review(
    month: Annotated[str, Field(description="Month to review, as YYYY-MM (e.g. 2025-03)")],
) -> str:
    text, start, end = _month("month_end_review", month)
    return _fill("month_end_review", month=text, month_start=start.isoformat(), month_end=end.isoformat())


def draft_invoice(
    customer: Annotated[str, Field(description="Customer company name to bill")],
    description: Annotated[
        str, Field(description="Free-text description of the work, with quantities and rates if known")
    ],
) -> str:
    name = "draft_invoice"
    return _fill(
        name,
        customer=_arg(name, "customer", customer, required=True),
        description=_arg(name, "description", description, required=True, max_len=MAX_DESCRIPTION_LENGTH),
    )


def billing_run(
    description: Annotated[str, Field(description="Who to bill for what, e.g. 'November retainers for every client'")],
) -> str:
    name = "billing_run"
    return _fill(
        name, description=_arg(name, "description", description, required=True, max_len=MAX_DESCRIPTION_LENGTH)
    )


_PROMPTS: Final = (
    (
        overdue_followup,
        "Overdue invoice follow-up",
        "Draft a follow-up email about one customer's overdue invoices (read-only; never creates or archives).",
    ),
    (
        month_end_review,
        "Month-end receivables review",
        "Short receivables report for one month - totals and balances by status, money collected, aging of "
        "balances, top debtors and biggest overdue invoices (read-only).",
    ),
    (
        draft_invoice,
        "Draft an invoice",
        "Turn a description of work into invoice line items, preview it with dry_run, and create it only after "
        "explicit approval.",
    ),
    (
        billing_run,
        "Billing run",
        "Bill many customers at once: preview the batch, confirm once, run it, report every row (resumable).",
    ),
)
PROMPT_NAMES: Final = tuple(fn.__name__ for fn, _, _ in _PROMPTS)


# --------------------------------------------------------------------------- for completions


@dataclass(frozen=True, slots=True)
class PromptArgumentSpec:
    """What completion/complete needs to know about one prompt argument."""

    name: str
    choices: tuple[str, ...] = ()
    format: str | None = None  # YEAR_MONTH: a month as YYYY-MM


@dataclass(frozen=True, slots=True)
class PromptSpec:
    name: str
    arguments: tuple[PromptArgumentSpec, ...]


_ARGUMENT_HINTS: Final[dict[tuple[str, str], dict[str, Any]]] = {
    ("overdue_followup", "tone"): {"choices": TONES},
    ("month_end_review", "month"): {"format": YEAR_MONTH},
}


def prompt_specs() -> list[PromptSpec]:
    """Every prompt with its arguments (names from the prompt functions' signatures)."""
    return [
        PromptSpec(
            fn.__name__,
            tuple(
                PromptArgumentSpec(arg, **_ARGUMENT_HINTS.get((fn.__name__, arg), {}))
                for arg in inspect.signature(fn).parameters
            ),
        )
        for fn, _, _ in _PROMPTS
    ]


# --------------------------------------------------------------------------- wiring


def _check_request(server: MCPServer[Any]) -> ServerMiddleware[Any]:
    """Middleware: a ``prompts/get`` for an unknown prompt, or with missing or unknown arguments, gets a
    clear invalid-params error instead of the SDK's "Internal server error"."""

    async def check(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "prompts/get" and isinstance(ctx.params, Mapping):
            prompts = {p.name: p for p in await server.list_prompts()}
            name = ctx.params.get("name")
            prompt = prompts.get(name) if isinstance(name, str) else None
            if prompt is None:
                raise _invalid(f"unknown prompt {name!r}; available prompts: {', '.join(sorted(prompts))}")
            given = ctx.params.get("arguments") or {}
            if isinstance(given, Mapping):
                declared = [a.name for a in prompt.arguments or []]
                unknown = sorted(set(given) - set(declared))
                if unknown:
                    raise _invalid(
                        f"unknown argument(s) for prompt {prompt.name!r}: {', '.join(unknown)}; "
                        f"expected: {', '.join(declared) or 'none'}"
                    )
                missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in given]
                if missing:
                    raise _invalid(f"missing required argument(s) for prompt {prompt.name!r}: {', '.join(missing)}")
        return await call_next(ctx)

    return check


def register_prompts(server: MCPServer[Any]) -> None:
    """Register the prompts on ``server`` (and the request check that makes their errors readable)."""
    for fn, title, description in _PROMPTS:
        server.prompt(title=title, description=description)(fn)
    server.middleware.append(_check_request(server))
