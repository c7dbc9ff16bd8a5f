"""Settings from the environment (and an env file), validated once at start-up.

Where a setting may come from (issue 12 §2: a `.env` in a project folder must not
redirect credentials). Highest precedence first:

1. the real process environment;
2. an env file named explicitly (`--env-file PATH` or `INVOICE_MCP_ENV_FILE=PATH`):
   trusted like the environment;
3. `./.env` in the working directory, which some MCP clients set to the user's
   project: it may supply credentials and harmless tuning only. A setting that
   would send the credentials elsewhere or lower safety (`SENSITIVE`) is ignored
   there, with a notice; `INVOICE_MCP_READ_ONLY` may only be turned *on* by it.

Every problem is reported in one message that names the variable, so a user
fixes their config in one go. A base URL other than the two official ones is
reported in `Settings.notices` so the command line announces it on stderr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from invoice_mcp.api.keys import derive_key, secret_digest

BASE_URLS: dict[str, str] = {
    "production": "https://public-api.alternativepayments.io",
    "demo": "https://public-api.demo.alternativepayments.io",
}

ConfirmPolicy = Literal["auto", "always", "never"]

ENV_FILE_VAR: Final = "INVOICE_MCP_ENV_FILE"

SENSITIVE: Final = frozenset(
    {
        "AP_BASE_URL",  # where Basic base64(id:secret) is sent
        "AP_ENVIRONMENT",  # which official host that is
        "INVOICE_MCP_CONFIRM",  # `never` silences confirmations
        "INVOICE_MCP_REDIS_URL",  # where access tokens are stored
        "INVOICE_MCP_HTTP_TOKEN",  # who may use the HTTP transport
        "INVOICE_MCP_GATEWAY",  # serve other people's credentials instead of the configured ones
        "INVOICE_MCP_STATE",  # where the journal of writes (and its duplicate memory) lives
        ENV_FILE_VAR,  # a file that would be trusted
    }
)
"""Never taken from an implicit `./.env`: they redirect credentials or lower safety."""


class SettingsError(Exception):
    """Configuration is missing or invalid; the message names each variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: SecretStr
    environment: Literal["production", "demo"] = "production"
    base_url: str = BASE_URLS["production"]
    timeout_s: float = 30.0
    rate_limit: float = 5.0
    redis_url: SecretStr | None = None
    read_only: bool = False
    confirm: ConfirmPolicy = "auto"
    http_token: SecretStr | None = None
    gateway: bool = False
    """Gateway mode: no credentials of its own; each HTTP request brings a tenant's (server/gateway.py)."""
    gateway_max_tenants: int = 100
    gateway_idle_s: float = 900.0
    list_rows: Literal["both", "text", "structured"] = "both"
    """Where list_invoices puts its rows: both (every host works), or only the text / only the
    structured content, for hosts that show the model both (INVOICE_MCP_LIST_ROWS)."""
    state_url: SecretStr | None = None
    """Where the state store (the write journal) lives: None is the default SQLite file in the
    user's data folder (INVOICE_MCP_STATE / --state; a Postgres URL may hold a password)."""
    journal_retention_days: int | None = None
    """Journal entries older than this many days are dropped (INVOICE_MCP_JOURNAL_RETENTION_DAYS; unset keeps all)."""
    notices: tuple[str, ...] = ()
    """Things the user should see on stderr at start-up (ignored .env entries, a custom base URL)."""

    @property
    def cache_key(self) -> str:
        """Identity of the credentials as presented (base URL, client id, digest of the secret):
        the access token belongs to it, so a wrong secret never reuses a good secret's token."""
        return f"{self.base_url}|{self.client_id}|{secret_digest(self.client_secret.get_secret_value())}"

    @property
    def rate_key(self) -> str:
        """Identity of the API key for pacing: the API's 5 requests/s are per client id."""
        return f"{self.base_url}|{self.client_id}"

    def derive_key(self, purpose: str) -> bytes:
        """A key for `purpose` (e.g. "cursor"), equal on every replica holding these credentials."""
        return derive_key(self.client_secret.get_secret_value(), purpose, self.base_url, self.client_id)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _read_env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # only when there is a file to read

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _merged_env(
    env: Mapping[str, str] | None, dotenv_path: Path | None, env_file: Path | None, notices: list[str]
) -> dict[str, str]:
    if env is not None:
        return dict(env)
    merged: dict[str, str] = {}
    named = env_file if env_file is not None else (os.environ.get(ENV_FILE_VAR, "").strip() or None)
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            raise SettingsError(
                f"Invalid configuration:\n  - env file {str(path)!r} ({ENV_FILE_VAR} / --env-file) not found"
            )
        merged.update(_read_env_file(path))  # named explicitly: trusted like the environment
    else:
        path = dotenv_path if dotenv_path is not None else Path.cwd() / ".env"
        if path.is_file():
            ignored = []
            for key, value in _read_env_file(path).items():
                lowers_read_only = key == "INVOICE_MCP_READ_ONLY" and value.strip().lower() not in _TRUE
                if key in SENSITIVE or lowers_read_only:
                    if key not in os.environ and value.strip():  # (the environment wins anyway)
                        ignored.append(key)
                else:
                    merged[key] = value
            if ignored:
                notices.append(
                    f"ignored {', '.join(sorted(ignored))} in {path}: a .env in the working directory may not "
                    "redirect the credentials or lower safety. Set these in the environment, or name the file "
                    f"explicitly with --env-file / {ENV_FILE_VAR} if you trust it."
                )
    merged.update(os.environ)
    return merged


