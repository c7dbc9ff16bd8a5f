"""Settings from the environment (and an env file), validated once at start-up.

Where a setting may come from (a `.env` in a project folder must not redirect
credentials). Highest precedence first:

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

Not pydantic-settings: the restricted `./.env`, messages that name the variable and
never quote a secret's value, and lenient values (any case, blank is the default)
would each be a custom source or validator there; `Settings` stays a plain model,
so building one in code (a gateway tenant, a test) never reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, SecretStr

from invoice_mcp.api.keys import derive_key, secret_digest

BASE_URLS: dict[str, str] = {
    "production": "https://public-api.alternativepayments.io",
    "demo": "https://public-api.demo.alternativepayments.io",
}

Environment = Literal["production", "demo"]
ConfirmPolicy = Literal["auto", "always", "never"]
ListRows = Literal["both", "text", "structured"]
ENVIRONMENTS: tuple[Environment, ...] = get_args(Environment)
CONFIRM_POLICIES: tuple[ConfirmPolicy, ...] = get_args(ConfirmPolicy)
LIST_ROWS: tuple[ListRows, ...] = get_args(ListRows)

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
    environment: Environment = "production"
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
    list_rows: ListRows = "both"
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


Choice = TypeVar("Choice", bound=str)


class _Reader:
    """Reads the merged environment one variable at a time. A bad value is noted, worded with
    the variable's name, and stood in for by the default, so that every problem is reported at once."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.show = _Shown(env)

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def secret(self, name: str) -> SecretStr | None:
        value = self.text(name)
        return SecretStr(value) if value else None

    def choice(self, name: str, choices: tuple[Choice, ...], wording: str) -> Choice:
        """One of `choices`, in any case; the first when unset."""
        value = self.text(name).lower() or choices[0]
        for choice in choices:
            if value == choice:
                return choice
        self.problems.append(f"{name} must be {wording} (got {self.show(value)})")
        return choices[0]

    def positive(self, name: str, default: float) -> float:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number (got {self.show(raw)})")
            return default
        if not value > 0 or value != value or value == float("inf"):
            self.problems.append(f"{name} must be a positive number (got {self.show(raw)})")
            return default
        return value

    def count(self, name: str, default: int) -> int:
        value = self.positive(name, default)
        if value != int(value):
            self.problems.append(f"{name} must be a whole number (got {value:g})")
            return default
        return int(value)

    def days(self, name: str) -> int | None:
        """A whole number of days, at least 1; None when unset."""
        raw = self.text(name)
        if not raw:
            return None
        if not raw.isdigit() or int(raw) < 1:
            self.problems.append(f"{name} must be a whole number of days (got {raw!r})")
            return None
        return int(raw)

    def flag(self, name: str) -> bool:
        raw = self.env.get(name, "")
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low not in _FALSE:
            self.problems.append(f"{name} must be 1/0, true/false (got {self.show(raw)})")
        return False

    def base_url(self, environment: str) -> str:
        """AP_BASE_URL, else the environment's official host; never a URL built from a secret."""
        base_url = self.text("AP_BASE_URL") or BASE_URLS[environment]
        if self.show.holds_secret(base_url):
            self.problems.append("AP_BASE_URL contains the value of a secret variable; it is not used (nor shown)")
        elif not base_url.startswith(("https://", "http://")):
            self.problems.append(f"AP_BASE_URL must start with https:// or http:// (got {self.show(base_url)})")
        return base_url.rstrip("/")


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
    read = _Reader(_merged_env(env, dotenv_path, env_file, notices))
    if gateway is None:
        gateway = read.flag("INVOICE_MCP_GATEWAY")
    client_id = "" if gateway else read.text("AP_CLIENT_ID")
    secret = "" if gateway else read.text("AP_CLIENT_SECRET")
    if require_credentials and not gateway:
        for name, value in (("AP_CLIENT_ID", client_id), ("AP_CLIENT_SECRET", secret)):
            if not value:
                read.problems.append(f"{name} is not set (Partner Dashboard → API Keys)")
    environment = read.choice("AP_ENVIRONMENT", ENVIRONMENTS, "'production' or 'demo'")
    settings = Settings(
        client_id=client_id,
        client_secret=SecretStr(secret),
        environment=environment,
        base_url=read.base_url(environment),
        timeout_s=read.positive("AP_TIMEOUT_S", 30.0),
        rate_limit=read.positive("AP_RATE_LIMIT", 5.0),
        confirm=read.choice("INVOICE_MCP_CONFIRM", CONFIRM_POLICIES, "auto, always or never"),
        read_only=read.flag("INVOICE_MCP_READ_ONLY"),
        gateway_max_tenants=read.count("INVOICE_MCP_GATEWAY_MAX_TENANTS", 100),
        gateway_idle_s=read.positive("INVOICE_MCP_GATEWAY_IDLE_S", 900.0),
        redis_url=read.secret("INVOICE_MCP_REDIS_URL"),
        http_token=read.secret("INVOICE_MCP_HTTP_TOKEN"),
        list_rows=read.choice("INVOICE_MCP_LIST_ROWS", LIST_ROWS, "both, text or structured"),
        state_url=read.secret("INVOICE_MCP_STATE"),
        journal_retention_days=read.days("INVOICE_MCP_JOURNAL_RETENTION_DAYS"),
        gateway=gateway,
    )
    if read.problems:
        raise SettingsError("Invalid configuration:\n  - " + "\n  - ".join(read.problems))
    if settings.base_url not in BASE_URLS.values():
        notices.append(
            f"AP_BASE_URL={settings.base_url}: the client credentials and every request go to this server, "
            "not to Alternative Payments' API"
        )
    return settings.model_copy(update={"notices": tuple(notices)})
