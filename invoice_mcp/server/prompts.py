"""MCP prompt templates loaded from Markdown files.

Each prompt lives in its own ``*.md`` file in the top-level ``prompts/`` folder (installed as the
package ``invoice_mcp_prompts``). A file starts with a small front-matter block between ``---``
lines, followed by the body::

    ---
    name: overdue_followup                 # required, [a-z][a-z0-9_]*
    title: Overdue invoice follow-up       # optional
    description: One line shown in prompts/list
    arguments:                             # optional list; each item starts with "  - name:"
      - name: tone
        description: polite, firm or final
        required: false                    # true|false, default false
        default: polite                    # optional-argument default
        choices: polite|firm|final         # optional, allowed values
        format: year-month                 # optional, only "year-month" (YYYY-MM) for now
        max_length: 500                    # optional, default 500 characters
    ---
    Body text with $placeholders ...

Front-matter values are plain text after the first ``:`` (no quoting, no comments). The body is a
:class:`string.Template`: ``$name`` / ``${name}`` insert an argument, ``$$`` is a literal dollar sign.
A ``year-month`` argument named ``x`` also provides ``$x_start`` and ``$x_end`` (first and last day,
YYYY-MM-DD). Substitution is a single pass, so ``$``, ``{`` and ``}`` inside user values are
inserted literally. Before substitution every value has control/format characters removed
(whitespace controls such as newlines become spaces), is stripped, and must fit ``max_length``.
"""

from __future__ import annotations

import calendar
import importlib.util
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib.abc import Traversable
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from mcp.server import MCPServer
from mcp.server.mcpserver import UserMessage
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.prompts.base import Message, Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, InputRequiredResult

__all__ = [
    "PROMPTS_PACKAGE",
    "PromptArgumentError",
    "PromptArgumentSpec",
    "PromptFileError",
    "PromptTemplate",
    "load_prompts",
    "parse_prompt_file",
    "prompts_dir",
    "register_prompts",
    "render_prompt",
]

PROMPTS_PACKAGE: Final = "invoice_mcp_prompts"
DEFAULT_MAX_LENGTH: Final = 500
YEAR_MONTH: Final = "year-month"

_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_YEAR_MONTH_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})")
_TOP_KEYS: Final = frozenset({"name", "title", "description", "arguments"})
_ARG_KEYS: Final = frozenset({"name", "description", "required", "default", "choices", "format", "max_length"})
_FORMATS: Final = frozenset({YEAR_MONTH})
# Zero-width (non-)joiners are format characters that some scripts need inside names.
_KEEP_FORMAT_CHARS: Final = frozenset({"\u200c", "\u200d"})


class PromptFileError(ValueError):
    """A prompt file is malformed (raised at load time)."""


class _BadField(Exception):
    """Internal: a front-matter problem; the caller adds file and line."""


class PromptArgumentError(ValueError):
    """A prompt argument is missing or invalid (raised at render time)."""


@dataclass(frozen=True, slots=True)
class PromptArgumentSpec:
    name: str
    description: str
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()
    format: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    title: str | None
    description: str
    arguments: tuple[PromptArgumentSpec, ...]
    body: str


# --------------------------------------------------------------------------- loading


def prompts_dir() -> Traversable:
    """The installed ``invoice_mcp_prompts`` package, else the repo's top-level ``prompts/``."""
    if importlib.util.find_spec(PROMPTS_PACKAGE) is not None:
        return files(PROMPTS_PACKAGE)
    return Path(__file__).resolve().parents[1] / "prompts"


def load_prompts(source: Traversable | None = None) -> list[PromptTemplate]:
    """Parse every ``*.md`` file in ``source`` (default :func:`prompts_dir`), sorted by file name."""
    root = prompts_dir() if source is None else source
    entries = sorted((e for e in root.iterdir() if e.is_file() and e.name.endswith(".md")), key=lambda e: e.name)
    templates = [parse_prompt_file(e.read_text(encoding="utf-8"), origin=e.name) for e in entries]
    seen: set[str] = set()
    for t in templates:
        if t.name in seen:
            raise PromptFileError(f"duplicate prompt name {t.name!r}")
        seen.add(t.name)
    return templates


