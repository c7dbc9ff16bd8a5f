"""Where the state store lives: one URL names the backend and the place.

Zero set-up by default (an SQLite file in the user's data folder); ``--state`` or
``INVOICE_MCP_STATE`` moves it or points every replica at one Postgres database.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from invoice_mcp.logs import redact_url

ENV_VAR = "INVOICE_MCP_STATE"
APP_DIR = "invoice-mcp"
DB_NAME = "state.db"


class StateError(Exception):
    """The state store cannot be reached, opened or migrated; the message says what to do."""


class Dialect(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgresql"


@dataclass(frozen=True)
class StateLocation:
    """A parsed state URL. ``path`` is set for an SQLite file, None for memory or Postgres."""

    dialect: Dialect
    url: str  # what the driver gets (Postgres: the URL as given; SQLite: the file path or ":memory:")
    path: Path | None = None

    @property
    def display(self) -> str:
        """Safe to log: a Postgres password (userinfo or ?password=) is replaced by ***."""
        if self.dialect is Dialect.SQLITE:
            return f"sqlite:///{self.path}" if self.path else "sqlite://:memory:"
        return redact_url(self.url)


def default_data_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user data folder: $XDG_DATA_HOME (or ~/.local/share) on Linux and BSDs,
    ~/Library/Application Support on macOS, %LOCALAPPDATA% on Windows."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / APP_DIR


def parse_state_url(value: str | None, env: Mapping[str, str] | None = None) -> StateLocation:
    """``None``/empty: $INVOICE_MCP_STATE, else the default file. Accepted forms:
    ``sqlite:///ABSOLUTE/PATH`` (like file:///; four slashes work too), ``sqlite://:memory:``,
    a plain file path (relative to the working directory, made absolute now),
    ``postgresql://user:pass@host:port/db`` (or ``postgres://``)."""
    env = os.environ if env is None else env
    raw = (value or "").strip() or env.get(ENV_VAR, "").strip()
    if not raw:
        return StateLocation(Dialect.SQLITE, str(default_data_dir(env) / DB_NAME), default_data_dir(env) / DB_NAME)
    scheme = raw.split(":", 1)[0].lower() if "://" in raw else ""
    if scheme in ("postgresql", "postgres"):
        if not urlsplit(raw).hostname and "host=" not in raw:
            raise StateError(f"state URL {redact_url(raw)} names no host: use postgresql://user:pass@host:5432/db")
        return StateLocation(Dialect.POSTGRES, raw)
    if scheme == "sqlite":
        rest = raw[len("sqlite://") :]
        if rest in ("", ":memory:", "/:memory:"):
            return StateLocation(Dialect.SQLITE, ":memory:")
        if not rest.startswith("/"):
            raise StateError(f"state URL {raw!r}: write sqlite:///ABSOLUTE/PATH (three slashes, then the path)")
        rest = "/" + rest.lstrip("/")
        if len(rest) > 2 and rest[2] == ":":  # sqlite:///C:/Users/... on Windows
            rest = rest[1:]
        path = Path(rest)
    elif scheme:
        raise StateError(f"state URL scheme {scheme!r} is not supported: use sqlite:///PATH or postgresql://…")
    else:
        path = Path(raw).expanduser()
    path = path.absolute()
    return StateLocation(Dialect.SQLITE, str(path), path)