_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|PRIVATE|API_?KEY|CREDENTIAL|REDIS_URL", re.IGNORECASE)
_MAX_SHOWN = 60


class _Shown:
    """How a configuration error quotes a value: never one that holds the value of a secret
    variable (a `.env` may interpolate `${AP_CLIENT_SECRET}` into any setting)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._secrets = [v.strip() for k, v in env.items() if _SECRET_NAME.search(k) and len(v.strip()) >= 4]

    def holds_secret(self, raw: str) -> bool:
        part = raw.strip()
        return any(secret in raw or (len(part) >= 8 and part in secret) for secret in self._secrets)

    def __call__(self, raw: str) -> str:
        if self.holds_secret(raw):
            return "a value that contains a secret variable's value, not shown"
        return repr(raw if len(raw) <= _MAX_SHOWN else raw[:_MAX_SHOWN] + "…")


def _positive_float(raw: str, name: str, problems: list[str], show: _Shown) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number (got {show(raw)})")
        return None
    if not value > 0 or value != value or value == float("inf"):
        problems.append(f"{name} must be a positive number (got {show(raw)})")
        return None
    return value


def _flag(raw: str, name: str, problems: list[str], show: _Shown) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low not in _FALSE:
        problems.append(f"{name} must be 1/0, true/false (got {show(raw)})")
    return False


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    dotenv_path: Path | None = None,
    env_file: Path | None = None,
    require_credentials: bool = True,
    gateway: bool | None = None,
) -> Settings:
    """Read settings; raise SettingsError listing every offending variable.

    Gateway mode (`gateway=True` or INVOICE_MCP_GATEWAY=1) needs no credentials and
    ignores AP_CLIENT_ID/AP_CLIENT_SECRET: every request brings its own.

    `env` given: exactly that mapping (no files). Otherwise the process environment
    over `env_file` (or $INVOICE_MCP_ENV_FILE), else over the implicit `dotenv_path`
    (default ./.env) restricted as the module docstring says."""
    notices: list[str] = []
    e = _merged_env(env, dotenv_path, env_file, notices)
    problems: list[str] = []
    show = _Shown(e)

    if gateway is None:
        gateway = _flag(e.get("INVOICE_MCP_GATEWAY", ""), "INVOICE_MCP_GATEWAY", problems, show)
    client_id = "" if gateway else e.get("AP_CLIENT_ID", "").strip()
    secret = "" if gateway else e.get("AP_CLIENT_SECRET", "")
    if require_credentials and not gateway:
        if not client_id:
            problems.append("AP_CLIENT_ID is not set (Partner Dashboard → API Keys)")
        if not secret.strip():
            problems.append("AP_CLIENT_SECRET is not set (Partner Dashboard → API Keys)")

    environment = e.get("AP_ENVIRONMENT", "production").strip().lower() or "production"
    if environment not in BASE_URLS:
        problems.append(f"AP_ENVIRONMENT must be 'production' or 'demo' (got {show(environment)})")
        environment = "production"

    base_url = e.get("AP_BASE_URL", "").strip() or BASE_URLS[environment]
    if show.holds_secret(base_url):
        problems.append("AP_BASE_URL contains the value of a secret variable; it is not used (nor shown)")
    elif not base_url.startswith(("https://", "http://")):
        problems.append(f"AP_BASE_URL must start with https:// or http:// (got {show(base_url)})")

    timeout = _positive_float(e.get("AP_TIMEOUT_S", "30"), "AP_TIMEOUT_S", problems, show) or 30.0
    rate = _positive_float(e.get("AP_RATE_LIMIT", "5"), "AP_RATE_LIMIT", problems, show) or 5.0

    confirm = e.get("INVOICE_MCP_CONFIRM", "auto").strip().lower() or "auto"
    if confirm not in ("auto", "always", "never"):
        problems.append(f"INVOICE_MCP_CONFIRM must be auto, always or never (got {show(confirm)})")
        confirm = "auto"
    read_only = _flag(e.get("INVOICE_MCP_READ_ONLY", ""), "INVOICE_MCP_READ_ONLY", problems, show)
    max_tenants = _positive_float(
        e.get("INVOICE_MCP_GATEWAY_MAX_TENANTS", "100"), "INVOICE_MCP_GATEWAY_MAX_TENANTS", problems, show
    )
    if max_tenants is not None and max_tenants != int(max_tenants):
        problems.append(f"INVOICE_MCP_GATEWAY_MAX_TENANTS must be a whole number (got {max_tenants:g})")
    idle_s = _positive_float(e.get("INVOICE_MCP_GATEWAY_IDLE_S", "900"), "INVOICE_MCP_GATEWAY_IDLE_S", problems, show)
    redis_url = e.get("INVOICE_MCP_REDIS_URL", "").strip() or None
    http_token = e.get("INVOICE_MCP_HTTP_TOKEN", "").strip() or None
    list_rows = e.get("INVOICE_MCP_LIST_ROWS", "both").strip().lower() or "both"
    if list_rows not in ("both", "text", "structured"):
        problems.append(f"INVOICE_MCP_LIST_ROWS must be both, text or structured (got {show(list_rows)})")
        list_rows = "both"

    state_url = e.get("INVOICE_MCP_STATE", "").strip() or None
    retention_raw = e.get("INVOICE_MCP_JOURNAL_RETENTION_DAYS", "").strip()
    retention: int | None = None
    if retention_raw:
        if not retention_raw.isdigit() or int(retention_raw) < 1:
            problems.append(
                f"INVOICE_MCP_JOURNAL_RETENTION_DAYS must be a whole number of days (got {retention_raw!r})"
            )
        else:
            retention = int(retention_raw)

    if problems:
        raise SettingsError("Invalid configuration:\n  - " + "\n  - ".join(problems))
    base_url = base_url.rstrip("/")
    if base_url not in BASE_URLS.values():
        notices.append(
            f"AP_BASE_URL={base_url}: the client credentials and every request go to this server, "
            "not to Alternative Payments' API"
        )
    return Settings(
        client_id=client_id,
        client_secret=SecretStr(secret.strip()),
        environment=environment,  # type: ignore[arg-type]
        base_url=base_url,
        timeout_s=timeout,
        rate_limit=rate,
        redis_url=SecretStr(redis_url) if redis_url else None,
        read_only=read_only,
        confirm=confirm,  # type: ignore[arg-type]
        http_token=SecretStr(http_token) if http_token else None,
        gateway=gateway,
        gateway_max_tenants=int(max_tenants or 100),
        gateway_idle_s=idle_s or 900.0,
        list_rows=list_rows,  # type: ignore[arg-type]
        state_url=SecretStr(state_url) if state_url else None,
        journal_retention_days=retention,
        notices=tuple(notices),
    )