def parse_prompt_file(text: str, origin: str = "<string>") -> PromptTemplate:
    """Parse one prompt file (front matter + body). Raises :class:`PromptFileError`."""

    def fail(msg: str, lineno: int | None = None) -> PromptFileError:
        where = f"{origin}:{lineno}" if lineno is not None else origin
        return PromptFileError(f"{where}: {msg}")

    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        raise fail("must start with a '---' front-matter line", 1)
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise fail("front matter is not closed by a '---' line") from None

    top: dict[str, str] = {}
    raw_args: list[tuple[int, dict[str, str]]] = []
    in_arguments = False
    for i in range(1, end):
        lineno, line = i + 1, lines[i]
        if not line.strip():
            continue
        if "\t" in line:
            raise fail("tabs are not allowed; indent with spaces", lineno)
        indented = line[0] == " "
        item = line.strip()
        if indented:
            if not in_arguments:
                raise fail("unexpected indented line", lineno)
            if item.startswith("- "):
                raw_args.append((lineno, {}))
                item = item[2:].strip()
            elif not raw_args:
                raise fail("argument fields must follow a '- name: ...' line", lineno)
            key, value = _split_key(item, origin, lineno)
            if key not in _ARG_KEYS:
                raise fail(f"unknown argument key {key!r}", lineno)
            if key in raw_args[-1][1]:
                raise fail(f"duplicate argument key {key!r}", lineno)
            raw_args[-1][1][key] = value
            continue
        key, value = _split_key(item, origin, lineno)
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r}", lineno)
        if key in top:
            raise fail(f"duplicate key {key!r}", lineno)
        top[key] = value
        in_arguments = key == "arguments"
        if in_arguments and value:
            raise fail("'arguments:' takes an indented list on the following lines", lineno)

    name = top.get("name", "")
    if not _NAME_RE.fullmatch(name):
        raise fail(f"missing or invalid 'name' {name!r}")
    description = top.get("description", "")
    if not description:
        raise fail("missing 'description'")
    parsed: list[PromptArgumentSpec] = []
    for lineno, fields in raw_args:
        try:
            parsed.append(_parse_argument(fields))
        except _BadField as exc:
            raise fail(str(exc), lineno) from None
    arguments = tuple(parsed)
    names = [a.name for a in arguments]
    if len(set(names)) != len(names):
        raise fail("duplicate argument names")

    body = "\n".join(lines[end + 1 :]).strip() + "\n"
    template = string.Template(body)
    if not template.is_valid():
        raise fail("body has an invalid '$' placeholder (write '$$' for a literal dollar sign)")
    known = set(names) | {f"{a.name}{sfx}" for a in arguments if a.format == YEAR_MONTH for sfx in ("_start", "_end")}
    unknown = sorted(set(template.get_identifiers()) - known)
    if unknown:
        raise fail(f"body uses undeclared placeholders: {', '.join(unknown)}")
    return PromptTemplate(
        name=name, title=top.get("title") or None, description=description, arguments=arguments, body=body
    )


def _split_key(item: str, origin: str, lineno: int) -> tuple[str, str]:
    key, sep, value = item.partition(":")
    key = key.strip()
    if not sep or not _NAME_RE.fullmatch(key):
        raise PromptFileError(f"{origin}:{lineno}: expected 'key: value', got {item!r}")
    return key, value.strip()


def _parse_argument(fields: Mapping[str, str]) -> PromptArgumentSpec:
    name = fields.get("name", "")
    if not _NAME_RE.fullmatch(name):
        raise _BadField(f"argument needs a valid 'name', got {name!r}")
    description = fields.get("description", "")
    if not description:
        raise _BadField(f"argument {name!r} needs a 'description'")
    required_raw = fields.get("required", "false").lower()
    if required_raw not in ("true", "false"):
        raise _BadField(f"argument {name!r}: 'required' must be true or false")
    required = required_raw == "true"
    choices = tuple(c.strip() for c in fields["choices"].split("|")) if "choices" in fields else ()
    if any(not c for c in choices):
        raise _BadField(f"argument {name!r}: empty value in 'choices'")
    fmt = fields.get("format") or None
    if fmt is not None and fmt not in _FORMATS:
        raise _BadField(f"argument {name!r}: unknown format {fmt!r}")
    max_raw = fields.get("max_length", str(DEFAULT_MAX_LENGTH))
    if not max_raw.isdigit() or int(max_raw) < 1:
        raise _BadField(f"argument {name!r}: 'max_length' must be a positive integer")
    default = fields.get("default") or None
    if default is not None and required:
        raise _BadField(f"argument {name!r}: a required argument cannot have a default")
    spec = PromptArgumentSpec(name, description, required, default, choices, fmt, int(max_raw))
    if default is not None:
        try:
            _check_value(spec, default)
        except PromptArgumentError as exc:
            raise _BadField(f"argument {name!r}: invalid default: {exc}") from None
    return spec


# --------------------------------------------------------------------------- rendering


def _clean(value: str) -> str:
    out: list[str] = []
    for ch in value:
        if ch.isspace():
            out.append(" ")  # newlines, tabs, U+2028 ... become plain spaces
        elif unicodedata.category(ch) in ("Cc", "Cf") and ch not in _KEEP_FORMAT_CHARS:
            continue
        else:
            out.append(ch)
    return "".join(out).strip()


def _check_value(spec: PromptArgumentSpec, value: str) -> tuple[str, dict[str, str]]:
    """Validate one cleaned value; returns it normalised plus the derived placeholders it provides."""
    if len(value) > spec.max_length:
        raise PromptArgumentError(f"argument {spec.name!r} is too long ({len(value)} > {spec.max_length} characters)")
    if spec.choices:
        match = next((c for c in spec.choices if c.casefold() == value.casefold()), None)
        if match is None:
            raise PromptArgumentError(f"argument {spec.name!r} must be one of {'|'.join(spec.choices)}, got {value!r}")
        value = match
    if spec.format == YEAR_MONTH:
        m = _YEAR_MONTH_RE.fullmatch(value)
        year, month = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        if not m or not 1 <= month <= 12 or year < 1:
            raise PromptArgumentError(
                f"argument {spec.name!r} must be a month as YYYY-MM (e.g. 2025-03), got {value!r}"
            )
        last = calendar.monthrange(year, month)[1]
        return value, {
            f"{spec.name}_start": date(year, month, 1).isoformat(),
            f"{spec.name}_end": date(year, month, last).isoformat(),
        }
    return value, {}


def render_prompt(template: PromptTemplate, arguments: Mapping[str, Any] | None) -> str:
    """Validate ``arguments`` against ``template`` and return the rendered body.

    Raises :class:`PromptArgumentError` for unknown, missing, non-string or invalid arguments.
    """
    given = dict(arguments or {})
    specs = {a.name: a for a in template.arguments}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise PromptArgumentError(
            f"unknown argument(s) for prompt {template.name!r}: {', '.join(unknown)}; "
            f"expected: {', '.join(specs) or 'none'}"
        )
    values: dict[str, str] = {}
    missing: list[str] = []
    for spec in template.arguments:
        raw = given.get(spec.name)
        if raw is not None and not isinstance(raw, str):
            raise PromptArgumentError(f"argument {spec.name!r} must be a string")
        value = _clean(raw) if raw is not None else ""
        if not value:
            if spec.required:
                missing.append(spec.name)
                continue
            value = spec.default or ""
        if value:
            value, derived = _check_value(spec, value)
            values.update(derived)
        values[spec.name] = value
    if missing:
        raise PromptArgumentError(f"missing required argument(s) for prompt {template.name!r}: {', '.join(missing)}")
    return string.Template(template.body).substitute(values)


# --------------------------------------------------------------------------- MCP wiring


class _FilePrompt(Prompt):
    """A :class:`Prompt` whose arguments come from a prompt file rather than a Python signature.

    ``render`` is overridden so that validation errors reach the client as -32602 (invalid params)
    with a readable message; the SDK's own missing-argument check surfaces as an internal error.
    """

    template: PromptTemplate

    async def render(
        self, arguments: dict[str, Any] | None, context: Context[Any, Any]
    ) -> list[Message] | InputRequiredResult:
        try:
            text = render_prompt(self.template, arguments)
        except PromptArgumentError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from exc
        return [UserMessage(text)]


def _to_prompt(template: PromptTemplate) -> Prompt:
    def fn(**kwargs: str) -> str:
        return render_prompt(template, kwargs)

    return _FilePrompt(
        name=template.name,
        title=template.title,
        description=template.description,
        arguments=[
            PromptArgument(name=a.name, description=a.description, required=a.required) for a in template.arguments
        ],
        fn=fn,
        template=template,
        icons=None,
        context_kwarg=None,
    )


def register_prompts(server: MCPServer[Any], templates: Iterable[PromptTemplate] | None = None) -> None:
    """Register every prompt file (or the given ``templates``) on ``server``."""
    for template in load_prompts() if templates is None else templates:
        server.add_prompt(_to_prompt(template))
